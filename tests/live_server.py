"""A real titiler-otsu server in a subprocess (uvicorn on a free loopback port), for client tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(sources: list[Path], allowed: list[Path], **settings: str) -> Iterator[str]:
    """Run `uvicorn titiler_otsu.app:create_app` with these settings; yield its base URL.

    Extra keyword settings become `TITILER_OTSU_<NAME>` environment variables.
    """
    port = free_port()
    env = {
        **os.environ,
        "TITILER_OTSU_SOURCES": json.dumps([str(s) for s in sources]),
        "TITILER_OTSU_ALLOWED_SOURCES": json.dumps([str(a) for a in allowed]),
        **{f"TITILER_OTSU_{k.upper()}": v for k, v in settings.items()},
    }
    cmd = [sys.executable, "-m", "uvicorn", "titiler_otsu.app:create_app", "--factory"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with code {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start within 60 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

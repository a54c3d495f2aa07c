"""The command line: `serve` (real uvicorn process, demo scene) and `threshold`."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from typer.testing import CliRunner

from tests.conftest import NAIP, RGB, load_npy
from titiler_otsu.cli import app

runner = CliRunner()


def test_threshold_command_prints_dataset_threshold() -> None:
    result = runner.invoke(app, ["threshold", str(NAIP), "--bidx", "4", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert 85 <= body["thresholds"][0] <= 97 and body["pixels"] > 100_000


def test_threshold_command_multiotsu_and_errors() -> None:
    result = runner.invoke(
        app, ["threshold", str(NAIP), "--bidx", "4", "--algorithm", "multiotsu", "--params", '{"classes": 4}']
    )
    assert result.exit_code == 0 and len(re.findall(r"\d+(?:\.\d+)?", result.output.split(":")[1].split("(")[0])) == 3
    result = runner.invoke(app, ["threshold", str(RGB)])
    assert result.exit_code == 2 and "bidx" in result.output
    result = runner.invoke(app, ["threshold", str(NAIP), "--params", '{"classes": 9}', "--bidx", "4"])
    assert result.exit_code != 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_without_arguments_serves_the_demo_scene(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "TITILER_OTSU_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("TITILER_OTSU_ALLOWED_SOURCES", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "titiler_otsu.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        deadline = time.time() + 120
        base = f"http://127.0.0.1:{port}"
        while time.time() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            raise AssertionError("server did not start")
        sources = httpx.get(f"{base}/sources").json()
        assert len(sources) == 1 and sources[0]["kind"] == "cog" and len(sources[0]["bounds"]) == 4
        assert httpx.get(f"{base}/").status_code == 200
        proc.terminate()
        out = proc.communicate(timeout=20)[0]
        lines = out.splitlines()
        xyz = next(line.split(None, 3)[-1] for line in lines if line.startswith("XYZ"))
        assert "{z}/{x}/{y}" in xyz and "algorithm=otsu" in xyz
        assert any(line.startswith("Viewer:") and base in line for line in lines)
    finally:
        if proc.poll() is None:
            proc.kill()
    # the printed template gives a real mask tile of the demo scene
    proc = subprocess.Popen(
        [sys.executable, "-m", "titiler_otsu.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        src = httpx.get(f"{base}/sources").json()[0]
        tj = httpx.get(src["tilejson"]).json()
        import morecantile

        w, s, e, n = src["bounds"]
        z = tj["maxzoom"]
        t = morecantile.tms.get("WebMercatorQuad").tile((w + e) / 2, (s + n) / 2, z)
        url = xyz.replace("{z}", str(z)).replace("{x}", str(t.x)).replace("{y}", str(t.y)).replace(".png?", ".npy?")
        r = httpx.get(url, timeout=30)
        assert r.status_code == 200, r.text
        classes, valid = load_npy(r.content)
        assert valid.any() and set(np.unique(classes[0][valid])) <= {0, 1}
    finally:
        proc.terminate()
        proc.wait(20)


def test_program_exits_with_its_objects_frozen_and_its_exit_code() -> None:
    """`main()` (the console script) leaves the final collection out: objects are frozen at exit."""
    script = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0, flush=True))\n"
        "sys.argv = ['titiler-otsu', 'threshold', sys.argv[1], '--bidx', '1']\n"
        "from titiler_otsu.cli import main\n"
        "main()\n"
    )
    ok = subprocess.run([sys.executable, "-c", script, str(NAIP)], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().endswith("frozen True")
    bad = subprocess.run(
        [sys.executable, "-c", script, "/no/such/file.tif"], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode != 0  # the command's exit code still reaches the shell
    assert bad.stdout.strip().endswith("frozen True")

"""A real HTTP object server for remote-source tests and benches: nginx on loopback.

`ObjectServer` starts Debian's nginx (installed by `scripts/install_nginx.sh`) with its own
config in a temporary directory: its own free port on 127.0.0.1, its own access log with
`$request`, `$http_range`, `$status` and `$body_bytes_sent`, serving one directory with
Range support (single and multi-range), `ETag` and `Last-Modified`, as an object store does.
`LatencyProxy` is a loopback TCP proxy in front of it that holds every chunk the client sends
for a fixed delay (so each HTTP request costs one extra `delay` round trip, as a distant
object store would), while responses stream back at loopback speed.

Requests and bytes are counted from the access log (`ObjectServer.window()`).

Usage::

    with ObjectServer(data_dir) as server, LatencyProxy(server.port, 0.02) as proxy:
        url = proxy.url("scene.tif")
        with server.window() as log:
            ...  # requests
        print(log.requests, log.bytes)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
INSTALL_SCRIPT = ROOT / "scripts" / "install_nginx.sh"

_LOG_FORMAT = "'$request\\t$http_range\\t$status\\t$body_bytes_sent'"

_CONFIG = """
worker_processes 1;
daemon off;
master_process on;
{user}
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format counted {log_format};
    access_log {tmp}/access.log counted;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{ image/tiff tif; application/json json; }}
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 100000;
    keepalive_timeout 120s;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
"""


def nginx_binary() -> str:
    """The nginx binary, installed by scripts/install_nginx.sh when missing (fails loudly)."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if found:
        return found
    proc = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"nginx is missing and {INSTALL_SCRIPT} failed:\n{proc.stderr}")
    return proc.stdout.strip().splitlines()[-1]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class LoggedRequest:
    """One access-log line."""

    method: str
    path: str
    range: str
    status: int
    bytes: int


@dataclass
class LogWindow:
    """The requests logged between two marks (filled when the `window()` block ends)."""

    entries: list[LoggedRequest] = field(default_factory=list)

    @property
    def requests(self) -> int:
        """Number of HTTP requests."""
        return len(self.entries)

    @property
    def bytes(self) -> int:
        """Body bytes sent."""
        return sum(e.bytes for e in self.entries)

    def of(self, name: str) -> list[LoggedRequest]:
        """The requests for one file (path ending in `name`)."""
        return [e for e in self.entries if e.path.split("?")[0].endswith(name)]

    def count(self, method: str) -> int:
        """Requests with this method."""
        return sum(e.method == method for e in self.entries)


class ObjectServer:
    """nginx on a free loopback port serving `root`, with a countable access log."""

    def __init__(self, root: Path) -> None:
        """Prepare (not start) a server for `root`."""
        self.root = Path(root).resolve()
        self.port = 0
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """The access log."""
        assert self._tmp is not None
        return Path(self._tmp.name) / "access.log"

    def url(self, name: str) -> str:
        """URL of a file below `root`."""
        return f"http://127.0.0.1:{self.port}/{name}"

    def start(self) -> ObjectServer:
        """Start nginx (retrying on a port race) and wait until it answers."""
        binary = nginx_binary()
        self._tmp = tempfile.TemporaryDirectory(prefix="otsu-nginx-")
        tmp = self._tmp.name
        user = "user root root;" if os.geteuid() == 0 else ""
        for _ in range(5):
            self.port = free_port()
            conf = Path(tmp) / "nginx.conf"
            conf.write_text(_CONFIG.format(user=user, tmp=tmp, port=self.port, root=self.root, log_format=_LOG_FORMAT))
            self._proc = subprocess.Popen(
                [binary, "-p", tmp, "-c", str(conf), "-e", f"{tmp}/error.log"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            if self._wait_ready():
                return self
            self._stop_proc()
        raise RuntimeError(f"nginx did not start: {(Path(tmp) / 'error.log').read_text(errors='replace')[-2000:]}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def _stop_proc(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def stop(self) -> None:
        """Stop nginx and remove its directory."""
        self._stop_proc()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> ObjectServer:
        """Start."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Stop."""
        self.stop()

    # ------------------------------------------------------------------ the log
    def _mark(self) -> str:
        """Request a unique marker path and wait until nginx has logged it; return it."""
        marker = f"/__mark_{uuid.uuid4().hex}"
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{self.port}{marker}", timeout=5)
        except OSError:
            pass  # a 404, as intended
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.log_path.exists() and marker in self.log_path.read_text(errors="replace"):
                return marker
            time.sleep(0.01)
        raise RuntimeError("nginx did not log the marker request")

    def entries(self) -> list[LoggedRequest]:
        """Every request logged so far, markers excluded."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            parsed = _parse(line)
            if parsed is not None and not parsed.path.startswith("/__mark_"):
                out.append(parsed)
        return out

    @contextmanager
    def window(self) -> Iterator[LogWindow]:
        """Collect the requests made inside the `with` block (between two logged markers)."""
        start = self._mark()
        window = LogWindow()
        yield window
        end = self._mark()
        lines = self.log_path.read_text(errors="replace").splitlines()
        i0 = next(i for i, line in enumerate(lines) if start in line)
        i1 = next(i for i, line in enumerate(lines) if end in line)
        window.entries = [p for p in (_parse(line) for line in lines[i0 + 1 : i1]) if p is not None]


def _parse(line: str) -> LoggedRequest | None:
    parts = line.split("\t")
    if len(parts) != 4:
        return None
    request, rng, status, sent = parts
    words = request.split(" ")
    if len(words) < 2:
        return None
    return LoggedRequest(words[0], words[1], "" if rng == "-" else rng, int(status), int(sent))


class LatencyProxy:
    """Loopback TCP proxy adding `delay` seconds to every chunk sent towards the server.

    A delay line (each chunk is forwarded `delay` after it arrived, in order), so pipelined or
    parallel requests are not serialised by the proxy: each costs one `delay`, as over a WAN.
    Runs an asyncio loop in a background thread.
    """

    def __init__(self, upstream_port: int, delay: float) -> None:
        """Prepare a proxy to 127.0.0.1:`upstream_port`."""
        self.upstream_port = upstream_port
        self.delay = delay
        self.port = 0
        self.connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None

    def url(self, name: str) -> str:
        """URL of a file through the proxy."""
        return f"http://127.0.0.1:{self.port}/{name}"

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def pump() -> None:
            while True:
                due, chunk = await queue.get()
                if not chunk:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(chunk)
                await writer.drain()

        task = asyncio.ensure_future(pump())
        try:
            while True:
                chunk = await reader.read(1 << 16)
                queue.put_nowait((time.monotonic() + delay, chunk))
                if not chunk:
                    break
            await task
        except (ConnectionError, asyncio.CancelledError):
            task.cancel()
        finally:
            try:
                writer.close()
            except RuntimeError:
                pass

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(
            self._pipe(client_r, up_w, self.delay), self._pipe(up_r, client_w, 0.0), return_exceptions=True
        )

    def start(self) -> LatencyProxy:
        """Start listening on a free loopback port."""
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            self._server = loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            self._server.close()
            tasks = asyncio.all_tasks(loop)  # open connections: end them before the loop closes
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=run, name="latency-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("latency proxy did not start")
        return self

    def stop(self) -> None:
        """Stop the proxy."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> LatencyProxy:
        """Start."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Stop."""
        self.stop()


def send_range(handler: Any, data: bytes, honour_range: bool = True, extra: dict[str, str] | None = None) -> None:
    """Answer an http.server request for `data`: `206` with `Content-Range` for a `Range`, else `200`.

    The body is written for `GET` only (`HEAD` gets the headers). `honour_range=False` answers
    every request with the whole object, as a server without range support does.
    """
    start, end = 0, len(data) - 1
    rng = handler.headers.get("Range", "")
    if honour_range and rng.startswith("bytes="):
        a, _, b = rng[6:].partition("-")
        start, end = int(a), min(int(b) if b else end, end)
        handler.send_response(206)
        handler.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
    else:
        handler.send_response(200)
    handler.send_header("Accept-Ranges", "bytes")
    handler.send_header("Content-Length", str(end - start + 1))
    for key, value in (extra or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    if handler.command == "GET":
        handler.wfile.write(data[start : end + 1])

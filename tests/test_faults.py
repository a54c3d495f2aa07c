"""Faults against a real server process: files removed or truncated while serving, remote
sources and STAC APIs that refuse or never answer, and a worker killed under load.

Every remote peer here is on loopback: a closed port, a socket that accepts and never
answers, and a server that answers HEAD but stalls its data.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import morecantile
import psutil
import pytest

from tests.conftest import B08, NAIP, load_npy
from tests.live_server import free_port, live_server
from tests.stac_fixtures import COLLECTION, NDWI

TMS = morecantile.tms.get("WebMercatorQuad")
NAIP_T = TMS.tile(-99.15, 47.02, 14)
TILE = f"/cog/tiles/WebMercatorQuad/14/{NAIP_T.x}/{NAIP_T.y}.npy"
TIMEOUT = 2.0


class _Stalling(BaseHTTPRequestHandler):
    """Answers HEAD like a file server, then never sends the data of a GET."""

    stop = threading.Event()

    def do_HEAD(self) -> None:  # noqa: N802 - http.server API
        self.send_response(200)
        self.send_header("Content-Length", str(NAIP.stat().st_size))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self.stop.wait(60)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def stalling_url() -> Iterator[str]:
    """A loopback HTTP server whose HEAD answers and whose GETs hang."""
    _Stalling.stop.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stalling)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        _Stalling.stop.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Copies of real rasters the tests remove and truncate."""
    d = tmp_path_factory.mktemp("faults")
    for name in ("keep.tif", "removed.tif", "truncated.tif"):
        shutil.copy(NAIP, d / name)
    return d


@pytest.fixture(scope="module")
def server(data_dir: Path, closed_port_url: str, hanging_api_url: str, stalling_url: str, stac_items) -> Iterator[str]:
    """One real server (uvicorn process) allowing the local copies and the broken remotes."""
    allowed = [
        data_dir,
        B08.parent,
        stac_items.directory,
        *(f"{u}/" for u in (closed_port_url, hanging_api_url, stalling_url)),
    ]
    with live_server(
        [data_dir / "keep.tif"],
        allowed,  # type: ignore[arg-type]
        remote_timeout=str(TIMEOUT),
        stac_timeout=str(TIMEOUT),
        stac_api_allow_user_url="true",
        stac_min_zoom="7",
    ) as base:
        yield base


def _tile(base: str, path: Path | str, **extra: object) -> httpx.Response:
    return httpx.get(f"{base}{TILE}", params={"url": str(path), "bidx": 4, **extra}, timeout=30)


def _timed(call) -> tuple[httpx.Response, float]:  # noqa: ANN001 - a zero-argument callable
    start = time.monotonic()
    response = call()
    return response, time.monotonic() - start


# ---------------------------------------------------------------------- local files
def test_removed_file_is_404_and_other_sources_keep_serving(server: str, data_dir: Path) -> None:
    assert _tile(server, data_dir / "removed.tif").status_code == 200  # warm: cached handle, histogram
    (data_dir / "removed.tif").unlink()
    r = _tile(server, data_dir / "removed.tif", algorithm="otsu")
    assert r.status_code == 404 and "No such file" in r.json()["detail"]
    assert str(data_dir) not in r.text
    keep = _tile(server, data_dir / "keep.tif")
    assert keep.status_code == 200 and load_npy(keep.content)[0].shape == (1, 256, 256)


def test_truncated_file_is_422_and_other_sources_keep_serving(server: str, data_dir: Path) -> None:
    path = data_dir / "truncated.tif"
    assert _tile(server, path, algorithm="otsu").status_code == 200  # warm every cache
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size * 3 // 10)
    for response in (
        _tile(server, path),
        _tile(server, path, algorithm="otsu"),
        httpx.get(f"{server}/cog/threshold", params={"url": str(path), "bidx": 4}, timeout=30),
    ):
        assert response.status_code == 422, response.text
        assert "damaged or truncated" in response.json()["detail"] and str(data_dir) not in response.text
    assert _tile(server, data_dir / "keep.tif", algorithm="otsu").status_code == 200


# ---------------------------------------------------------------------- remote sources and STAC
def test_remote_cog_on_a_closed_port_is_502_at_once(server: str, closed_port_url: str) -> None:
    r, elapsed = _timed(lambda: _tile(server, f"{closed_port_url}/naip.tif"))
    assert r.status_code == 502 and "Could not reach" in r.json()["detail"]
    assert elapsed < TIMEOUT


def test_remote_cog_that_never_answers_is_504_within_the_timeout_while_others_serve(
    server: str, hanging_api_url: str, data_dir: Path
) -> None:
    with ThreadPoolExecutor(1) as pool:
        hanging = pool.submit(_timed, lambda: _tile(server, f"{hanging_api_url}/naip.tif"))
        time.sleep(0.3)
        local, local_elapsed = _timed(lambda: _tile(server, data_dir / "keep.tif"))
        r, elapsed = hanging.result()
    assert local.status_code == 200 and local_elapsed < TIMEOUT
    assert r.status_code == 504 and "did not answer" in r.json()["detail"]
    assert TIMEOUT * 0.9 < elapsed < TIMEOUT + 3


def test_remote_cog_that_stalls_after_answering_head_is_a_5xx_gateway_error_after_gdal_timeout(
    server: str, stalling_url: str
) -> None:
    # GDAL's HTTP timeout ends the read; /vsicurl/ then reports only that the data is unreadable.
    r, elapsed = _timed(lambda: _tile(server, f"{stalling_url}/naip.tif"))
    assert r.status_code in (502, 504) and "remote source" in r.json()["detail"], r.text
    assert TIMEOUT * 0.9 < elapsed < 4 * TIMEOUT + 3


def test_stac_item_url_that_never_answers_is_504(server: str, hanging_api_url: str) -> None:
    r, elapsed = _timed(
        lambda: httpx.get(
            f"{server}/stac/info", params={"url": f"{hanging_api_url}/item.json", "assets": "B08"}, timeout=30
        )
    )
    assert r.status_code == 504 and elapsed < TIMEOUT + 3


def test_stac_api_down_or_silent_is_502_or_504_within_the_timeout(
    server: str, closed_port_url: str, hanging_api_url: str, data_dir: Path
) -> None:
    t = TMS.tile(24.279, 32.0, 10)
    url = f"{server}/stacapi/collections/{COLLECTION}/tiles/WebMercatorQuad/10/{t.x}/{t.y}.npy"
    down, down_elapsed = _timed(lambda: httpx.get(url, params={"expression": NDWI, "api": closed_port_url}, timeout=30))
    silent, silent_elapsed = _timed(
        lambda: httpx.get(url, params={"expression": NDWI, "api": hanging_api_url}, timeout=30)
    )
    assert down.status_code == 502 and down_elapsed < TIMEOUT + 3
    assert silent.status_code == 504 and silent_elapsed < TIMEOUT + 4
    assert _tile(server, data_dir / "keep.tif").status_code == 200


# ---------------------------------------------------------------------- worker processes
def _workers(master: psutil.Process) -> set[int]:
    """Live uvicorn worker processes (multiprocessing `spawn` children) of the server."""
    pids = set()
    for child in master.children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(child.cmdline()):
                pids.add(child.pid)
        except psutil.Error:
            continue
    return pids


def test_killed_worker_loses_only_its_in_flight_requests_and_is_replaced(tmp_path: Path) -> None:
    """`titiler-otsu serve --workers 2`: SIGKILL one worker under load (uvicorn restarts it).

    Only requests in flight on the killed worker fail (connection reset, never a 5xx);
    the other worker keeps answering, and a new worker replaces the dead one.
    """
    port = free_port()
    env = {**os.environ, "TITILER_OTSU_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("TITILER_OTSU_ALLOWED_SOURCES", None)
    cmd = [sys.executable, "-m", "titiler_otsu.cli", "serve", str(NAIP), "--port", str(port), "--workers", "2"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        master = psutil.Process(proc.pid)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            workers = _workers(master)
            try:
                if len(workers) == 2 and httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            raise AssertionError("server with 2 workers did not start")
        before = _workers(master)

        results: list[tuple[float, int | str]] = []
        stop = threading.Event()

        def client() -> None:
            with httpx.Client(timeout=30) as http:
                while not stop.is_set():
                    try:
                        status: int | str = _get_tile(http, base)
                    except httpx.HTTPError as e:
                        status = e.__class__.__name__
                    results.append((time.monotonic(), status))

        threads = [threading.Thread(target=client) for _ in range(4)]
        for th in threads:
            th.start()
        time.sleep(2.0)
        victim = sorted(before)[0]
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        replaced_at = None
        while time.monotonic() - killed_at < 30:
            now = _workers(master)
            if len(now) == 2 and victim not in now:
                replaced_at = time.monotonic()
                break
            time.sleep(0.2)
        time.sleep(1.5)
        stop.set()
        for th in threads:
            th.join(timeout=60)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    failures = [(t, s) for t, s in results if s != 200]
    print(  # figures for the README (pytest -s)
        f"worker kill: {len(results)} requests, {len(failures)} failed {sorted({s for _, s in failures})}, "
        f"replaced after {(replaced_at or killed_at) - killed_at:.1f} s"
    )
    assert replaced_at is not None, "uvicorn did not replace the killed worker"
    assert all(not isinstance(s, int) for _, s in failures), f"a failure was an HTTP error: {failures}"
    assert len(failures) <= len(threads), f"more failures than requests in flight: {failures}"
    assert all(t >= killed_at for t, _ in failures)
    # The survivor keeps answering: a replacement worker imports the app for >= 2 s (measured 2.8 s on
    # the 2-core machine) before it can accept, so answers within 1 s of its appearance are the survivor's.
    # (Only until `replaced_at` proved flaky under load: uvicorn may respawn in 0.4 s, shorter than a tile.)
    survivor_window = replaced_at + 1.0
    served = sum(1 for t, s in results if s == 200 and killed_at < t < survivor_window)
    assert served > 0, "no request served by the surviving worker"
    assert sum(1 for t, s in results if s == 200 and t > replaced_at) > 0


def _get_tile(http: httpx.Client, base: str) -> int:
    # A new connection per request: each request lands on whichever worker accepts it.
    r = http.get(f"{base}{TILE}", params={"url": str(NAIP), "bidx": 4}, headers={"Connection": "close"})
    return r.status_code

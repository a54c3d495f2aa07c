"""The direct remote reader (`titiler_otsu/io/remote_vsi.py`): GDAL's bytes from our own HTTP client.

A real loopback HTTP server (http.server, threads) serves a file of random bytes with Range
support and counts the ranges asked; other paths misbehave the ways a hostile or odd server
can: a redirect once the header has been read, and ranged GETs answered with the whole file.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import morecantile
import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.warp import transform_bounds

from tests.conftest import NAIP
from tests.remote import send_range
from titiler_otsu import create_app
from titiler_otsu.errors import gdal_library
from titiler_otsu.io import remote_bytes, remote_vsi
from titiler_otsu.security import remote_identity
from titiler_otsu.settings import Settings

ETAG = {"ETag": '"v1"'}
BLOB = np.random.default_rng(7).integers(0, 256, 300_000, dtype=np.uint8).tobytes()


@dataclass
class Server:
    """The server's base URL, the ranges it was asked for, and the requests the 'internal' paths got."""

    base: str
    ranges: list[tuple[str, str]] = field(default_factory=list)
    internal: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    state = Server("")
    naip = NAIP.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as object stores

        def _any(self) -> None:
            path, rng = self.path, self.headers.get("Range", "")
            if path.startswith("/internal/"):
                state.internal.append(path)
                send_range(self, naip, extra=ETAG)
                return
            state.ranges.append((path, rng))
            if path == "/blob.bin":
                send_range(self, BLOB, extra=ETAG)
            elif path == "/slow.bin":  # every answer 0.3 s late: concurrent reads overlap for sure
                time.sleep(0.3)
                send_range(self, BLOB, extra=ETAG)
            elif path == "/redirects-later.tif":  # the header, then a redirect for every block
                if self.command == "GET" and not rng.startswith("bytes=0-"):
                    self.send_response(302)
                    self.send_header("Location", f"{state.base}/internal/naip.tif")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    send_range(self, naip, extra=ETAG)
            elif path == "/no-ranges.tif":
                send_range(self, naip, honour_range=False, extra=ETAG)
            elif path == "/naip.tif":
                send_range(self, naip, extra=ETAG)
            else:
                self.send_error(404)

        do_GET = do_HEAD = _any  # noqa: N815 - http.server API

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def _vsi() -> ctypes.CDLL:
    lib = gdal_library()
    lib.VSIFOpenL.restype = ctypes.c_void_p
    lib.VSIFOpenL.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    lib.VSIFSeekL.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int]
    lib.VSIFReadL.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p]
    lib.VSIFReadL.restype = ctypes.c_size_t
    lib.VSIFReadMultiRangeL.argtypes = [
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.POINTER(ctypes.c_uint64),
        ctypes.POINTER(ctypes.c_size_t),
        ctypes.c_void_p,
    ]
    lib.VSIFCloseL.argtypes = [ctypes.c_void_p]
    return lib


def _fresh(server: Server) -> str:
    remote_vsi.configure("direct")
    url = f"{server.base}/blob.bin"
    remote_vsi.clear()
    server.ranges.clear()
    return remote_vsi.gdal_path(url)


def test_an_http_url_becomes_a_vsiotsu_path_unless_gdal_reads_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(remote_vsi, "_mode", {})
    monkeypatch.setenv(remote_vsi.READER_VARIABLE, "direct")
    assert remote_vsi.gdal_path("https://example.com/a.tif") == "/vsiotsu/https://example.com/a.tif"
    assert remote_vsi.gdal_path(str(NAIP)) == str(NAIP)
    assert remote_vsi.gdal_path("s3://bucket/a.tif") == "s3://bucket/a.tif"  # GDAL's /vsis3/ signs those
    monkeypatch.setenv(remote_vsi.READER_VARIABLE, "gdal")  # an export worker's environment
    assert remote_vsi.gdal_path("https://example.com/a.tif") == "https://example.com/a.tif"
    remote_vsi.configure("direct")  # the app's setting wins
    assert remote_vsi.gdal_path("https://example.com/a.tif").startswith("/vsiotsu/")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reads=st.lists(st.tuples(st.integers(0, len(BLOB) + 100), st.integers(0, 90_000)), min_size=1, max_size=6))
def test_remote_bytes_equal_the_file_for_any_read(server: Server, reads: list[tuple[int, int]]):
    """Any seek + read, within the object, across its end or past it, gives the file's bytes."""
    lib = _vsi()
    handle = lib.VSIFOpenL(_fresh(server).encode(), b"rb")
    assert handle
    try:
        for offset, size in reads:
            buf = ctypes.create_string_buffer(max(size, 1))
            assert lib.VSIFSeekL(handle, offset, os.SEEK_SET) == 0
            got = lib.VSIFReadL(buf, 1, size, handle)
            assert buf.raw[:got] == BLOB[offset : offset + size]
    finally:
        lib.VSIFCloseL(handle)
    assert all(path == "/blob.bin" and rng.startswith("bytes=") for path, rng in server.ranges)


def test_a_multi_range_read_fetches_each_missing_range_once_and_merges_neighbours(server: Server):
    lib = _vsi()
    handle = lib.VSIFOpenL(_fresh(server).encode(), b"rb")
    assert handle
    wanted = [(100_000, 20_000), (120_010, 20_000), (200_000, 30_000), (10, 100)]  # 2nd touches the 1st; last cached
    buffers = [ctypes.create_string_buffer(n) for _, n in wanted]
    pointers = (ctypes.c_void_p * 4)(*[ctypes.addressof(b) for b in buffers])
    offsets = (ctypes.c_uint64 * 4)(*[o for o, _ in wanted])
    sizes = (ctypes.c_size_t * 4)(*[n for _, n in wanted])
    try:
        assert lib.VSIFReadMultiRangeL(4, pointers, offsets, sizes, handle) == 0
    finally:
        lib.VSIFCloseL(handle)
    for buf, (o, n) in zip(buffers, wanted, strict=True):
        assert buf.raw == BLOB[o : o + n]
    assert sorted(rng for _, rng in server.ranges) == [
        "bytes=0-65535",  # the open (no probe ran: the reader reads the header itself)
        "bytes=100000-140009",  # two ranges 10 bytes apart: one request
        "bytes=200000-229999",
    ]


def test_concurrent_reads_of_the_same_bytes_send_one_request(server: Server):
    """8 threads open the object and read overlapping ranges at once: one header GET, one GET per range."""
    remote_vsi.configure("direct")
    remote_vsi.clear()
    server.ranges.clear()
    url = f"{server.base}/slow.bin"
    start = threading.Barrier(8)

    def read(i: int) -> tuple[bytes, bytes]:
        start.wait()
        obj = remote_bytes.remote_object(url)
        whole = obj.read(100_000, 40_000)  # the same block, asked by all
        part = obj.read(110_000 + i * 100, 500)  # inside it: waits for that fetch
        return whole, part

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(read, range(8)))
    for i, (whole, part) in enumerate(results):
        assert whole == BLOB[100_000:140_000]
        assert part == BLOB[110_000 + i * 100 : 110_500 + i * 100]
    assert sorted(rng for _, rng in server.ranges) == ["bytes=0-65535", "bytes=100000-139999"]


def test_a_read_partly_cached_fetches_only_its_gaps(server: Server):
    """Two cached ranges inside a read: one request per gap, the bytes joined exactly."""
    remote_vsi.configure("direct")
    remote_vsi.clear()
    obj = remote_bytes.remote_object(f"{server.base}/blob.bin")
    assert obj.read(100_000, 20_000) == BLOB[100_000:120_000]
    assert obj.read(150_000, 20_000) == BLOB[150_000:170_000]
    server.ranges.clear()
    assert obj.read(90_000, 100_000) == BLOB[90_000:190_000]
    assert sorted(rng for _, rng in server.ranges) == [
        "bytes=120000-149999",
        "bytes=170000-189999",
        "bytes=90000-106383",  # a gap shorter than MIN_FETCH is fetched as 16 KB
    ]
    server.ranges.clear()
    assert obj.read(95_000, 90_000) == BLOB[95_000:185_000]  # all cached now, in pieces
    assert server.ranges == []


def test_a_failed_fetch_wakes_its_waiters_who_then_fetch_themselves(server: Server):
    """A range whose fetch fails is not left claimed: the next read of it asks the server again."""
    remote_vsi.configure("direct")
    remote_vsi.clear()
    obj = remote_bytes.remote_object(f"{server.base}/blob.bin")
    failing = remote_bytes.RemoteObject.__new__(remote_bytes.RemoteObject)
    failing.url, failing.key, failing.size = f"{server.base}/missing.bin", obj.key, obj.size
    with pytest.raises(remote_bytes.RemoteReadError, match="404"):
        failing.read(200_000, 1000)  # the server answers 404: claimed, failed, released
    server.ranges.clear()
    assert obj.read(200_000, 1000) == BLOB[200_000:201_000]  # not waiting on a dead claim
    assert server.ranges == [("/blob.bin", "bytes=200000-216383")]


def test_the_byte_cache_stays_within_its_bound():
    cache = remote_bytes.ByteCache(limit=10_000)
    for i in range(50):
        cache.put("obj", i * 1000, bytes([i % 256]) * 1000)
        assert cache.size <= 10_000
    assert cache.get("obj", 49_000, 1000) == bytes([49]) * 1000
    assert cache.get("obj", 0, 10) is None  # evicted first
    assert cache.get("other", 49_000, 10) is None


def test_a_redirected_block_read_is_a_502_and_the_target_gets_no_request(server: Server, settings: Settings):
    """The server gives the header, then answers block reads with a redirect to an internal URL."""
    allowed = settings.model_copy(update={"allowed_sources": [*settings.allowed_sources, f"{server.base}/"]})
    client = TestClient(create_app(allowed), raise_server_exceptions=False)
    server.internal.clear()
    info = client.get("/cog/info", params={"url": f"{server.base}/redirects-later.tif"})
    assert info.status_code == 200, info.text  # the header alone is fine
    with rasterio.open(NAIP) as ds:
        west, south, east, north = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    t = morecantile.tms.get("WebMercatorQuad").tile((west + east) / 2, (south + north) / 2, 15)
    r = client.get(
        f"/cog/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png",
        params={"url": f"{server.base}/redirects-later.tif", "bidx": 1},
    )
    assert r.status_code == 502, r.text
    assert "remote source" in r.json()["detail"]
    assert server.internal == []


def test_a_server_that_ignores_ranges_is_a_502_that_says_so(server: Server, settings: Settings):
    allowed = settings.model_copy(update={"allowed_sources": [*settings.allowed_sources, f"{server.base}/"]})
    client = TestClient(create_app(allowed), raise_server_exceptions=False)
    r = client.get("/cog/info", params={"url": f"{server.base}/no-ranges.tif"})
    assert r.status_code == 502, r.text
    assert "remote source" in r.json()["detail"]


def test_a_probed_source_opens_without_a_request_of_its_own(server: Server, settings: Settings):
    """HEAD probe + GET probe (the header); the reader then reads only blocks, never the header again."""
    allowed = settings.model_copy(update={"allowed_sources": [*settings.allowed_sources, f"{server.base}/"]})
    client = TestClient(create_app(allowed), raise_server_exceptions=False)
    remote_vsi.clear()
    remote_identity.forget()
    server.ranges.clear()
    r = client.get("/cog/info", params={"url": f"{server.base}/naip.tif"})
    assert r.status_code == 200, r.text
    assert sorted(server.ranges) == [("/naip.tif", ""), ("/naip.tif", "bytes=0-65535")]  # HEAD, GET
    with rasterio.open(NAIP) as ds:
        assert r.json()["width"] == ds.width


def test_a_process_that_exits_with_remote_datasets_open_exits_cleanly(server: Server):
    """GDAL closes what is still open while Python finalizes: the reader's callbacks must outlive the module."""
    code = (  # datasets in a reference cycle: closed by the last garbage collection, after module teardown
        "import gc, sys, rasterio\n"
        "from titiler_otsu.io.remote_vsi import gdal_path\n"
        "gc.disable()\n"
        "kept = [rasterio.open(gdal_path(sys.argv[1])) for _ in range(3)]\n"
        "kept.append(kept)\n"
        "print(int(kept[0].read(1, window=((0, 64), (0, 64))).sum()))\n"
        "del kept\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, f"{server.base}/naip.tif"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    with rasterio.open(NAIP) as ds:
        assert int(proc.stdout.split()[-1]) == int(ds.read(1, window=((0, 64), (0, 64))).sum())

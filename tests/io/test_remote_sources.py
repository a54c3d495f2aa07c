"""Remote COGs over real HTTP (Debian nginx on loopback): requests and bytes against the floor.

Every count comes from nginx's access log (tests/remote.py). The floor of a tile is the
number of internal blocks of the overview level it reads that its footprint (+ halo)
overlaps (tests/floor.py), with the header cached. Upper bounds only, no timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import morecantile
import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from tests.conftest import load_npy
from tests.floor import BlockIndex
from tests.remote import LatencyProxy, LogWindow, ObjectServer
from tests.scene import write_scene
from titiler_otsu import create_app
from titiler_otsu.algorithms.otsu import Otsu
from titiler_otsu.export.windows import striped
from titiler_otsu.io.reader import GridExactReader
from titiler_otsu.settings import Settings

TMS = morecantile.tms.get("WebMercatorQuad")
#: Requests of a cold open: our allow-list probe (HEAD) and the redirect guard's GET probe of the
#: header (titiler_otsu/security/remote_get.py), which the reader (io/remote_vsi.py) opens from.
OPEN_REQUESTS = 2
#: ... and with GDAL's /vsicurl/ (`remote_reader="gdal"`): GDAL's own HEAD and header GET as well.
GDAL_OPEN_REQUESTS = 4
HEADER_RANGE = "bytes=0-65535"
#: GDAL fetches whole 16 KB chunks: a range may exceed its blocks by up to one chunk.
CHUNK = 16384


def _link(scene: Path, name: str) -> Path:
    """The same file under a new name: a new URL, so GDAL's and our caches start cold."""
    path = scene.with_name(name)
    if not path.exists():
        os.link(scene, path)
    return path


def _client(server: ObjectServer, tmp_path: Path, **settings: object) -> TestClient:
    allowed = [f"http://127.0.0.1:{server.port}/", str(server.root)]
    s = Settings(allowed_sources=allowed, cache_dir=tmp_path / "cache", **settings)  # type: ignore[arg-type]
    return TestClient(create_app(s), raise_server_exceptions=False)


def _centre(path: Path, fx: float = 0.4, fy: float = 0.5) -> tuple[float, float]:
    with rasterio.open(path) as ds:
        west, south, east, north = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    return west + (east - west) * fx, south + (north - south) * fy


def _pan(lon: float, lat: float, z: int) -> list[tuple[int, int, int]]:
    t = TMS.tile(lon, lat, z)
    return [(z, t.x + dx, t.y + dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


def _floor(local: Path, index: BlockIndex, tile: tuple[int, int, int], halo: int = 0) -> tuple[int, int, int]:
    """(overview factor, blocks, bytes) the tile + halo needs."""
    z, x, y = tile
    with GridExactReader(str(local)) as reader:
        img = reader.tile(x, y, z, buffer=halo, indexes=1)
    factor = img.metadata["overview_factor"]
    blocks, size = index.floor(factor, img.metadata["source_window"])
    return factor, blocks, size


def _ranges(log: LogWindow) -> list[tuple[int, int]]:
    out = []
    for e in log.entries:
        if e.method == "GET" and e.range.startswith("bytes="):
            a, b = e.range.removeprefix("bytes=").split("-")
            out.append((int(a), int(b)))
    return out


def test_remote_tiles_cost_their_blocks_and_one_open(object_server: ObjectServer, remote_scene: Path, tmp_path: Path):
    """Cold first tile ≤ floor + 2 (the redirect guard's HEAD and header GET probes).

    A pan afterwards ≤ floor + 0.5 per tile, with no HEAD or reopen.
    """
    local = _link(remote_scene, "pan.tif")
    url = object_server.url(local.name)
    index = BlockIndex(local)
    client = _client(object_server, tmp_path)
    lon, lat = _centre(local)
    first, *pan = _pan(lon, lat, 12)
    params = {"url": url, "algorithm": "otsu", "algorithm_params": json.dumps({"scope": "fixed", "threshold": 1500})}

    with object_server.window() as log:
        r = client.get(f"/cog/tiles/WebMercatorQuad/{first[0]}/{first[1]}/{first[2]}.png", params=params)
    assert r.status_code == 200, r.text
    _, blocks, size = _floor(local, index, first)
    assert log.count("HEAD") == 1  # our redirect/identity probe; the reader sends none
    assert sum(1 for e in log.entries if e.range == HEADER_RANGE) == 1  # the GET probe: the reader's header
    assert log.requests <= blocks + OPEN_REQUESTS
    assert log.bytes <= size + 65536 + CHUNK * log.requests

    for z in (12, 13):
        tiles = pan if z == 12 else _pan(lon, lat, z)
        with object_server.window() as log:
            for z_, x, y in tiles:
                r = client.get(f"/cog/tiles/WebMercatorQuad/{z_}/{x}/{y}.png", params=params)
                assert r.status_code == 200, r.text
        floors = [_floor(local, index, t) for t in tiles]
        assert log.count("HEAD") == 0  # the source is known: no probe, no re-open per request
        assert log.requests <= sum(f[1] for f in floors) + 0.5 * len(tiles)
        assert log.bytes <= sum(f[2] for f in floors) + CHUNK * log.requests


@pytest.mark.parametrize("trust", [False, True])
def test_cold_open_is_one_head_and_one_header_get_trusted_or_not(
    object_server: ObjectServer, remote_scene: Path, tmp_path: Path, trust: bool
):
    """Untrusted (the default): the guard's GET probe reads the header, and the reader opens from it.

    `REMOTE_TRUST_NAMED_HOSTS` (the prefix names 127.0.0.1:port) skips that probe; the reader then
    reads the same header itself: two requests either way, each sent once.
    """
    local = _link(remote_scene, f"trust-{trust}.tif")
    url = object_server.url(local.name)
    client = _client(object_server, tmp_path, remote_trust_named_hosts=trust)
    with object_server.window() as log:
        r = client.get("/cog/info", params={"url": url})
    assert r.status_code == 200, r.text
    assert log.count("HEAD") == 1
    assert [e.range for e in log.entries if e.method == "GET"] == [HEADER_RANGE]
    assert log.requests == OPEN_REQUESTS


def test_gdal_reader_opens_with_its_own_head_and_header_get(
    object_server: ObjectServer, remote_scene: Path, tmp_path: Path
):
    """`REMOTE_READER=gdal` (GDAL's /vsicurl/) still serves, at GDAL's cost: its HEAD and header GET more."""
    local = _link(remote_scene, "gdal-reader.tif")
    url = object_server.url(local.name)
    client = _client(object_server, tmp_path, remote_reader="gdal")
    try:
        with object_server.window() as log:
            r = client.get("/cog/info", params={"url": url})
        assert r.status_code == 200, r.text
        assert log.count("HEAD") == 2  # ours + GDAL's
        assert log.requests <= GDAL_OPEN_REQUESTS
        with rasterio.open(local) as ds:
            assert (r.json()["width"], r.json()["height"]) == (ds.width, ds.height)
    finally:
        _client(object_server, tmp_path)  # back to the default reader for the tests after this one


def test_zoom_out_tile_reads_the_overview_its_resolution_needs(
    object_server: ObjectServer, remote_scene: Path, tmp_path: Path
):
    """Each zoom reads only blocks of the level chosen by the tile's resolution (bytes in the nginx log)."""
    local = _link(remote_scene, "levels.tif")
    url = object_server.url(local.name)
    index = BlockIndex(local)
    client = _client(object_server, tmp_path)
    client.get("/cog/info", params={"url": url})  # open once: header cached
    seen = set()
    for z, fx in ((9, 0.3), (10, 0.3), (11, 0.6), (12, 0.3), (13, 0.6)):
        tile = _pan(*_centre(local, fx, 0.35), z)[4]
        factor, blocks, size = _floor(local, index, tile)
        with object_server.window() as log:
            r = client.get(f"/cog/tiles/WebMercatorQuad/{tile[0]}/{tile[1]}/{tile[2]}.npy", params={"url": url})
        assert r.status_code == 200, r.text
        ranges = _ranges(log)
        if not ranges:  # only possible when the level's blocks came with the header (64 KB at open)
            assert factor == max(index.levels) and min(index.levels[factor].offsets) + size <= 65536
            seen.add(factor)
            continue
        per_level: dict[int, int] = {}
        for a, b in ranges:
            for f, n in index.bytes_by_level(a, b).items():
                per_level[f] = per_level.get(f, 0) + n
        # the tile's level, plus at most the 16 KB chunk alignment into its neighbours in the file
        assert max(per_level, key=lambda f: per_level[f]) == factor, f"z{z}: level x{factor} expected, {per_level}"
        assert sum(n for f, n in per_level.items() if f != factor) <= 2 * CHUNK * len(ranges), per_level
        assert log.bytes <= size + CHUNK * log.requests
        seen.add(factor)
    assert len(seen) >= 5  # full resolution and four overviews were exercised
    assert 1 in seen and max(seen) >= 8


def test_first_threshold_reads_one_overview_then_workers_share_it(
    object_server: ObjectServer, remote_scene: Path, tmp_path: Path
):
    """First /threshold: ≤ 3 requests beyond open, the smallest overview ≥ HISTOGRAM_MAX_SIZE; then on disk."""
    local = _link(remote_scene, "threshold.tif")
    url = object_server.url(local.name)
    index = BlockIndex(local)
    client = _client(object_server, tmp_path)
    with object_server.window() as log:
        r = client.get("/cog/threshold", params={"url": url})
    assert r.status_code == 200, r.text
    reads = [(a, b) for a, b in _ranges(log) if a != 0]  # the header GET at open starts at 0
    assert len(reads) <= 3
    assert log.bytes <= 4_000_000
    wanted = max(f for f, lv in index.levels.items() if max(lv.width, lv.height) >= 1024)
    per_level: dict[int, int] = {}
    for a, b in reads:
        for factor, n in index.bytes_by_level(a, b).items():
            per_level[factor] = per_level.get(factor, 0) + n
    # all of that level, and of the others only what GDAL's 16 KB chunk alignment drags in
    assert per_level[wanted] == index.floor(wanted, (0, 0, index.levels[wanted].width, index.levels[wanted].height))[1]
    assert sum(n for f, n in per_level.items() if f != wanted) <= 2 * CHUNK * len(reads)

    # another worker process (a second app, same cache directory): no overview read at all
    other = _client(object_server, tmp_path)
    with object_server.window() as log2:
        r2 = other.get("/cog/threshold", params={"url": url})
    assert r2.json()["thresholds"] == r.json()["thresholds"]
    assert [e for e in log2.entries if e.method == "GET" and not e.range.startswith("bytes=0-")] == []


def test_changed_remote_object_is_reopened_after_revalidation(
    object_server: ObjectServer, remote_scene: Path, tmp_path: Path
):
    """A new object behind the same URL (new ETag) is served after the probe TTL: new pixels, new histogram."""
    path = object_server.root / "changing.tif"
    write_scene(tmp_path / "a.tif", 1024, 256, seed=1)
    write_scene(tmp_path / "b.tif", 1024, 256, seed=2)
    os.replace(tmp_path / "a.tif", path)
    url = object_server.url(path.name)
    client = _client(object_server, tmp_path, remote_revalidate_seconds=0.5)
    tile = _pan(*_centre(path), 13)[4]
    tile_url = f"/cog/tiles/WebMercatorQuad/{tile[0]}/{tile[1]}/{tile[2]}.npy"
    before = client.get(tile_url, params={"url": url})
    thr_before = client.get("/cog/threshold", params={"url": url}).json()["thresholds"]
    assert before.status_code == 200

    new = tmp_path / "b.tif"
    stat = path.stat()
    os.replace(new, path)
    os.utime(path, (stat.st_atime + 10, stat.st_mtime + 10))  # nginx's ETag is mtime + size
    with object_server.window() as log:
        same = client.get(tile_url, params={"url": url})  # within the TTL: no request at all
    assert log.requests == 0 and same.content == before.content
    time.sleep(0.6)
    after = client.get(tile_url, params={"url": url})
    thr_after = client.get("/cog/threshold", params={"url": url}).json()["thresholds"]
    with GridExactReader(str(path)) as reader:
        expected = reader.tile(tile[1], tile[2], tile[0], indexes=1)
    data, valid = load_npy(after.content)
    assert not np.array_equal(data, load_npy(before.content)[0])
    assert np.array_equal(data[0][valid], np.asarray(expected.array[0])[valid])
    assert thr_after != thr_before


@pytest.mark.parametrize("z", [10, 11, 12])
def test_remote_tiles_are_seamless_and_equal_local_ones(
    object_server: ObjectServer, remote_scene: Path, tmp_path: Path, z: int
):
    """512 px at z = its four 256-px children at z+1 over HTTP, raw and otsu σ=1.5 + opening; = the local file."""
    url = object_server.url(remote_scene.name)
    client = _client(object_server, tmp_path)
    t = TMS.tile(*_centre(remote_scene, 0.55, 0.45), z)
    cases = [{}, {"algorithm": "otsu", "algorithm_params": json.dumps({"sigma": 1.5, "opening": 1})}]
    for extra in cases:
        params = {"url": url, **extra}
        big = client.get(f"/cog/tiles/WebMercatorQuad/{z}/{t.x}/{t.y}.npy", params={**params, "tilesize": 512})
        assert big.status_code == 200, big.text
        big_data, big_valid = load_npy(big.content)
        assert big_valid.any()
        for dy in (0, 1):
            for dx in (0, 1):
                child = client.get(
                    f"/cog/tiles/WebMercatorQuad/{z + 1}/{2 * t.x + dx}/{2 * t.y + dy}.npy", params=params
                )
                data, valid = load_npy(child.content)
                part = (slice(256 * dy, 256 * dy + 256), slice(256 * dx, 256 * dx + 256))
                assert np.array_equal(valid, big_valid[part])
                assert np.array_equal(
                    np.where(valid, data, 0), np.where(big_valid[part], big_data[(slice(None), *part)], 0)
                )
        local = client.get(
            f"/cog/tiles/WebMercatorQuad/{z}/{t.x}/{t.y}.npy",
            params={**params, "url": str(remote_scene), "tilesize": 512},
        )
        assert local.content == big.content


def test_concurrent_remote_reads_equal_local_ones(object_server: ObjectServer, remote_scene: Path):
    """8 threads reading tiles (+ halo) of three zooms through the direct reader at once: = the local file."""
    local = _link(remote_scene, "concurrent.tif")
    url = object_server.url(local.name)
    lon, lat = _centre(local)
    tiles = [(z, *TMS.tile(lon, lat, z)[:2]) for z in (12, 13, 14)]
    tiles = [(z, x + dx, y + dy) for z, x, y in tiles for dx in (-1, 0, 1) for dy in (-1, 0, 1)]

    def read(tile: tuple[int, int, int], source: str) -> np.ndarray:
        with GridExactReader(source) as reader:
            return reader.tile(tile[1], tile[2], tile[0], buffer=3, indexes=1).data

    with ThreadPoolExecutor(8) as pool:
        remote = list(pool.map(lambda t: read(t, url), tiles))
    for tile, data in zip(tiles, remote, strict=True):
        assert np.array_equal(data, read(tile, str(local))), tile


def test_a_pan_served_at_once_fetches_each_block_once(object_server: ObjectServer, remote_scene: Path, tmp_path: Path):
    """A browser asks for a pan's tiles together: tiles sharing a block share its one request.

    9 concurrent requests (3x3 pan at z 13, halo of `sigma=2`) through a 30 ms proxy, so they
    overlap: no range is asked twice, and the requests are the pan's distinct blocks.
    """
    local = _link(remote_scene, "pan_at_once.tif")
    index = BlockIndex(local)
    lon, lat = _centre(local, 0.6, 0.4)
    tiles = _pan(lon, lat, 13)
    params = {"algorithm": "otsu", "algorithm_params": json.dumps({"sigma": 2})}
    with LatencyProxy(object_server.port, 0.03) as proxy:
        s = Settings(allowed_sources=[f"http://127.0.0.1:{proxy.port}/"], cache_dir=tmp_path / "cache")
        client = TestClient(create_app(s), raise_server_exceptions=False)
        url = proxy.url(local.name)
        assert client.get("/cog/info", params={"url": url}).status_code == 200  # open: probes + header
        with object_server.window() as log, ThreadPoolExecutor(9) as pool:
            answers = list(
                pool.map(
                    lambda t: client.get(
                        f"/cog/tiles/WebMercatorQuad/{t[0]}/{t[1]}/{t[2]}.png", params={"url": url, **params}
                    ),
                    tiles,
                )
            )
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers if r.status_code != 200]
    ranges = _ranges(log)
    assert len(ranges) == len(set(ranges)), sorted(ranges)  # each range fetched once
    with GridExactReader(str(local)) as reader:
        halo = Otsu(sigma=2).halo
        footprints = [reader.tile(x, y, z, buffer=halo, indexes=1).metadata for z, x, y in tiles]
    distinct = {b for m in footprints for b in index.blocks(m["overview_factor"], m["source_window"])}
    assert log.count("HEAD") == 0
    assert 1 < len(distinct) and log.requests <= len(distinct)


def test_latency_proxy_delays_each_request(object_server: ObjectServer, remote_scene: Path):
    """The bench's 20/80 ms emulation: every request through the proxy costs one delay, and is logged by nginx."""
    import httpx

    with LatencyProxy(object_server.port, 0.05) as proxy, httpx.Client() as http:
        url = proxy.url(remote_scene.name)
        with object_server.window() as log:
            t0 = time.perf_counter()
            for i in range(4):
                r = http.get(url, headers={"Range": f"bytes={i * 1000}-{i * 1000 + 99}"})
                assert r.status_code == 206 and len(r.content) == 100
            elapsed = time.perf_counter() - t0
    assert log.requests == 4 and log.bytes == 400
    assert elapsed >= 4 * 0.05


def test_striped_windows_give_each_worker_one_band_in_turn():
    """Export windows: contiguous stripes per worker, interleaved so every worker has work in flight."""
    windows = [Window(c, r, 1, 1) for r in range(3) for c in range(4)]
    out = striped(windows, 2)
    assert [k for k, _ in out] == [0, 1] * 6
    assert [w for k, w in out if k == 0] == windows[:6]
    assert [w for k, w in out if k == 1] == windows[6:]
    assert striped(windows, 1) == [(0, w) for w in windows]
    assert sorted((w.row_off, w.col_off) for _, w in striped(windows, 5)) == sorted(
        (w.row_off, w.col_off) for w in windows
    )


def test_export_through_http_fetches_each_byte_about_once(
    object_server: ObjectServer, remote_scene: Path, tmp_path: Path
):
    """`titiler-otsu export URL` with 2 workers and halos: ≤ 1.1 × the file's size over HTTP, same classes as local."""
    local = _link(remote_scene, "export.tif")
    url = object_server.url(local.name)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    outs = {}
    for name, src in (("remote", url), ("local", str(local))):
        out = tmp_path / f"{name}.tif"
        args = [sys.executable, "-m", "titiler_otsu.cli", "export", src, str(out), "--json"]
        args += ["--params", '{"sigma": 1}', "--window-size", "512", "--workers", "2"]
        with object_server.window() as log:
            proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        outs[name] = out
        if name == "remote":
            assert log.bytes <= 1.1 * local.stat().st_size
            assert [e.status for e in log.entries if e.status >= 400] == []  # no sidecar probes (.aux.xml, .msk)
    with rasterio.open(outs["remote"]) as a, rasterio.open(outs["local"]) as b:
        assert np.array_equal(a.read(1), b.read(1))


def test_remote_identity_notices_a_new_etag_and_reaches_gdal():
    """A probe with new validators reports a change; GDAL's cache-clearing entry point is found in the process."""
    from titiler_otsu.security import remote_identity

    url = "http://127.0.0.1:1/identity-test.tif"
    assert remote_identity.record(url, {"etag": '"a"', "last-modified": "x", "content-length": "10"}) is False
    assert remote_identity.record(url, {"etag": '"a"', "last-modified": "x", "content-length": "10"}) is False
    assert remote_identity.identity(url) == ('"a"', "x", "10")
    assert remote_identity.record(url, {"etag": '"b"', "last-modified": "x", "content-length": "10"}) is True
    assert remote_identity.clear_gdal_cache(url) is True

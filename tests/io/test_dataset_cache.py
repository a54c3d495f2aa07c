"""The per-process cache of open datasets (titiler_otsu/io/datasets.py) and the reader's use of it."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio.to_thread
import morecantile
import numpy as np
import pytest
from rio_tiler.constants import WGS84_CRS
from rio_tiler.io import Reader

from tests.conftest import B08, NAIP, REAL_SOURCES, load_npy
from titiler_otsu.errors import SourceNotReadableError
from titiler_otsu.io.datasets import DatasetCache, apply_gdal_config, dataset_cache
from titiler_otsu.io.reader import GridExactReader

TMS = morecantile.tms.get("WebMercatorQuad")


def _rewrite(make_cog, path: Path, value: int) -> None:
    """Write a new raster over `path`, with a modification time certainly different from before."""
    before = os.stat(path).st_mtime_ns
    make_cog(np.full((64, 64), value, np.uint8), name=path.name)
    os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))


def test_second_lease_reuses_the_open_dataset() -> None:
    cache = DatasetCache(maxsize=4, ttl=60)
    with cache.lease(str(NAIP)) as first:
        ds = first.dataset
    with cache.lease(str(NAIP)) as second:
        assert second.dataset is ds
        assert not ds.closed
    assert (cache.opens, cache.reuses, cache.idle()) == (1, 1, 1)


def test_concurrent_leases_never_share_a_handle() -> None:
    cache = DatasetCache(maxsize=4, ttl=60)
    with cache.lease(str(NAIP)) as a, cache.lease(str(NAIP)) as b:
        assert a.dataset is not b.dataset
    assert cache.opens == 2
    assert cache.idle() == 2


def test_idle_handles_are_bounded_and_the_oldest_closed() -> None:
    cache = DatasetCache(maxsize=2, ttl=60)
    paths = [str(p) for p, _ in list(REAL_SOURCES.values())[:3]]
    with cache.lease(paths[0]) as a, cache.lease(paths[1]) as b, cache.lease(paths[2]) as c:
        handles = [a.dataset, b.dataset, c.dataset]
    # released in reverse order (c, b, a): c is the least recently released
    assert cache.idle() == 2
    assert cache.closes == 1
    assert [h.closed for h in handles] == [False, False, True]


def test_overview_handles_are_kept_with_the_dataset() -> None:
    cache = DatasetCache(maxsize=4, ttl=60)
    with cache.lease(str(B08)) as entry:
        ovr = entry.overview(1)
        assert ovr.width < entry.dataset.width
    with cache.lease(str(B08)) as entry:
        assert entry.overview(1) is ovr
    assert cache.opens == 1


def test_changed_file_is_reopened_and_the_stale_handle_closed(make_cog) -> None:
    cache = DatasetCache(maxsize=4, ttl=60)
    path = make_cog(np.full((64, 64), 10, np.uint8), name="dataset_cache_rewrite.tif")
    with cache.lease(str(path)) as entry:
        old = entry.dataset
        assert old.read(1)[0, 0] == 10
    _rewrite(make_cog, path, 20)
    with cache.lease(str(path)) as entry:
        assert entry.dataset is not old
        assert entry.dataset.read(1)[0, 0] == 20
    assert old.closed


def test_handle_leased_while_the_file_changes_is_closed_on_return(make_cog) -> None:
    cache = DatasetCache(maxsize=4, ttl=60)
    path = make_cog(np.full((64, 64), 1, np.uint8), name="dataset_cache_leased.tif")
    with cache.lease(str(path)) as entry:
        _rewrite(make_cog, path, 2)
    assert entry.dataset.closed
    assert cache.idle() == 0


def test_idle_handles_expire_after_ttl() -> None:
    cache = DatasetCache(maxsize=4, ttl=0.05)
    with cache.lease(str(NAIP)) as entry:
        first = entry.dataset
    time.sleep(0.1)
    with cache.lease(str(NAIP)) as entry:
        assert entry.dataset is not first
    assert first.closed
    assert cache.opens == 2


def test_size_zero_opens_and_closes_per_lease() -> None:
    cache = DatasetCache(maxsize=0, ttl=60)
    with cache.lease(str(NAIP)) as entry:
        ds = entry.dataset
    assert ds.closed
    assert (cache.opens, cache.reuses, cache.idle()) == (1, 0, 0)


def test_clear_closes_idle_handles() -> None:
    cache = DatasetCache(maxsize=4, ttl=60)
    with cache.lease(str(NAIP)) as entry:
        pass
    cache.clear()
    assert entry.dataset.closed
    assert cache.idle() == 0


def _lease_in_child(cache: DatasetCache, queue: multiprocessing.Queue) -> None:
    with cache.lease(str(NAIP)) as entry:
        entry.dataset.read(1, window=((0, 8), (0, 8)))
    queue.put((cache.opens, cache.reuses))


def test_forked_child_opens_its_own_handles() -> None:
    cache = DatasetCache(maxsize=4, ttl=60)
    with cache.lease(str(NAIP)):
        pass
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_lease_in_child, args=(cache, queue))
    child.start()
    try:
        opens, reuses = queue.get(timeout=60)
        child.join(60)
    finally:
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0
    assert (opens, reuses) == (2, 0)  # the parent's idle handle was not reused in the child
    with cache.lease(str(NAIP)) as entry:  # and the parent's is still usable
        assert entry.dataset.read(1, window=((0, 8), (0, 8))).shape == (8, 8)
    assert cache.reuses == 1


def test_grid_reader_borrows_from_the_process_cache() -> None:
    cache = dataset_cache()
    with GridExactReader(str(B08), tms=TMS) as src:
        img = src.tile(289, 207, 9, indexes=1)  # read from an overview
        assert img.metadata["overview_factor"] > 1
        ds = src.dataset
    opens = cache.opens
    with GridExactReader(str(B08), tms=TMS) as src:
        assert src.dataset is ds
        src.tile(289, 207, 9, indexes=1)
    assert cache.opens == opens
    assert not ds.closed


def test_unreadable_file_is_a_user_error_and_leaves_nothing_cached(tmp_path: Path) -> None:
    bad = tmp_path / "not_a_raster.tif"
    bad.write_text("hello")
    idle = dataset_cache().idle()
    with pytest.raises(SourceNotReadableError):
        GridExactReader(str(bad))
    assert dataset_cache().idle() == idle


def test_threads_reading_through_the_cache_get_the_single_threaded_pixels() -> None:
    tiles = [(z, t.x, t.y) for z in (13, 14, 15) for t in TMS.tiles(-99.18, 47.005, -99.13, 47.035, [z])][:24]

    def read(tile: tuple[int, int, int]) -> np.ndarray:
        z, x, y = tile
        with GridExactReader(str(NAIP), tms=TMS) as src:
            img = src.tile(x, y, z, indexes=4, buffer=3)
        return np.ma.filled(img.array, 0)

    expected = [read(t) for t in tiles]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(3):
            got = list(pool.map(read, tiles))
            assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))


def test_served_tile_follows_a_replaced_file(client, make_cog) -> None:
    path = make_cog(np.full((64, 64), 30, np.uint8), name="dataset_cache_served.tif")
    with GridExactReader(str(path), tms=TMS) as src:
        lon, lat = src.get_geographic_bounds(WGS84_CRS)[:2]
    tile = TMS.tile(lon + 1e-4, lat + 1e-4, 14)
    url = f"/cog/tiles/WebMercatorQuad/14/{tile.x}/{tile.y}.npy"
    first = client.get(url, params={"url": str(path)})
    assert first.status_code == 200
    data, valid = load_npy(first.content)
    assert set(np.unique(data[0][valid])) == {30}
    _rewrite(make_cog, path, 40)
    second = client.get(url, params={"url": str(path)})
    data, valid = load_npy(second.content)
    assert set(np.unique(data[0][valid])) == {40}


@pytest.mark.parametrize("name", sorted(REAL_SOURCES))
def test_tile_exists_agrees_with_rio_tiler(name: str) -> None:
    path, _ = REAL_SOURCES[name]
    with Reader(str(path), tms=TMS) as ref, GridExactReader(str(path), tms=TMS) as ours:
        west, south, east, north = ref.get_geographic_bounds(WGS84_CRS)
        for z in (ref.minzoom, ref.minzoom + 2):
            inner = list(TMS.tiles(west, south, east, north, [z]))
            xs, ys = [t.x for t in inner], [t.y for t in inner]
            ring = [(x, y) for x in range(min(xs) - 1, max(xs) + 2) for y in range(min(ys) - 1, max(ys) + 2)]
            assert [ours.tile_exists(x, y, z) for x, y in ring] == [ref.tile_exists(x, y, z) for x, y in ring]


def test_gdal_config_from_settings_leaves_the_environment_alone() -> None:
    key = "TITILER_OTSU_TEST_OPTION"
    os.environ[key] = "operator"
    try:
        applied = apply_gdal_config({key: "ours", "TITILER_OTSU_TEST_OTHER": "x"})
        assert os.environ[key] == "operator"
        assert applied == {"TITILER_OTSU_TEST_OTHER": "x"}
        assert os.environ["TITILER_OTSU_TEST_OTHER"] == "x"
    finally:
        os.environ.pop(key, None)
        os.environ.pop("TITILER_OTSU_TEST_OTHER", None)


def test_lease_is_thread_safe_under_contention() -> None:
    cache = DatasetCache(maxsize=3, ttl=60)
    in_use: set[int] = set()
    clash = threading.Event()
    lock = threading.Lock()

    def work(_: int) -> None:
        with cache.lease(str(NAIP)) as entry:
            with lock:
                if id(entry.dataset) in in_use:
                    clash.set()
                in_use.add(id(entry.dataset))
            entry.dataset.read(4, window=((0, 64), (0, 64)))
            with lock:
                in_use.discard(id(entry.dataset))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(200)))
    assert not clash.is_set()
    assert cache.idle() <= 3
    assert cache.opens - cache.closes == cache.idle()


def test_worker_threads_setting_bounds_the_thread_limiter(settings) -> None:
    from fastapi.testclient import TestClient

    from titiler_otsu import create_app

    async def tokens() -> float:
        return anyio.to_thread.current_default_thread_limiter().total_tokens

    with TestClient(create_app(settings.model_copy(update={"worker_threads": 3}))) as client:
        assert client.portal.call(tokens) == 3
        assert client.get("/healthz").status_code == 200

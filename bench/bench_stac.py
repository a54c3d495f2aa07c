"""Benchmark of the STAC families (in-process HTTP through TestClient, real rustac STAC API).

* `/stacapi` tile latency with a cold search cache (landing page, collection and search
  fetched) vs a warm one;
* STAC API requests per 100 tiles of a 10x10 pan at one zoom, with the ancestor-tile search
  sharing (default STAC_SEARCH_ZOOM_OFFSET=3) and without it (offset 0: one search per tile);
* `/stac` NDWI-Otsu tile vs plain `/stac` tiles.

Run: `python bench/bench_stac.py` (needs ../shared/data and the `rustac` CLI from PyPI).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import morecantile
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import SHARED_DATA  # noqa: E402
from tests.stac_fixtures import (  # noqa: E402
    COLLECTION,
    NDWI,
    free_port,
    start_rustac,
    write_item1,
    write_item2,
)
from titiler_otsu import create_app  # noqa: E402
from titiler_otsu.settings import Settings  # noqa: E402

TMS = morecantile.tms.get("WebMercatorQuad")
PREFIX = f"/stacapi/collections/{COLLECTION}"
EDGE = (24.279, 32.0)  # item1's east edge: tiles straddle the two items


def _client(directory: Path, api: str, **overrides: object) -> TestClient:
    settings = Settings(
        allowed_sources=[str(SHARED_DATA), str(directory)],
        cache_dir=directory / "cache",
        stac_api_url=api,
        stac_min_zoom=7,
        **overrides,  # type: ignore[arg-type]
    )
    return TestClient(create_app(settings))


def _ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _get(client: TestClient, url: str, params: dict) -> None:
    r = client.get(url, params=params)
    assert r.status_code == 200, (url, r.status_code, r.text[:200])


def bench_cold_warm(client: TestClient, repeat: int) -> dict[str, float]:
    searcher = client.app.state.stac_searcher  # type: ignore[attr-defined]
    t = TMS.tile(*EDGE, 11)
    url = f"{PREFIX}/tiles/WebMercatorQuad/11/{t.x}/{t.y}.npy"
    params = {"expression": NDWI}

    def cold() -> None:
        searcher.clear()
        _get(client, url, params)

    _get(client, url, params)
    return {"cold": _ms(cold, repeat), "warm": _ms(lambda: _get(client, url, params), repeat)}


def bench_pan(client: TestClient, zoom: int) -> tuple[int, int, int]:
    """(tiles answered, STAC API HTTP requests, searches) for a 10x10 block of tiles."""
    searcher = client.app.state.stac_searcher  # type: ignore[attr-defined]
    searcher.clear()
    r0, s0 = searcher.requests, searcher.searches
    t = TMS.tile(*EDGE, zoom)
    answered = 0
    for dy in range(-5, 5):
        for dx in range(-5, 5):
            r = client.get(
                f"{PREFIX}/tiles/WebMercatorQuad/{zoom}/{t.x + dx}/{t.y + dy}.png",
                params={"expression": NDWI, "algorithm": "otsu", "algorithm_params": '{"scope": "tile"}'},
            )
            assert r.status_code in (200, 404), r.text
            answered += 1
    return answered, searcher.requests - r0, searcher.searches - s0


def bench_stac_item(client: TestClient, item: Path, repeat: int) -> dict[str, float]:
    t = TMS.tile(23.9, 32.2, 11)
    base = f"/stac/tiles/WebMercatorQuad/11/{t.x}/{t.y}"
    cases = {
        "plain B08 png (rescale)": (".png", {"assets": "B08", "rescale": "0,5000"}),
        "NDWI npy (raw)": (".npy", {"expression": NDWI}),
        "NDWI png (rescale)": (".png", {"expression": NDWI, "rescale": "-1,1"}),
        "NDWI otsu png (dataset)": (".png", {"expression": NDWI, "algorithm": "otsu"}),
        "NDWI otsu sigma2 opening2 png": (
            ".png",
            {"expression": NDWI, "algorithm": "otsu", "algorithm_params": '{"sigma": 2, "opening": 2}'},
        ),
    }
    out = {}
    for name, (ext, params) in cases.items():
        q = {"url": str(item), **params}
        _get(client, base + ext, q)  # warm the dataset histogram and GDAL caches
        out[name] = _ms(lambda ext=ext, q=q: _get(client, base + ext, q), repeat)
    return out


def main() -> None:
    repeat = 25
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        item1, item2 = write_item1(directory), write_item2(directory)
        port = free_port()
        proc = start_rustac([item1, item2], port)
        api = f"http://127.0.0.1:{port}"
        try:
            client = _client(directory, api)
            cw = bench_cold_warm(client, repeat)
            pans = {offset: bench_pan(_client(directory, api, stac_search_zoom_offset=offset), 12) for offset in (3, 0)}
            item = bench_stac_item(client, item1, repeat)
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    print("\n/stacapi tile (z11, straddling two items, NDWI .npy), median of", repeat)
    print(f"  {'cold search cache (landing+collection+search)':48s} {cw['cold']:8.1f} ms")
    print(f"  {'warm search cache':48s} {cw['warm']:8.1f} ms")
    print("\nSTAC API traffic for a 10x10 pan at z12 (NDWI otsu tile scope)")
    print(f"  {'search zoom offset':22s} {'tiles':>6s} {'HTTP requests':>14s} {'searches':>9s} {'req/100 tiles':>14s}")
    for offset, (tiles, requests, searches) in pans.items():
        print(f"  {offset:<22d} {tiles:6d} {requests:14d} {searches:9d} {100 * requests / tiles:14.1f}")
    print("\n/stac tile (z11, item1), median of", repeat)
    for name, ms in item.items():
        print(f"  {name:48s} {ms:8.1f} ms")


if __name__ == "__main__":
    main()

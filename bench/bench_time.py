"""Benchmark of the time endpoints on a generated 12-date, 10 m stack behind a real STAC API (rustac).

The stack (made here, not committed): a 15 km x 15 km window of the shared Sentinel-2 B08 (rows
400..549, columns 672..821 of the 100 m file) upsampled to 10 m with per-pixel texture, one
item per month of 2020, a painted lake whose radius changes every month, and a 20 m SCL asset;
the collection declares `gsd: [10]`, so mosaics are read at zoom 14 (8.1 m ground pixels).

* **Change tile vs single-date tile** (target <= 2.2x): `change/tiles` (before = January, after =
  April, the lake at its largest) vs `tiles` (datetime = January) of the same search, `otsu`
  with `invert`, scope `dataset` over the same `bbox` (each period's histogram cached after the
  warm-up), 512-px `.png` tiles at zoom 13 over the window; medians over the tiles and rounds.
* **12-date time series vs 12 x /areas** (target <= 12x): `POST /timeseries` over a 10 km² square
  (group=item, 12 rows) vs one `POST /areas` of the same square at one date, same parameters;
  medians of `--repeat` runs, with `TIMESERIES_THREADS` 1, 2 and 4. Histograms are warm (the
  time series and /areas share them), searches are cached.

Run: `python bench/bench_time.py` (needs ../shared/data and the `rustac` CLI from PyPI). In-process
(TestClient): no HTTP server overhead; the figures are the server's own work.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import morecantile
import numpy as np
import rasterio
from fastapi.testclient import TestClient
from pyproj import Transformer
from rasterio.transform import Affine
from rasterio.warp import transform_bounds

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import S2_DIR, SHARED_DATA  # noqa: E402
from tests.stac_fixtures import free_port, start_rustac  # noqa: E402
from tests.synthetic import write_cog  # noqa: E402
from titiler_otsu import create_app  # noqa: E402
from titiler_otsu.settings import Settings  # noqa: E402

TMS = morecantile.tms.get("WebMercatorQuad")
COLLECTION = "bench-time-stack"
PREFIX = f"/stacapi/collections/{COLLECTION}"
CRS = "EPSG:32634"
ROW0, COL0, CELLS = 400, 672, 150  # window of the 100 m B08, in 100 m cells
UPSAMPLE = 10  # -> 1500 x 1500 px at 10 m
DATES = [f"2020-{m:02d}-15" for m in range(1, 13)]
WATER = json.dumps({"invert": True})


def _interval(day: str) -> str:
    return f"{day}T00:00:00Z/{day}T23:59:59Z"


def build_stack(directory: Path) -> tuple[list[Path], tuple[float, float, float, float], Affine]:
    """Write the collection and its 12 items; return (json paths, lon/lat bbox, 10 m transform)."""
    with rasterio.open(S2_DIR / "B08.tif") as ds:
        cells = ds.read(1)[ROW0 : ROW0 + CELLS, COL0 : COL0 + CELLS].astype(np.int32)
        t100 = ds.transform
    size = CELLS * UPSAMPLE
    base = np.kron(cells, np.ones((UPSAMPLE, UPSAMPLE), np.int32))
    rows, cols = np.indices((size, size))
    texture = (rows * 7 + cols * 13) % 97 - 48
    transform = Affine(10.0, 0.0, t100.c + COL0 * t100.a, 0.0, -10.0, t100.f + ROW0 * t100.e)
    t20 = Affine(20.0, 0.0, transform.c, 0.0, -20.0, transform.f)
    w, s, e, n = transform_bounds(CRS, "EPSG:4326", transform.c, transform.f - size * 10, transform.c + size * 10,
                                  transform.f, densify_pts=21)  # fmt: skip
    bbox = (w, s, e, n)
    geometry = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
    centre_r, centre_c = 0.62 * size, 0.35 * size  # inland: the painted lake
    dist = np.hypot(rows - centre_r, cols - centre_c)
    paths = []
    for i, day in enumerate(DATES):
        radius = 150 + 120 * math.sin(2 * math.pi * i / 12)  # 30..270 px: the lake's yearly cycle
        nir = np.where(base > 0, base + texture, 0)
        nir = np.where(dist < radius, 600 + (texture + 48), nir).astype(np.uint16)
        scl = np.full((size // 2, size // 2), 5, np.uint8)
        scl[: size // 8, : size // 8] = 9  # a cloud in the north-west corner
        folder = directory / f"d{i:02d}"
        assets = {}
        for name, data, t in (("B08", nir, transform), ("SCL", scl, t20)):
            path = write_cog(folder / f"{name}.tif", data, crs=CRS, transform=t, nodata=0, blocksize=256)
            assets[name] = {
                "href": path.as_uri(),
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"],
                "proj:shape": list(data.shape),
                "proj:transform": list(t)[:6],
            }
        item = {
            "type": "Feature", "stac_version": "1.0.0", "id": f"bench_{day}", "collection": COLLECTION,
            "stac_extensions": ["https://stac-extensions.github.io/projection/v1.1.0/schema.json"],
            "bbox": list(bbox), "geometry": geometry,
            "properties": {"datetime": f"{day}T09:10:00Z", "proj:epsg": 32634, "gsd": 10},
            "assets": assets, "links": [],
        }  # fmt: skip
        path = directory / f"bench_{day}.json"
        path.write_text(json.dumps(item))
        paths.append(path)
    collection = {
        "type": "Collection", "stac_version": "1.0.0", "id": COLLECTION, "description": "bench stack",
        "license": "proprietary", "summaries": {"gsd": [10]},
        "extent": {"spatial": {"bbox": [list(bbox)]},
                   "temporal": {"interval": [[f"{DATES[0]}T00:00:00Z", f"{DATES[-1]}T23:59:59Z"]]}},
        "links": [],
    }  # fmt: skip
    (directory / "collection.json").write_text(json.dumps(collection))
    return [directory / "collection.json", *paths], bbox, transform


def square(transform: Affine, size_m: float) -> dict:
    """A lon/lat square of `size_m` side centred on the lake (a Feature)."""
    size = CELLS * UPSAMPLE
    cx, cy = transform * (0.35 * size, 0.62 * size)
    half = size_m / 2
    to_lonlat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    corners = ((cx - half, cy - half), (cx + half, cy - half), (cx + half, cy + half), (cx - half, cy + half))
    ring = [list(to_lonlat.transform(x, y)) for x, y in corners]
    return {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def _ok(r) -> None:
    assert r.status_code == 200, (r.status_code, r.text[:300])


def bench_change_tile(client: TestClient, bbox: tuple[float, float, float, float], rounds: int) -> dict[str, float]:
    w, s, e, n = bbox
    zoom = 13
    tiles = [t for t in TMS.tiles(w, s, e, n, [zoom])]
    common = {"assets": "B08", "algorithm": "otsu", "algorithm_params": WATER, "tilesize": 512,
              "bbox": ",".join(map(repr, bbox))}  # fmt: skip
    single = {**common, "datetime": _interval(DATES[0])}
    change = {**common, "before": _interval(DATES[0]), "after": _interval(DATES[3])}
    urls = {
        "single": (f"{PREFIX}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png", single),
        "change": (f"{PREFIX}/change/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png", change),
    }
    for template, params in urls.values():  # warm: histograms, searches, datasets
        _ok(client.get(template.format(z=zoom, x=tiles[0].x, y=tiles[0].y), params=params))
    times: dict[str, list[float]] = {k: [] for k in urls}
    for _ in range(rounds):
        for t in tiles:
            for name, (template, params) in urls.items():
                url = template.format(z=t.z, x=t.x, y=t.y)
                times[name].append(_timed(lambda url=url, params=params: _ok(client.get(url, params=params))))
    out = {k: statistics.median(v) for k, v in times.items()}
    out["tiles"] = len(tiles)
    return out


def bench_timeseries(client: TestClient, feature: dict, repeat: int) -> dict[str, float]:
    params = {"assets": "B08", "algorithm": "otsu", "algorithm_params": WATER}
    ts_params = {**params, "datetime": f"{DATES[0]}/{DATES[-1]}T23:59:59Z"}
    ring = feature["geometry"]["coordinates"][0]
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    bbox = ",".join(map(repr, (min(xs), min(ys), max(xs), max(ys))))  # what /timeseries defaults to
    areas_params = {**params, "datetime": _interval(DATES[0]), "bbox": bbox}
    first = client.post(f"{PREFIX}/timeseries", params=ts_params, json=feature)  # warm every date's histogram
    _ok(first)
    rows = first.json()["rows"]
    assert len(rows) == 12, len(rows)
    _ok(client.post(f"{PREFIX}/areas", params=areas_params, json=feature))
    ts = [_timed(lambda: _ok(client.post(f"{PREFIX}/timeseries", params=ts_params, json=feature)))
          for _ in range(repeat)]  # fmt: skip
    ar = [_timed(lambda: _ok(client.post(f"{PREFIX}/areas", params=areas_params, json=feature)))
          for _ in range(repeat)]  # fmt: skip
    water = [next(c["area_m2"] for c in r["classes"] if c["class"] == 1) / 1e6 for r in rows]
    return {"timeseries": statistics.median(ts), "areas": statistics.median(ar), "pixels": rows[0]["pixels"],
            "water_km2_min": min(water), "water_km2_max": max(water)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        t0 = time.perf_counter()
        files, bbox, transform = build_stack(directory)
        print(f"stack written in {time.perf_counter() - t0:.1f} s: 12 dates, 1500 x 1500 px at 10 m")
        port = free_port()
        proc = start_rustac(files, port, collection=COLLECTION)
        api = f"http://127.0.0.1:{port}"
        try:

            def client(**overrides: object) -> TestClient:
                settings = Settings(allowed_sources=[str(SHARED_DATA), str(directory)], cache_dir=directory / "cache",
                                    stac_api_url=api, stac_min_zoom=7, **overrides)  # type: ignore[arg-type]  # fmt: skip
                return TestClient(create_app(settings))

            tile = bench_change_tile(client(), bbox, args.rounds)
            feature = square(transform, math.sqrt(10e6))  # 10 km²
            series = {n: bench_timeseries(client(timeseries_threads=n), feature, args.repeat) for n in (1, 2, 4)}
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    print(f"\nchange tile vs single-date otsu tile (z13, 512 px png, {tile['tiles']} tiles x {args.rounds}, medians)")
    print(f"  single date (datetime=January)          {tile['single']:8.1f} ms")
    print(f"  change (before=January, after=April)    {tile['change']:8.1f} ms")
    print(f"  ratio                                   {tile['change'] / tile['single']:8.2f} x   (target <= 2.2)")
    print(f"\n12-date time series of a 10 km² square vs one /areas call (median of {args.repeat})")
    for n, r in series.items():
        print(f"  TIMESERIES_THREADS={n}: /timeseries {r['timeseries']:8.1f} ms, /areas {r['areas']:7.1f} ms, "
              f"ratio {r['timeseries'] / r['areas']:5.2f} x (target <= 12); {r['pixels']:,} px per date, "
              f"water {r['water_km2_min']:.2f}..{r['water_km2_max']:.2f} km²")  # fmt: skip


if __name__ == "__main__":
    main()

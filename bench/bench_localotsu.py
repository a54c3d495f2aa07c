"""localotsu latency vs otsu vs scikit-image rank.otsu on the same NAIP NIR tile.

In-process, compute only (the tile is read once, with the halo each method needs):

* `localotsu` (this package) at several radii, with a breakdown at radius 15;
* `otsu` (scope dataset: the histogram is bound, so this is smoothing-free classification);
* `skimage.filters.rank.otsu` with a disk and with the square localotsu uses, on the
  256-px tile alone and on the haloed window (what a seamless rank.otsu would need).

Then end to end through the app (in-process ASGI client: read + algorithm + PNG encoding)
for plain, otsu and localotsu tiles, and the classification agreement with rank.otsu on
the whole NAIP band 4. Writes bench/results/localotsu.json.
A script, not a test: `python bench/bench_localotsu.py [--repeat 50]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import morecantile
import numpy as np
import rasterio
from scipy import ndimage
from skimage.filters import rank
from skimage.morphology import disk, footprint_rectangle

from titiler_otsu.algorithms import LocalOtsu, Otsu
from titiler_otsu.core.histogram import valid_histogram
from titiler_otsu.core.local_otsu import (
    block_size,
    block_thresholds,
    grid_origin,
    interpolate_thresholds,
)
from titiler_otsu.io.reader import GridExactReader

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
NAIP = DATA / "m_4709963_se_14_1_20180716.tif"
TMS = morecantile.tms.get("WebMercatorQuad")
LONLAT = (-99.15, 47.02)


def _timed(fn: Callable[[], object], repeat: int) -> dict[str, float]:
    """Wall-clock median/min and thread CPU-time median (robust on a shared machine)."""
    fn()  # warm-up
    times, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.thread_time()
        fn()
        cpu.append((time.thread_time() - c0) * 1000)
        times.append((time.perf_counter() - t0) * 1000)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "cpu_median_ms": statistics.median(cpu)}


def bench_compute(repeat: int) -> dict[str, dict[str, float]]:
    """Compute-only latency of one 256-px tile (z14, NAIP band 4)."""
    t = TMS.tile(*LONLAT, 14)
    out: dict[str, dict[str, float]] = {}
    with GridExactReader(str(NAIP), tms=TMS) as src:
        plain = src.tile(t.x, t.y, 14, indexes=4)
        otsu = Otsu()
        otsu.bind_dataset_histogram(valid_histogram(np.ma.getdata(plain.array[0])))
        out["otsu (dataset scope)"] = _timed(lambda: otsu(plain), repeat)
        for radius in (4, 8, 15, 32, 64):
            algo = LocalOtsu(radius=radius)
            img = src.tile(t.x, t.y, 14, indexes=4, buffer=algo.halo)
            out[f"localotsu radius={radius} (block {block_size(radius)}, halo {algo.halo})"] = _timed(
                lambda algo=algo, img=img: algo(img), repeat
            )
        algo = LocalOtsu(radius=15, sigma=1, opening=1)
        img = src.tile(t.x, t.y, 14, indexes=4, buffer=algo.halo)
        out[f"localotsu radius=15 sigma=1 opening=1 (halo {algo.halo})"] = _timed(lambda: algo(img), repeat)

        # breakdown at radius 15
        algo = LocalOtsu(radius=15)
        img = src.tile(t.x, t.y, 14, indexes=4, buffer=algo.halo)
        window = np.ma.getdata(img.array[0])
        levels = window.astype(np.intp)
        valid = np.ones(window.shape, bool)
        h = algo.halo
        region = (h, h + 256, h, h + 256)
        origin = grid_origin(img.metadata, img.bounds, window.shape)
        local = block_thresholds(levels, valid, 256, 15, origin, region)
        out["  r15 part: block thresholds (histograms + Otsu)"] = _timed(
            lambda: block_thresholds(levels, valid, 256, 15, origin, region), repeat
        )
        out["  r15 part: bilinear interpolation"] = _timed(
            lambda: interpolate_thresholds(local, origin, region), repeat
        )

        tile = np.ma.getdata(plain.array[0])
        rank_repeat = max(3, repeat // 5)
        out["skimage rank.otsu disk(15), 256-px tile"] = _timed(lambda: rank.otsu(tile, disk(15)), rank_repeat)
        square = footprint_rectangle((31, 31))
        out["skimage rank.otsu square 31, 256-px tile"] = _timed(lambda: rank.otsu(tile, square), rank_repeat)
        out[f"skimage rank.otsu square 31, haloed window ({window.shape[0]} px)"] = _timed(
            lambda: rank.otsu(window, square), rank_repeat
        )
    return out


def bench_http(repeat: int) -> dict[str, dict[str, float]]:
    """End-to-end tile latency through the app (in-process ASGI client, PNG)."""
    from fastapi.testclient import TestClient

    from titiler_otsu import create_app
    from titiler_otsu.settings import Settings

    client = TestClient(create_app(Settings(allowed_sources=[str(DATA)])))
    t = TMS.tile(*LONLAT, 14)
    tiles = [(14, t.x + dx, t.y) for dx in (-1, 0, 1)]
    cases = {
        "plain tile (rescale)": {"rescale": "0,255"},
        "otsu tile": {"algorithm": "otsu", "algorithm_params": '{"invert": true}'},
        "localotsu radius=15 tile": {"algorithm": "localotsu", "algorithm_params": '{"invert": true}'},
        "localotsu radius=32 tile": {"algorithm": "localotsu", "algorithm_params": '{"invert": true, "radius": 32}'},
    }
    out = {}
    for name, extra in cases.items():
        params = {"url": str(NAIP), "bidx": 4, **extra}
        times = []
        for z, x, y in tiles:  # warm-up
            assert client.get(f"/cog/tiles/WebMercatorQuad/{z}/{x}/{y}.png", params=params).status_code == 200
        for _ in range(max(1, repeat // 5)):
            for z, x, y in tiles:
                t0 = time.perf_counter()
                client.get(f"/cog/tiles/WebMercatorQuad/{z}/{x}/{y}.png", params=params)
                times.append((time.perf_counter() - t0) * 1000)
        out[name] = {"median_ms": statistics.median(times), "min_ms": min(times)}
    return out


def agreement() -> dict[str, float]:
    """Classification agreement with rank.otsu on the whole NAIP band 4 (radius 15)."""
    with rasterio.open(NAIP) as ds:
        img = ds.read(4)
    radius = 15
    local = block_thresholds(img.astype(np.intp), np.ones(img.shape, bool), 256, radius)
    ours = img > interpolate_thresholds(local, (0, 0), (0, img.shape[0], 0, img.shape[1]))
    square = img > rank.otsu(img, footprint_rectangle((31, 31)))
    round_ = img > rank.otsu(img, disk(radius))
    size = 2 * radius + 1
    varied = ndimage.maximum_filter(img, size) != ndimage.minimum_filter(img, size)
    return {
        "localotsu vs rank.otsu square (non-uniform neighbourhoods)": float((ours == square)[varied].mean()),
        "rank.otsu disk vs rank.otsu square (non-uniform neighbourhoods)": float((round_ == square)[varied].mean()),
        "localotsu vs rank.otsu square (all pixels)": float((ours == square).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=50, help="timed runs per case")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    compute = bench_compute(args.repeat)
    http = bench_http(args.repeat)
    agree = agreement()
    out = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average_1min_at_start": load,
        "compute_256px_tile": compute,
        "http_png_tile": http,
        "agreement_naip_b4": agree,
    }
    print(f"\n{out['machine']} (1-min load average at start: {load:.2f})\n")
    print("| compute, one 256-px NAIP tile | wall median ms | wall min ms | CPU median ms |\n|---|---:|---:|---:|")
    for name, r in compute.items():
        print(f"| {name} | {r['median_ms']:.2f} | {r['min_ms']:.2f} | {r['cpu_median_ms']:.2f} |")
    print("\n| end to end (PNG, in-process) | median ms | min ms |\n|---|---:|---:|")
    for name, r in http.items():
        print(f"| {name} | {r['median_ms']:.1f} | {r['min_ms']:.1f} |")
    print("\n| agreement, NAIP band 4, radius 15 | fraction |\n|---|---:|")
    for name, v in agree.items():
        print(f"| {name} | {v:.4f} |")
    dest = ROOT / "bench" / "results" / "localotsu.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=1))
    print(f"\nwritten {dest}")


if __name__ == "__main__":
    main()

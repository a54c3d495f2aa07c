"""Threshold math: our (multi-)Otsu vs scikit-image's on 256x256 tiles of real rasters.

Times histogram + thresholds (``titiler_otsu.core.otsu`` and ``.multiotsu``) against
``skimage.filters.threshold_multiotsu`` (classes=3) and ``skimage.filters.threshold_otsu``
on (a) a uint16 tile cut from the valid area of Sentinel-2 B08 and (b) a uint8 tile of
NAIP band 4 (NIR). Both sides get the same valid pixels as a 1-D array. A script, not a
test: ``python bench/bench_math.py [--repeat N]``.

On the uint16 tile scikit-image histograms every integer level (thousands of bins) and
enumerates all threshold pairs; we use 256 equal-width bins and dynamic programming, so
the thresholds differ slightly (they are not expected to be equal). On the uint8 tile both
use one bin per level and the thresholds are identical.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window
from skimage.filters import threshold_multiotsu as sk_multiotsu
from skimage.filters import threshold_otsu as sk_otsu

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from titiler_otsu.core.multiotsu import threshold_multiotsu  # noqa: E402
from titiler_otsu.core.otsu import threshold_otsu  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
B08 = DATA / "sentinel2_S2A_34SGA_20200318_L2A" / "B08.tif"
NAIP = DATA / "m_4709963_se_14_1_20180716.tif"
TILE = 256


def _tiles() -> dict[str, np.ndarray]:
    for path in (B08, NAIP):
        if not path.is_file():
            raise FileNotFoundError(f"shared raster missing: {path}")
    with rasterio.open(B08) as ds:
        # Eastern part of the scene: inside the swath (no nodata), sea and land.
        band = ds.read(1, window=Window(700, 400, TILE, TILE))
    assert band.shape == (TILE, TILE) and band.dtype == np.uint16
    b08 = band[band != 0]
    with rasterio.open(NAIP) as ds:
        naip = ds.read(4, window=Window(300, 200, TILE, TILE)).ravel()
    assert naip.dtype == np.uint8
    return {"uint16 B08": b08, "uint8 NAIP b4": naip}


def _paired_medians(
    ours: Callable[[], Any], theirs: Callable[[], Any], repeat: int, theirs_repeat: int
) -> tuple[float, float]:
    """Median seconds of two callables timed alternately (fair under a varying load)."""
    ours()  # warm-up
    theirs()
    ours_times: list[float] = []
    theirs_times: list[float] = []
    for i in range(repeat):
        start = time.perf_counter()
        ours()
        ours_times.append(time.perf_counter() - start)
        if i < theirs_repeat:
            start = time.perf_counter()
            theirs()
            theirs_times.append(time.perf_counter() - start)
    return statistics.median(ours_times), statistics.median(theirs_times)


def run(repeat: int = 20) -> dict:
    """Time ours vs scikit-image; return ``{tile: {...}}`` with seconds and ratios."""
    results: dict[str, dict[str, Any]] = {}
    for name, values in _tiles().items():
        # scikit-image's multi-Otsu brute force on thousands of uint16 levels takes
        # about a second: a few repeats suffice for it.
        sk_repeat = max(3, repeat // 5) if values.dtype == np.uint16 else repeat
        multi = _paired_medians(partial(threshold_multiotsu, values), partial(sk_multiotsu, values), repeat, sk_repeat)
        binary = _paired_medians(partial(threshold_otsu, values), partial(sk_otsu, values), repeat, repeat)
        row: dict[str, Any] = {
            "pixels": int(values.size),
            "distinct_values": int(np.unique(values).size),
            "ours_multiotsu_s": multi[0],
            "skimage_multiotsu_s": multi[1],
            "ours_otsu_s": binary[0],
            "skimage_otsu_s": binary[1],
            "ours_thresholds": threshold_multiotsu(values),
            "skimage_thresholds": [float(t) for t in sk_multiotsu(values)],
            "ours_otsu": threshold_otsu(values),
            "skimage_otsu": float(sk_otsu(values)),
        }
        row["multiotsu_speedup"] = row["skimage_multiotsu_s"] / row["ours_multiotsu_s"]
        row["otsu_speedup"] = row["skimage_otsu_s"] / row["ours_otsu_s"]
        results[name] = row
    return results


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}"


def _markdown(results: dict) -> str:
    lines = [
        "| tile | pixels | levels | ours multi-Otsu (ms) | skimage multi-Otsu (ms) | speed-up "
        "| ours Otsu (ms) | skimage Otsu (ms) | speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['pixels']} | {r['distinct_values']} | {_ms(r['ours_multiotsu_s'])} "
            f"| {_ms(r['skimage_multiotsu_s'])} | {r['multiotsu_speedup']:.1f}x "
            f"| {_ms(r['ours_otsu_s'])} | {_ms(r['skimage_otsu_s'])} | {r['otsu_speedup']:.1f}x |"
        )
    lines.append("")
    lines.append("Thresholds (classes=3 multi-Otsu; binary Otsu), ours vs scikit-image:")
    lines.append("")
    for name, r in results.items():
        ours = ", ".join(f"{t:g}" for t in r["ours_thresholds"])
        ref = ", ".join(f"{t:g}" for t in r["skimage_thresholds"])
        lines.append(f"* {name}: multi-Otsu [{ours}] vs [{ref}]; Otsu {r['ours_otsu']:g} vs {r['skimage_otsu']:g}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per case")
    args = parser.parse_args(argv)
    results = run(args.repeat)
    print(_markdown(results))
    u16 = results["uint16 B08"]["multiotsu_speedup"]
    u8 = results["uint8 NAIP b4"]["multiotsu_speedup"]
    print()
    verdict16 = "met" if u16 >= 100 else "MISSED"
    print(f"Targets: >= 100x on uint16 multi-Otsu: {verdict16} ({u16:.0f}x);")
    print(f"no slower on uint8 multi-Otsu: {'met' if u8 >= 1 else 'MISSED'} ({u8:.1f}x).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

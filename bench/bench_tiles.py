"""Tile latency, side by side in one run: plain vs segmented tiles over HTTP, plus math.

Starts our server (uvicorn, 1 worker) and a plain TiTiler app (`TilerFactory`, no
extension) on loopback, requests the same tiles from the real rasters in ../shared/data at
several zooms, and prints median latencies and ratios. Also measures, in-process, our
multi-Otsu against scikit-image's and the cost of the dataset histogram (first call vs
cached). Writes bench/results/tiles.json. A script, not a test: `python bench/bench_tiles.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import morecantile

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
NAIP = DATA / "m_4709963_se_14_1_20180716.tif"
B08 = DATA / "sentinel2_S2A_34SGA_20200318_L2A" / "B08.tif"
TMS = morecantile.tms.get("WebMercatorQuad")

PLAIN_TITILER_APP = """
from fastapi import FastAPI
from titiler.core.factory import TilerFactory
from titiler.core.errors import DEFAULT_STATUS_CODES, add_exception_handlers
app = FastAPI()
app.include_router(TilerFactory().router, prefix="/cog")
add_exception_handlers(app, DEFAULT_STATUS_CODES)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], env: dict[str, str], port: int, cwd: Path) -> subprocess.Popen:
    proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server on port {port} did not start")


def _tiles(path: Path, lonlat: tuple[float, float], zooms: list[int]) -> list[tuple[int, int, int]]:
    out = []
    for z in zooms:
        t = TMS.tile(*lonlat, z)
        out += [(z, t.x + dx, t.y) for dx in (-1, 0, 1)]
    return out


def _median_ms(client: httpx.Client, base: str, tiles: list, params: dict, rounds: int) -> tuple[float, int]:
    times, errors = [], 0
    for z, x, y in tiles:  # warm-up: open files, fill caches
        client.get(f"{base}/cog/tiles/WebMercatorQuad/{z}/{x}/{y}.png", params=params)
    for _ in range(rounds):
        for z, x, y in tiles:
            t0 = time.perf_counter()
            r = client.get(f"{base}/cog/tiles/WebMercatorQuad/{z}/{x}/{y}.png", params=params)
            times.append((time.perf_counter() - t0) * 1000)
            errors += r.status_code != 200
    return statistics.median(times), errors


def bench_http(rounds: int) -> dict:
    """Median HTTP latency of plain and segmented tiles on both servers."""
    env = {**os.environ, "TITILER_OTSU_ALLOWED_SOURCES": json.dumps([str(DATA)])}
    ours_port, plain_port = _free_port(), _free_port()
    uvicorn = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--log-level", "warning"]
    ours = _start(
        [*uvicorn, "--factory", "titiler_otsu.app:create_app", "--port", str(ours_port)], env, ours_port, ROOT
    )
    plain_dir = ROOT / "bench" / "results"
    plain_dir.mkdir(parents=True, exist_ok=True)
    (plain_dir / "plain_titiler_app.py").write_text(PLAIN_TITILER_APP)
    plain = _start([*uvicorn, "plain_titiler_app:app", "--port", str(plain_port)], env, plain_port, plain_dir)
    naip_tiles = _tiles(NAIP, (-99.15, 47.02), [13, 14, 15])
    s2_tiles = _tiles(B08, (23.8, 32.0), [9, 10, 11])
    cases = {
        "plain tile, NAIP b4 (rescale, PNG)": (naip_tiles, {"url": str(NAIP), "bidx": 4, "rescale": "0,255"}),
        "otsu tile, NAIP b4": (
            naip_tiles,
            {"url": str(NAIP), "bidx": 4, "algorithm": "otsu", "algorithm_params": '{"invert": true}'},
        ),
        "otsu sigma=2 tile, NAIP b4": (
            naip_tiles,
            {"url": str(NAIP), "bidx": 4, "algorithm": "otsu", "algorithm_params": '{"invert": true, "sigma": 2}'},
        ),
        "plain tile, S2 B08 uint16 (rescale, PNG)": (s2_tiles, {"url": str(B08), "rescale": "0,8000"}),
        "otsu tile, S2 B08 uint16": (s2_tiles, {"url": str(B08), "algorithm": "otsu"}),
        "multiotsu 3 tile, S2 B08 uint16": (
            s2_tiles,
            {"url": str(B08), "algorithm": "multiotsu", "algorithm_params": '{"classes": 3}'},
        ),
    }
    results: dict = {}
    try:
        with httpx.Client(timeout=30) as client:
            for name, (tiles, params) in cases.items():
                ms, err = _median_ms(client, f"http://127.0.0.1:{ours_port}", tiles, params, rounds)
                results[name] = {"ours_ms": ms, "errors": err}
                if "algorithm" not in params:
                    ms, err = _median_ms(client, f"http://127.0.0.1:{plain_port}", tiles, params, rounds)
                    results[name].update(titiler_ms=ms, titiler_errors=err)
    finally:
        for p in (ours, plain):
            p.terminate()
            p.wait(10)
    return results


def bench_dataset_histogram() -> dict:
    """First (one overview read) vs cached calls of the dataset histogram."""
    from titiler_otsu.io.histograms import DatasetHistograms
    from titiler_otsu.io.reader import GridExactReader

    hists = DatasetHistograms(16, 3600, 1024)
    t0 = time.perf_counter()
    hists.get(lambda: GridExactReader(str(B08)), str(B08), {"indexes": 1}, 256)
    first = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    for _ in range(100):
        hists.get(lambda: GridExactReader(str(B08)), str(B08), {"indexes": 1}, 256)
    later = (time.perf_counter() - t0) * 1000 / 100
    with GridExactReader(str(B08)) as src:
        t0 = time.perf_counter()
        src.preview(max_size=1024, indexes=1)
        one_read = (time.perf_counter() - t0) * 1000
    return {
        "first_call_ms": first,
        "one_overview_read_ms": one_read,
        "later_call_ms": later,
        "reads_after_101_calls": hists.reads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="passes over the tile list per case")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "bench"))
    import bench_math

    http = bench_http(args.rounds)
    math_results = bench_math.run()
    hist = bench_dataset_histogram()
    out = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "http": http,
        "math": math_results,
        "dataset_histogram": hist,
    }

    print(f"\n{out['machine']}\n")
    print("| case | ours median ms | plain TiTiler median ms |")
    print("|---|---:|---:|")
    for name, r in http.items():
        print(f"| {name} | {r['ours_ms']:.1f} | {r.get('titiler_ms', float('nan')):.1f} |")
    naip_plain = http["plain tile, NAIP b4 (rescale, PNG)"]["ours_ms"]
    s2_plain = http["plain tile, S2 B08 uint16 (rescale, PNG)"]["ours_ms"]
    ratios = {
        "otsu / plain (NAIP)": http["otsu tile, NAIP b4"]["ours_ms"] / naip_plain,
        "otsu sigma=2 / plain (NAIP)": http["otsu sigma=2 tile, NAIP b4"]["ours_ms"] / naip_plain,
        "otsu / plain (S2 uint16)": http["otsu tile, S2 B08 uint16"]["ours_ms"] / s2_plain,
        "multiotsu / plain (S2 uint16)": http["multiotsu 3 tile, S2 B08 uint16"]["ours_ms"] / s2_plain,
        "our plain / TiTiler plain (NAIP)": naip_plain / http["plain tile, NAIP b4 (rescale, PNG)"]["titiler_ms"],
    }
    out["ratios"] = ratios
    print("\n| ratio | value |\n|---|---:|")
    for k, v in ratios.items():
        print(f"| {k} | {v:.2f} |")
    print(
        f"\nDataset histogram: first call {hist['first_call_ms']:.1f} ms (one overview read alone: "
        f"{hist['one_overview_read_ms']:.1f} ms), cached call {hist['later_call_ms'] * 1000:.1f} µs, "
        f"reads after 101 calls: {hist['reads_after_101_calls']}"
    )
    print("\nMath (in-process):")
    print(json.dumps(math_results, indent=1))
    dest = ROOT / "bench" / "results" / "tiles.json"
    dest.write_text(json.dumps(out, indent=1))
    print(f"\nwritten {dest}")


if __name__ == "__main__":
    main()

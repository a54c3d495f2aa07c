"""Export throughput (Mpix/s) and worker memory of `titiler-otsu export`.

Generates a uint16 COG (default 10k x 10k; smooth "lakes and fields" plus noise, UTM, 10 m,
nodata border, overviews) once into bench/.cache, then exports it with `otsu` + `sigma=1`:

* through a local cluster of 1 and of 2 worker processes (`--workers`);
* through a real `dask scheduler` + 2 `dask worker` processes on loopback (`--scheduler`).

Each run is a fresh `titiler-otsu export ... --json` process, timed end to end (cluster
start-up included) and by phase (segmentation, COG conversion). `--size 20000 --memory`
runs the 20k x 20k memory check (peak RSS per worker, target < 1 GiB).
Writes bench/results/export.json. A script, not a test: `python bench/bench_export.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import Affine
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
RESULTS = ROOT / "bench" / "results"
BIN = Path(sys.executable).parent


def make_scene(path: Path, size: int, strip: int = 512) -> Path:
    """A size x size uint16 COG, written strip by strip (memory ~ one strip)."""
    if path.exists():
        return path
    from rio_cogeo.cogeo import cog_translate
    from rio_cogeo.profiles import cog_profiles

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.tif")
    profile = {
        "driver": "GTiff",
        "dtype": "uint16",
        "count": 1,
        "width": size,
        "height": size,
        "crs": "EPSG:32633",
        "transform": Affine(10, 0, 400000, 0, -10, 5300000),
        "nodata": 0,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "zstd",
        "zstd_level": 1,
        "bigtiff": "yes",
    }
    x = np.arange(size, dtype=np.float32)
    with rasterio.open(tmp, "w", **profile) as dst:
        for r0 in range(0, size, strip):
            h = min(strip, size - r0)
            y = np.arange(r0, r0 + h, dtype=np.float32)[:, None]
            field = (
                np.sin(x / 97.0) * np.cos(y / 131.0) + 0.6 * np.sin((x + 2 * y) / 413.0) + 0.4 * np.cos((x - y) / 57.0)
            )
            rng = np.random.default_rng(r0)
            values = 3000 + 1500 * field + rng.normal(0, 250, size=(h, size)).astype(np.float32)
            values = np.clip(values, 1, 65535).astype(np.uint16)
            values[:, : size // 50] = 0  # a nodata border on the west
            dst.write(values, 1, window=Window(0, r0, size, h))
    cog_translate(
        str(tmp),
        str(path),
        cog_profiles.get("deflate"),
        nodata=0,
        overview_resampling="nearest",
        in_memory=False,
        quiet=True,
        use_cog_driver=True,
        config={"GDAL_NUM_THREADS": "ALL_CPUS"},
    )
    tmp.unlink()
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_export(src: Path, out: Path, extra: list[str]) -> dict:
    args = [str(BIN / "titiler-otsu"), "export", str(src), str(out), "--params", '{"sigma": 1}', "--json", *extra]
    load = round(os.getloadavg()[0], 2)
    t0 = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    summary = json.loads(proc.stdout)
    summary["wall_seconds"] = wall
    summary["loadavg_before"] = load
    return summary


class LoopbackCluster:
    """`dask scheduler` + N `dask worker` processes on 127.0.0.1."""

    def __init__(self, n_workers: int) -> None:
        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []
        self.n = n_workers

    def __enter__(self) -> LoopbackCluster:
        dask = str(BIN / "dask")
        self.procs.append(
            subprocess.Popen(
                [dask, "scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        for _ in range(self.n):
            self.procs.append(
                subprocess.Popen(
                    [dask, "worker", self.address, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"]
                    + ["--preload", "titiler_otsu.export.tasks"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        from distributed import Client

        with Client(self.address, timeout=60) as c:
            c.wait_for_workers(self.n, timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            p.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--window-size", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=2, help="runs per configuration (best is kept)")
    parser.add_argument("--memory", action="store_true", help="only the memory check (2 local workers)")
    args = parser.parse_args()

    t0 = time.perf_counter()
    src = make_scene(CACHE / f"scene_{args.size}.tif", args.size)
    print(f"scene {src} ({args.size} x {args.size} uint16), ready in {time.perf_counter() - t0:.1f} s")
    configs: list[tuple[str, list[str], int]] = (
        [("local, 2 workers", ["--workers", "2"], 0)]
        if args.memory
        else [
            ("local, 1 worker", ["--workers", "1"], 0),
            ("local, 2 workers", ["--workers", "2"], 0),
            ("scheduler + 2 workers (loopback)", [], 2),
        ]
    )
    rows = []
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        for name, extra, loopback in configs:
            best: dict | None = None
            for _ in range(1 if args.memory else args.repeat):
                out = Path(tmp) / "out.tif"
                common = ["--window-size", str(args.window_size)]
                if loopback:
                    with LoopbackCluster(loopback) as cluster:
                        s = run_export(src, out, [*common, "--scheduler", cluster.address])
                else:
                    s = run_export(src, out, [*common, *extra])
                if best is None or s["wall_seconds"] < best["wall_seconds"]:
                    best = s
            assert best is not None
            mpix = best["pixels"] / 1e6
            cpu = best["worker_cpu_seconds"] + best["driver_cpu_seconds"]
            row = {
                "config": name,
                "pixels": best["pixels"],
                "wall_s": round(best["wall_seconds"], 2),
                "export_s": round(best["seconds"], 2),
                "segment_s": round(best["seconds_segment"], 2),
                "cog_s": round(best["seconds_cog"], 2),
                "mpix_per_s_wall": round(mpix / best["wall_seconds"], 1),
                "mpix_per_s_export": round(best["mpix_per_s"], 1),
                "mpix_per_s_segment": round(best["segment_mpix_per_s"], 1),
                "worker_cpu_s": round(best["worker_cpu_seconds"], 2),
                "driver_cpu_s": round(best["driver_cpu_seconds"], 2),
                # what the CPU time allows on this machine's cores if nothing else runs (segmentation)
                "cpu_bound_mpix_per_s": round(
                    mpix / max(cpu / (os.cpu_count() or 1), best["worker_cpu_seconds"] / max(best["workers"], 1)), 1
                ),
                "loadavg_1min_before": best["loadavg_before"],
                "peak_worker_rss_mb": round(max(best["peak_worker_rss_mb"].values()), 0),
                "output_mb": round(os.path.getsize(best["output"]) / 2**20, 1)
                if Path(best["output"]).exists()
                else None,
            }
            rows.append(row)
            print(json.dumps(row))
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "size": args.size,
        "window_size": args.window_size,
        "params": {"algorithm": "otsu", "sigma": 1},
        "runs": rows,
    }
    if not args.memory and len(rows) >= 2:
        result["speedup_2_vs_1_segment"] = round(rows[1]["mpix_per_s_segment"] / rows[0]["mpix_per_s_segment"], 2)
        result["speedup_2_vs_1_export"] = round(rows[1]["mpix_per_s_export"] / rows[0]["mpix_per_s_export"], 2)
        print(
            f"2 workers vs 1: segmentation x{result['speedup_2_vs_1_segment']}, "
            f"whole export x{result['speedup_2_vs_1_export']}"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "export_memory.json" if args.memory else "export.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

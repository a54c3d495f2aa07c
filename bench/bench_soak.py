"""Bounded soak on loopback: a real server under a steady mixed load; 0 errors, RSS flat.

Starts `uvicorn titiler_otsu.app:create_app` (1 worker) on 127.0.0.1 serving the real
rasters in ../shared/data, then `--concurrency` asyncio clients cycle through a mix of
requests: segmented tiles (otsu, multiotsu, localotsu, several zooms of two rasters, PNG and
NPY), raw tiles, /threshold (whole source and bbox), /vectors, POST /areas, /info, TileJSON,
and hostile requests that must be refused (403/400/404). An answer with another status, or
a transport error, is an error.

Phases: warm-up (`--warmup` s, same load: caches, thread pools and allocator arenas fill),
then the soak (`--duration` s, at most 60). The server's RSS (process tree) is sampled every
0.5 s; growth = RSS at rest after the soak vs at rest after the warm-up (medians over 1.5 s
without requests: RSS under load swings with the requests in flight). Pass: 0 errors
and growth < `--max-growth` (10 %). Prints a summary and writes JSON (`--out`); exit status 1
on fail.

The server runs with its default settings; `--gdal KEY=VALUE` overrides a GDAL option (e.g.
`--gdal VSI_CACHE=FALSE`: each handle the dataset cache keeps, overviews included, fills its
own VSI cache of up to 25 MB, bounded growth that shows under load, not at rest).

    python bench/bench_soak.py                      # 60 s soak
    python bench/bench_soak.py --duration 10 --warmup 20 --out /tmp/soak.json   # CI smoke (tests/test_soak.py)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import morecantile
import psutil

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
NAIP = DATA / "m_4709963_se_14_1_20180716.tif"
B08 = DATA / "sentinel2_S2A_34SGA_20200318_L2A" / "B08.tif"
TMS = morecantile.tms.get("WebMercatorQuad")
MAX_DURATION = 60.0
#: Seconds over which RSS is averaged (median) at the end of the warm-up and of the soak.
WINDOW = 8.0
#: Seconds of rest over which the compared RSS values are taken.
IDLE = 1.5
LAKE = {
    "type": "Feature",
    "properties": {},
    "geometry": {
        "type": "Polygon",
        "coordinates": [
            [[-99.150, 47.020], [-99.140, 47.015], [-99.128, 47.022], [-99.132, 47.035], [-99.150, 47.020]]
        ],
    },
}


@dataclass(frozen=True)
class Call:
    """One request of the mix and the status it must get."""

    method: str
    path: str
    params: dict[str, Any]
    expect: int = 200
    body: dict | None = None


def _tiles(lon: float, lat: float, zooms: tuple[int, ...], span: int = 1) -> list[tuple[int, int, int]]:
    out = []
    for z in zooms:
        c = TMS.tile(lon, lat, z)
        out += [(z, c.x + dx, c.y + dy) for dx in range(-span, span + 1) for dy in range(-span, span + 1)]
    return out


def workload() -> list[Call]:
    """The request mix (about 60 distinct requests), cycled by every client."""
    from rio_tiler.io import Reader

    def expect(path: Path, z: int, x: int, y: int) -> int:
        with Reader(str(path)) as src:
            return 200 if src.tile_exists(x, y, z) else 404

    naip = {"url": str(NAIP), "bidx": "4"}
    b08 = {"url": str(B08), "bidx": "1"}
    variants = [
        ({"algorithm": "otsu"}, "png"),
        ({"algorithm": "otsu", "algorithm_params": '{"sigma": 1.5, "opening": 1}'}, "npy"),
        ({"algorithm": "multiotsu", "algorithm_params": '{"classes": 3}'}, "png"),
        ({"algorithm": "localotsu", "algorithm_params": '{"radius": 8}'}, "png"),
        ({}, "npy"),
    ]
    calls: list[Call] = []
    for i, (z, x, y) in enumerate(_tiles(-99.155, 47.02, (13, 14, 15))):
        params, fmt = variants[i % len(variants)]
        calls.append(
            Call("GET", f"/cog/tiles/WebMercatorQuad/{z}/{x}/{y}.{fmt}", {**naip, **params}, expect(NAIP, z, x, y))
        )
    for i, (z, x, y) in enumerate(_tiles(23.75, 32.0, (10, 11))):
        params, fmt = variants[(i + 2) % len(variants)]
        calls.append(
            Call("GET", f"/cog/tiles/WebMercatorQuad/{z}/{x}/{y}.{fmt}", {**b08, **params}, expect(B08, z, x, y))
        )
    t = TMS.tile(-99.15, 47.02, 14)
    calls += [
        Call("GET", "/cog/threshold", {**naip, "algorithm": "multiotsu", "algorithm_params": '{"classes": 3}'}),
        Call("GET", "/cog/threshold", {**naip, "bbox": "-99.16,47.01,-99.13,47.03"}),
        Call("GET", "/cog/threshold", {**b08, "algorithm": "localotsu", "algorithm_params": '{"radius": 8}'}),
        Call("GET", f"/cog/vectors/WebMercatorQuad/14/{t.x}/{t.y}", {**naip, "algorithm": "otsu"}),
        Call("POST", "/cog/areas", {**naip, "algorithm": "otsu"}, body=LAKE),
        Call("GET", "/cog/info", {"url": str(NAIP)}),
        Call("GET", "/cog/WebMercatorQuad/tilejson.json", {**naip, "algorithm": "otsu"}),
        Call("GET", "/healthz", {}),
        # hostile requests, refused every time
        Call("GET", f"/cog/tiles/WebMercatorQuad/14/{t.x}/{t.y}.png", {"url": "/etc/passwd"}, 403),
        Call("GET", f"/cog/tiles/WebMercatorQuad/14/{t.x}/{t.y}.png", {**naip, "expression": "b1.__class__"}, 400),
        Call("GET", "/cog/info", {"url": "http://169.254.169.254/latest/meta-data/"}, 403),
        Call("GET", "/cog/tiles/WebMercatorQuad/-1/0/0.png", naip, 400),
        Call("GET", "/cog/tiles/WebMercatorQuad/14/0/0.png", naip, 404),
    ]
    return calls


# ---------------------------------------------------------------------- server
def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, gdal: dict[str, str] | None = None) -> subprocess.Popen:
    """Our app under uvicorn (1 worker) on loopback, ready to serve (`gdal`: GDAL options)."""
    env = {
        **os.environ,
        **(gdal or {}),
        "TITILER_OTSU_SOURCES": json.dumps([str(NAIP), str(B08)]),
        "TITILER_OTSU_ALLOWED_SOURCES": json.dumps([str(DATA)]),
    }
    cmd = [sys.executable, "-m", "uvicorn", "titiler_otsu.app:create_app", "--factory"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}") from None
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start within 60 s")


def tree_rss(pid: int) -> int:
    """Resident memory of a process and its children (bytes)."""
    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


# ---------------------------------------------------------------------- load
@dataclass
class Phase:
    """Counts of one phase."""

    seconds: float = 0.0
    requests: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)


async def drive(
    base: str, calls: list[Call], seconds: float, concurrency: int, phase: Phase, min_requests: int = 0
) -> None:
    """`concurrency` clients cycling through `calls` for `seconds` (and at least `min_requests`)."""
    stop_at = time.monotonic() + seconds
    start = time.monotonic()

    async def client(offset: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            i = offset
            while time.monotonic() < stop_at or phase.requests < min_requests:
                call = calls[i % len(calls)]
                i += 1
                t0 = time.perf_counter()
                try:
                    r = await http.request(call.method, call.path, params=call.params, json=call.body)
                    ok, what = r.status_code == call.expect, f"{r.status_code} {r.text[:120]}"
                except httpx.HTTPError as e:
                    ok, what = False, e.__class__.__name__
                phase.latencies_ms.append((time.perf_counter() - t0) * 1000)
                phase.requests += 1
                if not ok:
                    phase.errors += 1
                    if len(phase.error_samples) < 10:
                        phase.error_samples.append(f"{call.method} {call.path} -> {what}")

    await asyncio.gather(*(client(k * len(calls) // concurrency) for k in range(concurrency)))
    phase.seconds = time.monotonic() - start


async def sample_rss(pid: int, samples: list[tuple[float, int]], stop: asyncio.Event) -> None:
    """Append (time, RSS) every 0.5 s until `stop`."""
    while not stop.is_set():
        samples.append((time.monotonic(), tree_rss(pid)))
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except TimeoutError:
            pass


def _median_between(samples: list[tuple[float, int]], start: float, end: float) -> float:
    window = [rss for t, rss in samples if start <= t <= end]
    return statistics.median(window) if window else float(samples[-1][1])


async def _idle_rss(pid: int, seconds: float = IDLE) -> float:
    """Median RSS with no request in flight (sampled every 0.1 s)."""
    values = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        values.append(tree_rss(pid))
        await asyncio.sleep(0.1)
    return statistics.median(values)


async def soak(base: str, pid: int, duration: float, warmup: float, concurrency: int) -> dict[str, Any]:
    """Warm-up, then the soak, RSS sampled throughout; the figures.

    RSS swings with the requests in flight, so growth compares the server at rest: the
    median RSS over IDLE seconds with no request after the warm-up and after the soak. The
    medians under load over the last WINDOW seconds of each phase are reported too.
    """
    calls = workload()
    warm, main = Phase(), Phase()
    samples: list[tuple[float, int]] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(pid, samples, stop))
    await drive(base, calls, warmup, concurrency, warm, min_requests=2 * len(calls))
    warm_end = time.monotonic()
    baseline = await _idle_rss(pid)
    soak_start = time.monotonic()
    await drive(base, calls, duration, concurrency, main)
    soak_end = time.monotonic()
    final = await _idle_rss(pid)
    stop.set()
    await sampler
    window = min(WINDOW, warmup / 2, duration / 2)
    loaded = (
        _median_between(samples, warm_end - window, warm_end),
        _median_between(samples, max(soak_start, soak_end - window), soak_end),
    )
    lat = sorted(main.latencies_ms) or [0.0]
    return {
        "duration_s": round(main.seconds, 1),
        "warmup_s": round(warm.seconds, 1),
        "concurrency": concurrency,
        "distinct_requests": len(calls),
        "requests": main.requests,
        "requests_per_s": round(main.requests / max(main.seconds, 1e-9), 1),
        "errors": main.errors + warm.errors,
        "error_samples": warm.error_samples + main.error_samples,
        "latency_ms": {
            "p50": round(lat[len(lat) // 2], 1),
            "p95": round(lat[int(len(lat) * 0.95)], 1),
            "p99": round(lat[int(len(lat) * 0.99)], 1),
        },
        "rss_mb": {
            "idle_after_warmup": round(baseline / 2**20, 1),
            "idle_after_soak": round(final / 2**20, 1),
            "loaded_end_of_warmup": round(loaded[0] / 2**20, 1),
            "loaded_end_of_soak": round(loaded[1] / 2**20, 1),
            "max": round(max(r for _, r in samples) / 2**20, 1),
        },
        "rss_growth": round((final - baseline) / baseline, 4),
        "rss_timeline_mb": [round(rss / 2**20) for _, rss in samples[::10]],
    }


def run(
    duration: float = 60.0, warmup: float = 20.0, concurrency: int = 8, gdal: dict[str, str] | None = None
) -> dict[str, Any]:
    """Start the server, soak it, stop it; the figures (see `soak`)."""
    duration = min(duration, MAX_DURATION)
    gdal = gdal or {}
    port = free_port()
    proc = start_server(port, gdal)
    try:
        result = asyncio.run(soak(f"http://127.0.0.1:{port}", proc.pid, duration, warmup, concurrency))
        return {**result, "gdal": gdal}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="soak seconds (at most 60)")
    parser.add_argument("--warmup", type=float, default=20.0, help="warm-up seconds before the RSS baseline")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-growth", type=float, default=0.10, help="largest RSS growth that passes")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    parser.add_argument("--gdal", action="append", metavar="KEY=VALUE", help="GDAL option for the server (repeatable)")
    args = parser.parse_args()
    gdal = dict(kv.split("=", 1) for kv in args.gdal) if args.gdal else None
    result = run(args.duration, args.warmup, args.concurrency, gdal)
    result["passed"] = result["errors"] == 0 and result["rss_growth"] < args.max_growth
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "error_samples"}, indent=2))
    for sample in result["error_samples"]:
        print("error:", sample)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

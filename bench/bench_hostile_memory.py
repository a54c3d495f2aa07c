"""Memory under a varied, hostile load: RSS at rest, after warm-up, after 10,000 requests.

Starts `uvicorn titiler_otsu.app:create_app` (1 worker) on 127.0.0.1 with an allow-list of
generated and real sources:

* the generated-raster matrix of the tests (tests/synthetic.py: every dtype, georeferencing,
  shape and nodata of the one-axis design plus a pairwise sample; many are refused with a 400),
* `--scenes` generated 2048 x 2048 COGs (uint16 and float32, overviews, distinct contents),
* the real rasters of ../shared/data (NAIP, RGB, DEM, Sentinel-2 bands, SCL).

A seeded generator draws requests over those sources: tiles at every zoom of each source
(raw, otsu / multiotsu / localotsu with random scope, sigma, opening), /threshold (whole or
bbox), /info, TileJSON, /statistics, /preview, /point, POST /areas, /vectors, and bad ones
(missing files, traversal, malformed params and expressions, oversized tiles, tiles outside).
`--concurrency` clients send `--warmup` requests, then `--requests` more. The server's RSS
(process tree) is the median over `--rest` seconds with no request in flight: at start, after
the warm-up and after the run; the peak under load is sampled every 0.5 s.

Target: RSS at rest after the run <= 1.5 x RSS at rest after the warm-up, no 5xx and no
transport error. "At rest":
`--settle` seconds (5) without a request, then the median over `--rest` seconds (3).

    python bench/bench_hostile_memory.py                           # 10,000 requests
    python bench/bench_hostile_memory.py --env TITILER_OTSU_MALLOC_ARENA_MAX=0 \\
        --env TITILER_OTSU_TRIM_IDLE_SECONDS=0       # without the memory bounds
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import morecantile
import numpy as np
from rasterio.transform import Affine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_soak import free_port, tree_rss  # noqa: E402
from tests import synthetic  # noqa: E402
from tests.synthetic import RasterSpec, one_axis_at_a_time, pairwise_rows, write_cog  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
S2 = DATA / "sentinel2_S2A_34SGA_20200318_L2A"
REAL = [DATA / "m_4709963_se_14_1_20180716.tif", DATA / "RGB.byte.tif", DATA / "dem.tif"]
REAL += [S2 / f"{b}.tif" for b in ("B02", "B03", "B04", "B08", "SCL")]
TMS = morecantile.tms.get("WebMercatorQuad")


@dataclass(frozen=True)
class Source:
    """A source the workload reads: path, lon/lat bounds (None: not placeable), zoom range."""

    path: str
    bounds: tuple[float, float, float, float] | None
    minzoom: int
    maxzoom: int


@dataclass(frozen=True)
class Call:
    """One request."""

    method: str
    path: str
    params: dict[str, Any]
    body: dict[str, Any] | None = None


def make_sources(directory: Path, scenes: int) -> list[Source]:
    """Write the generated sources; every source with its footprint."""
    from rio_tiler.io import Reader

    specs = one_axis_at_a_time()
    rows = pairwise_rows(
        {"dtype": synthetic.DTYPES, "georef": synthetic.GEOREFS, "shape": synthetic.SHAPES, "nodata": synthetic.NODATAS}
    )
    specs += [RasterSpec(**row) for row in rows]
    paths = [str(spec.write(directory)) for spec in dict.fromkeys(specs)]
    rng = np.random.default_rng(13)
    for i in range(scenes):
        dtype = "uint16" if i % 2 else "float32"
        yy, xx = np.mgrid[:2048, :2048]
        field_ = np.sin(xx / (40 + i)) * np.cos(yy / (55 + i)) * 1000 + 2000 + rng.normal(0, 50, (2048, 2048))
        transform = synthetic.default_transform(10.0) * Affine.translation(i * 2100, 0)
        paths.append(str(write_cog(directory / f"scene_{i}.tif", field_.astype(dtype), transform=transform)))
    paths += [str(p) for p in REAL]
    sources = []
    for path in paths:
        try:
            with Reader(path) as src:
                bounds = tuple(src.get_geographic_bounds("epsg:4326"))
                sources.append(Source(path, bounds, src.minzoom, src.maxzoom))  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - not placeable: still requested (400s)
            sources.append(Source(path, None, 0, 0))
    return sources


def _alg(rng: random.Random) -> dict[str, str]:
    name = rng.choice(["otsu", "otsu", "multiotsu", "localotsu"])
    params: dict[str, Any] = {}
    if name != "localotsu":
        params["scope"] = rng.choice(["dataset", "dataset", "tile"])
    else:
        params["radius"] = rng.choice([4, 8, 16])
    if name == "multiotsu":
        params["classes"] = rng.choice([3, 4, 5])
    if rng.random() < 0.4:
        params["sigma"] = rng.choice([0.5, 1.0, 2.0, 4.0])
    if rng.random() < 0.2:
        params["opening"] = rng.choice([1, 2])
    return {"algorithm": name, "algorithm_params": json.dumps(params)}


def _tile(rng: random.Random, src: Source) -> str:
    if src.bounds is None:
        return "WebMercatorQuad/0/0/0"
    w, s, e, n = src.bounds
    z = rng.randint(max(src.minzoom - 1, 0), src.maxzoom + 1)
    lon, lat = rng.uniform(w, e), rng.uniform(max(s, -85), min(n, 85))
    t = TMS.tile(max(min(lon, 179.999), -179.999), lat, z)
    return f"WebMercatorQuad/{z}/{t.x}/{t.y}"


def _polygon(rng: random.Random, src: Source) -> dict[str, Any]:
    w, s, e, n = src.bounds or (0.0, 0.0, 0.001, 0.001)
    lon, lat = rng.uniform(w, e), rng.uniform(max(s, -85), min(n, 85))
    d = rng.choice([1e-4, 1e-3, 5e-3])
    ring = [[lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d], [lon, lat]]
    return {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}


def draw(rng: random.Random, sources: list[Source], allowed: Path) -> Call:
    """One request of the workload (about 1 in 6 is bad on purpose)."""
    served = [s for s in sources if s.bounds is not None]
    src = rng.choice(served if rng.random() < 0.75 else sources)
    url = {"url": src.path}
    kind = rng.choices(
        ["tile", "tile-alg", "threshold", "meta", "stats", "preview", "point", "areas", "vectors", "bad"],
        weights=[14, 30, 8, 6, 5, 5, 4, 5, 5, 18],
    )[0]
    fmt = rng.choice(["png", "png", "npy", "webp"])
    if kind == "tile":
        return Call("GET", f"/cog/tiles/{_tile(rng, src)}.{fmt}", {**url, "tilesize": rng.choice([256, 512])})
    if kind == "tile-alg":
        params = {**url, **_alg(rng), "tilesize": rng.choice([256, 256, 512])}
        return Call("GET", f"/cog/tiles/{_tile(rng, src)}.{fmt}", params)
    if kind == "threshold":
        params = {**url, **_alg(rng)}
        if src.bounds and rng.random() < 0.5:
            w, s, e, n = src.bounds
            params["bbox"] = f"{w},{s},{(w + e) / 2},{(s + n) / 2}"
        return Call("GET", "/cog/threshold", params)
    if kind == "meta":
        return Call("GET", rng.choice(["/cog/info", "/cog/WebMercatorQuad/tilejson.json"]), url)
    if kind == "stats":
        return Call("GET", "/cog/statistics", {**url, "max_size": rng.choice([256, 1024])})
    if kind == "preview":
        return Call("GET", "/cog/preview.png", {**url, "max_size": rng.choice([256, 512, 1024])})
    if kind == "point":
        w, s, e, n = src.bounds or (0.0, 0.0, 0.0, 0.0)
        return Call("GET", f"/cog/point/{rng.uniform(w, e)},{rng.uniform(max(s, -85), min(n, 85))}", url)
    if kind == "areas":
        return Call("POST", "/cog/areas", {**url, **_alg(rng)}, _polygon(rng, src))
    if kind == "vectors":
        return Call("GET", f"/cog/vectors/{_tile(rng, src)}", {**url, "algorithm": "otsu"})
    bad = rng.randrange(8)
    if bad == 0:
        return Call("GET", f"/cog/tiles/{_tile(rng, src)}.png", {"url": str(allowed / f"missing_{rng.random()}.tif")})
    if bad == 1:
        return Call("GET", "/cog/info", {"url": f"{allowed}/../../etc/passwd"})
    if bad == 2:
        return Call("GET", f"/cog/tiles/{_tile(rng, src)}.png", {**url, "algorithm": "otsu", "algorithm_params": "{x"})
    if bad == 3:
        return Call("GET", f"/cog/tiles/{_tile(rng, src)}.png", {**url, "expression": "b1.__class__"})
    if bad == 4:
        return Call("GET", f"/cog/tiles/{_tile(rng, src)}.png", {**url, "tilesize": 100000})
    if bad == 5:
        return Call("GET", "/cog/tiles/WebMercatorQuad/3/0/0.png", url)
    if bad == 6:
        return Call("GET", "/cog/preview.png", {**url, "nodata": 1e40})
    return Call("POST", "/cog/areas", {**url, "algorithm": "otsu"}, {"type": "Feature", "geometry": {"type": "Nope"}})


def start_server(port: int, allowed: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Our app under uvicorn (1 worker) on loopback, ready to serve."""
    full_env = {
        **os.environ,
        "TITILER_OTSU_ALLOWED_SOURCES": json.dumps(allowed),
        "PYTHONPATH": str(ROOT),
        "PYTHONWARNINGS": "ignore",
        **env,
    }
    cmd = [sys.executable, "-m", "uvicorn", "titiler_otsu.app:create_app", "--factory"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "critical", "--no-access-log"]
    proc = subprocess.Popen(cmd, env=full_env, cwd=ROOT)
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


async def rest_rss(pid: int, seconds: float, settle: float = 0.0) -> float:
    """Median RSS (MB) over `seconds` with no request in flight, after `settle` seconds of rest."""
    await asyncio.sleep(settle)
    values = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        values.append(tree_rss(pid))
        await asyncio.sleep(0.1)
    return statistics.median(values) / 2**20


async def send(base: str, calls: list[Call], concurrency: int, statuses: Counter, samples: list[str]) -> float:
    """Send `calls` with `concurrency` clients; returns seconds taken."""
    queue = list(reversed(calls))
    start = time.monotonic()

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=120) as http:
            while queue:
                call = queue.pop()
                try:
                    r = await http.request(call.method, call.path, params=call.params, json=call.body)
                    statuses[r.status_code] += 1
                    if r.status_code >= 500 and len(samples) < 10:
                        samples.append(f"{call.method} {call.path} {call.params} -> {r.status_code} {r.text[:160]}")
                except httpx.HTTPError as e:
                    statuses[e.__class__.__name__] += 1

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return time.monotonic() - start


async def run(args: argparse.Namespace, sources: list[Source], allowed: Path, port: int, pid: int) -> dict[str, Any]:
    """Warm-up, run, RSS at rest before and after each; the figures."""
    base = f"http://127.0.0.1:{port}"
    rng = random.Random(args.seed)
    warm_calls = [draw(rng, sources, allowed) for _ in range(args.warmup)]
    calls = [draw(rng, sources, allowed) for _ in range(args.requests)]
    peak = [0]
    stop = asyncio.Event()

    async def sampler() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], tree_rss(pid))
            await asyncio.sleep(0.5)

    task = asyncio.create_task(sampler())
    at_start = await rest_rss(pid, args.rest, args.settle)
    warm_status: Counter = Counter()
    samples: list[str] = []
    await send(base, warm_calls, args.concurrency, warm_status, samples)
    after_warmup = await rest_rss(pid, args.rest, args.settle)
    status: Counter = Counter()
    seconds = await send(base, calls, args.concurrency, status, samples)
    after_run = await rest_rss(pid, args.rest, args.settle)
    stop.set()
    await task
    server_errors = sum(n for s, n in (warm_status + status).items() if isinstance(s, int) and s >= 500)
    transport_errors = sum(n for s, n in (warm_status + status).items() if not isinstance(s, int))
    ratio = after_run / after_warmup
    return {
        "sources": len(sources),
        "warmup_requests": args.warmup,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "seconds": round(seconds, 1),
        "requests_per_s": round(args.requests / seconds, 1),
        "statuses": {str(k): v for k, v in sorted(status.items(), key=lambda kv: str(kv[0]))},
        "server_errors": server_errors,
        "server_error_samples": samples,
        "transport_errors": transport_errors,
        "rss_mb": {
            "at_rest_start": round(at_start, 1),
            "at_rest_after_warmup": round(after_warmup, 1),
            "at_rest_after_run": round(after_run, 1),
            "peak_under_load": round(peak[0] / 2**20, 1),
        },
        "after_run_over_after_warmup": round(ratio, 3),
        "env": args.env,
        "pass": ratio <= 1.5 and server_errors == 0 and transport_errors == 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--scenes", type=int, default=24, help="generated 2048 x 2048 COGs")
    parser.add_argument("--rest", type=float, default=3.0, help="seconds of rest over which RSS is taken")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds of rest before RSS is taken")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server (repeatable)")
    parser.add_argument("--out", type=Path, help="write the figures as JSON")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # rio-tiler/morecantile warnings about the hostile sources
    env = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory(prefix="hostile-memory-") as tmp:
        directory = Path(tmp)
        t0 = time.monotonic()
        sources = make_sources(directory, args.scenes)
        print(f"{len(sources)} sources written/collected in {time.monotonic() - t0:.0f} s", flush=True)
        port = free_port()
        proc = start_server(port, [str(directory), str(DATA)], env)
        try:
            result = asyncio.run(run(args, sources, directory, port, proc.pid))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

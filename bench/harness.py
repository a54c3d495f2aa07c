"""Load harness: our server and a plain TiTiler app side by side, next to the in-process floor.

One invocation, on loopback only, bounded in time, stopping by itself:

1. **Floor** (in-process, per tile, warm, measured right before each case's served runs):
   open (dataset lent by the cache), read with the algorithm's halo, algorithm, PNG encoding;
   the plain TiTiler cases get rio-tiler's `Reader.tile` + rescale + encoding.
2. **Servers**: ours (`uvicorn titiler_otsu.app:create_app`, N workers) and the plain TiTiler
   app of `bench_tiles.py` (`TilerFactory`, no extension, N workers), same GDAL settings.
3. **Pan**: every case replays a pan over the real rasters (NAIP band 4, Sentinel-2 B08)
   at four zooms, with 1 client and with 8 concurrent clients; then 32 clients for 60 s on a
   mixed pan of both files (ours `otsu` vs plain TiTiler `rescale`), a soak of 10,000
   requests with the server's RSS sampled, and ours with 1 vs 2 workers.
4. Reports median/p95/p99 latency, tiles/s, errors and server RSS, as a Markdown table
   (printed, `harness.md`) and JSON (`harness.json`) in `bench/results/`.

Load tool: `wrk` (Debian package, a Lua script cycles the pan) when installed, else an
asyncio `httpx` client (`--tool`). `--quick` is the CI smoke run (~15 s). `--profile`
records the served path with py-spy during an extra run.

    python bench/harness.py                 # full run, ~10 min
    python bench/harness.py --quick --tool httpx --out /tmp/h
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import morecantile
import numpy as np
import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
from bench_tiles import B08, DATA, NAIP, PLAIN_TITILER_APP, _free_port  # noqa: E402

TMS_ID = "WebMercatorQuad"
TMS = morecantile.tms.get(TMS_ID)


# ---------------------------------------------------------------------------- workload
@dataclass(frozen=True)
class Source:
    """A real raster, the band to read and the zooms the pan visits."""

    name: str
    path: Path
    layer: dict[str, str]
    zooms: tuple[int, ...]
    rescale: str


@dataclass(frozen=True)
class Case:
    """One kind of tile request on one server."""

    name: str
    server: str  # "ours" | "titiler"
    source: Source
    params: dict[str, str] = field(default_factory=dict)
    anchor: str | None = None  # the plain TiTiler case this one is compared with
    target: float | None = None  # ratio target vs the anchor (median latency)


NAIP_SRC = Source("NAIP b4 uint8", NAIP, {"bidx": "4"}, (13, 14, 15, 16), "0,255")
S2_SRC = Source("S2 B08 uint16", B08, {}, (8, 9, 10, 11), "0,8000")


def algorithm(name: str, **params: Any) -> dict[str, str]:
    """Query parameters of an algorithm request."""
    return {"algorithm": name, "algorithm_params": json.dumps(params, separators=(",", ":"))}


def build_cases(quick: bool) -> list[Case]:
    """The side-by-side cases: plain tiles on both servers, segmented tiles on ours."""
    cases: list[Case] = []
    for src, short, invert in ((NAIP_SRC, "NAIP", True), (S2_SRC, "S2", False)):
        anchor = f"TiTiler plain {short}"
        plain = {"rescale": src.rescale}
        cases.append(Case(anchor, "titiler", src, plain))
        if quick:
            cases.append(Case(f"ours otsu {short}", "ours", src, algorithm("otsu", invert=invert), anchor, 1.10))
            break
        cases += [
            Case(f"ours plain {short}", "ours", src, plain, anchor),
            Case(f"ours otsu {short}", "ours", src, algorithm("otsu", invert=invert), anchor, 1.10),
            Case(f"ours multiotsu {short}", "ours", src, algorithm("multiotsu", classes=3), anchor, 1.2),
            Case(f"ours otsu sigma=2 {short}", "ours", src, algorithm("otsu", invert=invert, sigma=2), anchor, 1.3),
        ]
    return cases


def pan(src: Source, per_zoom: int) -> list[tuple[int, int, int]]:
    """A pan over the raster: at each zoom, the tiles over it row by row (serpentine), capped."""
    from rio_tiler.constants import WGS84_CRS

    from titiler_otsu.io.reader import GridExactReader

    tiles: list[tuple[int, int, int]] = []
    with GridExactReader(str(src.path), tms=TMS) as reader:
        bounds = reader.get_geographic_bounds(WGS84_CRS)
        for z in src.zooms:
            found = [t for t in TMS.tiles(*bounds, [z]) if reader.tile_exists(t.x, t.y, z)]
            rows = sorted({t.y for t in found})
            ordered = []
            for i, y in enumerate(rows):
                row = sorted((t for t in found if t.y == y), key=lambda t: t.x, reverse=bool(i % 2))
                ordered += [(z, t.x, t.y) for t in row]
            start = max(0, (len(ordered) - per_zoom) // 2)
            tiles += ordered[start : start + per_zoom]
    return tiles


def tile_paths(case: Case, tiles: list[tuple[int, int, int]]) -> list[str]:
    """Request paths (with query) of a case over a pan."""
    query = urlencode({"url": str(case.source.path), **case.source.layer, **case.params})
    return [f"/cog/tiles/{TMS_ID}/{z}/{x}/{y}.png?{query}" for z, x, y in tiles]


# ---------------------------------------------------------------------------- floor
def _median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def floor_factory() -> Any:
    """Our `/cog` factory, in this process, with the server's default settings (GDAL config, caches)."""
    from titiler_otsu.app import create_app
    from titiler_otsu.settings import Settings

    return create_app(Settings(allowed_sources=[str(DATA)])).state.cog_factory


def floor(
    cases: list[Case], pans: dict[str, list], reps: int, factory: Any, warm: bool = True
) -> dict[str, dict[str, float]]:
    """In-process cost per tile (ms, medians over the pan, warm) of open, read, algorithm, encode."""
    from rio_tiler.io import Reader
    from titiler.core.resources.enums import ImageType
    from titiler.core.utils import render_image

    from titiler_otsu.algorithms import SegmentationAlgorithm, halo_of

    out: dict[str, dict[str, float]] = {}
    for case in cases:
        bidx = int(case.source.layer.get("bidx", 1))
        rescale = [tuple(float(v) for v in case.source.rescale.split(","))]
        parts: dict[str, list[float]] = {"open": [], "read": [], "algorithm": [], "encode": [], "total": []}
        for rep in range(0 if warm else 1, reps + 1):  # pass 0 warms the caches and is not counted
            for z, x, y in pans[case.source.name]:
                t0 = time.perf_counter()
                if case.server == "titiler":
                    with Reader(str(case.source.path), tms=TMS) as src:
                        t1 = time.perf_counter()
                        img = src.tile(x, y, z, tilesize=256, indexes=bidx)
                    t2 = t3 = time.perf_counter()
                    render_image(img, output_format=ImageType.png, rescale=rescale)
                else:
                    algo = None
                    if "algorithm" in case.params:
                        cls = factory.algorithm_registry.get(case.params["algorithm"])
                        algo = cls(**json.loads(case.params["algorithm_params"]))
                    src = factory.reader(str(case.source.path), tms=TMS)
                    t1 = time.perf_counter()
                    img = src.tile(x, y, z, tilesize=256, indexes=bidx, buffer=halo_of(algo) or None)
                    src.close()
                    t2 = time.perf_counter()
                    if isinstance(algo, SegmentationAlgorithm):
                        reader = factory.reader
                        hist = factory.histograms.get(
                            lambda r=reader, p=str(case.source.path): r(p),
                            str(case.source.path),
                            {"indexes": bidx},
                            algo.nbins,
                        )
                        algo.bind_dataset_histogram(hist)
                        img = algo(img)
                    t3 = time.perf_counter()
                    render = {} if algo else {"rescale": rescale}
                    factory.render_func(img, output_format=ImageType.png, colormap=None, **render)
                t4 = time.perf_counter()
                if rep:
                    for key, a, b in (("open", t0, t1), ("read", t1, t2), ("algorithm", t2, t3), ("encode", t3, t4)):
                        parts[key].append((b - a) * 1000)
                    parts["total"].append((t4 - t0) * 1000)
        out[case.name] = {k: _median(v) for k, v in parts.items()}
    return out


# ---------------------------------------------------------------------------- servers
PLAIN_APP_FILE = "plain_titiler_app.py"


def server_env() -> dict[str, str]:
    """Environment of both servers: the data allowed, and our GDAL defaults for both."""
    from titiler_otsu.settings import GDAL_CONFIG_DEFAULTS

    env = {**os.environ, "TITILER_OTSU_ALLOWED_SOURCES": json.dumps([str(DATA)])}
    for key, value in GDAL_CONFIG_DEFAULTS.items():
        env.setdefault(key, value)
    return env


class Server:
    """A uvicorn server in a subprocess (`--workers N`), stopped on exit."""

    def __init__(self, kind: str, workers: int, workdir: Path, env: dict[str, str] | None = None) -> None:
        """Start it (`wait_ready` waits until it answers)."""
        self.kind = kind
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--workers", str(workers), "--log-level", "warning", "--no-access-log"]
        if kind == "ours":
            cmd += ["--factory", "titiler_otsu.app:create_app"]
            cwd = ROOT
        else:
            (workdir / PLAIN_APP_FILE).write_text(PLAIN_TITILER_APP)
            cmd += [PLAIN_APP_FILE.removesuffix(".py") + ":app"]
            cwd = workdir
        self.log = workdir / f"{kind}-{self.port}.log"
        with open(self.log, "wb") as log:
            environ = {**server_env(), **(env or {})}
            self.proc = subprocess.Popen(cmd, env=environ, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        self.ps = psutil.Process(self.proc.pid)

    def wait_ready(self, timeout: float = 90) -> Server:
        """Wait until the server answers (`/docs`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.log.read_text()[-3000:]
                raise RuntimeError(f"{self.kind} server exited with code {self.proc.returncode}:\n{log}")
            try:
                httpx.get(f"{self.base}/docs", timeout=2)
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.kind} server did not start in {timeout} s")

    def rss_mb(self) -> float:
        """Resident memory of the server and its worker processes, MB."""
        procs = [self.ps, *self.ps.children(recursive=True)]
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total / 2**20

    def worker_pids(self) -> list[int]:
        """Pids of the processes serving requests (the workers, or the server itself)."""
        children = self.ps.children(recursive=True)
        return [c.pid for c in children if "spawn_main" in " ".join(c.cmdline())] or [self.proc.pid]

    def stop(self) -> None:
        """Terminate (then kill) the server."""
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------------------- load tools
WRK_SCRIPT = """
paths = {%s}
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
function init(args)
  i = (id or 0) * math.floor(#paths / 2)
end
function request()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, ' ..
    '"write": %%d, "status": %%d, "timeout": %%d, "p50": %%d, "p95": %%d, "p99": %%d, "max": %%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
"""


def load_wrk(base: str, paths: list[str], clients: int, duration: float) -> dict[str, Any]:
    """Run wrk with `clients` connections for `duration` s over `paths` (cycled)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT % ", ".join(json.dumps(p) for p in paths))
        script = f.name
    threads = min(clients, 2)
    cmd = ["wrk", f"-t{threads}", f"-c{clients}", f"-d{max(1, round(duration))}s", "--timeout", "30s", "-s", script]
    try:
        res = subprocess.run([*cmd, base], capture_output=True, text=True, timeout=duration + 60, check=True)
    finally:
        os.unlink(script)
    line = next(x for x in res.stdout.splitlines() if x.startswith("WRKJSON "))
    r = json.loads(line.removeprefix("WRKJSON "))
    secs = r["duration_us"] / 1e6
    errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    return {
        "requests": r["requests"],
        "seconds": secs,
        "tiles_per_s": r["requests"] / secs if secs else 0.0,
        "errors": errors,
        "median_ms": r["p50"] / 1000,
        "p95_ms": r["p95"] / 1000,
        "p99_ms": r["p99"] / 1000,
        "max_ms": r["max"] / 1000,
    }


async def _load_httpx(base: str, paths: list[str], clients: int, duration: float) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    counter = itertools.count()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        start = time.perf_counter()
        deadline = start + duration

        async def worker() -> None:
            while time.perf_counter() < deadline:
                path = paths[next(counter) % len(paths)]
                t0 = time.perf_counter()
                try:
                    r = await client.get(path)
                    statuses[str(r.status_code)] += 1
                except httpx.HTTPError as e:
                    statuses[type(e).__name__] += 1
                latencies.append((time.perf_counter() - t0) * 1000)

        await asyncio.gather(*(worker() for _ in range(clients)))
        secs = time.perf_counter() - start
    lat = np.array(latencies or [np.nan])
    return {
        "requests": len(latencies),
        "seconds": secs,
        "tiles_per_s": len(latencies) / secs,
        "errors": sum(n for s, n in statuses.items() if s != "200"),
        "median_ms": float(np.percentile(lat, 50)),
        "p95_ms": float(np.percentile(lat, 95)),
        "p99_ms": float(np.percentile(lat, 99)),
        "max_ms": float(lat.max()),
    }


def interleaved(
    case: Case, server: Server, paths: list[str], pans: dict[str, list], factory: Any, tool: str, duration: float
) -> tuple[dict[str, Any], dict[str, float]]:
    """1 client and the floor, alternating in rounds, so that both see the same machine speed.

    The machine's speed drifts by tens of % within minutes (shared host): measured apart, the
    served/floor ratio would mostly measure that drift. Each round is one floor pass over the
    pan and `duration / ROUNDS` s of load; latency figures are medians over rounds.
    """
    served, floors = [], []
    for i in range(INTERLEAVE_ROUNDS):
        floors.append(floor([case], pans, 1, factory, warm=i == 0)[case.name])
        served.append(load(tool, server.base, paths, 1, duration / INTERLEAVE_ROUNDS))
    out = {k: _median([r[k] for r in served]) for k in ("median_ms", "p95_ms", "p99_ms", "max_ms")}
    requests, seconds = sum(r["requests"] for r in served), sum(r["seconds"] for r in served)
    out.update(requests=requests, seconds=seconds, tiles_per_s=requests / seconds, rounds=len(served))
    out["errors"] = sum(r["errors"] for r in served)
    return out, {k: _median([f[k] for f in floors]) for k in floors[0]}


#: Rounds of `interleaved`.
INTERLEAVE_ROUNDS = 5


def load(tool: str, base: str, paths: list[str], clients: int, duration: float) -> dict[str, Any]:
    """Replay `paths` (cycled) with `clients` concurrent clients for `duration` seconds."""
    if tool == "wrk":
        return load_wrk(base, paths, clients, duration)
    return asyncio.run(_load_httpx(base, paths, clients, duration))


def warm(server: Server, paths: list[str], workers: int, tool: str) -> None:
    """One sequential pass (fills the caches), then a short concurrent one (reaches every worker)."""
    with httpx.Client(base_url=server.base, timeout=120) as client:
        for path in paths:
            r = client.get(path)
            if r.status_code != 200:
                raise RuntimeError(f"{server.kind} {path}: HTTP {r.status_code} {r.text[:300]}")
    if workers > 1:
        load(tool, server.base, paths, 2 * workers, 2)


# ---------------------------------------------------------------------------- phases
def loadavg() -> list[float]:
    """1, 5 and 15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    """The machine line: CPU, cores, memory, OS, versions."""
    import rasterio
    import rio_tiler
    import titiler.core

    cpu = platform.processor()
    try:
        cpu = next(x.split(":", 1)[1].strip() for x in open("/proc/cpuinfo") if x.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "gdal": rasterio.__gdal_version__,
        "rio_tiler": rio_tiler.__version__,
        "titiler": titiler.core.__version__,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def soak(
    server: Server, paths: list[str], requests: int, warm_requests: int, clients: int, tool: str, max_s: float
) -> dict[str, Any]:
    """`warm_requests` at this concurrency (threads, handles and caches settle), then about
    `requests` more in chunks, sampling the server's RSS after each."""
    t0 = time.monotonic()

    def run(n: int, chunk_s: float) -> tuple[int, int, list[tuple[int, float]]]:
        done, errors, samples = 0, 0, []
        while done < n and time.monotonic() - t0 < max_s:
            r = load(tool, server.base, paths, clients, chunk_s)
            done, errors = done + r["requests"], errors + r["errors"]
            samples.append((done, server.rss_mb()))
            if r["tiles_per_s"]:
                chunk_s = min(max((n - done) / r["tiles_per_s"], 1.0), 10.0)
        return done, errors, samples

    warm_done, warm_errors, _ = run(warm_requests, 1.0) if warm_requests else (0, 0, [])
    baseline = server.rss_mb()
    done, errors, samples = run(requests, 1.0)
    samples.insert(0, (0, baseline))
    final = samples[-1][1]
    return {
        "warm_requests": warm_done,
        "requests": done,
        "errors": errors + warm_errors,
        "rss_baseline_mb": baseline,
        "rss_final_mb": final,
        "rss_growth_pct": (final - baseline) / baseline * 100,
        "rss_samples": samples,
    }


def revalidation(server: Server, paths: list[str], rounds: int) -> dict[str, Any]:
    """Sequential medians (httpx) of full tile responses vs `If-None-Match` revalidations (304)."""
    full: list[float] = []
    cond: list[float] = []
    statuses: Counter[int] = Counter()
    with httpx.Client(base_url=server.base, timeout=60) as client:
        tags = {p: client.get(p).headers.get("etag") for p in paths}
        for _ in range(rounds):
            for path in paths:
                t0 = time.perf_counter()
                client.get(path)
                t1 = time.perf_counter()
                r = client.get(path, headers={"If-None-Match": tags[path] or '"none"'})
                cond.append((time.perf_counter() - t1) * 1000)
                full.append((t1 - t0) * 1000)
                statuses[r.status_code] += 1
    return {"full_median_ms": _median(full), "revalidate_median_ms": _median(cond), "statuses": dict(statuses)}


def profile(server: Server, paths: list[str], seconds: float, tool: str, out: Path) -> dict[str, Any]:
    """py-spy the served path under 8 clients; the frames where the time goes."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    raw = out / "profile_ours.txt"
    pid = server.worker_pids()[0]
    cmd = [pyspy, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "250", "-f", "raw", "-o", str(raw)]
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    load(tool, server.base, paths, 8, seconds - 2)
    spy.wait(seconds + 30)
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n

    def top(c: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * n / total, 1)) for f, n in c.most_common(25)]

    return {"samples": total, "own_pct": top(own), "inclusive_pct": top(inclusive), "raw": str(raw)}


# ---------------------------------------------------------------------------- report
def fmt(v: float | None, digits: int = 1) -> str:
    """A number for the table."""
    return "-" if v is None or v != v else f"{v:.{digits}f}"


def report(res: dict[str, Any]) -> str:
    """The Markdown report."""
    m = res["machine"]
    lines = [
        "# Harness results",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, {m['os']}; Python {m['python']}, "
        f"GDAL {m['gdal']}, rio-tiler {m['rio_tiler']}, titiler {m['titiler']}; {m['date']}. "
        f"Load average (1/5/15 min) at start {res['load_start']}, at end {res['load_end']}. "
        f"Workers per server: {res['workers']}; load tool: {res['tool']}.",
        "",
        "Latencies in ms (median / p95 / p99), tiles/s, errors = non-200 or transport errors. "
        "Floor = in-process per tile (open + read with halo + algorithm + encode), warm.",
        "",
    ]
    levels = res["clients"]
    head = "| case | floor ms (open/read/algo/enc) | " + " | ".join(
        f"{c} client{'s' if c > 1 else ''}: median/p95/p99, tiles/s, err" for c in levels
    )
    lines += [head + " | served/floor | vs TiTiler (target) |", "|---|---|" + "---|" * len(levels) + "---|---|"]
    for name, c in res["cases"].items():
        f = res["floor"].get(name, {})
        cells = [
            f"{fmt(f.get('total'))} ({fmt(f.get('open'), 2)}/{fmt(f.get('read'))}/"
            f"{fmt(f.get('algorithm'))}/{fmt(f.get('encode'))})"
        ]
        for n in levels:
            r = c["load"].get(str(n))
            cells.append(
                f"{fmt(r['median_ms'])}/{fmt(r['p95_ms'])}/{fmt(r['p99_ms'])}, "
                f"{fmt(r['tiles_per_s'], 0)}, {r['errors']}"
                if r
                else "-"
            )
        ratio = c.get("vs_anchor")
        target = f" (≤ {c['target']})" if c.get("target") else ""
        cells += [fmt(c.get("served_over_floor"), 2), (fmt(ratio, 2) + target) if ratio else "-"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if res.get("long"):
        lines += [
            "",
            f"## {res['long_clients']} clients, {res['long_seconds']:.0f} s, mixed pan (NAIP + S2)",
            "",
            "| server / case | tiles/s | median | p95 | p99 | max | errors | requests | RSS MB |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, r in res["long"].items():
            lines.append(
                f"| {name} | {fmt(r['tiles_per_s'])} | {fmt(r['median_ms'])} | {fmt(r['p95_ms'])} | "
                f"{fmt(r['p99_ms'])} | {fmt(r['max_ms'])} | {r['errors']} | {r['requests']} | {fmt(r['rss_mb'], 0)} |"
            )
    if res.get("soak"):
        s = res["soak"]
        lines += [
            "",
            f"## Soak: ours, all its cases mixed, 8 clients, errors {s['errors']}",
            "",
            f"RSS {fmt(s['rss_baseline_mb'])} MB after {s['warm_requests']} warm-up requests → "
            f"{fmt(s['rss_final_mb'])} MB after {s['requests']} more ({fmt(s['rss_growth_pct'])} %); samples "
            + ", ".join(f"{n}: {fmt(mb, 0)}" for n, mb in s["rss_samples"])
            + " MB.",
        ]
    if res.get("revalidation"):
        v = res["revalidation"]
        lines += [
            "",
            "## HTTP revalidation (ours otsu NAIP, 1 client, httpx)",
            "",
            f"Full tile {fmt(v['full_median_ms'])} ms vs `If-None-Match` → 304 {fmt(v['revalidate_median_ms'])} ms "
            f"(median; statuses {v['statuses']}).",
        ]
    if res.get("scale"):
        lines += [
            "",
            "## Scale-out (ours, otsu mixed pan, 32 clients)",
            "",
            "| workers | tiles/s | median | p99 | errors |",
            "|---|---|---|---|---|",
        ]
        for w, r in res["scale"].items():
            lines.append(
                f"| {w} | {fmt(r['tiles_per_s'])} | {fmt(r['median_ms'])} | {fmt(r['p99_ms'])} | {r['errors']} |"
            )
    if res.get("threads"):
        lines += [
            "",
            "## Threads per worker (ours, 1 worker, otsu mixed pan, 32 clients, 15 s; setting WORKER_THREADS)",
            "",
            "| threads | tiles/s | median | p99 | errors | RSS MB |",
            "|---|---|---|---|---|---|",
        ]
        for n, r in res["threads"].items():
            lines.append(
                f"| {n} | {fmt(r['tiles_per_s'])} | {fmt(r['median_ms'])} | {fmt(r['p99_ms'])} | {r['errors']} | "
                f"{fmt(r['rss_mb'], 0)} |"
            )
    if res.get("targets"):
        lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
        for t in res["targets"]:
            lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, from this run."""
    out = []
    for name, c in res["cases"].items():
        if c.get("target") and c.get("vs_anchor"):
            out.append(
                {
                    "target": f"{name} median ≤ {c['target']} × {c['anchor']}",
                    "measured": f"{c['vs_anchor']:.2f}",
                    "met": c["vs_anchor"] <= c["target"],
                }
            )
    for name, c in res["cases"].items():
        if c["server"] == "ours" and c.get("served_over_floor"):
            out.append(
                {
                    "target": f"{name} served median ≤ 1.5 × floor",
                    "measured": f"{c['served_over_floor']:.2f}",
                    "met": c["served_over_floor"] <= 1.5,
                }
            )
    if res.get("long"):
        ours, plain = res["long"]["ours otsu"], res["long"]["TiTiler plain"]
        out.append(
            {
                "target": f"{res['long_clients']} clients {res['long_seconds']:.0f} s: 0 errors",
                "measured": f"{ours['errors']} errors, p99 {ours['p99_ms']:.1f} ms",
                "met": ours["errors"] == 0,
            }
        )
        out.append(
            {
                "target": "throughput ≥ plain TiTiler's",
                "measured": f"{ours['tiles_per_s']:.1f} vs {plain['tiles_per_s']:.1f} tiles/s",
                "met": ours["tiles_per_s"] >= plain["tiles_per_s"],
            }
        )
    if res.get("soak"):
        s = res["soak"]
        out.append(
            {
                "target": f"RSS growth < 10 % over {s['requests']} requests",
                "measured": f"{s['rss_growth_pct']:.1f} %",
                "met": s["rss_growth_pct"] < 10,
            }
        )
    return out


# ---------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict[str, Any]:  # noqa: C901 - a script's sequence of phases
    """Run the phases; write harness.json and harness.md."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=1, help="uvicorn workers per server")
    p.add_argument("--clients", default="1,8", help="concurrency levels run for every case")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per case and level")
    p.add_argument("--long-clients", type=int, default=32)
    p.add_argument("--long-seconds", type=float, default=60.0, help="0: skip the long mixed run")
    p.add_argument("--soak", type=int, default=10_000, help="soak requests (0: skip)")
    p.add_argument(
        "--soak-warm", type=int, default=1_000, help="requests at the soak's concurrency before its baseline"
    )
    p.add_argument("--scale", action=argparse.BooleanOptionalAction, default=True, help="ours, 1 vs 2 workers")
    p.add_argument(
        "--threads-sweep", default="2,8,40", help="ours (1 worker, 32 clients, 15 s) per WORKER_THREADS ('': skip)"
    )
    p.add_argument("--tiles-per-zoom", type=int, default=40)
    p.add_argument("--tool", choices=["auto", "wrk", "httpx"], default="auto")
    p.add_argument("--profile", type=float, default=0.0, help="seconds of py-spy on ours (0: none)")
    p.add_argument("--quick", action="store_true", help="smoke run: one case pair, ~1 s loads, small soak")
    p.add_argument("--out", type=Path, default=BENCH / "results")
    args = p.parse_args(argv)
    tool = args.tool if args.tool != "auto" else ("wrk" if shutil.which("wrk") else "httpx")
    levels = [int(c) for c in args.clients.split(",")]
    if args.quick:
        args.duration, args.long_seconds, args.soak, args.soak_warm, args.scale = 0.5, 0.0, 50, 0, False
        args.tiles_per_zoom, levels = 3, [1, 4]
    levels = sorted({1, *levels})  # 1 client is measured alternating with the floor
    args.out.mkdir(parents=True, exist_ok=True)

    cases = build_cases(args.quick)
    res: dict[str, Any] = {
        "machine": machine(),
        "load_start": loadavg(),
        "workers": args.workers,
        "tool": tool,
        "clients": levels,
        "cases": {},
    }
    sources = {c.source.name: c.source for c in cases}
    res["phase_seconds"] = {}
    clock = [time.monotonic()]

    def phase(name: str) -> None:
        now = time.monotonic()
        res["phase_seconds"][name] = round(now - clock[0], 1)
        clock[0] = now

    pans = {name: pan(src, args.tiles_per_zoom) for name, src in sources.items()}
    res["pan_tiles"] = {k: len(v) for k, v in pans.items()}
    print(f"pan: {res['pan_tiles']} tiles", flush=True)
    factory = floor_factory()
    res["floor"] = {}
    phase("pans")

    with tempfile.TemporaryDirectory() as work:
        servers = {k: Server(k, args.workers, Path(work)) for k in ("ours", "titiler")}
        try:
            for server in servers.values():
                server.wait_ready()
            phase("servers started")
            for case in cases:
                server = servers[case.server]
                paths = tile_paths(case, pans[case.source.name])
                warm(server, paths, args.workers, tool)
                entry = {**{k: v for k, v in asdict(case).items() if k != "source"}, "source": case.source.name}
                entry["load"], entry["loadavg_before"] = {}, loadavg()
                for n in levels:
                    if n == 1:  # alternating with the floor
                        r, res["floor"][case.name] = interleaved(
                            case, server, paths, pans, factory, tool, args.duration
                        )
                    else:
                        r = load(tool, server.base, paths, n, args.duration)
                    r["rss_mb"] = server.rss_mb()
                    entry["load"][str(n)] = r
                    print(
                        f"{case.name:28s} {n:3d} clients: median {r['median_ms']:6.1f} ms  p99 "
                        f"{r['p99_ms']:6.1f}  {r['tiles_per_s']:6.1f} tiles/s  errors {r['errors']}",
                        flush=True,
                    )
                res["cases"][case.name] = entry
            phase("cases")
            for name, c in res["cases"].items():
                seq = c["load"]["1"]["median_ms"]
                c["served_over_floor"] = seq / res["floor"][name]["total"]
                if c.get("anchor"):
                    c["vs_anchor"] = seq / res["cases"][c["anchor"]]["load"]["1"]["median_ms"]

            mixed = {
                "ours otsu": [
                    p
                    for c in cases
                    if c.name.startswith("ours otsu ") and "sigma" not in c.name
                    for p in tile_paths(c, pans[c.source.name])
                ],
                "TiTiler plain": [
                    p for c in cases if c.server == "titiler" for p in tile_paths(c, pans[c.source.name])
                ],
            }
            if args.long_seconds:
                res["long"], res["long_clients"], res["long_seconds"] = {}, args.long_clients, args.long_seconds
                for name, paths in mixed.items():
                    server = servers["ours" if name.startswith("ours") else "titiler"]
                    r = load(tool, server.base, paths, args.long_clients, args.long_seconds)
                    r["rss_mb"] = server.rss_mb()
                    res["long"][name] = r
                    print(f"long {name}: {r}", flush=True)
                phase("long")
            if args.soak:
                ours_paths = [p for c in cases if c.server == "ours" for p in tile_paths(c, pans[c.source.name])]
                res["soak"] = soak(servers["ours"], ours_paths, args.soak, args.soak_warm, 8, tool, max_s=900)
                phase("soak")
                print(
                    f"soak: {res['soak']['requests']} requests, RSS {res['soak']['rss_growth_pct']:.1f} %", flush=True
                )
            naip_otsu = next(c for c in cases if c.name == "ours otsu NAIP")
            res["revalidation"] = revalidation(
                servers["ours"], tile_paths(naip_otsu, pans[naip_otsu.source.name]), 1 if args.quick else 3
            )
            phase("revalidation")
            if args.profile:
                res["profile"] = profile(servers["ours"], mixed["ours otsu"], args.profile, tool, args.out)
        finally:
            for s in servers.values():
                s.stop()

        if args.scale:
            res["scale"] = {}
            for workers in (1, 2):
                server = Server("ours", workers, Path(work))
                try:
                    server.wait_ready()
                    warm(server, mixed["ours otsu"], workers, tool)
                    r = load(tool, server.base, mixed["ours otsu"], 32, 20)
                    res["scale"][str(workers)] = r
                    print(f"scale {workers} worker(s): {r['tiles_per_s']:.1f} tiles/s", flush=True)
                finally:
                    server.stop()
            phase("scale")

        sweep = [int(n) for n in args.threads_sweep.split(",") if n] if not args.quick else []
        if sweep:
            res["threads"] = {}
            for n in sweep:
                server = Server("ours", 1, Path(work), env={"TITILER_OTSU_WORKER_THREADS": str(n)})
                try:
                    server.wait_ready()
                    warm(server, mixed["ours otsu"], 1, tool)
                    r = load(tool, server.base, mixed["ours otsu"], 32, 15)
                    r["rss_mb"] = server.rss_mb()
                    res["threads"][str(n)] = r
                    print(f"threads {n}: {r['tiles_per_s']:.1f} tiles/s, p99 {r['p99_ms']:.0f} ms", flush=True)
                finally:
                    server.stop()
            phase("threads")

    phase("end")
    res["load_end"] = loadavg()
    res["targets"] = targets(res)
    (args.out / "harness.json").write_text(json.dumps(res, indent=1))
    md = report(res)
    (args.out / "harness.md").write_text(md)
    print(md)
    return res


if __name__ == "__main__":
    main()

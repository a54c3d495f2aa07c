"""Remote COGs at scene size over real HTTP: requests, bytes and latency per tile vs the floor.

One run, side by side on the same URL: our server and a plain TiTiler app (`PLAIN_TITILER_APP`
of bench_tiles.py, same GDAL environment), both `uvicorn --workers 1`, reading a generated
10,980² uint16 DEFLATE COG (tests/scene.py: lakes, river, fields, nodata wedge; 1,024-px
blocks by default, `--blocks 512` for the other layout) from Debian's nginx on loopback,
directly (0 ms) or through the latency proxy (20 / 80 ms per request; tests/remote.py).
Requests and bytes come from nginx's access log, one log window per HTTP call.

Per latency, with freshly started servers (cold processes):

* `/info` (the cold open), TileJSON, the first `/threshold` (dataset histogram), `/areas` of
  a 10 km² square;
* a 3x3 pan at z 8, 10, 12, 14 per case: TiTiler plain (`rescale`, PNG) and ours plain on the
  same tiles; ours `otsu` (dataset scope), `otsu` fixed scope, `multiotsu` (3 classes), `otsu`
  `sigma=2` on pans of their own (shifted by 3 tiles where the scene is wide enough, so each
  case fetches its own blocks). `pan` = first pass (source open, blocks not yet fetched: the
  "warm" case of issue 14), `repeat` = the same tiles again (everything cached).
* a 3x3 pan at z 12 and 14 asked for at once on 6 connections, as a browser does (TiTiler
  plain, ours plain, ours `sigma=2`): requests and ranges asked twice vs the pan's distinct blocks;
* floor per tile: the internal blocks of the overview level the tile reads that its footprint
  (+ halo) overlaps (tests/floor.py), header cached; the very first tile also pays the open.

Then at 0 ms: `titiler-otsu export URL` of the whole scene (2 local workers, `otsu` +
`sigma=1`): bytes over HTTP / file size and Mpix/s; and the seam check on the remote scene
(one 512-px tile vs its four 256-px children at three zooms, raw and `otsu` σ=1.5 + opening).

`python bench/bench_remote.py` (data generated into bench/.cache on first run, ~1 min);
writes bench/results/remote.json and prints Markdown tables. A script, not a test.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import morecantile
import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.warp import transform_bounds

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_tiles import PLAIN_TITILER_APP, _free_port, _start  # noqa: E402

from tests.floor import BlockIndex  # noqa: E402
from tests.remote import LatencyProxy, ObjectServer  # noqa: E402
from tests.scene import write_scene  # noqa: E402
from titiler_otsu.io.reader import GridExactReader  # noqa: E402
from titiler_otsu.settings import GDAL_CONFIG_DEFAULTS  # noqa: E402

CACHE = ROOT / "bench" / ".cache"
RESULTS = ROOT / "bench" / "results"
TMS = morecantile.tms.get("WebMercatorQuad")

CASES: dict[str, tuple[str, dict[str, str], int]] = {
    # name: (server, params, halo)
    "TiTiler plain": ("titiler", {"rescale": "0,5000"}, 0),
    "ours plain": ("ours", {"rescale": "0,5000"}, 0),
    "ours otsu": ("ours", {"algorithm": "otsu"}, 0),
    "ours otsu fixed": (
        "ours",
        {"algorithm": "otsu", "algorithm_params": json.dumps({"scope": "fixed", "threshold": 1200})},
        0,
    ),
    "ours multiotsu": ("ours", {"algorithm": "multiotsu", "algorithm_params": json.dumps({"classes": 3})}, 0),
    "ours otsu sigma=2": ("ours", {"algorithm": "otsu", "algorithm_params": json.dumps({"sigma": 2})}, 8),
}
#: Pan location of each case (in pans of 3 tiles): plain on both servers share theirs.
SHIFT = {
    "TiTiler plain": (0, 0),
    "ours plain": (0, 0),
    "ours otsu": (1, 0),
    "ours otsu fixed": (-1, 0),
    "ours multiotsu": (0, 1),
    "ours otsu sigma=2": (0, -1),
}


#: Where each case's scattered tiles go (in blocks of 2 x 2 tiles 8 apart): no two cases of
#: our server share a block; TiTiler and ours plain read the same tiles (separate processes).
SCATTER = {
    "TiTiler plain": (0, 0),
    "ours plain": (0, 0),
    "ours otsu": (1, 0),
    "ours otsu fixed": (-1, 0),
    "ours multiotsu": (0, 1),
    "ours otsu sigma=2": (1, 1),
}


class Bench:
    """The object server, the proxies and the file under test."""

    def __init__(self, scene: Path, server: ObjectServer) -> None:
        """Index the file (blocks of every level) and find its centre."""
        self.scene = scene
        self.server = server
        self.index = BlockIndex(scene)
        with rasterio.open(scene) as ds:
            self.crs = ds.crs
            self.bounds = ds.bounds
            west, south, east, north = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
        self.lonlat = (west + (east - west) * 0.45, south + (north - south) * 0.5)
        self.lonlat_bounds = (west, south, east, north)
        self._reader = GridExactReader(str(scene))

    def tile_blocks(self, tile: tuple[int, int, int], halo: int) -> tuple[int, list[tuple[int, int]]]:
        """(overview factor, blocks (offset, size)) a tile (+ halo) needs, header cached."""
        z, x, y = tile
        if not self._reader.tile_exists(x, y, z):
            return 0, []
        img = self._reader.tile(x, y, z, buffer=halo, indexes=1)
        factor = img.metadata["overview_factor"]
        window = img.metadata["source_window"]
        return factor, self.index.blocks(factor, window) if window else []

    def tile_floor(self, tile: tuple[int, int, int], halo: int) -> tuple[int, int, int]:
        """(overview factor, blocks, bytes) a tile (+ halo) needs, header cached."""
        factor, blocks = self.tile_blocks(tile, halo)
        return factor, len(blocks), sum(size for _, size in blocks)

    def pan(self, z: int, shift: tuple[int, int]) -> list[tuple[int, int, int]]:
        """A 3x3 pan around the centre, moved by `shift` pans when the scene is wide enough."""
        t = TMS.tile(*self.lonlat, z)
        west, south, east, north = self.lonlat_bounds
        across = TMS.tile(east, south, z).x - TMS.tile(west, north, z).x + 1
        unit = 3 * 2 ** max(0, z - 12)  # pans of different cases about two blocks apart
        sx, sy = shift if across >= 2 * unit + 3 else (0, 0)
        return [(z, t.x + unit * sx + dx, t.y + unit * sy + dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]

    def scattered(self, z: int, where: tuple[int, int]) -> list[tuple[int, int, int]]:
        """4 tiles 8 apart (more than a 1,024-px block at native zoom), placed by `where` (steps of 16 tiles)."""
        t = TMS.tile(*self.lonlat, z)
        x0, y0 = t.x + 16 * where[0] - 4, t.y + 6 + 14 * where[1]  # south of the first tile's block
        return [(z, x0 + 8 * i, y0 + 8 * j) for j in (0, 1) for i in (0, 1)]

    def square_10km2(self) -> dict[str, Any]:
        """A 10 km² square (in the scene's UTM CRS) around the centre, as lon/lat GeoJSON."""
        to_utm = Transformer.from_crs("EPSG:4326", self.crs, always_xy=True)
        to_ll = Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True)
        cx, cy = to_utm.transform(*self.lonlat)
        h = 10_000_000**0.5 / 2
        ring = [to_ll.transform(cx + dx, cy + dy) for dx, dy in ((-h, -h), (h, -h), (h, h), (-h, h), (-h, -h))]
        return {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}


def _call(bench: Bench, client: httpx.Client, method: str, url: str, **kw: Any) -> dict[str, Any]:
    with bench.server.window() as log:
        t0 = time.perf_counter()
        r = client.request(method, url, **kw)
        ms = (time.perf_counter() - t0) * 1000
    return {
        "status": r.status_code,
        "ms": ms,
        "requests": log.requests,
        "heads": log.count("HEAD"),
        "bytes": log.bytes,
        "body": r.content if r.status_code == 200 else r.text[:300],
    }


def _servers(env: dict[str, str]) -> tuple[dict[str, str], list[subprocess.Popen]]:
    ours_port, plain_port = _free_port(), _free_port()
    uvicorn = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--log-level", "warning", "--workers", "1"]
    ours = _start(
        [*uvicorn, "--factory", "titiler_otsu.app:create_app", "--port", str(ours_port)], env, ours_port, ROOT
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "plain_titiler_app.py").write_text(PLAIN_TITILER_APP)
    plain = _start([*uvicorn, "plain_titiler_app:app", "--port", str(plain_port)], env, plain_port, RESULTS)
    return {"ours": f"http://127.0.0.1:{ours_port}", "titiler": f"http://127.0.0.1:{plain_port}"}, [ours, plain]


def run_latency(bench: Bench, delay: float, zooms: list[int], env: dict[str, str]) -> dict[str, Any]:
    """Everything at one latency, on freshly started servers."""
    proxy = LatencyProxy(bench.server.port, delay).start() if delay > 0 else None
    port = proxy.port if proxy else bench.server.port
    url = f"http://127.0.0.1:{port}/{bench.scene.name}"
    env = {**env, "TITILER_OTSU_ALLOWED_SOURCES": json.dumps([f"http://127.0.0.1:{port}/"])}
    env["TITILER_OTSU_CACHE_DIR"] = str(CACHE / f"server-cache-{os.getpid()}-{int(delay * 1000)}")
    bases, procs = _servers(env)
    out: dict[str, Any] = {"delay_ms": delay * 1000, "calls": {}, "tiles": {}, "scattered": {}}
    try:
        with httpx.Client(timeout=120) as client:
            first_tile = bench.pan(14, (0, 0))[4]
            floor_first = bench.tile_floor(first_tile, 0)
            for server in ("titiler", "ours"):
                base = bases[server]
                # the very first tile on a fresh server: open + header + its blocks
                r = _call(
                    bench,
                    client,
                    "GET",
                    f"{base}/cog/tiles/WebMercatorQuad/{first_tile[0]}/{first_tile[1]}/{first_tile[2]}.png",
                    params={"url": url, "rescale": "0,5000"},
                )
                out["calls"][f"{server} first tile (cold open)"] = {**_strip(r), "floor": floor_first[1]}
                for name, path in (("info", "/cog/info"), ("tilejson", "/cog/WebMercatorQuad/tilejson.json")):
                    out["calls"][f"{server} {name}"] = _strip(
                        _call(bench, client, "GET", base + path, params={"url": url})
                    )
            base = bases["ours"]
            out["calls"]["ours first /threshold"] = _strip(
                _call(bench, client, "GET", f"{base}/cog/threshold", params={"url": url})
            )
            # first (no block of the scene fetched yet but the first tile's and the histogram overview's):
            # scattered z14 tiles, 8 tiles (> 1 block) apart: every tile fetches its own blocks
            for case, (server, params, halo) in CASES.items():
                tiles = bench.scattered(14, SCATTER[case])
                floors = [bench.tile_floor(t, halo) for t in tiles]
                calls = [
                    _call(
                        bench,
                        client,
                        "GET",
                        f"{bases[server]}/cog/tiles/WebMercatorQuad/{tz}/{tx}/{ty}.png",
                        params={"url": url, **params},
                    )
                    for tz, tx, ty in tiles
                ]
                out["scattered"][case] = {
                    "floor_blocks": [f[1] for f in floors],
                    "floor_bytes": [f[2] for f in floors],
                    "calls": [_strip(c) for c in calls],
                }
            # before the sequential pans, so that its blocks are not fetched yet
            out["at_once"] = run_pan_at_once(bench, bases, url, [z for z in zooms if z >= 12])
            out["calls"]["ours /areas 10 km2 (otsu)"] = _strip(
                _call(bench, client, "POST", f"{base}/cog/areas", params={"url": url}, json=bench.square_10km2())
            )
            for z in zooms:
                for case, (server, params, halo) in CASES.items():
                    tiles = bench.pan(z, SHIFT[case])
                    floors = [bench.tile_floor(t, halo) for t in tiles]
                    rec: dict[str, Any] = {
                        "floor_blocks": [f[1] for f in floors],
                        "floor_bytes": [f[2] for f in floors],
                    }
                    rec["factor"] = max(f[0] for f in floors)
                    # the pan as a whole: each distinct block once
                    rec["pan_distinct_blocks"] = len({b for t in tiles for b in bench.tile_blocks(t, halo)[1]})
                    for phase in ("pan", "repeat"):
                        calls = [
                            _call(
                                bench,
                                client,
                                "GET",
                                f"{bases[server]}/cog/tiles/WebMercatorQuad/{tz}/{tx}/{ty}.png",
                                params={"url": url, **params},
                            )
                            for tz, tx, ty in tiles
                        ]
                        rec[phase] = [_strip(c) for c in calls]
                    out["tiles"][f"{case} z{z}"] = rec
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        shutil.rmtree(env["TITILER_OTSU_CACHE_DIR"], ignore_errors=True)
        if proxy:
            proxy.stop()
    return out


#: Cases of the concurrent pans, and where they go (in pans, diagonal: no other case pans there).
AT_ONCE = {"TiTiler plain": (1, 1), "ours plain": (1, 1), "ours otsu sigma=2": (-1, -1)}


def run_pan_at_once(bench: Bench, bases: dict[str, str], url: str, zooms: list[int]) -> dict[str, Any]:
    """A 3x3 pan asked for at once on 6 connections, as a browser does: requests vs the pan's distinct blocks.

    At z >= 12 (lower zooms read overviews whose few blocks every earlier call has fetched).
    """
    out: dict[str, Any] = {}
    for z in zooms:
        for case, shift in AT_ONCE.items():
            server, params, halo = CASES[case]
            tiles = bench.pan(z, shift)
            distinct = {b for t in tiles for b in bench.tile_blocks(t, halo)[1]}
            clients = [httpx.Client(timeout=120) for _ in range(6)]

            def get(
                i: int,
                tile: tuple[int, int, int],
                clients: list[httpx.Client] = clients,
                base: str = bases[server],
                query: dict[str, str] = {"url": url, **params},  # noqa: B006 - bound per case, never mutated
            ) -> int:
                tz, tx, ty = tile
                r = clients[i % 6].get(f"{base}/cog/tiles/WebMercatorQuad/{tz}/{tx}/{ty}.png", params=query)
                return r.status_code

            with bench.server.window() as log, ThreadPoolExecutor(6) as pool:
                t0 = time.perf_counter()
                statuses = list(pool.map(get, range(len(tiles)), tiles))
                ms = (time.perf_counter() - t0) * 1000
            for c in clients:
                c.close()
            ranges = [e.range for e in log.entries if e.method == "GET"]
            out[f"{case} z{z}"] = {
                "statuses": statuses,
                "requests": log.requests,
                "repeated_ranges": len(ranges) - len(set(ranges)),
                "distinct_blocks": len(distinct),
                "ms": ms,
            }
    return out


def _strip(call: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in call.items() if k != "body"} | ({"detail": call["body"]} if call["status"] != 200 else {})


def run_export(bench: Bench, env: dict[str, str]) -> dict[str, Any]:
    """`titiler-otsu export URL` of the whole scene at 0 ms (2 local workers)."""
    url = bench.server.url(bench.scene.name)
    out = CACHE / "remote_export.tif"
    args = [sys.executable, "-m", "titiler_otsu.cli", "export", url, str(out), "--json", "--params", '{"sigma": 1}']
    args += ["--workers", "2"]
    with bench.server.window() as log:
        t0 = time.perf_counter()
        proc = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    summary = json.loads(proc.stdout)
    size = bench.scene.stat().st_size
    with rasterio.open(bench.scene) as ds:
        pixels = ds.width * ds.height
    out.unlink(missing_ok=True)
    return {
        "wall_s": wall,
        "mpix_per_s_wall": pixels / 1e6 / wall,
        "mpix_per_s_export": summary.get("mpix_per_s"),
        "requests": log.requests,
        "bytes": log.bytes,
        "file_bytes": size,
        "bytes_over_file": log.bytes / size,
        "errors": sum(e.status >= 400 for e in log.entries),
    }


def run_seams(bench: Bench, env: dict[str, str], zooms: list[int]) -> dict[str, Any]:
    """512 px at z vs its four 256-px children at z+1 over HTTP: differing pixels (raw, otsu σ=1.5 + opening)."""
    url = bench.server.url(bench.scene.name)
    env = {**env, "TITILER_OTSU_ALLOWED_SOURCES": json.dumps([f"http://127.0.0.1:{bench.server.port}/"])}
    env["TITILER_OTSU_CACHE_DIR"] = str(CACHE / f"server-cache-{os.getpid()}-seams")
    bases, procs = _servers(env)
    cases = {
        "raw": {},
        "otsu sigma=1.5 opening=1": {"algorithm": "otsu", "algorithm_params": '{"sigma": 1.5, "opening": 1}'},
    }
    out: dict[str, Any] = {}
    try:
        with httpx.Client(timeout=120, base_url=bases["ours"]) as client:

            def npy(z: int, x: int, y: int, size: int, params: dict[str, str]) -> np.ndarray:
                r = client.get(
                    f"/cog/tiles/WebMercatorQuad/{z}/{x}/{y}.npy", params={"url": url, "tilesize": size, **params}
                )
                r.raise_for_status()
                return np.load(io.BytesIO(r.content))

            for name, params in cases.items():
                for z in zooms:
                    t = TMS.tile(*bench.lonlat, z)
                    big = npy(z, t.x, t.y, 512, params)
                    diff = 0
                    for dy in (0, 1):
                        for dx in (0, 1):
                            child = npy(z + 1, 2 * t.x + dx, 2 * t.y + dy, 256, params)
                            part = big[:, 256 * dy : 256 * dy + 256, 256 * dx : 256 * dx + 256]
                            valid = (child[-1] > 0) | (part[-1] > 0)
                            diff += int(((child != part).any(axis=0) & valid).sum())
                    out[f"{name} z{z}"] = diff
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        shutil.rmtree(env["TITILER_OTSU_CACHE_DIR"], ignore_errors=True)
    return out


def run_footprints(bench: Bench, zooms: list[int], n: int = 40) -> dict[str, int]:
    """Blocks a tile + halo read fetches (its source rectangle) vs blocks holding a sampled pixel.

    The reader reads the bounding rectangle of the pixels it samples; where the footprint is
    rotated (UTM vs Web Mercator), the rectangle's corners could take in a block no pixel
    needs. Counted over `n` random tiles per zoom, halo 0 and 8.
    """
    from titiler_otsu.core.grid import tile_window
    from titiler_otsu.io.sampling import source_coords

    reader = bench._reader
    west, south, east, north = bench.lonlat_bounds
    rng = np.random.default_rng(14)
    rect = exact = reads = 0
    for z in zooms:
        for _ in range(n):
            lon = west + (east - west) * rng.uniform(0.05, 0.9)
            lat = south + (north - south) * rng.uniform(0.05, 0.95)
            t = TMS.tile(lon, lat, z)
            for halo in (0, 8):
                window = tile_window(TMS, t.x, t.y, z, 256, halo)
                factor = reader._overview_factor(window.grid.res)
                src = reader._level_dataset(factor)
                coords = source_coords(window, TMS.rasterio_crs, reader.crs, reader.ds.transform)
                pc = np.floor(coords.cols / (reader.ds.width / src.width))
                pr = np.floor(coords.rows / (reader.ds.height / src.height))
                inside = (pc >= 0) & (pc < src.width) & (pr >= 0) & (pr < src.height)
                if not inside.any():
                    continue
                level = bench.index.levels[factor]
                bx = (pc[inside] // level.block_width).astype(int)
                by = (pr[inside] // level.block_height).astype(int)
                exact += len(set(zip(bx.tolist(), by.tolist(), strict=True)))
                rect += int((bx.max() - bx.min() + 1) * (by.max() - by.min() + 1))
                reads += 1
    return {"reads": reads, "blocks_read": rect, "blocks_with_a_sampled_pixel": exact}


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(results: dict[str, Any]) -> str:
    """Markdown tables of a run."""
    lines = [f"Machine: {results['machine']}; file {results['file']} ({results['file_mb']:.0f} MB)."]
    for run in results["latencies"]:
        d = run["delay_ms"]
        lines += [
            f"\n### {d:.0f} ms per request\n",
            "| call | status | requests (HEAD) | MB | ms | floor |",
            "|---|---|---|---|---|---|",
        ]
        for name, c in run["calls"].items():
            lines.append(
                f"| {name} | {c['status']} | {c['requests']} ({c['heads']}) | {c['bytes'] / 1e6:.2f} | {c['ms']:.0f} | "
                f"{c.get('floor', '')} |"
            )
        lines += [
            "\n| case | level | floor blocks/tile (pan's distinct blocks) | pan: requests/tile (total) | "
            "pan: KB/tile (floor) | pan: median ms | repeat: requests/tile | repeat: median ms |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, rec in run["tiles"].items():
            ok = [i for i, c in enumerate(rec["pan"]) if c["status"] == 200]
            if not ok:
                continue
            fb = sum(rec["floor_blocks"][i] for i in ok) / len(ok)
            fbytes = sum(rec["floor_bytes"][i] for i in ok) / len(ok)
            pr = sum(rec["pan"][i]["requests"] for i in ok) / len(ok)
            pb = sum(rec["pan"][i]["bytes"] for i in ok) / len(ok)
            rr = sum(rec["repeat"][i]["requests"] for i in ok) / len(ok)
            total = sum(rec["pan"][i]["requests"] for i in ok)
            lines.append(
                f"| {name} | x{rec['factor']} | {fb:.2f} ({rec.get('pan_distinct_blocks', '-')}) | "
                f"{pr:.2f} ({total}) | "
                f"{pb / 1e3:.0f} ({fbytes / 1e3:.0f}) | "
                f"{_median([rec['pan'][i]['ms'] for i in ok]):.0f} | {rr:.2f} | "
                f"{_median([rec['repeat'][i]['ms'] for i in ok]):.0f} |"
            )
    for run in results["latencies"]:
        if not run.get("scattered"):
            continue
        d = run["delay_ms"]
        lines += [
            f"\nScattered z14 tiles at {d:.0f} ms (each fetches its own blocks): ",
            "| case | floor blocks/tile | requests/tile | KB/tile (floor) | median ms | floor x delay ms |",
            "|---|---|---|---|---|---|",
        ]
        for name, rec in run["scattered"].items():
            ok = [i for i, c in enumerate(rec["calls"]) if c["status"] == 200]
            if not ok:
                continue
            fb = sum(rec["floor_blocks"][i] for i in ok) / len(ok)
            lines.append(
                f"| {name} | {fb:.2f} | {sum(rec['calls'][i]['requests'] for i in ok) / len(ok):.2f} | "
                f"{sum(rec['calls'][i]['bytes'] for i in ok) / len(ok) / 1e3:.0f} "
                f"({sum(rec['floor_bytes'][i] for i in ok) / len(ok) / 1e3:.0f}) | "
                f"{_median([rec['calls'][i]['ms'] for i in ok]):.0f} | {fb * d:.0f} |"
            )
    for run in results["latencies"]:
        if not run.get("at_once"):
            continue
        lines += [
            f"\nA 3x3 pan asked for at once (6 connections) at {run['delay_ms']:.0f} ms: ",
            "| case | pan's distinct blocks | requests | ranges asked twice | ms for the pan |",
            "|---|---|---|---|---|",
        ]
        for name, rec in run["at_once"].items():
            ok = "" if all(st == 200 for st in rec["statuses"]) else f" (statuses {rec['statuses']})"
            lines.append(
                f"| {name}{ok} | {rec['distinct_blocks']} | {rec['requests']} | {rec['repeated_ranges']} | "
                f"{rec['ms']:.0f} |"
            )
    if "footprints" in results:
        f = results["footprints"]
        lines.append(
            f"\nHalo/footprint: {f['reads']} tile reads fetch {f['blocks_read']} blocks, "
            f"{f['blocks_with_a_sampled_pixel']} of which hold a sampled pixel."
        )
    if "export" in results:
        e = results["export"]
        lines.append(f"\nExport at 0 ms: {json.dumps(e)}")
    if "seams" in results:
        lines.append(f"\nSeams (differing pixels, 512 vs 4 x 256): {json.dumps(results['seams'])}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10980)
    parser.add_argument("--blocks", type=int, default=1024, help="internal block size of the generated COG")
    parser.add_argument("--latencies", default="0,20,80", help="ms per request, comma separated")
    parser.add_argument("--zooms", default="8,10,12,14")
    parser.add_argument("--no-export", action="store_true")
    parser.add_argument("--no-seams", action="store_true")
    parser.add_argument(
        "--export-only", action="store_true", help="only the export (e.g. --size 47000: the 47k x 47k scene)"
    )
    parser.add_argument(
        "--trust-named-hosts",
        action="store_true",
        help="our server with TITILER_OTSU_REMOTE_TRUST_NAMED_HOSTS (no redirect-guard GET probe at open)",
    )
    parser.add_argument("--report", type=Path, help="only print the tables of an earlier run's JSON")
    args = parser.parse_args()
    if args.report:
        print(report(json.loads(args.report.read_text())))
        return

    strip = 256 if args.size > 20000 else 512  # memory: one strip of rows
    scene = write_scene(CACHE / f"scene_{args.size}_b{args.blocks}.tif", args.size, args.blocks, strip=strip)
    env = {**os.environ, **GDAL_CONFIG_DEFAULTS, "PYTHONPATH": str(ROOT)}
    if args.trust_named_hosts:
        env["TITILER_OTSU_REMOTE_TRUST_NAMED_HOSTS"] = "true"
    zooms = [int(z) for z in args.zooms.split(",")]
    results: dict[str, Any] = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, GDAL {rasterio.__gdal_version__}; load {os.getloadavg()[0]:.1f} at start"
        + ("; REMOTE_TRUST_NAMED_HOSTS" if args.trust_named_hosts else ""),
        "file": scene.name,
        "file_mb": scene.stat().st_size / 1e6,
        "latencies": [],
    }
    with ObjectServer(CACHE) as server:
        bench = Bench(scene, server)
        if args.export_only:
            args.latencies, args.no_seams = "", True
        else:
            results["footprints"] = run_footprints(bench, zooms)
        for ms in [float(v) for v in args.latencies.split(",") if v]:
            print(f"latency {ms:.0f} ms ...", flush=True)
            results["latencies"].append(run_latency(bench, ms / 1000, zooms, env))
        if not args.no_seams:
            print("seams ...", flush=True)
            results["seams"] = run_seams(bench, env, [10, 12, 14])
        if not args.no_export:
            print("export ...", flush=True)
            results["export"] = run_export(bench, env)
    results["load_end"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    dest = RESULTS / f"remote_{args.size}_b{args.blocks}{'_export' if args.export_only else ''}.json"
    dest.write_text(json.dumps(results, indent=1))
    text = report(results)
    dest.with_suffix(".md").write_text(text)
    print(text)
    print(f"\nwritten {dest}")


if __name__ == "__main__":
    main()

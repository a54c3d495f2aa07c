"""Latency of the analytic endpoints: `POST /cog/areas` and `GET /cog/vectors/...`.

Starts our server (uvicorn, 1 worker) on loopback and times, over HTTP:

* `/areas` for a 1 km² and a 100 km² square on the demo scene (10 m pixels, B08 band:
  10 000 and 1 000 000 native pixels) and on Sentinel-2 B08 (100 m pixels), plus the
  whole demo scene with a read limit low enough to force a decimated (overview) read;
* `/vectors` tile latency on NAIP and on the demo scene (256 and 512 px, with and
  without `simplify`), next to the `.npy` class tile of the same request.

Prints medians (ms) and writes bench/results/analytics.json. A script, not a test:
`python bench/bench_analytics.py [--rounds N]`.
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
import tempfile
import time
from pathlib import Path

import httpx
import morecantile
import shapely
from pyproj import Geod, Transformer
from shapely.geometry import mapping

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
NAIP = DATA / "m_4709963_se_14_1_20180716.tif"
B08 = DATA / "sentinel2_S2A_34SGA_20200318_L2A" / "B08.tif"
TMS = morecantile.tms.get("WebMercatorQuad")
GEOD = Geod(ellps="WGS84")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(env: dict[str, str], port: int, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    args = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--log-level", "warning", "--port", str(port)]
    args += ["--factory", "titiler_otsu.app:create_app"]
    proc = subprocess.Popen(
        args, env={**env, **(extra_env or {})}, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server on port {port} did not start")


def _square(lon: float, lat: float, side_m: float) -> dict:
    """A lon/lat square (as a UTM square) of `side_m` metres centred on lon/lat."""
    zone = int((lon + 180) // 6) + 1
    utm = f"EPSG:{32600 + zone if lat >= 0 else 32700 + zone}"
    fwd = Transformer.from_crs("EPSG:4326", utm, always_xy=True)
    inv = Transformer.from_crs(utm, "EPSG:4326", always_xy=True)
    x, y = fwd.transform(lon, lat)
    h = side_m / 2
    ring = [inv.transform(x + dx, y + dy) for dx, dy in ((-h, -h), (h, -h), (h, h), (-h, h), (-h, -h))]
    return {"type": "Feature", "properties": {}, "geometry": mapping(shapely.Polygon(ring))}


def _centre(path: Path) -> tuple[float, float]:
    from rio_tiler.io import Reader

    with Reader(str(path)) as src:
        w, s, e, n = src.get_geographic_bounds("epsg:4326")
    return (w + e) / 2, (s + n) / 2


def _median_ms(client: httpx.Client, method: str, url: str, rounds: int, **kwargs) -> tuple[float, httpx.Response]:
    r = client.request(method, url, **kwargs)  # warm-up: open the file, fill the dataset histogram cache
    assert r.status_code == 200, r.text
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        r = client.request(method, url, **kwargs)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, r.text
    return statistics.median(times), r


def bench_areas(client: httpx.Client, base: str, demo: Path, rounds: int) -> dict:
    """/areas latency for 1 km² and 100 km² squares."""
    demo_centre, s2_centre = _centre(demo), (24.0, 32.05)
    otsu = {"algorithm": "otsu", "algorithm_params": '{"invert": true}'}
    cases = {
        "demo B08, 1 km2": (demo, 4, _square(*demo_centre, 1_000), otsu),
        "demo B08, 100 km2": (demo, 4, _square(*demo_centre, 10_000), otsu),
        "demo B08, 100 km2, sigma=2 opening=1": (
            demo,
            4,
            _square(*demo_centre, 10_000),
            {"algorithm": "otsu", "algorithm_params": '{"invert": true, "sigma": 2, "opening": 1}'},
        ),
        "S2 B08 (100 m), 1 km2": (B08, 1, _square(*s2_centre, 1_000), otsu),
        "S2 B08 (100 m), 100 km2": (B08, 1, _square(*s2_centre, 10_000), otsu),
        "NAIP b4 (5 m), 1 km2": (NAIP, 4, _square(-99.15, 47.02, 1_000), otsu),
    }
    out = {}
    for name, (path, bidx, feature, algo) in cases.items():
        params = {"url": str(path), "bidx": bidx, **algo}
        ms, r = _median_ms(client, "POST", f"{base}/cog/areas", rounds, params=params, json=feature)
        res = r.json()["features"][0]["properties"]
        out[name] = {
            "median_ms": ms,
            "pixels": res["pixels"],
            "decimation": res["decimation"],
            "resolution_m": res["resolution_m"],
            "class1_fraction": res["classes"][1]["fraction"],
        }
    return out


def bench_areas_decimated(client: httpx.Client, base: str, demo: Path, rounds: int) -> dict:
    """Whole demo scene (about 4.2 M pixels) with MAX_AOI_PIXELS=1e6 on the second server."""
    feature = _square(*_centre(demo), 20_000)
    params = {"url": str(demo), "bidx": 4, "algorithm": "otsu", "algorithm_params": '{"invert": true}'}
    ms, r = _median_ms(client, "POST", f"{base}/cog/areas", rounds, params=params, json=feature)
    res = r.json()["features"][0]["properties"]
    return {
        "demo B08, 400 km2, limit 1e6 px": {
            "median_ms": ms,
            "pixels": res["pixels"],
            "decimation": res["decimation"],
            "resolution_m": res["resolution_m"],
            "class1_fraction": res["classes"][1]["fraction"],
        }
    }


def bench_vectors(client: httpx.Client, base: str, demo: Path, rounds: int) -> dict:
    """/vectors tile latency next to the .npy class tile of the same request."""
    naip = TMS.tile(-99.15, 47.02, 15)
    dt = TMS.tile(*_centre(demo), 14)
    otsu = {"algorithm": "otsu", "algorithm_params": '{"invert": true}'}
    cases = {
        "NAIP b4 z15 256px": (NAIP, 4, naip, 256, otsu, 0),
        "NAIP b4 z15 256px simplify=2": (NAIP, 4, naip, 256, otsu, 2),
        "demo B08 z14 256px": (demo, 4, dt, 256, otsu, 0),
        "demo B08 z14 512px": (demo, 4, dt, 512, otsu, 0),
        "demo B08 z14 512px simplify=2": (demo, 4, dt, 512, otsu, 2),
        "demo B08 z14 512px multiotsu 4": (
            demo,
            4,
            dt,
            512,
            {"algorithm": "multiotsu", "algorithm_params": '{"classes": 4}'},
            0,
        ),
    }
    out = {}
    for name, (path, bidx, t, size, algo, simplify) in cases.items():
        params = {"url": str(path), "bidx": bidx, "tilesize": size, **algo}
        path_xyz = f"WebMercatorQuad/{t.z}/{t.x}/{t.y}"
        url = f"{base}/cog/vectors/{path_xyz}"
        ms, r = _median_ms(client, "GET", url, rounds, params={**params, "simplify": simplify})
        npy_ms, _ = _median_ms(client, "GET", f"{base}/cog/tiles/{path_xyz}.npy", rounds, params=params)
        fc = r.json()
        vertices = sum(len(c) for f in fc["features"] for c in f["geometry"]["coordinates"])
        out[name] = {
            "median_ms": ms,
            "npy_tile_ms": npy_ms,
            "polygons": len(fc["features"]),
            "vertices": vertices,
            "bytes": len(r.content),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7, help="timed requests per case")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from titiler_otsu.demo import ensure_demo_scene

    cache = Path(tempfile.gettempdir()) / "titiler-otsu-bench"
    demo = ensure_demo_scene(cache)
    env = {**os.environ, "TITILER_OTSU_ALLOWED_SOURCES": json.dumps([str(DATA), str(cache)])}
    port, small_port = _free_port(), _free_port()
    server = _start(env, port)
    small = _start(env, small_port, {"TITILER_OTSU_MAX_AOI_PIXELS": "1000000"})
    try:
        with httpx.Client(timeout=120) as client:
            areas = bench_areas(client, f"http://127.0.0.1:{port}", demo, args.rounds)
            areas.update(bench_areas_decimated(client, f"http://127.0.0.1:{small_port}", demo, args.rounds))
            vectors = bench_vectors(client, f"http://127.0.0.1:{port}", demo, args.rounds)
    finally:
        for p in (server, small):
            p.terminate()
            p.wait(10)
    out = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "areas": areas,
        "vectors": vectors,
    }
    print(f"\n{out['machine']}\n")
    print("| /areas case | median ms | pixels | decimation | resolution m | class 1 fraction |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in areas.items():
        print(
            f"| {name} | {r['median_ms']:.1f} | {r['pixels']} | {r['decimation']} | "
            f"{r['resolution_m']:.2f} | {r['class1_fraction']:.3f} |"
        )
    print("\n| /vectors case | median ms | .npy tile ms | polygons | vertices | bytes |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in vectors.items():
        print(
            f"| {name} | {r['median_ms']:.1f} | {r['npy_tile_ms']:.1f} | {r['polygons']} | "
            f"{r['vertices']} | {r['bytes']} |"
        )
    dest = ROOT / "bench" / "results" / "analytics.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=1))
    print(f"\nwritten {dest}")


if __name__ == "__main__":
    main()

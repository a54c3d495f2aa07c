"""STAC test fixtures: two real-data Sentinel-2 items, a real STAC API (rustac), broken APIs.

* `stac_items` (asset hrefs are `file://` URIs, which stay absolute behind an HTTP API):
  `item1.json` is the shared Sentinel-2 item with B02/B03/B04/B08/SCL pointing
  at the shared GeoTIFFs (its `proj:` fields rewritten from the files, other assets dropped);
  `item2.json` is a neighbouring cut: the east half of the same rasters written as COGs
  30 km further east, dated ten days later. The two overlap over 25 km and item2 reaches
  30 km past item1's east edge, so tiles can straddle items and mosaics have an order.
* `rustac_api`: `rustac serve item1.json item2.json` on a free local port (in-memory backend).
* `closed_port_url` / `hanging_api_url`: an API that refuses connections / accepts and never
  answers.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient
from rasterio.transform import Affine
from rasterio.warp import transform_bounds

from tests.conftest import S2_DIR, SHARED_DATA, load_npy
from titiler_otsu import create_app
from titiler_otsu.settings import Settings

ASSETS = ("B02", "B03", "B04", "B08", "SCL")
COLLECTION = "sentinel-s2-l2a-cogs"
ITEM1_ID = "S2A_34SGA_20200318_0_L2A"
ITEM2_ID = "S2A_34SGA_20200328_east_cut"
#: item2 = columns 549.. of item1 moved this far east (metres).
ITEM2_SHIFT = 30_000.0
#: UTM x of item1's east edge and of item2's west edge.
ITEM1_EAST_X = 809_760.0
ITEM2_WEST_X = 784_860.0
NDWI = "(B03-B08)/(B03+B08)"
TEST_MIN_ZOOM = 7


@dataclass(frozen=True)
class StacItems:
    """Paths of the test items."""

    directory: Path
    item1: Path
    item2: Path


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proj_fields(path: Path) -> dict:
    with rasterio.open(path) as ds:
        return {"proj:shape": [ds.height, ds.width], "proj:transform": list(ds.transform)[:6]}


def _footprint(bounds: tuple[float, float, float, float]) -> tuple[list[float], dict]:
    w, s, e, n = transform_bounds("EPSG:32634", "EPSG:4326", *bounds, densify_pts=21)
    ring = [[w, s], [e, s], [e, n], [w, n], [w, s]]
    return [w, s, e, n], {"type": "Polygon", "coordinates": [ring]}


def write_item1(directory: Path) -> Path:
    """The shared item with local hrefs and the files' own grids."""
    item = json.loads((S2_DIR / "item.json").read_text())
    item["assets"] = {k: v for k, v in item["assets"].items() if k in ASSETS}
    for name, asset in item["assets"].items():
        asset["href"] = (S2_DIR / f"{name}.tif").as_uri()
        asset.update(_proj_fields(S2_DIR / f"{name}.tif"))
    item["links"] = []
    path = directory / "item1.json"
    path.write_text(json.dumps(item))
    return path


def write_item2(directory: Path) -> Path:
    """The neighbouring cut: east half of the real rasters, 30 km east, ten days later."""
    from tests.synthetic import write_cog

    item = json.loads((S2_DIR / "item.json").read_text())
    item["id"] = ITEM2_ID
    item["properties"]["datetime"] = "2020-03-28T09:11:33Z"
    item["properties"]["eo:cloud_cover"] = 12.5
    item["links"] = []
    assets = {}
    bounds = None
    for name in ASSETS:
        with rasterio.open(S2_DIR / f"{name}.tif") as ds:
            col0 = ds.width // 2
            data = ds.read(1)[:, col0:]
            t = ds.transform
            transform = Affine(t.a, 0.0, t.c + col0 * t.a + ITEM2_SHIFT, 0.0, t.e, t.f)
            path = write_cog(
                directory / f"east_{name}.tif", data, crs="EPSG:32634", transform=transform, nodata=0, blocksize=64
            )
        asset = dict(item["assets"][name])
        asset["href"] = path.as_uri()
        asset.update(_proj_fields(path))
        assets[name] = asset
        if name == "B08":
            with rasterio.open(path) as ds:
                bounds = tuple(ds.bounds)
    assert bounds is not None
    item["assets"] = assets
    item["bbox"], item["geometry"] = _footprint(bounds)
    path = directory / "item2.json"
    path.write_text(json.dumps(item))
    return path


@pytest.fixture(scope="session")
def stac_items(tmp_path_factory: pytest.TempPathFactory) -> StacItems:
    """item1.json and item2.json (with their COGs) in a fresh directory."""
    directory = tmp_path_factory.mktemp("stac")
    return StacItems(directory, write_item1(directory), write_item2(directory))


def rustac_executable() -> str:
    """The `rustac` CLI of this Python environment (PyPI package `rustac`)."""
    found = shutil.which("rustac") or str(Path(sys.executable).with_name("rustac"))
    if not Path(found).is_file():
        raise RuntimeError("rustac is not installed: pip install -e '.[test]' (PyPI package rustac)")
    return found


def start_rustac(items: list[Path], port: int, collection: str = COLLECTION) -> subprocess.Popen:
    """Start `rustac serve ITEMS --addr 127.0.0.1:PORT` and wait until `collection` answers."""
    proc = subprocess.Popen(
        [rustac_executable(), "serve", *map(str, items), "--addr", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"rustac serve exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/collections/{collection}", timeout=1):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("rustac serve did not start within 30 s")


@pytest.fixture(scope="session")
def rustac_api(stac_items: StacItems) -> Iterator[str]:
    """URL of a real STAC API (rustac, in-memory) serving item1 and item2."""
    port = free_port()
    proc = start_rustac([stac_items.item1, stac_items.item2], port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def closed_port_url() -> str:
    """An API URL where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def hanging_api_url() -> Iterator[str]:
    """An API that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in held:
            conn.close()
        server.close()


@pytest.fixture(scope="session")
def http_files(stac_items: StacItems) -> Iterator[str]:
    """A local HTTP server over the items' directory (remote-item tests)."""
    directory = str(stac_items.directory)

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=directory, **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def stac_settings(stac_items: StacItems, api: str | None, **overrides: object) -> Settings:
    """Settings for the STAC tests: shared data + the items' directory allowed."""
    values: dict = {
        "allowed_sources": [str(SHARED_DATA), str(stac_items.directory)],
        "cache_dir": stac_items.directory / "cache",
        "stac_api_url": api,
        "stac_min_zoom": TEST_MIN_ZOOM,
        "stac_timeout": 2.0,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture(scope="session")
def stac_client(stac_items: StacItems, rustac_api: str) -> TestClient:
    """App whose default STAC API is the rustac server (api= not allowed)."""
    return TestClient(create_app(stac_settings(stac_items, rustac_api)), raise_server_exceptions=False)


# ---------------------------------------------------------------------- seam helper
def npy_tile(client: TestClient, url: str, params: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """A `.npy` tile as (data, valid), None for a 404 (no data there)."""
    r = client.get(url, params=params)
    if r.status_code == 404:
        return None
    assert r.status_code == 200, (url, r.text)
    return load_npy(r.content)


def seam_differences(client: TestClient, prefix: str, z: int, x: int, y: int, params: dict) -> tuple[int, int]:
    """(values, mask pixels) differing between a 512 tile at z and its four 256 children."""
    parent = npy_tile(client, f"{prefix}/tiles/WebMercatorQuad/{z}/{x}/{y}.npy", {**params, "tilesize": 512})
    assert parent is not None, "parent tile has no data"
    pdata, pvalid = parent
    cdata = np.zeros_like(pdata)
    cvalid = np.zeros_like(pvalid)
    for dy in (0, 1):
        for dx in (0, 1):
            child = npy_tile(
                client,
                f"{prefix}/tiles/WebMercatorQuad/{z + 1}/{2 * x + dx}/{2 * y + dy}.npy",
                {**params, "tilesize": 256},
            )
            sl = (slice(dy * 256, (dy + 1) * 256), slice(dx * 256, (dx + 1) * 256))
            if child is None:
                cdata[(slice(None), *sl)] = pdata[(slice(None), *sl)]
                continue
            cdata[(slice(None), *sl)] = child[0]
            cvalid[sl] = child[1]
    same_nan = np.isnan(pdata) & np.isnan(cdata) if pdata.dtype.kind == "f" else np.zeros(pdata.shape, bool)
    return int(((pdata != cdata) & ~same_nan).sum()), int((pvalid != cvalid).sum())

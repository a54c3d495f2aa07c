"""Every generated raster x every endpoint: a 200 with a sane body or a 4xx that says what to change.

The rasters (tests/synthetic.py `RasterSpec`) span dtypes, georeferencing (UTM, geographic,
polar with the pole inside, across the antimeridian, none, geotransform only, GCPs only,
engineering CRS, Mars), shapes (1x1, 1xN, Nx1, tall, uniform, all nodata, all NaN, +-inf,
values near the dtype's limits) and nodata (none, NaN, a value far outside the data). Two
designs meet every endpoint of /cog:

* one axis at a time: the base raster (uint16, UTM, 64 x 64, no nodata) and each raster that
  differs from it in one axis value, x every endpoint (every axis value meets every endpoint);
* a pairwise covering sample over dtype x georef x shape x nodata x endpoint: every pair of
  values of any two axes occurs in at least one request.

Rasters are written once per session (a few ms each); requests go through the in-process
TestClient.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import morecantile
import numpy as np
import pytest
from fastapi.testclient import TestClient
from httpx import Response

from tests import synthetic
from tests.synthetic import RasterSpec, one_axis_at_a_time, pairwise_rows, uncovered_pairs

TMS = morecantile.tms.get("WebMercatorQuad")
ZOOM = 14


@dataclass(frozen=True)
class Call:
    """One request on one raster: method, path, query, JSON body."""

    method: str
    path: str
    params: dict
    body: dict | None = None


def _lonlat(spec: RasterSpec) -> tuple[float, float]:
    lonlat = spec.effective().lonlat()
    lon, lat = lonlat if lonlat is not None else (0.0, 0.0)
    return lon, max(min(lat, 85.0), -85.0)


def _tile(spec: RasterSpec) -> str:
    lon, lat = _lonlat(spec)
    t = TMS.tile(lon if lon <= 180 else lon - 360, lat, ZOOM)
    return f"WebMercatorQuad/{ZOOM}/{t.x}/{t.y}"


def _polygon(spec: RasterSpec, half: float = 1e-3) -> dict:
    lon, lat = _lonlat(spec)
    ring = [[lon - half, lat - half], [lon + half, lat - half], [lon + half, lat + half], [lon - half, lat + half]]
    return {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring + ring[:1]]}}


def _bbox(spec: RasterSpec, half: float = 1e-3) -> str:
    lon, lat = _lonlat(spec)
    return f"{lon - half},{lat - half},{lon + half},{lat + half}"


def _alg(name: str, **params: object) -> dict:
    return {"algorithm": name, "algorithm_params": json.dumps(params)}


#: endpoint name -> (spec -> request). Every family of /cog: metadata, tiles raw and each
#: algorithm x scope (+ sigma, opening), expressions, analytics and TiTiler's readers.
ENDPOINTS: dict[str, Callable[[RasterSpec], Call]] = {
    "info": lambda s: Call("GET", "/cog/info", {}),
    "info.geojson": lambda s: Call("GET", "/cog/info.geojson", {}),
    "tilejson": lambda s: Call("GET", "/cog/WebMercatorQuad/tilejson.json", {}),
    "wmts": lambda s: Call("GET", "/cog/WebMercatorQuad/WMTSCapabilities.xml", {}),
    "tile-raw-png": lambda s: Call("GET", f"/cog/tiles/{_tile(s)}.png", {}),
    "tile-raw-npy": lambda s: Call("GET", f"/cog/tiles/{_tile(s)}.npy", {}),
    "tile-raw-rescaled": lambda s: Call("GET", f"/cog/tiles/{_tile(s)}.png", {"rescale": "0,255"}),
    "tile-bool-expression": lambda s: Call("GET", f"/cog/tiles/{_tile(s)}.png", {"expression": "b1 > 60"}),
    "tile-otsu-dataset": lambda s: Call("GET", f"/cog/tiles/{_tile(s)}.png", _alg("otsu")),
    "tile-otsu-tile": lambda s: Call("GET", f"/cog/tiles/{_tile(s)}.npy", _alg("otsu", scope="tile")),
    "tile-otsu-fixed": lambda s: Call("GET", f"/cog/tiles/{_tile(s)}.png", _alg("otsu", scope="fixed", threshold=70)),
    "tile-otsu-tile-sigma": lambda s: Call(
        "GET", f"/cog/tiles/{_tile(s)}.png", _alg("otsu", scope="tile", sigma=1.5, opening=1)
    ),
    "tile-otsu-dataset-sigma": lambda s: Call("GET", f"/cog/tiles/{_tile(s)}.npy", _alg("otsu", sigma=2)),
    "tile-otsu-expression": lambda s: Call(
        "GET", f"/cog/tiles/{_tile(s)}.png", {"expression": "b1 * 2", **_alg("otsu", scope="tile")}
    ),
    "tile-multiotsu-dataset": lambda s: Call("GET", f"/cog/tiles/{_tile(s)}.png", _alg("multiotsu", classes=3)),
    "tile-multiotsu-tile": lambda s: Call(
        "GET", f"/cog/tiles/{_tile(s)}.npy", _alg("multiotsu", classes=4, scope="tile", sigma=1)
    ),
    "tile-multiotsu-fixed": lambda s: Call(
        "GET", f"/cog/tiles/{_tile(s)}.png", _alg("multiotsu", scope="fixed", thresholds=[50, 90])
    ),
    "tile-localotsu": lambda s: Call("GET", f"/cog/tiles/{_tile(s)}.png", _alg("localotsu", radius=4)),
    "tile-localotsu-sigma": lambda s: Call("GET", f"/cog/tiles/{_tile(s)}.npy", _alg("localotsu", radius=4, sigma=1)),
    "threshold": lambda s: Call("GET", "/cog/threshold", _alg("otsu")),
    "threshold-multiotsu-bbox": lambda s: Call(
        "GET", "/cog/threshold", {"bbox": _bbox(s), **_alg("multiotsu", classes=3)}
    ),
    "threshold-localotsu": lambda s: Call("GET", "/cog/threshold", _alg("localotsu", radius=4)),
    "areas": lambda s: Call("POST", "/cog/areas", _alg("otsu"), _polygon(s)),
    "areas-tile-scope": lambda s: Call("POST", "/cog/areas", _alg("multiotsu", scope="tile", sigma=1), _polygon(s)),
    "vectors": lambda s: Call("GET", f"/cog/vectors/{_tile(s)}", _alg("otsu")),
    "vectors-tile-scope": lambda s: Call("GET", f"/cog/vectors/{_tile(s)}", _alg("otsu", scope="tile")),
    "statistics": lambda s: Call("GET", "/cog/statistics", {}),
    "statistics-feature": lambda s: Call("POST", "/cog/statistics", {}, _polygon(s)),
    "bbox": lambda s: Call("GET", f"/cog/bbox/{_bbox(s)}.png", {}),
    "preview": lambda s: Call("GET", "/cog/preview.png", {"max_size": 64}),
    "preview-otsu": lambda s: Call("GET", "/cog/preview.npy", {"max_size": 64, **_alg("otsu", scope="tile")}),
    "point": lambda s: Call("GET", "/cog/point/{},{}".format(*_lonlat(s)), {}),
    "feature": lambda s: Call("POST", "/cog/feature.png", {"max_size": 64}, _polygon(s)),
}

_AXES = {
    "dtype": synthetic.DTYPES,
    "georef": synthetic.GEOREFS,
    "shape": synthetic.SHAPES,
    "nodata": synthetic.NODATAS,
}


def _one_axis_cases() -> list[tuple[RasterSpec, str]]:
    return [(spec, endpoint) for spec in one_axis_at_a_time() for endpoint in ENDPOINTS]


def _pairwise_cases() -> list[tuple[RasterSpec, str]]:
    rows = pairwise_rows({**_AXES, "endpoint": tuple(ENDPOINTS)}, seed=13)
    return [(RasterSpec(r["dtype"], r["georef"], r["shape"], r["nodata"]), r["endpoint"]) for r in rows]


ONE_AXIS = _one_axis_cases()
PAIRWISE = _pairwise_cases()

#: status code -> count, per design (printed at the end of the session: README figures).
OUTCOMES: dict[str, Counter] = {"one-axis": Counter(), "pairwise": Counter()}


def _strict_json(content: bytes) -> object:
    def refuse(constant: str) -> None:
        raise AssertionError(f"JSON holds {constant}")

    return json.loads(content, parse_constant=refuse)


def assert_sane(response: Response, call: Call, endpoint: str) -> None:
    """A 200 whose body decodes as its media type says, or a 4xx with a helpful `detail`."""
    status = response.status_code
    context = f"{endpoint} {call.path} {call.params} -> {status}: {response.text[:400]}"
    assert status < 500, context
    if status == 304:
        return
    if status >= 400:
        detail = _strict_json(response.content)["detail"]  # type: ignore[index]
        if isinstance(detail, list):  # FastAPI validation errors: each names its field
            assert all(d.get("loc") and d.get("msg") for d in detail), context
        else:
            assert isinstance(detail, str) and len(detail) >= 15, context
            assert "internal server error" not in detail.lower(), context
        return
    assert status in (200, 204), context
    media = response.headers.get("content-type", "")
    if status == 204:
        return
    if "json" in media:
        _strict_json(response.content)
    elif media.startswith("image/png"):
        assert response.content.startswith(b"\x89PNG"), context
    elif "xml" in media:
        assert response.content.lstrip().startswith(b"<"), context
    elif endpoint.endswith("npy") or call.path.endswith(".npy"):
        arr = np.load(io.BytesIO(response.content))
        assert arr.ndim == 3 and arr.shape[0] >= 2, context
    else:
        assert response.content, context


@pytest.fixture(scope="module")
def matrix_dir(synthetic_dir: Path) -> Iterator[Path]:
    """Where the rasters are written; at the end, the outcome counts (`-s` shows them)."""
    path = synthetic_dir / "matrix"
    path.mkdir(exist_ok=True)
    yield path
    summary = {design: dict(sorted(counts.items())) for design, counts in OUTCOMES.items()}
    (path / "outcomes.json").write_text(json.dumps(summary))
    print(f"\nraster matrix: {len(list(path.glob('*.tif')))} rasters, outcomes by status: {summary}")


def _request(client: TestClient, directory: Path, spec: RasterSpec, endpoint: str) -> tuple[Call, Response]:
    path = spec.write(directory)
    call = ENDPOINTS[endpoint](spec)
    params = {"url": str(path), **call.params}
    if call.method == "POST":
        return call, client.post(call.path, params=params, json=call.body)
    return call, client.get(call.path, params=params)


def test_matrix_covers_every_axis_value_with_every_endpoint() -> None:
    met = {(axis, getattr(spec, axis), endpoint) for spec, endpoint in ONE_AXIS for axis in _AXES}
    assert met == {(axis, v, e) for axis, values in _AXES.items() for v in values for e in ENDPOINTS}
    rows = [{**{a: getattr(spec, a) for a in _AXES}, "endpoint": endpoint} for spec, endpoint in PAIRWISE]
    assert not uncovered_pairs({**_AXES, "endpoint": tuple(ENDPOINTS)}, rows)


@pytest.mark.parametrize(("spec", "endpoint"), ONE_AXIS, ids=[f"{s.name}:{e}" for s, e in ONE_AXIS])
def test_one_axis_at_a_time_raster_never_gets_a_server_error(
    client: TestClient, matrix_dir: Path, spec: RasterSpec, endpoint: str
) -> None:
    call, response = _request(client, matrix_dir, spec, endpoint)
    OUTCOMES["one-axis"][response.status_code] += 1
    assert_sane(response, call, endpoint)


@pytest.mark.parametrize(("spec", "endpoint"), PAIRWISE, ids=[f"{s.name}:{e}" for s, e in PAIRWISE])
def test_pairwise_raster_never_gets_a_server_error(
    client: TestClient, matrix_dir: Path, spec: RasterSpec, endpoint: str
) -> None:
    call, response = _request(client, matrix_dir, spec, endpoint)
    OUTCOMES["pairwise"][response.status_code] += 1
    assert_sane(response, call, endpoint)


def test_well_georeferenced_base_raster_is_served_by_every_endpoint(client: TestClient, matrix_dir: Path) -> None:
    """The base raster is ordinary: every endpoint answers 200 (the matrix is not all 4xx)."""
    spec = RasterSpec()
    failing = {}
    for endpoint in ENDPOINTS:
        _, response = _request(client, matrix_dir, spec, endpoint)
        if response.status_code != 200:
            failing[endpoint] = (response.status_code, response.text[:200])
    assert not failing


@pytest.mark.parametrize(
    ("shape", "algorithm", "thresholds"),
    [("nbits1", _alg("otsu"), [0.0]), ("palette", _alg("multiotsu", classes=3), [1.0, 2.0])],
)
def test_one_bit_and_palette_rasters_are_segmented_on_their_stored_values(
    client: TestClient, matrix_dir: Path, shape: str, algorithm: dict, thresholds: list[float]
) -> None:
    """NBITS=1 values 0/1 and palette indices 1..3 are split between the stored values (not colours)."""
    spec = RasterSpec(shape=shape)
    path = spec.write(matrix_dir)
    info = client.get("/cog/info", params={"url": str(path)}).json()
    assert info["dtype"] == "uint8" and info["colorinterp"] == ["palette"]
    r = client.get("/cog/threshold", params={"url": str(path), **algorithm})
    assert r.status_code == 200 and r.json()["thresholds"] == thresholds, r.text
    tile = client.get(f"/cog/tiles/{_tile(spec)}.npy", params={"url": str(path), **algorithm})
    classes = np.load(io.BytesIO(tile.content))[0]
    assert set(np.unique(classes)) == set(range(len(thresholds) + 1))

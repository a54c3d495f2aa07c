"""The generated-raster matrix on the /stac and /stacapi families: 0 x 5xx.

* /stac: every matrix raster wrapped as a local STAC Item (asset ``data``; rasters without Earth
  georeferencing get a null geometry and must be a 4xx), plus two-asset Items (``a``, ``b``, and a
  palette ``mask`` asset) for expressions and quality masking. A pairwise covering sample over
  dtype x georef x shape x nodata x endpoint (every pair of values of any two axes).
* /stacapi: a real `rustac serve` holding one Item per Earth-georeferenced raster of the
  one-axis-at-a-time sample (every dtype, shape, nodata value; each placeable georeferencing),
  each on its own day. Each raster meets a rotating share of the endpoints, the base raster all.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from tests import synthetic
from tests.matrix_stac_fixtures import (
    MATRIX_COLLECTION,
    STACAPI_SPECS,
    MatrixApi,
    matrix_item,
    matrix_pair_item,
    stacapi_day,
    write_item,
)
from tests.synthetic import RasterSpec, pairwise_rows, uncovered_pairs
from tests.web.test_raster_matrix import Call, _alg, _bbox, _lonlat, _polygon, _tile, assert_sane

OUTCOMES: dict[str, Counter] = {"stac": Counter(), "stacapi": Counter()}

_DATA = {"assets": "data"}
_PAIR = {"expression": "(a - b) / (a + b)"}
_MASKED = {"assets": "a", "mask_asset": "mask", "mask_values": "3"}

#: /stac endpoint -> (spec -> request); ``pair`` in the name: on the two-asset Item.
STAC_ENDPOINTS: dict[str, Callable[[RasterSpec], Call]] = {
    "info": lambda s: Call("GET", "/stac/info", _DATA),
    "assets": lambda s: Call("GET", "/stac/assets", {}),
    "tilejson": lambda s: Call("GET", "/stac/WebMercatorQuad/tilejson.json", _DATA),
    "wmts": lambda s: Call("GET", "/stac/WebMercatorQuad/WMTSCapabilities.xml", _DATA),
    "tile-raw-png": lambda s: Call("GET", f"/stac/tiles/{_tile(s)}.png", _DATA),
    "tile-raw-npy": lambda s: Call("GET", f"/stac/tiles/{_tile(s)}.npy", _DATA),
    "tile-otsu-dataset": lambda s: Call("GET", f"/stac/tiles/{_tile(s)}.png", {**_DATA, **_alg("otsu")}),
    "tile-otsu-tile-sigma": lambda s: Call(
        "GET", f"/stac/tiles/{_tile(s)}.npy", {**_DATA, **_alg("otsu", scope="tile", sigma=1.5)}
    ),
    "tile-otsu-fixed": lambda s: Call(
        "GET", f"/stac/tiles/{_tile(s)}.png", {**_DATA, **_alg("otsu", scope="fixed", threshold=70)}
    ),
    "tile-multiotsu-dataset-sigma": lambda s: Call(
        "GET", f"/stac/tiles/{_tile(s)}.npy", {**_DATA, **_alg("multiotsu", classes=3, sigma=1)}
    ),
    "tile-multiotsu-tile": lambda s: Call(
        "GET", f"/stac/tiles/{_tile(s)}.png", {**_DATA, **_alg("multiotsu", classes=3, scope="tile")}
    ),
    "tile-localotsu": lambda s: Call("GET", f"/stac/tiles/{_tile(s)}.png", {**_DATA, **_alg("localotsu", radius=4)}),
    "pair-tile-expression-otsu": lambda s: Call(
        "GET", f"/stac/tiles/{_tile(s)}.npy", {**_PAIR, **_alg("otsu", scope="tile")}
    ),
    "pair-tile-masked": lambda s: Call("GET", f"/stac/tiles/{_tile(s)}.npy", {**_MASKED, **_alg("otsu")}),
    "threshold": lambda s: Call("GET", "/stac/threshold", {**_DATA, **_alg("otsu")}),
    "pair-threshold-bbox-masked": lambda s: Call(
        "GET", "/stac/threshold", {**_MASKED, "bbox": _bbox(s), **_alg("multiotsu", classes=3)}
    ),
    "areas": lambda s: Call("POST", "/stac/areas", {**_DATA, **_alg("otsu")}, _polygon(s)),
    "vectors": lambda s: Call("GET", f"/stac/vectors/{_tile(s)}", {**_DATA, **_alg("otsu", scope="tile")}),
    "statistics": lambda s: Call("GET", "/stac/statistics", _DATA),
    "bbox": lambda s: Call("GET", f"/stac/bbox/{_bbox(s)}.png", _DATA),
    "preview": lambda s: Call("GET", "/stac/preview.png", {**_DATA, "max_size": 64}),
    "point": lambda s: Call("GET", "/stac/point/{},{}".format(*_lonlat(s)), _DATA),
}

_AXES = {
    "dtype": synthetic.DTYPES,
    "georef": synthetic.GEOREFS,
    "shape": synthetic.SHAPES,
    "nodata": synthetic.NODATAS,
}
STAC_CASES = [
    (RasterSpec(r["dtype"], r["georef"], r["shape"], r["nodata"]), r["endpoint"])
    for r in pairwise_rows({**_AXES, "endpoint": tuple(STAC_ENDPOINTS)}, seed=13)
]


@pytest.fixture(scope="module")
def stac_matrix_dir(synthetic_dir: Path) -> Iterator[Path]:
    """Rasters and Items of the /stac matrix; at the end, the outcome counts (`-s` shows them)."""
    path = synthetic_dir / "matrix"
    path.mkdir(exist_ok=True)
    yield path
    summary = {family: dict(sorted(counts.items())) for family, counts in OUTCOMES.items()}
    print(f"\nfamily matrix outcomes by status: {summary}")


def _send(client: TestClient, call: Call, params: dict) -> Response:
    if call.method == "POST":
        return client.post(call.path, params=params, json=call.body)
    return client.get(call.path, params=params)


def _stac_request(client: TestClient, directory: Path, spec: RasterSpec, endpoint: str) -> tuple[Call, Response]:
    call = STAC_ENDPOINTS[endpoint](spec)
    if endpoint.startswith("pair-"):
        item = matrix_pair_item(spec, directory)
    else:
        item = write_item(matrix_item(spec, directory), directory)
    return call, _send(client, call, {"url": str(item), **call.params})


def test_stac_sample_covers_every_pair_of_axis_values() -> None:
    rows = [{**{a: getattr(spec, a) for a in _AXES}, "endpoint": endpoint} for spec, endpoint in STAC_CASES]
    assert not uncovered_pairs({**_AXES, "endpoint": tuple(STAC_ENDPOINTS)}, rows)


@pytest.mark.parametrize(("spec", "endpoint"), STAC_CASES, ids=[f"{s.name}:{e}" for s, e in STAC_CASES])
def test_stac_item_of_any_matrix_raster_never_gets_a_server_error(
    client: TestClient, stac_matrix_dir: Path, spec: RasterSpec, endpoint: str
) -> None:
    call, response = _stac_request(client, stac_matrix_dir, spec, endpoint)
    OUTCOMES["stac"][response.status_code] += 1
    assert_sane(response, call, endpoint)
    if not spec.effective().earth_georeferenced and endpoint not in ("assets",):
        assert response.status_code >= 400, f"{endpoint} on {spec.name} (no Earth georeferencing) was served"


def test_stac_item_of_the_base_raster_is_served_by_every_endpoint(client: TestClient, stac_matrix_dir: Path) -> None:
    failing = {}
    for endpoint in STAC_ENDPOINTS:
        _, response = _stac_request(client, stac_matrix_dir, RasterSpec(), endpoint)
        if response.status_code != 200:
            failing[endpoint] = (response.status_code, response.text[:200])
    assert not failing


# ---------------------------------------------------------------------- /stacapi
_API = f"/stacapi/collections/{MATRIX_COLLECTION}"
_BASE_DAY = stacapi_day(RasterSpec())

#: /stacapi endpoint -> (spec -> request without datetime/before/after: added per raster).
STACAPI_ENDPOINTS: dict[str, Callable[[RasterSpec], Call]] = {
    "info": lambda s: Call("GET", f"{_API}/info", _DATA),
    "tilejson": lambda s: Call("GET", f"{_API}/WebMercatorQuad/tilejson.json", _DATA),
    "wmts": lambda s: Call("GET", f"{_API}/WebMercatorQuad/WMTSCapabilities.xml", _DATA),
    "tile-raw-npy": lambda s: Call("GET", f"{_API}/tiles/{_tile(s)}.npy", _DATA),
    "tile-otsu-dataset": lambda s: Call("GET", f"{_API}/tiles/{_tile(s)}.png", {**_DATA, **_alg("otsu")}),
    "tile-otsu-tile-sigma": lambda s: Call(
        "GET", f"{_API}/tiles/{_tile(s)}.npy", {**_DATA, **_alg("otsu", scope="tile", sigma=1.5)}
    ),
    "tile-multiotsu-fixed": lambda s: Call(
        "GET", f"{_API}/tiles/{_tile(s)}.png", {**_DATA, **_alg("multiotsu", scope="fixed", thresholds=[50, 90])}
    ),
    "tile-localotsu": lambda s: Call("GET", f"{_API}/tiles/{_tile(s)}.npy", {**_DATA, **_alg("localotsu", radius=4)}),
    "threshold-bbox": lambda s: Call("GET", f"{_API}/threshold", {**_DATA, "bbox": _bbox(s), **_alg("otsu")}),
    "areas": lambda s: Call("POST", f"{_API}/areas", {**_DATA, **_alg("otsu")}, _polygon(s)),
    "vectors": lambda s: Call("GET", f"{_API}/vectors/{_tile(s)}", {**_DATA, **_alg("otsu", scope="tile")}),
    "timeseries": lambda s: Call("POST", f"{_API}/timeseries", {**_DATA, **_alg("otsu")}, _polygon(s)),
    "timeseries-csv-day": lambda s: Call(
        "POST", f"{_API}/timeseries", {**_DATA, "format": "csv", "group": "day", **_alg("otsu")}, _polygon(s)
    ),
    "change-tile": lambda s: Call("GET", f"{_API}/change/tiles/{_tile(s)}.png", {**_DATA, **_alg("otsu")}),
    "change-tilejson": lambda s: Call("GET", f"{_API}/change/WebMercatorQuad/tilejson.json", {**_DATA, **_alg("otsu")}),
    "change-areas": lambda s: Call(
        "POST", f"{_API}/change/areas", {**_DATA, **_alg("otsu", scope="tile")}, _polygon(s)
    ),
}
#: endpoints per raster (rotating), so each endpoint meets several rasters; the base raster meets all.
PER_RASTER = 5
STACAPI_CASES = [
    (spec, list(STACAPI_ENDPOINTS)[(i * PER_RASTER + j) % len(STACAPI_ENDPOINTS)])
    for i, spec in enumerate(STACAPI_SPECS[1:])
    for j in range(PER_RASTER)
]


def _stacapi_params(spec: RasterSpec, endpoint: str, call: Call) -> dict:
    """Dates that pick the raster's Item; bbox (the dataset histogram on /stacapi is the search's inside it)."""
    day = stacapi_day(spec)
    call = Call(call.method, call.path, {"bbox": _bbox(spec, 0.01), **call.params}, call.body)
    if endpoint.startswith("change"):  # before: the base raster's day (same place for UTM rasters), after: this one
        return {**call.params, "before": _BASE_DAY, "after": day}
    if endpoint.startswith("timeseries"):  # this raster's day and the base raster's
        first, last = sorted([_BASE_DAY, day])
        return {**call.params, "datetime": f"{first.split('/')[0]}/{last.split('/')[1]}"}
    return {**call.params, "datetime": day}


def test_stacapi_sample_meets_every_axis_value_and_every_endpoint() -> None:
    specs = {s.effective() for s in STACAPI_SPECS}
    for axis in ("dtype", "shape", "nodata"):
        assert {getattr(s, axis) for s in STACAPI_SPECS} == set(_AXES[axis])
    assert {s.georef for s in specs} == {g for g in synthetic.GEOREFS if RasterSpec(georef=g).earth_georeferenced}
    met = Counter(endpoint for _, endpoint in STACAPI_CASES)
    assert set(met) == set(STACAPI_ENDPOINTS) and min(met.values()) >= 5


@pytest.mark.parametrize(("spec", "endpoint"), STACAPI_CASES, ids=[f"{s.name}:{e}" for s, e in STACAPI_CASES])
def test_stacapi_collection_of_matrix_rasters_never_gets_a_server_error(
    matrix_stacapi: MatrixApi, stac_matrix_dir: Path, spec: RasterSpec, endpoint: str
) -> None:
    call = STACAPI_ENDPOINTS[endpoint](spec)
    response = _send(matrix_stacapi.client, call, _stacapi_params(spec, endpoint, call))
    OUTCOMES["stacapi"][response.status_code] += 1
    assert_sane(response, call, endpoint)


@pytest.mark.parametrize("endpoint", list(STACAPI_ENDPOINTS))
def test_stacapi_base_raster_is_served_by_every_endpoint(
    matrix_stacapi: MatrixApi, stac_matrix_dir: Path, endpoint: str
) -> None:
    spec = RasterSpec()
    call = STACAPI_ENDPOINTS[endpoint](spec)
    params = _stacapi_params(spec, endpoint, call)
    response = _send(matrix_stacapi.client, call, params)
    OUTCOMES["stacapi"][response.status_code] += 1
    assert response.status_code == 200, (endpoint, response.text[:300])
    assert_sane(response, call, endpoint)
    if endpoint == "timeseries":
        rows = response.json()["rows"]
        assert len(rows) == 1 and rows[0]["items"], rows


def test_stac_items_without_earth_georeferencing_are_refused_by_stac(client: TestClient, stac_matrix_dir: Path) -> None:
    """Rasters that cannot be a STAC API Item (no footprint) still answer a 4xx via /stac."""
    for georef in ("none", "geotransform_only", "engineering", "mars"):
        item = write_item(matrix_item(RasterSpec(georef=georef), stac_matrix_dir), stac_matrix_dir)
        r = client.get("/stac/WebMercatorQuad/tilejson.json", params={"url": str(item), "assets": "data"})
        assert 400 <= r.status_code < 500, (georef, r.status_code, r.text[:300])
        assert json.loads(r.content)["detail"]


@pytest.mark.parametrize("shape", ["1x1", "1xN", "Nx1"])
def test_stac_item_one_pixel_wide_is_served_like_its_cog(client: TestClient, stac_matrix_dir: Path, shape: str) -> None:
    """rio-tiler's Item grid (rebuilt from asset bounds) rounds a 1-px side to 0; the Item's own proj: grid is used."""
    spec = RasterSpec("float32", "geographic", shape, "nan")
    item = write_item(matrix_item(spec, stac_matrix_dir), stac_matrix_dir)
    point = "/point/{},{}".format(*_lonlat(spec))
    via_stac = client.get(f"/stac{point}", params={"url": str(item), "assets": "data"})
    via_cog = client.get(f"/cog{point}", params={"url": str(spec.write(stac_matrix_dir))})
    assert via_stac.status_code == via_cog.status_code == 200, via_stac.text
    assert via_stac.json()["values"] == via_cog.json()["values"]
    threshold = client.get("/stac/threshold", params={"url": str(item), "assets": "data", **_alg("otsu")})
    assert threshold.status_code == 200 and threshold.json()["pixels"] > 0, threshold.text  # read on the TMS grid

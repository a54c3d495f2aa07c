"""Property test (hypothesis): any algorithm_params, expression or GeoJSON body on the matrix rasters, 0 x 5xx.

Also the masking / change / time parameters (#15): mask_url / mask_asset with any mask_values /
mask_bits string, before_url (/cog), before= / after= / datetime= intervals, group and format
(/stacapi, on the matrix STAC API of tests/matrix_stac_fixtures.py), any tile format.

Inputs are generated both near the valid space (known keys with odd values, band-math
grammar, GeoJSON-shaped documents) and away from it (random keys, text, garbage JSON).
Each answer must be a 200 or a 4xx with a `detail`. Examples are bounded and derandomised
(the same examples on every run) to keep CI time and results stable.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.matrix_stac_fixtures import MATRIX_COLLECTION, STACAPI_SPECS, MatrixApi, matrix_pair_item
from tests.synthetic import RasterSpec
from tests.web.test_raster_matrix import Call, _alg, _bbox, _lonlat, _polygon, _tile, assert_sane

#: A few rasters of the matrix: the base, floats with NaN nodata, one pixel, uniform, extremes, GCPs, polar.
RASTERS = [
    RasterSpec(),
    RasterSpec("float32", "utm", "square", "nan"),
    RasterSpec("uint8", "geographic", "1x1", "none"),
    RasterSpec("int16", "utm", "uniform", "outside"),
    RasterSpec("float64", "antimeridian", "extreme", "none"),
    RasterSpec("uint16", "gcps", "tall", "outside"),
    RasterSpec("float32", "polar", "inf", "nan"),
]
EXAMPLES = 150
OUTCOMES: Counter = Counter()

_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

_numbers = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 2, 3, 4, 5, 6, 64, 255, 256, 65535, -1, 1e-9, 0.5, 16.0, 16.0001]),
)
_scalars = st.one_of(st.none(), st.booleans(), _numbers, st.text(max_size=12))
_json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
_PARAM_KEYS = [
    "scope",
    "threshold",
    "thresholds",
    "nbins",
    "sigma",
    "opening",
    "closing",
    "invert",
    "classes",
    "radius",
]
_param_values = st.one_of(
    _json_values,
    st.sampled_from(["dataset", "tile", "fixed", "local", "DATASET", ""]),
    st.lists(_numbers, max_size=6),
)
algorithm_params = st.one_of(
    st.dictionaries(st.sampled_from(_PARAM_KEYS), _param_values, max_size=5).map(json.dumps),
    st.dictionaries(st.text(max_size=10), _json_values, max_size=3).map(json.dumps),
    st.text(max_size=40),
)
algorithms = st.sampled_from(["otsu", "multiotsu", "localotsu"])

_operand = st.one_of(
    st.sampled_from(["b1"] * 8 + ["b2", "b0", "B1", "x"]),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.integers(-1000, 1000).map(str),
    st.sampled_from(["nan", "inf", "1e308", "-0"]),
)
_binary = st.sampled_from(["+", "-", "*", "/", "**", ">", "<", ">=", "==", "!=", "&", "|", "%", "//"])
_functions = st.sampled_from(["sqrt", "abs", "log", "exp", "sin", "arctan", "log10", "real", "__import__", "eval"])
expressions = st.one_of(
    st.recursive(
        _operand,
        lambda inner: st.one_of(
            st.tuples(inner, _binary, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(_functions, inner).map(lambda t: f"{t[0]}({t[1]})"),
            st.tuples(inner, inner, inner).map(lambda t: f"where({t[0]}, {t[1]}, {t[2]})"),
            inner.map(lambda e: f"-{e}"),
            inner.map(lambda e: f"~{e}"),
        ),
        max_leaves=8,
    ),
    st.text(max_size=30),
)

_coordinate = st.one_of(
    st.floats(-200, 200, allow_nan=False),
    st.sampled_from([180.0, -180.0, 90.0, -90.0, 91.0, 0.0, 1e300]),
    st.integers(-181, 181),
)
_position = st.lists(_coordinate, min_size=0, max_size=3)


def _ring(points: list[list[float]], close: bool) -> list[list[float]]:
    return points + points[:1] if close and points else points


_rings = st.tuples(st.lists(_position, max_size=6), st.booleans()).map(lambda t: _ring(*t))
_geometries = st.one_of(
    st.lists(_rings, min_size=0, max_size=2).map(lambda rings: {"type": "Polygon", "coordinates": rings}),
    st.lists(st.lists(_rings, max_size=2), max_size=2).map(lambda p: {"type": "MultiPolygon", "coordinates": p}),
    st.tuples(st.sampled_from(["Point", "LineString", "GeometryCollection", "Nope"]), _json_values).map(
        lambda t: {"type": t[0], "coordinates": t[1]}
    ),
)
_features = st.builds(lambda g, p: {"type": "Feature", "properties": p, "geometry": g}, _geometries, _json_values)


def near_polygons(lon: float, lat: float) -> st.SearchStrategy[dict]:
    """Polygon Features a few pixels to a few km around (lon, lat): valid, self-intersecting, tiny, huge."""
    offsets = st.floats(-0.02, 0.02, allow_nan=False) | st.sampled_from([0.0, 1e-9, 1e-5, -1e-5, 0.5])
    points = st.lists(st.tuples(offsets, offsets), min_size=3, max_size=7)
    ring = points.map(lambda ps: [[lon + dx, lat + dy] for dx, dy in ps]).map(lambda r: r + r[:1])
    return st.builds(
        lambda r, holes: {
            "type": "Feature",
            "properties": {},
            "geometry": {"type": "Polygon", "coordinates": [r, *holes]},
        },
        ring,
        st.lists(ring, max_size=1),
    )


geojson_bodies = st.one_of(
    _features,
    st.lists(_features, max_size=3).map(lambda fs: {"type": "FeatureCollection", "features": fs}),
    _geometries,
    _json_values,
)


@pytest.fixture(scope="module")
def property_rasters(synthetic_dir: Path) -> Iterator[list[tuple[RasterSpec, Path]]]:
    """The rasters; at the end, the outcome counts by input kind and status (`-s` shows them)."""
    directory = synthetic_dir / "matrix"
    directory.mkdir(exist_ok=True)
    yield [(spec, spec.write(directory)) for spec in RASTERS]
    print(f"\nproperty test outcomes: {dict(sorted(OUTCOMES.items()))}")


def _check(client: TestClient, call: Call, what: str) -> None:
    if call.method == "POST":
        response = client.post(
            call.path, params=call.params, content=json.dumps(call.body), headers={"content-type": "application/json"}
        )
    else:
        response = client.get(call.path, params=call.params)
    OUTCOMES[(what, response.status_code)] += 1
    assert_sane(response, call, what)


@_SETTINGS
@given(raster=st.integers(0, len(RASTERS) - 1), algorithm=algorithms, params=algorithm_params)
def test_any_algorithm_params_on_tiles_threshold_and_vectors_is_never_a_server_error(
    client: TestClient, property_rasters: list, raster: int, algorithm: str, params: str
) -> None:
    spec, path = property_rasters[raster]
    query = {"url": str(path), "algorithm": algorithm, "algorithm_params": params}
    for where in (f"/cog/tiles/{_tile(spec)}.png", "/cog/threshold", f"/cog/vectors/{_tile(spec)}"):
        _check(client, Call("GET", where, query), "algorithm_params")


@_SETTINGS
@given(raster=st.integers(0, len(RASTERS) - 1), expression=expressions, segment=st.booleans())
def test_any_expression_on_tiles_statistics_and_point_is_never_a_server_error(
    client: TestClient, property_rasters: list, raster: int, expression: str, segment: bool
) -> None:
    spec, path = property_rasters[raster]
    query = {"url": str(path), "expression": expression}
    if segment:
        query |= {"algorithm": "otsu", "algorithm_params": '{"scope": "tile"}'}
    _check(client, Call("GET", f"/cog/tiles/{_tile(spec)}.npy", query), "expression")
    _check(client, Call("GET", "/cog/statistics", {"url": str(path), "expression": expression}), "expression")
    point = "/cog/point/{},{}".format(*_lonlat(spec))
    _check(client, Call("GET", point, {"url": str(path), "expression": expression}), "expression")


@_SETTINGS
@given(raster=st.integers(0, len(RASTERS) - 1), data=st.data(), algorithm=algorithms)
def test_any_geojson_body_on_areas_statistics_and_feature_is_never_a_server_error(
    client: TestClient, property_rasters: list, raster: int, data: st.DataObject, algorithm: str
) -> None:
    spec, path = property_rasters[raster]
    body = data.draw(near_polygons(*_lonlat(spec)) | geojson_bodies)
    areas = {"url": str(path), "algorithm": algorithm, "algorithm_params": '{"scope": "tile"}'}
    _check(client, Call("POST", "/cog/areas", areas, body), "geojson")
    _check(client, Call("POST", "/cog/statistics", {"url": str(path)}, body), "geojson")
    _check(client, Call("POST", "/cog/feature.png", {"url": str(path), "max_size": 64}, body), "geojson")


# ---------------------------------------------------------------------- masking, change and time (#15)
EXAMPLES_15 = 60
_SETTINGS_15 = settings(_SETTINGS, max_examples=EXAMPLES_15)
_int_list = st.lists(st.integers(-(2**70), 2**70) | st.sampled_from([0, 1, 3, 8, 62, 63, 64, -1]), max_size=5)
#: mask_values / mask_bits: comma lists of integers (in and out of range), odd separators, text.
mask_numbers = st.one_of(
    st.sampled_from(["3", "1,2", "2", "3,8,9,10", "0", "1"]),
    _int_list.map(lambda xs: ",".join(map(str, xs))),
    st.lists(st.sampled_from(["3", " 8", "9 ", "", "1.5", "nan", "-0", "0x3", "1e3", "３"]), max_size=4).map(",".join),
    st.text(max_size=15),
)
_SOURCE_CHOICES = ["palette", "base", "raster", "missing", "outside", "text", "url"]
_formats = st.sampled_from(["png", "npy", "tif", "webp", "jpeg", "jpg", "jp2", "pngraw", "csv", "json", "PNG", ""])
_format_param = st.one_of(
    st.sampled_from(["json", "csv"]), st.sampled_from(["CSV", "xml", "", "geojson"]), st.text(max_size=6)
)
_groups = st.one_of(
    st.sampled_from(["item", "day"]), st.sampled_from(["month", "DAY", "", "items"]), st.text(max_size=6)
)
_instants = st.sampled_from(
    ["2021-01-01T00:00:00Z", "2021-01-05", "2021-02-30", "2021-01-01T25:00:00Z", "..", "", "1900-01-01", "9999-12-31"]
)
#: before= / after= / datetime=: instants, open and closed intervals, reversed intervals, text.
_days = [f"2021-01-{d:02d}" for d in range(1, 12)]
intervals = st.one_of(
    st.tuples(st.sampled_from(_days), st.sampled_from(_days)).map(lambda t: f"{t[0]}T00:00:00Z/{t[1]}T23:59:59Z"),
    _instants,
    st.tuples(_instants, _instants).map("/".join),
    st.sampled_from(["2021-01-01/2021-01-03", "2021-01-10/2021-01-01", "../2021-01-02", "2021-01-02/..", "a/b/c"]),
    st.text(max_size=20),
)


def _source(choice: str, spec_path: Path, directory: Path, text: str) -> str:
    return {
        "raster": str(spec_path),
        "palette": str(RasterSpec(shape="palette").write(directory)),
        "base": str(RasterSpec().write(directory)),
        "missing": str(directory / "missing.tif"),
        "outside": "/etc/hostname",
        "text": text,
        "url": "http://127.0.0.1:9/x.tif",
    }[choice]


@_SETTINGS_15
@given(
    raster=st.integers(0, len(RASTERS) - 1),
    mask=st.sampled_from(_SOURCE_CHOICES),
    before=st.sampled_from(_SOURCE_CHOICES),
    text=st.text(max_size=20),
    numbers=mask_numbers,
    bits=st.booleans(),
    fmt=_formats,
)
def test_any_mask_url_mask_values_and_before_url_on_cog_is_never_a_server_error(
    client: TestClient,
    property_rasters: list,
    raster: int,
    mask: str,
    before: str,
    text: str,
    numbers: str,
    bits: bool,
    fmt: str,
) -> None:
    spec, path = property_rasters[raster]
    directory = path.parent
    masking = {"mask_url": _source(mask, path, directory, text), ("mask_bits" if bits else "mask_values"): numbers}
    query = {"url": str(path), **masking, "algorithm": "otsu", "algorithm_params": '{"scope": "tile"}'}
    _check(client, Call("GET", f"/cog/tiles/{_tile(spec)}.{fmt}", query), "mask")
    _check(client, Call("GET", "/cog/threshold", query), "mask")
    change = {**query, "before_url": _source(before, path, directory, text)}
    _check(client, Call("GET", f"/cog/change/tiles/{_tile(spec)}.{fmt}", change), "before_url")
    _check(client, Call("POST", "/cog/change/areas", change, _polygon(spec)), "before_url")


@_SETTINGS_15
@given(
    raster=st.integers(0, len(RASTERS) - 1),
    asset=st.one_of(st.sampled_from(["mask", "a", "b", "data", "MASK", ""]), st.text(max_size=8)),
    numbers=mask_numbers,
    bits=st.booleans(),
)
def test_any_mask_asset_and_mask_values_on_stac_is_never_a_server_error(
    client: TestClient, property_rasters: list, raster: int, asset: str, numbers: str, bits: bool
) -> None:
    spec, path = property_rasters[raster]
    item = matrix_pair_item(spec, path.parent)
    query = {"url": str(item), "assets": "a", "mask_asset": asset, ("mask_bits" if bits else "mask_values"): numbers}
    _check(client, Call("GET", f"/stac/tiles/{_tile(spec)}.npy", {**query, **_alg("otsu")}), "mask_asset")
    _check(client, Call("GET", "/stac/threshold", {**query, **_alg("otsu")}), "mask_asset")


@_SETTINGS_15
@given(
    raster=st.integers(0, len(STACAPI_SPECS) - 1),
    before=intervals,
    after=intervals,
    when=intervals,
    group=_groups,
    fmt=_format_param,
    tile_format=_formats,
)
def test_any_dates_group_and_format_on_stacapi_is_never_a_server_error(
    matrix_stacapi: MatrixApi, raster: int, before: str, after: str, when: str, group: str, fmt: str, tile_format: str
) -> None:
    spec = STACAPI_SPECS[raster]
    api = f"/stacapi/collections/{MATRIX_COLLECTION}"
    base = {"assets": "data", "bbox": _bbox(spec, 0.01), **_alg("otsu")}
    change = {**base, "before": before, "after": after}
    client = matrix_stacapi.client
    _check(client, Call("GET", f"{api}/change/tiles/{_tile(spec)}.{tile_format}", change), "before/after")
    _check(client, Call("POST", f"{api}/change/areas", change, _polygon(spec)), "before/after")
    series = {**base, "datetime": when, "group": group, "format": fmt}
    _check(client, Call("POST", f"{api}/timeseries", series, _polygon(spec)), "timeseries")

"""Property test (hypothesis): any algorithm_params, expression or GeoJSON body on the matrix rasters, 0 x 5xx.

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

from tests.synthetic import RasterSpec
from tests.test_raster_matrix import Call, _lonlat, _tile, assert_sane

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

"""`GET /cog/vectors/...`: class polygons of a tile, seamless across tiles, on real rasters."""

from __future__ import annotations

import json

import morecantile
import numpy as np
import pytest
import shapely
from pyproj import Transformer
from rasterio.features import rasterize
from rasterio.transform import from_bounds
from shapely.geometry import shape

from tests.conftest import B08, NAIP, load_npy

TMS = morecantile.tms.get("WebMercatorQuad")
TO_MERCATOR = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
NAIP_PARENT = TMS.tile(-99.15, 47.02, 14)

CASES = {
    "otsu_invert": (NAIP, 4, "otsu", {"invert": True}),
    "multiotsu_sigma": (NAIP, 4, "multiotsu", {"classes": 3, "sigma": 1.5}),
    "s2_nodata_edge": (B08, 1, "otsu", {"opening": 1}),
}


def _query(path, bidx, algorithm, params, **extra) -> dict:
    return {"url": str(path), "bidx": bidx, "algorithm": algorithm, "algorithm_params": json.dumps(params), **extra}


def _vectors(client, z, x, y, query) -> dict:
    r = client.get(f"/cog/vectors/WebMercatorQuad/{z}/{x}/{y}", params=query)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/geo+json"
    return r.json()


def _by_class(fc: dict) -> dict[int, list]:
    out: dict[int, list] = {}
    for f in fc["features"]:
        out.setdefault(f["properties"]["class"], []).append(shape(f["geometry"]))
    return out


def _s2_edge_tile(z: int) -> morecantile.Tile:
    """A tile across the western nodata wedge of the Sentinel-2 scene."""
    return TMS.tile(23.55, 32.0, z)


def _parent(case: str) -> tuple[int, int, int]:
    if case == "s2_nodata_edge":
        t = _s2_edge_tile(9)
    else:
        t = NAIP_PARENT
    return t.z, t.x, t.y


@pytest.mark.parametrize("case", list(CASES))
def test_children_polygons_cover_the_parent_polygons(client, case) -> None:
    path, bidx, algorithm, params = CASES[case]
    z, x, y = _parent(case)
    parent = _by_class(_vectors(client, z, x, y, _query(path, bidx, algorithm, params, tilesize=512)))
    children: dict[int, list] = {}
    for dx in (0, 1):
        for dy in (0, 1):
            fc = _vectors(client, z + 1, 2 * x + dx, 2 * y + dy, _query(path, bidx, algorithm, params, tilesize=256))
            for k, geoms in _by_class(fc).items():
                children.setdefault(k, []).extend(geoms)
    assert set(parent) == set(children) and len(parent) >= 2
    w, s, e, n = TMS.bounds(x, y, z)
    pixel_area = (e - w) * (n - s) / 512**2
    border_pixels = 4 * 512  # the pixels along the children's shared edges
    for k in parent:
        a, b = shapely.union_all(parent[k]), shapely.union_all(children[k])
        assert a.area > 0
        assert a.symmetric_difference(b).area <= pixel_area * border_pixels
        # in practice the two are the same polygons up to floating point noise
        assert a.symmetric_difference(b).area < 1e-6 * pixel_area


def _mercator(geoms: list) -> list:
    return [shapely.transform(g, lambda xy: np.column_stack(TO_MERCATOR.transform(xy[:, 0], xy[:, 1]))) for g in geoms]


def test_polygons_rasterize_back_to_the_class_tile(client) -> None:
    z, x, y = NAIP_PARENT.z, NAIP_PARENT.x, NAIP_PARENT.y
    query = _query(NAIP, 4, "multiotsu", {"classes": 3})
    npy = client.get(f"/cog/tiles/WebMercatorQuad/{z}/{x}/{y}.npy", params=query)
    classes, valid = load_npy(npy.content)
    r = client.get(f"/cog/vectors/WebMercatorQuad/{z}/{x}/{y}", params=query)
    assert r.headers["x-otsu-thresholds"] == npy.headers["x-otsu-thresholds"]
    fc = r.json()
    transform = from_bounds(*TMS.xy_bounds(x, y, z), 256, 256)
    shapes_ = [(g, k + 1) for k, gs in _by_class(fc).items() for g in _mercator(gs)]
    burned = rasterize(shapes_, out_shape=(256, 256), transform=transform, fill=0, dtype="uint8")
    assert valid.all()
    assert (burned == classes[0] + 1).all()


def _border_values(fc: dict, axis: int) -> np.ndarray:
    coords = [shapely.get_coordinates(shape(f["geometry"])) for f in fc["features"]]
    return np.concatenate(coords)[:, axis]


@pytest.mark.parametrize("simplify", [0, 2])
def test_adjacent_tiles_meet_exactly_on_the_shared_border(client, simplify) -> None:
    z, x, y = NAIP_PARENT.z + 1, 2 * NAIP_PARENT.x, 2 * NAIP_PARENT.y
    query = _query(NAIP, 4, "otsu", {"invert": True, "sigma": 1}, simplify=simplify)
    a, right, below = (_vectors(client, z, *xy, query) for xy in [(x, y), (x + 1, y), (x, y + 1)])
    for other, axis, a_edge, b_edge in ((right, 0, np.max, np.min), (below, 1, np.min, np.max)):
        # the shared border has one coordinate value, bit for bit, on both sides
        assert a_edge(_border_values(a, axis)) == b_edge(_border_values(other, axis))
        ua = shapely.union_all([shape(f["geometry"]) for f in a["features"]])
        ub = shapely.union_all([shape(f["geometry"]) for f in other["features"]])
        assert ua.intersection(ub).area == 0  # no overlap
        shared = ua.intersection(ub)  # the border line, with no gap along it
        w, s, e, n = ua.bounds
        assert shared.length == pytest.approx((n - s) if axis == 0 else (e - w), rel=1e-12)


def test_simplify_keeps_tile_border_vertices_and_the_coverage(client) -> None:
    z, x, y = NAIP_PARENT.z + 1, 2 * NAIP_PARENT.x, 2 * NAIP_PARENT.y
    query = _query(NAIP, 4, "multiotsu", {"classes": 3})
    exact = _vectors(client, z, x, y, query)
    simple = _vectors(client, z, x, y, {**query, "simplify": 2})
    g_exact = [shape(f["geometry"]) for f in exact["features"]]
    g_simple = [shape(f["geometry"]) for f in simple["features"]]
    assert len(g_simple) == len(g_exact)
    assert sum(shapely.get_num_coordinates(g_simple)) < 0.7 * sum(shapely.get_num_coordinates(g_exact))
    # same covered area, no overlaps between the simplified polygons
    total = shapely.union_all(g_exact).area
    assert shapely.union_all(g_simple).area == pytest.approx(total, rel=1e-12)
    assert sum(g.area for g in g_simple) == pytest.approx(total, rel=1e-9)
    assert all(g.is_valid for g in g_simple)
    # vertices on the four tile borders are untouched
    for axis, edge in ((0, np.min), (0, np.max), (1, np.min), (1, np.max)):
        e = edge(_border_values(exact, axis))
        on_border = {tuple(p) for g in g_exact for p in shapely.get_coordinates(g) if p[axis] == e}
        on_border_s = {tuple(p) for g in g_simple for p in shapely.get_coordinates(g) if p[axis] == e}
        assert on_border == on_border_s and len(on_border) > 2


def test_classes_filter_keeps_only_those_classes(client) -> None:
    x, y, z = NAIP_PARENT
    q = _query(NAIP, 4, "multiotsu", {"classes": 3})
    everything = _vectors(client, z, x, y, q)
    only = _vectors(client, z, x, y, {**q, "classes": "0,2"})
    assert {f["properties"]["class"] for f in only["features"]} == {0, 2}
    assert len(only["features"]) == sum(f["properties"]["class"] != 1 for f in everything["features"])
    assert len(only["thresholds"]) == 2


def test_geometries_are_lonlat_polygons_inside_the_tile(client) -> None:
    x, y, z = NAIP_PARENT
    fc = _vectors(client, z, x, y, _query(NAIP, 4, "otsu", {"invert": True}))
    assert fc["type"] == "FeatureCollection" and fc["features"]
    w, s, e, n = TMS.bounds(x, y, z)
    for f in fc["features"]:
        assert f["type"] == "Feature" and f["geometry"]["type"] == "Polygon"
        g = shape(f["geometry"])
        assert g.is_valid and g.exterior.is_ccw
        minx, miny, maxx, maxy = g.bounds
        assert w - 1e-9 <= minx and maxx <= e + 1e-9 and s - 1e-9 <= miny and maxy <= n + 1e-9


def test_default_algorithm_is_dataset_otsu(client) -> None:
    x, y, z = NAIP_PARENT
    fc = _vectors(client, z, x, y, {"url": str(NAIP), "bidx": 4})
    threshold = client.get("/cog/threshold", params={"url": str(NAIP), "bidx": 4}).json()["thresholds"]
    assert fc["thresholds"] == threshold and {f["properties"]["class"] for f in fc["features"]} == {0, 1}


@pytest.mark.parametrize(
    ("extra", "status", "needle"),
    [
        ({"classes": "2"}, 400, "classes 0..1"),
        ({"classes": "water"}, 400, "comma-separated"),
        ({"simplify": -1}, 422, "simplify"),
        ({"tilesize": 4096}, 400, "MAX_TILESIZE"),
        ({"algorithm": "hillshade", "algorithm_params": "{}"}, 400, "segmentation"),
    ],
)
def test_bad_vector_parameters_are_4xx_with_message(client, extra, status, needle) -> None:
    x, y, z = NAIP_PARENT
    r = client.get(f"/cog/vectors/WebMercatorQuad/{z}/{x}/{y}", params={**_query(NAIP, 4, "otsu", {}), **extra})
    assert r.status_code == status, r.text
    assert needle in json.dumps(r.json()["detail"])


def test_tile_outside_the_source_is_404(client) -> None:
    r = client.get("/cog/vectors/WebMercatorQuad/14/0/0", params=_query(NAIP, 4, "otsu", {}))
    assert r.status_code == 404


def test_too_many_polygons_is_400_naming_the_limit(settings) -> None:
    from fastapi.testclient import TestClient

    from titiler_otsu import create_app

    small = TestClient(create_app(settings.model_copy(update={"max_vector_features": 5})))
    x, y, z = NAIP_PARENT
    r = small.get(f"/cog/vectors/WebMercatorQuad/{z}/{x}/{y}", params=_query(NAIP, 4, "otsu", {}))
    assert r.status_code == 400 and "MAX_VECTOR_FEATURES" in r.json()["detail"]

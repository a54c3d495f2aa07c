"""`POST /cog/areas`: class pixels and true ground areas in GeoJSON polygons, on real rasters.

The reference values are computed independently with rasterio/numpy on the source's own
grid: `geometry_mask` (pixel centres) of the polygon projected to the source CRS, and the
threshold applied to the band. GeoJSON edges are straight lines in lon/lat (RFC 7946), so
the reference densifies them finely (1e-5 degree, about 1 m) before projecting.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import shapely
from fastapi.testclient import TestClient
from pyproj import Geod, Proj
from rasterio.features import geometry_mask
from rasterio.transform import Affine
from rasterio.warp import transform_geom
from shapely.geometry import mapping, shape
from skimage.filters import threshold_otsu

from tests.conftest import B08, NAIP
from titiler_otsu import create_app
from titiler_otsu.core.filters import masked_gaussian

GEOD = Geod(ellps="WGS84")

#: Around the largest lake of the NAIP scene (water and land).
LAKE = {
    "type": "Polygon",
    "coordinates": [
        [
            [-99.150, 47.020],
            [-99.140, 47.015],
            [-99.128, 47.022],
            [-99.132, 47.035],
            [-99.146, 47.034],
            [-99.150, 47.020],
        ]
    ],
}


def _feature(geometry: dict, fid: str | int | None = None) -> dict:
    f = {"type": "Feature", "properties": {}, "geometry": geometry}
    if fid is not None:
        f["id"] = fid
    return f


def _box(w: float, s: float, e: float, n: float) -> dict:
    return mapping(shapely.box(w, s, e, n))


def _params(path=NAIP, bidx=4, algorithm="otsu", **algorithm_params) -> dict:
    q: dict = {"url": str(path), "bidx": bidx}
    if algorithm:
        q["algorithm"] = algorithm
        q["algorithm_params"] = json.dumps(algorithm_params)
    return q


def _native_mask(path, geometry: dict) -> tuple[np.ndarray, np.ndarray, rasterio.Affine, str]:
    """(band, in-polygon mask by pixel centre) on the source's grid, computed with rasterio."""
    with rasterio.open(path) as ds:
        band = ds.read(4 if ds.count == 4 else 1)
        dense = shapely.segmentize(shape(geometry), 1e-5)
        projected = transform_geom("EPSG:4326", ds.crs, mapping(dense))
        inside = geometry_mask([projected], band.shape, ds.transform, invert=True)
        return band, inside, ds.transform, ds.crs.to_string()


def _post(client, geojson: dict, **params):
    return client.post("/cog/areas", params=_params(**params), json=geojson)


@pytest.fixture(scope="module")
def naip_threshold() -> float:
    with rasterio.open(NAIP) as ds:
        return float(threshold_otsu(ds.read(4)))


def _results(body: dict) -> list[dict]:
    """Per-feature results: the `properties` of the answered FeatureCollection."""
    assert body["type"] == "FeatureCollection"
    return [f["properties"] for f in body["features"]]


def test_water_pixels_and_area_match_independent_rasterio_count(client, naip_threshold) -> None:
    r = _post(client, _feature(LAKE), scope="fixed", threshold=naip_threshold, invert=True)
    assert r.status_code == 200, r.text
    (res,) = _results(r.json())
    band, inside, _, _ = _native_mask(NAIP, LAKE)
    water = int((inside & (band <= naip_threshold)).sum())
    classes = {c["class"]: c for c in res["classes"]}
    assert classes[1]["pixels"] == water > 10_000
    assert classes[0]["pixels"] + classes[1]["pixels"] == int(inside.sum()) == res["pixels"]
    assert res["nodata_pixels"] == 0 and res["decimation"] == 1 and res["overview"] is False
    # area = pixels x true pixel area: 25 m2 in UTM, divided by the UTM areal scale factor here
    centroid = shape(LAKE).centroid
    k2 = Proj("EPSG:26914").get_factors(centroid.x, centroid.y).areal_scale
    # (k2 varies by < 1e-6 over the polygon)
    assert classes[1]["area_m2"] == pytest.approx(water * 25.0 / k2, rel=1e-6)
    assert abs(classes[1]["area_m2"] / (water * 25.0) - 1) < 1e-3  # UTM distortion is below 0.1 %
    assert res["resolution_m"] == pytest.approx(5.0, rel=1e-3)
    assert classes[1]["fraction"] == pytest.approx(water / inside.sum())


def test_dataset_scope_uses_the_dataset_threshold(client, naip_threshold) -> None:
    fixed = _post(client, _feature(LAKE), scope="fixed", threshold=naip_threshold, invert=True).json()
    dataset = _post(client, _feature(LAKE), invert=True).json()
    assert dataset["scope"] == "dataset" and _results(dataset)[0]["thresholds"] == [naip_threshold]
    assert _results(dataset)[0]["classes"] == _results(fixed)[0]["classes"]


def test_no_algorithm_defaults_to_dataset_otsu(client, naip_threshold) -> None:
    r = _post(client, _feature(LAKE), algorithm=None)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["algorithm"] == "otsu" and _results(body)[0]["thresholds"] == [naip_threshold]


def test_sigma_halo_gives_whole_image_classes_inside_the_polygon(client) -> None:
    band, inside, _, _ = _native_mask(NAIP, LAKE)
    smoothed = masked_gaussian(band, np.ones_like(band, bool), 2.0)
    expected = int((inside & (smoothed <= 90)).sum())
    r = _post(client, _feature(LAKE), scope="fixed", threshold=90, sigma=2, invert=True)
    classes = {c["class"]: c["pixels"] for c in _results(r.json())[0]["classes"]}
    assert classes[1] == expected


def test_multiotsu_reports_every_class_and_fractions_sum_to_one(client) -> None:
    r = _post(client, _feature(LAKE), algorithm="multiotsu", classes=4)
    (res,) = _results(r.json())
    assert [c["class"] for c in res["classes"]] == [0, 1, 2, 3] and len(res["thresholds"]) == 3
    assert sum(c["fraction"] for c in res["classes"]) == pytest.approx(1.0)
    assert sum(c["area_m2"] for c in res["classes"]) == pytest.approx(res["area_m2"])
    assert res["area_m2"] == pytest.approx(res["polygon_area_m2"], rel=2e-3)


def test_feature_collection_gives_one_entry_per_feature_in_order(client) -> None:
    small = _box(-99.16, 47.01, -99.155, 47.014)
    fc = {"type": "FeatureCollection", "features": [_feature(LAKE, "lake"), _feature(small, 7)]}
    r = _post(client, fc, invert=True)
    feats = _results(r.json())
    assert [(f["index"], f["id"]) for f in feats] == [(0, "lake"), (1, 7)]
    assert feats[0]["pixels"] > feats[1]["pixels"] > 0


def test_answer_is_the_input_feature_collection_with_results_in_properties(client) -> None:
    small = _box(-99.16, 47.01, -99.155, 47.014)
    lake = {**_feature(LAKE, "lake"), "properties": {"name": "Lake", "classes": "input value"}}
    r = _post(client, {"type": "FeatureCollection", "features": [lake, _feature(small, 7)]}, invert=True)
    body = r.json()
    assert body["type"] == "FeatureCollection" and body["algorithm"] == "otsu" and body["scope"] == "dataset"
    first, second = body["features"]
    assert first["type"] == "Feature" and first["id"] == "lake" and second["id"] == 7
    assert first["geometry"] == json.loads(json.dumps(LAKE)) and second["geometry"] == json.loads(json.dumps(small))
    # the input's own properties are kept; results (same keys as before) win over clashing names
    assert first["properties"]["name"] == "Lake" and isinstance(first["properties"]["classes"], list)
    expected = {"index", "id", "classes", "thresholds", "pixels", "nodata_pixels", "area_m2", "polygon_area_m2",
                "coverage", "outside_source", "resolution_m", "pixel_area_m2", "decimation", "overview", "repaired",
                "masked_pixels", "masked_area_m2", "notes"}  # fmt: skip
    assert expected <= set(second["properties"]) and second["properties"]["masked_pixels"] == 0
    one = _post(client, _feature(small, 7), invert=True).json()  # a single Feature: a collection of one
    assert one["type"] == "FeatureCollection" and len(one["features"]) == 1
    assert one["features"][0]["properties"]["classes"] == second["properties"]["classes"]


def test_geometry_outside_source_is_zero_pixels_with_flag(client) -> None:
    r = _post(client, _feature(_box(-30.0, 40.0, -29.9, 40.1)), invert=True)
    assert r.status_code == 200, r.text
    (res,) = _results(r.json())
    assert res["outside_source"] is True and res["pixels"] == 0 and res["coverage"] == 0
    assert [c["pixels"] for c in res["classes"]] == [0, 0] and res["area_m2"] == 0
    assert any("does not overlap" in n for n in res["notes"])


def test_world_sized_polygon_counts_the_whole_source_and_its_true_area(client) -> None:
    r = _post(client, _feature(_box(-180, -85, 180, 85)), scope="fixed", threshold=91, invert=True)
    assert r.status_code == 200, r.text
    (res,) = _results(r.json())
    with rasterio.open(NAIP) as ds:
        assert res["pixels"] == ds.width * ds.height and res["decimation"] == 1
    r_authalic = 6371007.2  # band area on the authalic sphere (latitudes differ by < 0.2 %)
    band = 2 * np.pi * r_authalic**2 * 2 * np.sin(np.radians(85))
    assert res["polygon_area_m2"] == pytest.approx(band, rel=1e-2)
    assert (
        res["coverage"] == pytest.approx(res["area_m2"] / res["polygon_area_m2"], rel=1e-2) and res["coverage"] < 1e-7
    )


def test_polygon_partly_outside_counts_the_inside_part_and_reports_coverage(client) -> None:
    with rasterio.open(NAIP) as ds:
        from rasterio.warp import transform_bounds

        w, s, e, n = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    geom = _box(e - 0.01, 47.02, e + 0.01, 47.025)
    r = _post(client, _feature(geom), scope="fixed", threshold=91, invert=True)
    (res,) = _results(r.json())
    _, inside, _, _ = _native_mask(NAIP, geom)
    assert res["outside_source"] is False and res["pixels"] == int(inside.sum()) > 0
    assert 0.3 < res["coverage"] < 0.7 and any("outside the source" in n for n in res["notes"])


def test_nodata_pixels_in_polygon_are_counted_apart(client) -> None:
    """Sentinel-2 B08: the western wedge is nodata (0)."""
    with rasterio.open(B08) as ds:
        from rasterio.warp import transform_bounds

        w, s, e, n = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    geom = _box(w + 0.05, s + 0.3, w + 0.35, s + 0.45)
    band, inside, _, _ = _native_mask(B08, geom)
    r = _post(client, _feature(geom), path=B08, bidx=1, scope="fixed", threshold=3049)
    (res,) = _results(r.json())
    nodata = int((inside & (band == 0)).sum())
    assert nodata > 0 and res["nodata_pixels"] == nodata
    assert res["pixels"] == int((inside & (band != 0)).sum())
    assert res["classes"][1]["pixels"] == int((inside & (band > 3049)).sum())


def test_self_intersecting_polygon_is_repaired(client, naip_threshold) -> None:
    x0, y0, x1, y1 = -99.155, 47.015, -99.135, 47.030
    xc, yc = (x0 + x1) / 2, (y0 + y1) / 2
    bowtie = {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y1], [x1, y0], [x0, y1], [x0, y0]]]}
    r = _post(client, _feature(bowtie), scope="fixed", threshold=naip_threshold, invert=True)
    assert r.status_code == 200, r.text
    (res,) = _results(r.json())
    assert res["repaired"] is True and any("Self-intersection" in n for n in res["notes"])
    two_triangles = {
        "type": "MultiPolygon",
        "coordinates": [
            [[[xc, yc], [x1, y1], [x1, y0], [xc, yc]]],
            [[[xc, yc], [x0, y1], [x0, y0], [xc, yc]]],
        ],
    }
    band, inside, _, _ = _native_mask(NAIP, two_triangles)
    assert res["pixels"] == int(inside.sum()) > 0
    assert res["classes"][1]["pixels"] == int((inside & (band <= naip_threshold)).sum())


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}}, ""),
        (_feature({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}), "same start and end"),
        (_feature({"type": "Point", "coordinates": [-99.14, 47.02]}), "MultiPolygon"),
        ({"type": "Feature", "properties": {}}, "geometry"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}, "type"),
        ({"type": "FeatureCollection"}, "features"),
    ],
    ids=["short_ring", "unclosed_ring", "point", "no_geometry", "bare_geometry", "no_features"],
)
def test_invalid_geojson_is_422_with_message(client, body, needle) -> None:
    r = client.post("/cog/areas", params=_params(), json=body)
    assert r.status_code == 422, r.text
    text = json.dumps(r.json()["detail"])
    assert "msg" in text and needle.lower() in text.lower()


def test_feature_with_null_geometry_is_400(client) -> None:
    r = client.post("/cog/areas", params=_params(), json={"type": "Feature", "properties": {}, "geometry": None})
    assert r.status_code == 400 and "no geometry" in r.json()["detail"]


def test_body_that_is_not_json_is_422(client) -> None:
    r = client.post("/cog/areas", params=_params(), content=b"not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_too_many_features_is_400_naming_the_limit(client) -> None:
    fc = {"type": "FeatureCollection", "features": [_feature(LAKE)] * 101}
    r = _post(client, fc)
    assert r.status_code == 400 and "MAX_AOI_FEATURES" in r.json()["detail"] and "100" in r.json()["detail"]


def test_non_segmentation_algorithm_and_multiband_input_are_400(client) -> None:
    r = client.post("/cog/areas", params={"url": str(NAIP), "bidx": 1, "algorithm": "hillshade"}, json=_feature(LAKE))
    assert r.status_code == 400 and "segmentation" in r.json()["detail"]
    r = client.post("/cog/areas", params={"url": str(NAIP), "algorithm": "otsu"}, json=_feature(LAKE))
    assert r.status_code == 400 and "bidx" in r.json()["detail"]


def test_halo_beyond_the_limit_is_400(client) -> None:
    r = _post(client, _feature(LAKE), sigma=16, opening=16, closing=16)
    assert r.status_code == 400 and "MAX_HALO" in r.json()["detail"]


def test_aoi_beyond_pixel_limit_reads_decimated_overview_and_says_so(settings, client) -> None:
    native = _post(client, _feature(LAKE), scope="fixed", threshold=91, invert=True).json()["features"][0]["properties"]
    small = TestClient(create_app(settings.model_copy(update={"max_aoi_pixels": 20_000})))
    r = small.post("/cog/areas", params=_params(scope="fixed", threshold=91, invert=True), json=_feature(LAKE))
    assert r.status_code == 200, r.text
    (res,) = _results(r.json())
    d = res["decimation"]
    assert res["overview"] is True and d >= 3 and any("MAX_AOI_PIXELS" in n for n in res["notes"])
    assert res["resolution_m"] == pytest.approx(5.0 * d, rel=1e-3)
    assert res["pixels"] * d * d == pytest.approx(native["pixels"], rel=0.05)
    assert res["classes"][1]["area_m2"] == pytest.approx(native["classes"][1]["area_m2"], rel=0.05)


def _lonlat_rectangle_area(w: float, s: float, e: float, n: float) -> float:
    """Ellipsoidal area of a lon/lat rectangle (edges along meridians and parallels)."""
    return abs(GEOD.geometry_area_perimeter(shapely.segmentize(shapely.box(w, s, e, n), 1e-4))[0])


def test_geographic_source_gives_geodesic_areas(client, make_cog) -> None:
    res_deg = 0.001
    path = make_cog(
        np.full((400, 400), 7, np.uint8), crs="EPSG:4326", transform=Affine(res_deg, 0, 10.0, 0, -res_deg, 60.0)
    )
    box = (10.05, 59.75, 10.25, 59.95)  # on pixel edges: 200 x 200 pixels
    r = client.post("/cog/areas", params=_params(path, 1, scope="fixed", threshold=5), json=_feature(_box(*box)))
    (res,) = _results(r.json())
    assert res["pixels"] == 200 * 200 and res["classes"][1]["pixels"] == 200 * 200
    assert res["area_m2"] == pytest.approx(_lonlat_rectangle_area(*box), rel=1e-7)


def test_web_mercator_source_area_is_not_inflated(client, make_cog) -> None:
    import morecantile

    tms = morecantile.tms.get("WebMercatorQuad")
    x0, y0 = tms.xy(10.0, 60.0)
    px = 100.0
    x0, y0 = round(x0 / px) * px, round(y0 / px) * px
    path = make_cog(np.full((300, 300), 7, np.uint8), crs="EPSG:3857", transform=Affine(px, 0, x0, 0, -px, y0))
    w, n = tms.lnglat(x0 + 50 * px, y0 - 50 * px)
    e, s = tms.lnglat(x0 + 250 * px, y0 - 250 * px)
    r = client.post("/cog/areas", params=_params(path, 1, scope="fixed", threshold=5), json=_feature(_box(w, s, e, n)))
    (res,) = _results(r.json())
    assert res["pixels"] == 200 * 200
    truth = _lonlat_rectangle_area(w, s, e, n)
    assert res["area_m2"] == pytest.approx(truth, rel=1e-7)
    assert res["area_m2"] < 0.3 * res["pixels"] * px * px  # Web-Mercator area would be ~4x at 60 N

"""`/stac`: one STAC Item (the real Sentinel-2 item with local assets), multi-asset, grid-exact."""

from __future__ import annotations

import json
from pathlib import Path

import morecantile
import numpy as np
import pytest
from skimage.filters import threshold_otsu

from tests.conftest import S2_DIR, load_npy
from tests.stac_fixtures import NDWI, StacItems, seam_differences

TMS = morecantile.tms.get("WebMercatorQuad")
CENTRE = (23.75, 32.0)


def _tile_url(prefix: str, z: int, lon: float, lat: float, ext: str = ".npy") -> str:
    t = TMS.tile(lon, lat, z)
    return f"{prefix}/tiles/WebMercatorQuad/{z}/{t.x}/{t.y}{ext}"


def _item(stac_items: StacItems, **params: object) -> dict:
    q: dict = {"url": str(stac_items.item1)}
    for k, v in params.items():
        q[k] = json.dumps(v) if k == "algorithm_params" else v
    return q


def test_ndwi_expression_with_asset_names_equals_band_math_on_the_cog_tiles(stac_client, stac_items) -> None:
    url = _tile_url("/stac", 10, *CENTRE)
    ndwi, valid = load_npy(stac_client.get(url, params=_item(stac_items, expression=NDWI)).content)
    cog = url.replace("/stac/", "/cog/")
    b03, v03 = load_npy(stac_client.get(cog, params={"url": str(S2_DIR / "B03.tif")}).content)
    b08, v08 = load_npy(stac_client.get(cog, params={"url": str(S2_DIR / "B08.tif")}).content)
    b03, b08 = b03[0].astype("float64"), b08[0].astype("float64")
    expected = (b03 - b08) / (b03 + b08)
    both = v03 & v08
    assert ndwi.shape == (1, 256, 256)
    assert (valid == both).all() and both.mean() > 0.5
    np.testing.assert_allclose(ndwi[0][both], expected[both], rtol=1e-6)


def test_b1_b2_expression_with_assets_equals_asset_name_expression(stac_client, stac_items) -> None:
    url = _tile_url("/stac", 10, *CENTRE)
    by_name = stac_client.get(url, params=_item(stac_items, expression=NDWI)).content
    by_band = stac_client.get(
        url, params={**_item(stac_items, expression="(b1-b2)/(b1+b2)"), "assets": ["B03", "B08"]}
    ).content
    np.testing.assert_array_equal(load_npy(by_name)[0], load_npy(by_band)[0])


def test_10m_and_20m_assets_land_on_the_same_tile_grid(stac_client, stac_items) -> None:
    url = _tile_url("/stac", 11, *CENTRE)
    both, valid = load_npy(
        stac_client.get(url, params={"url": str(stac_items.item1), "assets": ["B08", "SCL"]}).content
    )
    assert both.shape == (2, 256, 256)
    cog = url.replace("/stac/", "/cog/")
    for band, name in enumerate(("B08", "SCL")):
        alone, alone_valid = load_npy(stac_client.get(cog, params={"url": str(S2_DIR / f"{name}.tif")}).content)
        np.testing.assert_array_equal(both[band][alone_valid], alone[0][alone_valid])
    # SCL is 200 m: at this zoom each SCL pixel spans about two output pixels, B08 about one.
    assert len(np.unique(both[1][valid])) > 3


def test_dataset_threshold_is_the_otsu_of_the_whole_item_ndwi(stac_client, stac_items) -> None:
    r = stac_client.get("/stac/threshold", params=_item(stac_items, expression=NDWI, algorithm="otsu"))
    assert r.status_code == 200, r.text
    body = r.json()
    (t,) = body["thresholds"]
    assert -0.13 < t < -0.05  # README: NDWI Otsu about -0.09
    assert body["pixels"] > 300_000
    preview = load_npy(
        stac_client.get("/stac/preview.npy", params={**_item(stac_items, expression=NDWI), "max_size": 1024}).content
    )
    values = preview[0][0][preview[1]]
    assert abs(threshold_otsu(values, nbins=256) - t) < 0.01


def test_dataset_scope_gives_every_tile_the_same_threshold_header(stac_client, stac_items) -> None:
    params = _item(stac_items, expression=NDWI, algorithm="otsu", algorithm_params={"invert": True})
    headers = {
        stac_client.get(_tile_url("/stac", z, lon, lat, ".png"), params=params).headers["x-otsu-thresholds"]
        for z, lon, lat in [(9, *CENTRE), (10, 23.9, 31.8), (11, 24.1, 32.3)]
    }
    assert len(headers) == 1
    (t,) = headers
    assert t == f"{stac_client.get('/stac/threshold', params=params).json()['thresholds'][0]:.10g}"


def test_dataset_histogram_mixes_10m_and_20m_assets(stac_client, stac_items) -> None:
    r = stac_client.get(
        "/stac/threshold", params=_item(stac_items, expression="where(SCL == 6, B08, 0)", algorithm="otsu")
    )
    assert r.status_code == 200, r.text
    assert r.json()["pixels"] > 100_000


def test_otsu_overlay_png_marks_water_from_ndwi(stac_client, stac_items) -> None:
    params = _item(stac_items, expression=NDWI, algorithm="otsu")
    url = _tile_url("/stac", 10, 23.9, 32.3, ".png")
    r = stac_client.get(url, params=params)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    classes, valid = load_npy(stac_client.get(url.replace(".png", ".npy"), params=params).content)
    water = (classes[0] == 1) & valid
    assert 0.05 < water.mean() < 0.95


@pytest.mark.parametrize(
    "algo",
    [
        None,
        {"algorithm": "otsu", "algorithm_params": {"sigma": 2, "opening": 2}},
        {"algorithm": "multiotsu", "algorithm_params": {"classes": 3, "sigma": 1, "closing": 1}},
        {"algorithm": "otsu", "algorithm_params": {"scope": "fixed", "threshold": -0.1, "sigma": 1.5, "opening": 1}},
        {"algorithm": "localotsu", "algorithm_params": {"radius": 15, "sigma": 1}},
    ],
    ids=["raw", "otsu_sigma_opening", "multiotsu_sigma_closing", "fixed_sigma_opening", "localotsu"],
)
@pytest.mark.parametrize("where", [(9, *CENTRE), (10, 23.35, 32.2), (10, 24.25, 31.6)], ids=["z9", "z10w", "z10se"])
def test_512_tile_equals_its_four_256_children_on_ndwi(stac_client, stac_items, algo, where) -> None:
    z, lon, lat = where
    t = TMS.tile(lon, lat, z)
    params = _item(stac_items, expression=NDWI, **(algo or {}))
    assert seam_differences(stac_client, "/stac", z, t.x, t.y, params) == (0, 0)


def test_512_tile_equals_its_four_256_children_on_mixed_resolution_assets(stac_client, stac_items) -> None:
    t = TMS.tile(*CENTRE, 10)
    params = {"url": str(stac_items.item1), "assets": ["B08", "SCL"]}
    assert seam_differences(stac_client, "/stac", 10, t.x, t.y, params) == (0, 0)


def test_tilejson_wmts_and_info_describe_the_item(stac_client, stac_items) -> None:
    tj = stac_client.get("/stac/WebMercatorQuad/tilejson.json", params=_item(stac_items, expression=NDWI))
    assert tj.status_code == 200, tj.text
    w, s, e, n = tj.json()["bounds"]
    assert 23.0 < w < 23.2 and 24.2 < e < 24.4 and 31.4 < s < 31.6 and 32.4 < n < 32.6
    wmts = stac_client.get("/stac/WebMercatorQuad/WMTSCapabilities.xml", params=_item(stac_items, expression=NDWI))
    assert wmts.status_code == 200 and "TileMatrixSetLink" in wmts.text
    assets = stac_client.get("/stac/assets", params={"url": str(stac_items.item1)}).json()
    assert assets == ["B02", "B03", "B04", "B08", "SCL"]
    info = stac_client.get("/stac/info", params={"url": str(stac_items.item1), "assets": "SCL"}).json()
    assert info["SCL"]["width"] == 549


# ---------------------------------------------------------------------- errors
def test_unknown_asset_is_400_listing_the_available_assets(stac_client, stac_items) -> None:
    url = _tile_url("/stac", 10, *CENTRE)
    for params in ({"assets": "B99"}, {"expression": "(B03-B99)/(B03+B99)"}):
        r = stac_client.get(url, params={"url": str(stac_items.item1), **params})
        assert r.status_code == 400, r.text
        assert "B99" in r.json()["detail"] and "B02, B03, B04, B08, SCL" in r.json()["detail"]


def test_no_assets_and_no_expression_is_400_saying_how_to_pick(stac_client, stac_items) -> None:
    r = stac_client.get(_tile_url("/stac", 10, *CENTRE), params={"url": str(stac_items.item1)})
    assert r.status_code == 400 and "assets=" in r.json()["detail"]


def test_segmenting_two_assets_is_400(stac_client, stac_items) -> None:
    r = stac_client.get(
        _tile_url("/stac", 10, *CENTRE),
        params={"url": str(stac_items.item1), "assets": ["B03", "B08"], "algorithm": "otsu"},
    )
    assert r.status_code == 400 and "expression" in r.json()["detail"]


def test_missing_not_json_and_not_stac_items_are_readable_errors(stac_client, stac_items) -> None:
    d = stac_items.directory
    (d / "not_json.json").write_text("<html>not json</html>")
    (d / "not_item.json").write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    cases = {"missing.json": 404, "not_json.json": 400, "not_item.json": 400}
    for name, status in cases.items():
        r = stac_client.get("/stac/info", params={"url": str(d / name), "assets": "B08"})
        assert r.status_code == status, (name, r.text)
        assert "Expecting value" not in r.json()["detail"]
        assert name in r.json()["detail"] or "STAC" in r.json()["detail"]


def test_remote_item_url_404_and_not_json_are_readable_errors(stac_items, http_files) -> None:
    from fastapi.testclient import TestClient

    from tests.stac_fixtures import stac_settings
    from titiler_otsu import create_app

    settings = stac_settings(stac_items, None)
    settings.allowed_sources = [*(settings.allowed_sources or []), http_files + "/"]
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    (stac_items.directory / "page.json").write_text("<html>oops</html>")
    r = client.get("/stac/info", params={"url": f"{http_files}/nope.json", "assets": "B08"})
    assert r.status_code == 404 and "not found" in r.json()["detail"]
    r = client.get("/stac/info", params={"url": f"{http_files}/page.json", "assets": "B08"})
    assert r.status_code == 400 and "not JSON" in r.json()["detail"]
    # The real item over HTTP works (its file:// asset hrefs are in the allow-list).
    r = client.get(_tile_url("/stac", 10, *CENTRE), params={"url": f"{http_files}/item1.json", "expression": NDWI})
    assert r.status_code == 200, r.text


def test_asset_href_outside_the_allow_list_is_403(stac_client, stac_items, tmp_path: Path) -> None:
    item = json.loads(stac_items.item1.read_text())
    item["assets"]["B08"]["href"] = (tmp_path / "elsewhere" / "B08.tif").as_uri()
    path = stac_items.directory / "outside.json"
    path.write_text(json.dumps(item))
    r = stac_client.get(_tile_url("/stac", 10, *CENTRE), params={"url": str(path), "expression": NDWI})
    assert r.status_code == 403 and "not allowed" in r.json()["detail"]
    # the item itself is allowed, and its allowed assets still read
    r = stac_client.get(_tile_url("/stac", 10, *CENTRE), params={"url": str(path), "assets": "B03"})
    assert r.status_code == 200


def test_item_outside_the_allow_list_is_403(stac_client, tmp_path: Path) -> None:
    path = tmp_path / "item.json"
    path.write_text((S2_DIR / "item.json").read_text())
    r = stac_client.get("/stac/assets", params={"url": str(path)})
    assert r.status_code == 403


def test_areas_and_vectors_work_on_an_item(stac_client, stac_items) -> None:
    poly = {
        "type": "Feature",
        "properties": {},
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[23.8, 31.9], [23.95, 31.9], [23.95, 32.05], [23.8, 32.05], [23.8, 31.9]]],
        },
    }
    params = _item(stac_items, expression=NDWI, algorithm="otsu")
    r = stac_client.post("/stac/areas", params=params, json=poly)
    assert r.status_code == 200, r.text
    (feature,) = [f["properties"] for f in r.json()["features"]]
    assert sum(c["fraction"] for c in feature["classes"]) == pytest.approx(1.0)
    assert feature["thresholds"] == stac_client.get("/stac/threshold", params=params).json()["thresholds"]
    t = TMS.tile(*CENTRE, 10)
    v = stac_client.get(f"/stac/vectors/WebMercatorQuad/10/{t.x}/{t.y}", params=params)
    assert v.status_code == 200 and v.json()["type"] == "FeatureCollection" and v.json()["features"]

"""`/stacapi`: a real STAC API (rustac, two items) searched per tile and mosaicked grid-exactly."""

from __future__ import annotations

import json
import threading
import time

import morecantile
import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.conftest import NAIP, load_npy
from tests.stac_fixtures import (
    COLLECTION,
    ITEM1_ID,
    ITEM2_ID,
    NDWI,
    TEST_MIN_ZOOM,
    StacItems,
    npy_tile,
    seam_differences,
    stac_settings,
)
from titiler_otsu import create_app

TMS = morecantile.tms.get("WebMercatorQuad")
PREFIX = f"/stacapi/collections/{COLLECTION}"
#: lon/lat on item1's east edge (item2 continues east) and on item2's west edge (inside item1).
ITEM1_EAST_EDGE = (24.279, 32.0)
ITEM2_WEST_EDGE = (24.015, 31.8)
BBOX = "23.6,31.6,24.5,32.4"


def _tile(z: int, lon: float, lat: float, ext: str = ".npy") -> tuple[str, morecantile.Tile]:
    t = TMS.tile(lon, lat, z)
    return f"{PREFIX}/tiles/WebMercatorQuad/{z}/{t.x}/{t.y}{ext}", t


def _q(**params: object) -> dict:
    return {k: json.dumps(v) if k == "algorithm_params" else v for k, v in params.items()}


def _item_tile(client: TestClient, stac_items: StacItems, item: str, t: morecantile.Tile, params: dict):
    path = stac_items.item1 if item == ITEM1_ID else stac_items.item2
    url = f"/stac/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.npy"
    got = npy_tile(client, url, {"url": str(path), **params})
    if got is None:
        return np.zeros((1, 256, 256)), np.zeros((256, 256), bool)
    return got


def _first_valid(layers: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    data = np.zeros_like(layers[0][0], dtype="float64")
    valid = np.zeros_like(layers[0][1])
    for values, ok in layers:
        take = ok & ~valid
        data[0][take] = values[0][take]
        valid |= ok
    return data, valid


# ---------------------------------------------------------------------- mosaics
def test_tile_straddling_two_items_takes_the_newest_valid_pixel_first(stac_client, stac_items) -> None:
    url, t = _tile(10, *ITEM2_WEST_EDGE)
    mosaic, valid = npy_tile(stac_client, url, {"expression": NDWI})
    newer = _item_tile(stac_client, stac_items, ITEM2_ID, t, {"expression": NDWI})
    older = _item_tile(stac_client, stac_items, ITEM1_ID, t, {"expression": NDWI})
    assert newer[1].any() and older[1].any() and (older[1] & ~newer[1]).any()
    expected, expected_valid = _first_valid([newer, older])
    assert (valid == expected_valid).all()
    np.testing.assert_array_equal(mosaic[0][valid], expected[0][valid])


def test_sortby_oldest_first_puts_the_other_item_on_top(stac_client, stac_items) -> None:
    url, t = _tile(10, *ITEM2_WEST_EDGE)
    newest, _ = npy_tile(stac_client, url, {"assets": "B08"})
    oldest, valid = npy_tile(stac_client, url, {"assets": "B08", "sortby": "+properties.datetime"})
    item1 = _item_tile(stac_client, stac_items, ITEM1_ID, t, {"assets": "B08"})
    item2 = _item_tile(stac_client, stac_items, ITEM2_ID, t, {"assets": "B08"})
    expected, _ = _first_valid([item1, item2])
    np.testing.assert_array_equal(oldest[0][valid], expected[0][valid])
    assert (newest[0][valid] != oldest[0][valid]).mean() > 0.2


def test_pixel_selection_highest_keeps_the_larger_value(stac_client, stac_items) -> None:
    url, t = _tile(10, *ITEM2_WEST_EDGE)
    highest, valid = npy_tile(stac_client, url, {"assets": "B08", "pixel_selection": "highest"})
    a = _item_tile(stac_client, stac_items, ITEM1_ID, t, {"assets": "B08"})
    b = _item_tile(stac_client, stac_items, ITEM2_ID, t, {"assets": "B08"})
    both = a[1] & b[1]
    assert both.mean() > 0.2
    np.testing.assert_array_equal(highest[0][both], np.maximum(a[0][0], b[0][0])[both])


def test_datetime_selects_items(stac_client, stac_items) -> None:
    url, t = _tile(10, *ITEM1_EAST_EDGE)
    only1, valid = npy_tile(stac_client, url, {"expression": NDWI, "datetime": "2020-03-01/2020-03-20"})
    item1 = _item_tile(stac_client, stac_items, ITEM1_ID, t, {"expression": NDWI})
    assert (valid == item1[1]).all()
    np.testing.assert_array_equal(only1[0][valid], item1[0][0][valid])
    r = stac_client.get(url, params={"expression": NDWI, "datetime": "2021-01-01/2021-12-31"})
    assert r.status_code == 404 and "datetime=2021" in r.json()["detail"]


def test_filter_is_sent_to_the_api_and_bad_cql2_json_is_400(stac_client) -> None:
    url, _ = _tile(10, *ITEM1_EAST_EDGE)
    r = stac_client.get(url, params={"expression": NDWI, "filter": '{"op": "<", "args": ['})
    assert r.status_code == 400 and "CQL2-JSON" in r.json()["detail"]
    # rustac's in-memory backend answers no item to any CQL2 filter: the filter reached it.
    cql2 = json.dumps({"op": "<", "args": [{"property": "eo:cloud_cover"}, 50]})
    r = stac_client.get(url, params={"expression": NDWI, "filter": cql2})
    assert r.status_code == 404 and "filter=" in r.json()["detail"]


# ---------------------------------------------------------------------- seams
@pytest.mark.parametrize(
    "algo",
    [
        {},
        {"algorithm": "otsu", "algorithm_params": {"sigma": 2, "opening": 2}, "bbox": BBOX},
        {"algorithm": "otsu", "algorithm_params": {"scope": "fixed", "threshold": -0.1, "sigma": 1.5, "closing": 2}},
        {"algorithm": "localotsu", "algorithm_params": {"radius": 15, "sigma": 1}, "bbox": BBOX},
    ],
    ids=["raw", "otsu_dataset_sigma_opening", "otsu_fixed_sigma_closing", "localotsu"],
)
@pytest.mark.parametrize(
    "where", [(9, *ITEM1_EAST_EDGE), (10, *ITEM1_EAST_EDGE), (10, *ITEM2_WEST_EDGE)], ids=["z9e", "z10e", "z10w"]
)
def test_512_tile_equals_its_four_256_children_across_items(stac_client, algo, where) -> None:
    z, lon, lat = where
    t = TMS.tile(lon, lat, z)
    assert seam_differences(stac_client, PREFIX, z, t.x, t.y, _q(expression=NDWI, **algo)) == (0, 0)


def test_halo_reaching_into_an_item_the_tile_core_misses_is_read_from_it(stac_client, stac_items) -> None:
    """z14/9297/6652 lies just east of item1; only its 16-px halo reaches item1's last pixels.

    With item1 first in the mosaic order, those halo pixels must come from item1 (as they do
    in the 512-px parent tile that contains them), not from item2 underneath.
    """
    child = "/stac/tiles/WebMercatorQuad/14/9297/6652.npy"
    assert stac_client.get(child, params={"url": str(stac_items.item1), "expression": NDWI}).status_code == 404
    raw, valid = npy_tile(stac_client, f"{PREFIX}/tiles/WebMercatorQuad/14/9297/6652.npy", {"expression": NDWI})
    # a threshold in the middle of the local values, so that smoothing differences flip classes
    threshold = float(np.median(raw[0][valid]))
    params = {"scope": "fixed", "threshold": threshold, "sigma": 3, "opening": 2}
    with_halo = stac_client.get(
        child, params=_q(url=str(stac_items.item1), expression=NDWI, algorithm="otsu", algorithm_params=params)
    )
    assert with_halo.status_code == 200 and not load_npy(with_halo.content)[1].any()
    query = _q(expression=NDWI, sortby="+properties.datetime", algorithm="otsu", algorithm_params=params)
    assert seam_differences(stac_client, PREFIX, 13, 4648, 3326, query) == (0, 0)


# ---------------------------------------------------------------------- dataset scope
def test_dataset_scope_without_bbox_is_400(stac_client) -> None:
    url, _ = _tile(10, *ITEM1_EAST_EDGE, ".png")
    r = stac_client.get(url, params={"expression": NDWI, "algorithm": "otsu"})
    assert r.status_code == 400 and "bbox" in r.json()["detail"]


def test_dataset_scope_with_bbox_is_one_threshold_for_every_tile(stac_client) -> None:
    params = _q(expression=NDWI, algorithm="otsu", bbox=BBOX)
    headers = {
        stac_client.get(_tile(z, lon, lat, ".png")[0], params=params).headers["x-otsu-thresholds"]
        for z, lon, lat in [(9, *ITEM1_EAST_EDGE), (10, *ITEM2_WEST_EDGE), (11, 24.4, 32.1)]
    }
    assert len(headers) == 1
    threshold = stac_client.get(f"{PREFIX}/threshold", params=params)
    assert threshold.status_code == 200, threshold.text
    body = threshold.json()
    assert headers == {f"{body['thresholds'][0]:.10g}"}
    assert -0.2 < body["thresholds"][0] < 0.0 and body["pixels"] > 100_000


def test_threshold_without_bbox_is_400_and_tile_scope_needs_no_bbox(stac_client) -> None:
    r = stac_client.get(f"{PREFIX}/threshold", params={"expression": NDWI, "algorithm": "otsu"})
    assert r.status_code == 400 and "bbox" in r.json()["detail"]
    url, _ = _tile(10, *ITEM1_EAST_EDGE, ".png")
    r = stac_client.get(url, params=_q(expression=NDWI, algorithm="otsu", algorithm_params={"scope": "tile"}))
    assert r.status_code == 200 and r.headers["x-otsu-thresholds"]


# ---------------------------------------------------------------------- search cache, extent, zooms
def test_neighbouring_tiles_share_cached_searches(stac_client) -> None:
    searcher = stac_client.app.state.stac_searcher
    searcher.clear()
    before_searches, before_requests = searcher.searches, searcher.requests
    t = TMS.tile(*ITEM1_EAST_EDGE, 10)
    for dx in range(-2, 2):
        for dy in range(-2, 2):
            r = stac_client.get(
                f"{PREFIX}/tiles/WebMercatorQuad/10/{t.x + dx}/{t.y + dy}.npy", params={"expression": NDWI}
            )
            assert r.status_code in (200, 404)
    searches = searcher.searches - before_searches
    assert 1 <= searches <= 4
    # + landing page (pystac-client reads it twice) and collection, once per cache TTL
    assert searcher.requests - before_requests <= searches + 3


def test_tilejson_bounds_and_zooms_come_from_the_collection(stac_client) -> None:
    r = stac_client.get(f"{PREFIX}/WebMercatorQuad/tilejson.json", params={"expression": NDWI})
    assert r.status_code == 200, r.text
    body = r.json()
    w, s, e, n = body["bounds"]
    assert 23.2 < w < 23.4 and 24.5 < e < 24.7 and 31.4 < s < 31.6 and 32.4 < n < 32.6
    assert body["minzoom"] == TEST_MIN_ZOOM
    assert f"{PREFIX}/tiles/WebMercatorQuad/" in body["tiles"][0] and "expression=" in body["tiles"][0]
    r = stac_client.get(f"{PREFIX}/WebMercatorQuad/tilejson.json", params={"bbox": BBOX})
    assert r.json()["bounds"] == pytest.approx([23.6, 31.6, 24.5, 32.4])
    wmts = stac_client.get(f"{PREFIX}/WebMercatorQuad/WMTSCapabilities.xml", params={"expression": NDWI})
    assert wmts.status_code == 200 and "TileMatrixSetLink" in wmts.text
    info = stac_client.get(f"{PREFIX}/info").json()
    assert info["collection"] == COLLECTION and info["minzoom"] == TEST_MIN_ZOOM


def test_tile_below_min_zoom_is_400(stac_client) -> None:
    url, _ = _tile(TEST_MIN_ZOOM - 1, *ITEM1_EAST_EDGE)
    r = stac_client.get(url, params={"expression": NDWI})
    assert r.status_code == 400 and "STAC_MIN_ZOOM" in r.json()["detail"]


def test_tile_outside_the_collection_extent_is_404(stac_client) -> None:
    url, _ = _tile(10, 10.0, 45.0)
    assert stac_client.get(url, params={"expression": NDWI}).status_code == 404


def test_unknown_collection_is_404(stac_client) -> None:
    url, _ = _tile(10, *ITEM1_EAST_EDGE)
    r = stac_client.get(url.replace(COLLECTION, "no-such-collection"), params={"expression": NDWI})
    assert r.status_code == 404 and "no-such-collection" in r.json()["detail"]


def test_unknown_asset_is_400_listing_assets(stac_client) -> None:
    url, _ = _tile(10, *ITEM1_EAST_EDGE)
    r = stac_client.get(url, params={"expression": "B03/B99"})
    assert r.status_code == 400 and "B02, B03, B04, B08, SCL" in r.json()["detail"]


# ---------------------------------------------------------------------- API URL and failures
def test_api_parameter_is_refused_unless_allowed(stac_client, rustac_api) -> None:
    url, _ = _tile(10, *ITEM1_EAST_EDGE)
    r = stac_client.get(url, params={"expression": NDWI, "api": rustac_api})
    assert r.status_code == 403 and "STAC_API_ALLOW_USER_URL" in r.json()["detail"]


def test_no_configured_api_is_400(stac_items) -> None:
    client = TestClient(create_app(stac_settings(stac_items, None)), raise_server_exceptions=False)
    url, _ = _tile(10, *ITEM1_EAST_EDGE)
    r = client.get(url, params={"expression": NDWI})
    assert r.status_code == 400 and "STAC_API_URL" in r.json()["detail"]


@pytest.fixture(scope="module")
def open_client(stac_items) -> TestClient:
    """App that lets requests name their API (api=), with a 2 s STAC timeout and no default API."""
    settings = stac_settings(stac_items, None, stac_api_allow_user_url=True, stac_timeout=2.0)
    return TestClient(create_app(settings), raise_server_exceptions=False)


def test_api_parameter_works_when_allowed(open_client, rustac_api) -> None:
    url, _ = _tile(10, *ITEM1_EAST_EDGE)
    r = open_client.get(url, params={"expression": NDWI, "api": rustac_api})
    assert r.status_code == 200, r.text


def test_api_down_is_502_and_other_sources_still_serve(open_client, closed_port_url, rustac_api) -> None:
    url, _ = _tile(10, *ITEM1_EAST_EDGE)
    r = open_client.get(url, params={"expression": NDWI, "api": closed_port_url})
    assert r.status_code == 502 and "Could not reach the STAC API" in r.json()["detail"]
    assert open_client.get(url, params={"expression": NDWI, "api": rustac_api}).status_code == 200
    cog = open_client.get("/cog/tiles/WebMercatorQuad/14/3679/5761.npy", params={"url": str(NAIP), "bidx": 4})
    assert cog.status_code == 200


def test_api_that_never_answers_is_504_within_the_timeout_while_others_serve(open_client, hanging_api_url) -> None:
    url, _ = _tile(10, *ITEM1_EAST_EDGE)
    cog_url = "/cog/tiles/WebMercatorQuad/14/3679/5761.npy"
    assert open_client.get(cog_url, params={"url": str(NAIP), "bidx": 4}).status_code == 200  # warm
    result: dict = {}

    def hanging_request() -> None:
        start = time.monotonic()
        result["response"] = open_client.get(url, params={"expression": NDWI, "api": hanging_api_url})
        result["elapsed"] = time.monotonic() - start

    thread = threading.Thread(target=hanging_request)
    thread.start()
    time.sleep(0.2)
    cog = open_client.get(cog_url, params={"url": str(NAIP), "bidx": 4})
    served_while_hanging = thread.is_alive()
    thread.join(timeout=30)
    assert cog.status_code == 200 and load_npy(cog.content)[0].shape == (1, 256, 256)
    assert served_while_hanging
    r = result["response"]
    assert r.status_code == 504 and "did not answer in time" in r.json()["detail"]
    assert result["elapsed"] < 2.0 + 4.0  # one 2 s timeout (plus slack), not a hang


def test_areas_and_vectors_work_across_two_items(stac_client) -> None:
    lon = ITEM1_EAST_EDGE[0]
    ring = [[lon - 0.1, 31.9], [lon + 0.1, 31.9], [lon + 0.1, 32.0], [lon - 0.1, 32.0], [lon - 0.1, 31.9]]
    poly = {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}
    params = _q(expression=NDWI, algorithm="otsu", algorithm_params={"scope": "fixed", "threshold": -0.1})
    r = stac_client.post(f"{PREFIX}/areas", params=params, json=poly)
    assert r.status_code == 200, r.text
    (feature,) = [f["properties"] for f in r.json()["features"]]
    assert feature["coverage"] > 0.99 and feature["nodata_pixels"] == 0
    assert feature["area_m2"] == pytest.approx(feature["polygon_area_m2"], rel=0.01)
    url, _ = _tile(10, *ITEM1_EAST_EDGE)
    vectors = url.replace("/tiles/", "/vectors/").removesuffix(".npy")
    v = stac_client.get(vectors, params=params)
    assert v.status_code == 200 and v.json()["features"]

"""Change between two dates on the multi-date stack (real `rustac serve`, real files)."""

from __future__ import annotations

import io
import json

import morecantile
import numpy as np
import pytest
from PIL import Image

from tests.conftest import load_npy
from tests.stac_fixtures import seam_differences
from tests.stac_time_fixtures import (
    AOI_RECT,
    CLOUD_A,
    INTERVALS,
    ITEM_IDS,
    POND,
    TIME_COLLECTION,
    TimeStack,
    _box,
    expected_area_m2,
)
from titiler_otsu.web.change import CHANGE_COLORMAP

TMS = morecantile.tms.get("WebMercatorQuad")
PREFIX = f"/stacapi/collections/{TIME_COLLECTION}"
SCL_MASK = {"mask_asset": "SCL", "mask_values": "3,8,9,10"}
WATER = {"algorithm": "otsu", "algorithm_params": json.dumps({"invert": True})}
#: 2020-04-17 -> 2020-06-16: the grown lake shrinks (lost), a pond appears (gained), clouds at both dates.
BEFORE, AFTER = 1, 3


def _bbox(stack: TimeStack) -> str:
    return ",".join(map(str, stack.bbox()))


def _change(stack: TimeStack, before: int = BEFORE, after: int = AFTER, **params: object) -> dict:
    return {"before": INTERVALS[before], "after": INTERVALS[after], "assets": "B08", "bbox": _bbox(stack), **params}


def _tile(stack: TimeStack, z: int = 10) -> morecantile.Tile:
    lon, lat = stack.pixel_box(CLOUD_A)[0]
    return TMS.tile(lon, lat, z)


def _npy(client, url: str, params: dict) -> tuple[np.ndarray, np.ndarray, str]:
    r = client.get(url, params=params)
    assert r.status_code == 200, r.text
    data, valid = load_npy(r.content)
    return data[0], valid, r.headers.get("X-Otsu-Thresholds", "")


@pytest.mark.parametrize(
    "extra",
    [{}, {"sigma": 1.5, "opening": 1}, {"scope": "fixed", "threshold": 2000}],
    ids=["dataset", "filters", "fixed"],
)
def test_change_classes_equal_the_per_date_class_tiles_pixel_by_pixel(time_client, time_stack, extra) -> None:
    t = _tile(time_stack)
    algorithm = {"algorithm": "otsu", "algorithm_params": json.dumps({"invert": True, **extra}), **SCL_MASK}
    change, valid, header = _npy(
        time_client, f"{PREFIX}/change/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.npy", _change(time_stack, **algorithm)
    )
    dates = []
    for i in (BEFORE, AFTER):
        params = {"datetime": INTERVALS[i], "assets": "B08", "bbox": _bbox(time_stack), **algorithm}
        dates.append(_npy(time_client, f"{PREFIX}/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.npy", params))
    (b, bvalid, bheader), (a, avalid, aheader) = dates
    both = bvalid & avalid
    assert np.array_equal(valid, both) and (~bvalid).any() and (~avalid).any()  # masked at either date: nodata
    expected = np.select([(b == 1) & (a == 1), (b == 0) & (a == 1), (b == 1) & (a == 0)], [1, 2, 3], 0)
    assert np.array_equal(change[both], expected[both])
    assert {1, 2, 3} <= set(np.unique(change[both]).tolist())
    assert header == f"{bheader};{aheader}"  # each date's own thresholds (shared when fixed)
    if extra.get("scope") == "fixed":
        assert bheader == aheader == "2000"


def test_gained_and_lost_areas_match_the_exact_values(time_client, time_stack) -> None:
    """/stacapi (TMS grid at maxzoom): within 0.5 %; /cog (the files' own grid): exact pixel counts."""
    aoi = _box(AOI_RECT)
    truth = time_stack.change(BEFORE, AFTER)
    polygon = {"type": "FeatureCollection", "features": [time_stack.polygon()]}
    r = time_client.post(f"{PREFIX}/change/areas", params=_change(time_stack, **WATER, **SCL_MASK), json=polygon)
    assert r.status_code == 200, r.text
    res = r.json()["features"][0]["properties"]
    classes = {c["class"]: c for c in res["classes"]}
    for k in (1, 2, 3):
        assert classes[k]["area_m2"] == pytest.approx(expected_area_m2((truth == k) & aoi), rel=0.005), k
    assert res["gained_area_m2"] == classes[2]["area_m2"] and res["lost_area_m2"] == classes[3]["area_m2"]
    assert res["masked_area_m2"] == pytest.approx(expected_area_m2((truth == 255) & aoi), rel=0.005)
    assert res["thresholds"]["before"] and res["thresholds"]["after"]

    folder = {i: time_stack.directory / ITEM_IDS[i] for i in (BEFORE, AFTER)}
    params = {
        "url": str(folder[AFTER] / "B08.tif"),
        "before_url": str(folder[BEFORE] / "B08.tif"),
        "mask_url": str(folder[AFTER] / "SCL.tif"),
        "before_mask_url": str(folder[BEFORE] / "SCL.tif"),
        "mask_values": "3,8,9,10",
        **WATER,
    }
    r = time_client.post("/cog/change/areas", params=params, json=polygon)
    assert r.status_code == 200, r.text
    res = r.json()["features"][0]["properties"]
    for c in res["classes"]:
        assert c["pixels"] == int(((truth == c["class"]) & aoi).sum()), c
        assert c["area_m2"] == pytest.approx(expected_area_m2((truth == c["class"]) & aoi), rel=1e-6)
    assert res["masked_pixels"] == int(((truth == 255) & aoi).sum()) == res["nodata_pixels"]
    # the binary transition matrix is the same count: 0->0, 1->1, 0->1 gained, 1->0 lost
    t = {(x["before"], x["after"]): x["pixels"] for x in res["transitions"]}
    counts = {c["class"]: c["pixels"] for c in res["classes"]}
    assert (t[0, 0], t[1, 1], t[0, 1], t[1, 0]) == (counts[0], counts[1], counts[2], counts[3])


def test_without_the_mask_clouds_and_shadows_are_false_change(time_client, time_stack) -> None:
    """2020-04-17 -> 2020-05-17: unmasked, the shadow looks like new water; masked, nothing is gained."""
    polygon = time_stack.polygon()
    masked = time_client.post(
        f"{PREFIX}/change/areas", params=_change(time_stack, 1, 2, **WATER, **SCL_MASK), json=polygon
    )
    raw = time_client.post(f"{PREFIX}/change/areas", params=_change(time_stack, 1, 2, **WATER), json=polygon)
    m, u = masked.json()["features"][0]["properties"], raw.json()["features"][0]["properties"]
    aoi = _box(AOI_RECT)
    assert m["gained_area_m2"] == pytest.approx(0.0, abs=1e4)
    expected_raw_gain = expected_area_m2((time_stack.change(1, 2, masked=False) == 2) & aoi)
    assert expected_raw_gain > 1e7 and u["gained_area_m2"] == pytest.approx(expected_raw_gain, rel=0.005)


@pytest.mark.parametrize("extra", [{}, {"sigma": 1.5, "opening": 1}], ids=["pointwise", "sigma_opening"])
def test_change_tiles_are_seamless(time_client, time_stack, extra) -> None:
    """512 px at z == four 256-px children at z+1: 0 differing pixels (values and mask), masked."""
    t = _tile(time_stack, 9)
    params = _change(time_stack, algorithm="otsu", algorithm_params=json.dumps({"invert": True, **extra}), **SCL_MASK)
    assert seam_differences(time_client, f"{PREFIX}/change", t.z, t.x, t.y, params) == (0, 0)


def test_cog_change_tiles_are_seamless(time_client, time_stack) -> None:
    t = _tile(time_stack, 9)
    folder = {i: time_stack.directory / ITEM_IDS[i] for i in (BEFORE, AFTER)}
    params = {
        "url": str(folder[AFTER] / "B08.tif"),
        "before_url": str(folder[BEFORE] / "B08.tif"),
        "mask_url": str(folder[AFTER] / "SCL.tif"),
        "before_mask_url": str(folder[BEFORE] / "SCL.tif"),
        "mask_values": "3,8,9,10",
        "algorithm": "otsu",
        "algorithm_params": json.dumps({"invert": True, "sigma": 1}),
    }
    assert seam_differences(time_client, "/cog/change", t.z, t.x, t.y, params) == (0, 0)


def test_png_overlay_colours_gained_and_lost_and_hides_the_rest(time_client, time_stack) -> None:
    lon, lat = time_stack.pixel_box(POND)[0]
    t = TMS.tile(lon, lat, 11)
    url = f"{PREFIX}/change/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}"
    params = _change(time_stack, **WATER, **SCL_MASK)
    classes, valid, _ = _npy(time_client, f"{url}.npy", params)
    r = time_client.get(f"{url}.png", params=params)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    rgba = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGBA"))
    for k in (1, 2, 3):
        where = valid & (classes == k)
        assert where.any(), k
        assert (rgba[where] == CHANGE_COLORMAP[k]).all(), k
    assert (rgba[valid & (classes == 0)][:, 3] == 0).all() and (rgba[~valid][:, 3] == 0).all()
    gained, lost, stable = (np.array(CHANGE_COLORMAP[k]) for k in (2, 3, 1))
    assert not np.array_equal(gained[:3], lost[:3]) and stable[3] < 100 < min(gained[3], lost[3])


def test_multiotsu_change_areas_give_the_transition_matrix(time_client, time_stack) -> None:
    params = _change(time_stack, algorithm="multiotsu", algorithm_params=json.dumps({"classes": 3}), **SCL_MASK)
    r = time_client.post(f"{PREFIX}/change/areas", params=params, json=time_stack.polygon())
    assert r.status_code == 200, r.text
    res = r.json()["features"][0]["properties"]
    pairs = [(x["before"], x["after"]) for x in res["transitions"]]
    assert pairs == [(i, j) for i in range(3) for j in range(3)] and res["classes"] == []
    assert sum(x["pixels"] for x in res["transitions"]) == res["pixels"] > 0
    assert sum(x["area_m2"] for x in res["transitions"]) == pytest.approx(res["area_m2"])
    assert len(res["thresholds"]["before"]) == len(res["thresholds"]["after"]) == 2
    t = _tile(time_stack)
    tile = time_client.get(f"{PREFIX}/change/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png", params=params)
    assert tile.status_code == 400 and "change/areas" in tile.json()["detail"]


def test_change_areas_answer_a_feature_collection_of_the_input(time_client, time_stack) -> None:
    feature = {**time_stack.polygon(), "id": "aoi-1", "properties": {"name": "reservoir"}}
    r = time_client.post(
        f"{PREFIX}/change/areas",
        params=_change(time_stack, 0, 1, **WATER, **SCL_MASK),
        json={"type": "FeatureCollection", "features": [feature]},
    )
    body = r.json()
    assert body["type"] == "FeatureCollection" and body["algorithm"] == "otsu" and body["scope"] == "dataset"
    (answered,) = body["features"]
    assert answered["type"] == "Feature" and answered["id"] == "aoi-1"
    assert answered["geometry"] == json.loads(json.dumps(feature["geometry"]))
    props = answered["properties"]
    assert props["name"] == "reservoir" and props["index"] == 0
    assert {"classes", "transitions", "gained_area_m2", "lost_area_m2", "thresholds", "masked_area_m2"} <= set(props)


def test_change_tilejson_points_at_change_tiles(time_client, time_stack) -> None:
    params = _change(time_stack, **WATER, **SCL_MASK)
    r = time_client.get(f"{PREFIX}/change/WebMercatorQuad/tilejson.json", params={**params, "tile_format": "png"})
    assert r.status_code == 200, r.text
    tj = r.json()
    (url,) = tj["tiles"]
    assert "/change/tiles/WebMercatorQuad/{z}/{x}/{y}.png?" in url and "before=" in url and "mask_asset=SCL" in url
    assert tj["bounds"] == pytest.approx(list(time_stack.bbox()), abs=1e-6)
    t = _tile(time_stack)
    path = url.replace("http://testserver", "").replace("{z}/{x}/{y}", f"{t.z}/{t.x}/{t.y}")
    assert time_client.get(path).status_code == 200


@pytest.mark.parametrize(
    ("params", "status", "needle"),
    [
        ({"datetime": INTERVALS[0]}, 400, "before= and after="),
        ({"before": " "}, 400, "before is empty"),
        ({"before": "not-a-date"}, 400, "datetime"),
    ],
    ids=["datetime_instead", "empty_before", "bad_interval"],
)
def test_bad_change_parameters_are_4xx_saying_what_to_change(time_client, time_stack, params, status, needle) -> None:
    t = _tile(time_stack)
    r = time_client.get(
        f"{PREFIX}/change/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png",
        params={**_change(time_stack, **WATER), **params},
    )
    assert r.status_code == status and needle in r.text, r.text


def test_missing_dates_and_unallowed_before_files_are_refused(time_client, time_stack, tmp_path) -> None:
    t = _tile(time_stack)
    r = time_client.get(f"{PREFIX}/change/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png", params={"assets": "B08"})
    assert r.status_code == 422 and "before" in r.text and "after" in r.text
    folder = time_stack.directory / ITEM_IDS[AFTER]
    outside = tmp_path / "before.tif"
    outside.write_bytes((folder / "B08.tif").read_bytes())
    cog = f"/cog/change/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png"
    assert time_client.get(cog, params={"url": str(folder / "B08.tif"), "before_url": str(outside)}).status_code == 403
    r = time_client.get(
        cog,
        params={
            "url": str(folder / "B08.tif"),
            "before_url": str(folder / "B08.tif"),
            "before_mask_url": str(folder / "SCL.tif"),
        },
    )
    assert r.status_code == 400 and "mask_url" in r.json()["detail"]
    r = time_client.get(
        f"{PREFIX}/change/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png",
        params=_change(time_stack, **WATER) | {"before": "2019-01-01/2019-01-31"},
    )
    assert r.status_code == 404 and "2019-01-01" in r.json()["detail"]

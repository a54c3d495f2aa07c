"""Quality masking (`mask_asset` + `mask_values`/`mask_bits`, `/cog` `mask_url`) on the multi-date stack.

Real parts: the stack of `tests/stac_time_fixtures.py` behind `rustac serve`, read through
`/stac` (one item), `/stacapi` (searches) and `/cog` (the item's files).
"""

from __future__ import annotations

import json

import morecantile
import numpy as np
import pytest
from skimage.filters import threshold_otsu

from tests.conftest import load_npy
from tests.stac_fixtures import seam_differences
from tests.stac_time_fixtures import (
    AOI_RECT,
    CLOUD_A,
    INTERVALS,
    ITEM_IDS,
    TIME_COLLECTION,
    TimeStack,
    _box,
    expected_area_m2,
)

TMS = morecantile.tms.get("WebMercatorQuad")
PREFIX = f"/stacapi/collections/{TIME_COLLECTION}"
SCL_MASK = {"mask_asset": "SCL", "mask_values": "3,8,9,10"}
QA_MASK = {"mask_asset": "QA_PIXEL", "mask_bits": "3,4"}
WATER = {"algorithm": "otsu", "algorithm_params": json.dumps({"invert": True})}


def _cloud_tile(stack: TimeStack, z: int = 10) -> morecantile.Tile:
    lon, lat = stack.pixel_box(CLOUD_A)[0]
    return TMS.tile(lon, lat, z)


def _npy(client, url: str, params: dict) -> tuple[np.ndarray, np.ndarray]:
    r = client.get(url, params=params)
    assert r.status_code == 200, r.text
    return load_npy(r.content)


def _search(stack: TimeStack, date: int, **params: object) -> dict:
    return {"datetime": INTERVALS[date], "assets": "B08", "bbox": ",".join(map(str, stack.bbox())), **params}


def test_masked_tile_pixels_are_exactly_the_flagged_mask_pixels(time_client, time_stack) -> None:
    """/stac: valid(masked) == valid(raw) & SCL not in 3,8,9,10, SCL read on the same tile grid (200 m)."""
    item = str(time_stack.items[1])
    t = _cloud_tile(time_stack)
    url = f"/stac/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.npy"
    raw, raw_valid = _npy(time_client, url, {"url": item, "assets": "B08"})
    scl, _ = _npy(time_client, url, {"url": item, "assets": "SCL"})
    masked, masked_valid = _npy(time_client, url, {"url": item, "assets": "B08", **SCL_MASK})
    flagged = np.isin(scl[0], (3, 8, 9, 10))
    assert flagged.sum() > 1000
    assert np.array_equal(masked_valid, raw_valid & ~flagged)
    assert np.array_equal(masked[0][masked_valid], raw[0][masked_valid])
    # the clouds are bright in B08 (>= 9000): all of them are gone, nothing else is
    assert (raw[0][raw_valid] >= 9000).sum() == flagged.sum() and (masked[0][masked_valid] >= 9000).sum() == 0


def test_bit_flags_mask_the_same_pixels_as_classification_values(time_client, time_stack) -> None:
    """QA_PIXEL bits 3 (cloud) and 4 (shadow) == SCL 3,8,9,10; the dilated-cloud bit 1 is not masked."""
    for date in (1, 2, 3):
        item = str(time_stack.items[date])
        t = _cloud_tile(time_stack)
        url = f"/stac/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.npy"
        _, by_values = _npy(time_client, url, {"url": item, "assets": "B08", **SCL_MASK})
        _, by_bits = _npy(time_client, url, {"url": item, "assets": "B08", **QA_MASK})
        _, with_ring = _npy(
            time_client, url, {"url": item, "assets": "B08", "mask_asset": "QA_PIXEL", "mask_bits": "1"}
        )
        assert np.array_equal(by_values, by_bits)
        if date == 1:
            assert (~with_ring).sum() > 0 and not np.array_equal(with_ring, by_bits)


def test_masked_pixels_are_excluded_from_the_tile_histogram(time_client, time_stack) -> None:
    """scope 'tile': the threshold is Otsu's threshold of the unmasked pixels (skimage on the same bins)."""
    t = _cloud_tile(time_stack)
    url = f"{PREFIX}/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}"
    tile_scope = {"algorithm": "otsu", "algorithm_params": json.dumps({"scope": "tile", "nbins": 256})}
    results = {}
    for name, mask in (("masked", SCL_MASK), ("raw", {})):
        values, valid = _npy(time_client, f"{url}.npy", _search(time_stack, 1, **mask))
        pixels = values[0][valid].astype(np.float64)
        counts, edges = np.histogram(pixels, bins=256, range=(pixels.min(), pixels.max()))
        expected = threshold_otsu(hist=(counts, (edges[:-1] + edges[1:]) / 2))
        r = time_client.get(f"{url}.png", params=_search(time_stack, 1, **mask, **tile_scope))
        assert r.status_code == 200, r.text
        header = float(r.headers["X-Otsu-Thresholds"])
        # our threshold is the upper edge of the last background bin; skimage's a bin centre
        width = edges[1] - edges[0]
        assert abs(header - expected) <= width / 2 + 1e-6, (name, header, expected)
        results[name] = header
    # the clouds (9000+) widen the raw tile's bins: another threshold
    assert results["raw"] != results["masked"]


def test_threshold_reports_masked_pixels_and_drops_them_from_the_histogram(time_client, time_stack) -> None:
    raw = time_client.get(f"{PREFIX}/threshold", params=_search(time_stack, 1, **WATER)).json()
    masked = time_client.get(f"{PREFIX}/threshold", params=_search(time_stack, 1, **WATER, **SCL_MASK)).json()
    bits = time_client.get(f"{PREFIX}/threshold", params=_search(time_stack, 1, **WATER, **QA_MASK)).json()
    assert raw["masked_pixels"] == 0 and masked["masked_pixels"] > 0
    assert masked["pixels"] + masked["masked_pixels"] == raw["pixels"]
    assert bits["masked_pixels"] == masked["masked_pixels"] and bits["thresholds"] == masked["thresholds"]
    assert raw["histogram"]["edges"][-1] >= 9000 > masked["histogram"]["edges"][-1]  # no cloud value left
    # the masked share of the read is the cloud's share of the window (CLOUD_A: 3200 of 147456 px)
    share = masked["masked_pixels"] / raw["pixels"]
    assert share == pytest.approx(time_stack.cloud(1).mean(), rel=0.05)


def test_areas_report_masked_area_per_feature(time_client, time_stack) -> None:
    """/stac areas on the item's native grid: exact pixel counts; /stacapi on the TMS grid: within 0.5 %."""
    aoi = _box(AOI_RECT)
    water_m2 = expected_area_m2(time_stack.water(1) & aoi)
    masked_m2 = expected_area_m2(time_stack.cloud(1) & aoi)
    fc = {"type": "FeatureCollection", "features": [time_stack.polygon()]}
    r = time_client.post(
        "/stac/areas", params={"url": str(time_stack.items[1]), "assets": "B08", **WATER, **SCL_MASK}, json=fc
    )
    assert r.status_code == 200, r.text
    res = r.json()["features"][0]["properties"]
    assert res["masked_pixels"] == int((time_stack.cloud(1) & aoi).sum()) == res["nodata_pixels"]
    assert res["classes"][1]["pixels"] == int((time_stack.water(1) & aoi).sum())
    assert res["masked_area_m2"] == pytest.approx(masked_m2, rel=1e-6)
    assert res["classes"][1]["area_m2"] == pytest.approx(water_m2, rel=1e-6)
    r = time_client.post(f"{PREFIX}/areas", params=_search(time_stack, 1, **WATER, **SCL_MASK), json=fc)
    assert r.status_code == 200, r.text
    res = r.json()["features"][0]["properties"]
    assert res["masked_area_m2"] == pytest.approx(masked_m2, rel=0.005)
    assert res["classes"][1]["area_m2"] == pytest.approx(water_m2, rel=0.005)


def test_cog_mask_url_masks_like_the_stac_asset(time_client, time_stack) -> None:
    folder = time_stack.directory / ITEM_IDS[1]
    t = _cloud_tile(time_stack)
    cog = f"/cog/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.npy"
    _, by_url = _npy(
        time_client,
        cog,
        {"url": str(folder / "B08.tif"), "mask_url": str(folder / "SCL.tif"), "mask_values": "3,8,9,10"},
    )
    _, by_asset = _npy(
        time_client,
        f"/stac/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.npy",
        {"url": str(time_stack.items[1]), "assets": "B08", **SCL_MASK},
    )
    assert np.array_equal(by_url, by_asset) and (~by_url).sum() > 1000
    params = {"url": str(folder / "B08.tif"), "mask_url": str(folder / "SCL.tif"), "mask_values": "3,8,9,10", **WATER}
    threshold = time_client.get("/cog/threshold", params=params).json()
    assert threshold["masked_pixels"] == int(time_stack.cloud(1).sum())  # the COG's own grid: one read, every pixel


@pytest.mark.parametrize(
    ("family", "extra"),
    [("stac", {}), ("stacapi", {}), ("stacapi", {"sigma": 1.5, "opening": 1})],
    ids=["stac", "stacapi", "stacapi_sigma_opening"],
)
def test_masked_tiles_are_seamless(time_client, time_stack, family, extra) -> None:
    """512 px at z == four 256-px children at z+1 (0 px), quality-masked, with and without neighbourhood filters."""
    params = {"algorithm": "otsu", "algorithm_params": json.dumps({"invert": True, **extra}), **SCL_MASK}
    if family == "stac":
        prefix, params = "/stac", {**params, "url": str(time_stack.items[1]), "assets": "B08"}
    else:
        prefix, params = PREFIX, {**params, **_search(time_stack, 1)}
    t = _cloud_tile(time_stack, 9)
    values, masks = seam_differences(time_client, prefix, t.z, t.x, t.y, params)
    assert (values, masks) == (0, 0)
    raw = {**params, "algorithm_params": None}
    raw = {k: v for k, v in raw.items() if k not in ("algorithm", "algorithm_params")}
    assert seam_differences(time_client, prefix, t.z, t.x, t.y, raw) == (0, 0)


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"mask_values": "3,8"}, "without mask_asset"),
        ({"mask_asset": "SCL"}, "mask_values"),
        ({"mask_asset": "SCL", "mask_values": "3,cloud"}, "integers"),
        ({"mask_asset": "QA_PIXEL", "mask_bits": "3,99"}, "0..62"),
        ({"mask_asset": "NOPE", "mask_values": "3"}, "Unknown asset 'NOPE'"),
    ],
    ids=["values_without_asset", "asset_without_values", "not_integers", "bit_out_of_range", "unknown_asset"],
)
def test_bad_mask_parameters_are_400_naming_them(time_client, time_stack, params, needle) -> None:
    t = _cloud_tile(time_stack)
    r = time_client.get(
        f"/stac/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png",
        params={"url": str(time_stack.items[1]), "assets": "B08", **params},
    )
    assert r.status_code == 400 and needle in r.json()["detail"], r.text


def test_mask_url_outside_the_allow_list_is_403(time_client, time_stack, tmp_path) -> None:
    t = _cloud_tile(time_stack)
    folder = time_stack.directory / ITEM_IDS[1]
    outside = tmp_path / "qa.tif"
    outside.write_bytes((folder / "SCL.tif").read_bytes())
    r = time_client.get(
        f"/cog/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png",
        params={"url": str(folder / "B08.tif"), "mask_url": str(outside), "mask_values": "9"},
    )
    assert r.status_code == 403, r.text

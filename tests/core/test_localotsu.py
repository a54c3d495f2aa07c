"""`localotsu`: what it computes (against scikit-image's rank.otsu), seams, API, bad input.

All on the real rasters in ../shared/data. NAIP band 4 (NIR) is 8-bit, so its block
thresholds can be compared bin for bin with `skimage.filters.rank.otsu`.
"""

from __future__ import annotations

import json

import morecantile
import numpy as np
import pytest
import rasterio
from scipy import ndimage
from skimage.filters import rank
from skimage.morphology import disk, footprint_rectangle

from tests.conftest import B08, DEM, NAIP, RGB, load_npy
from tests.io.test_seams import _compare
from titiler_otsu.algorithms import LocalOtsu
from titiler_otsu.core.local_otsu import (
    MAX_BLOCK,
    block_size,
    block_thresholds,
    grid_origin,
    interpolate_thresholds,
    local_support,
)
from titiler_otsu.errors import BadRequestError
from titiler_otsu.io.reader import GridExactReader

TMS = morecantile.tms.get("WebMercatorQuad")
NAIP_TILE = TMS.tile(-99.15, 47.02, 14)
NAIP_URL = f"/cog/tiles/WebMercatorQuad/14/{NAIP_TILE.x}/{NAIP_TILE.y}"


@pytest.fixture(scope="module")
def naip_nir() -> np.ndarray:
    with rasterio.open(NAIP) as ds:
        return ds.read(4)


def _square(radius: int) -> np.ndarray:
    return footprint_rectangle((2 * radius + 1, 2 * radius + 1))


def _non_uniform(image: np.ndarray, radius: int) -> np.ndarray:
    """Pixels whose square neighbourhood holds more than one value."""
    size = 2 * radius + 1
    return ndimage.maximum_filter(image, size, mode="nearest") != ndimage.minimum_filter(image, size, mode="nearest")


def _q(**params: object) -> dict:
    q: dict = {"url": str(NAIP), "bidx": 4}
    for k, v in params.items():
        q[k] = json.dumps(v) if k == "algorithm_params" else v
    return q


def _header(r) -> list[float]:
    return [float(t) for t in r.headers["x-otsu-thresholds"].split(",")]


# ---------------------------------------------------------------------------- the math


@pytest.mark.parametrize("radius", [6, 15, 40])
def test_block_thresholds_equal_rank_otsu_at_every_block_centre(naip_nir: np.ndarray, radius: int) -> None:
    img = naip_nir
    local = block_thresholds(img.astype(np.intp), np.ones(img.shape, bool), 256, radius)
    ref = rank.otsu(img, _square(radius))
    rows = local.rows[(local.rows >= 0) & (local.rows < img.shape[0])]
    cols = local.cols[(local.cols >= 0) & (local.cols < img.shape[1])]
    ours = local.bins[np.ix_(np.isin(local.rows, rows), np.isin(local.cols, cols))]
    theirs = ref[np.ix_(rows, cols)].astype(np.int64)
    varied = _non_uniform(img, radius)[np.ix_(rows, cols)]
    assert ours.size > 250 and varied.sum() > 200
    # Bin for bin rank.otsu wherever the neighbourhood has two values or more ...
    np.testing.assert_array_equal(ours[varied], theirs[varied])
    # ... and, where it is uniform (NAIP's constant collar), the value itself (all
    # background) where rank.otsu says 0 (all foreground): the documented difference.
    assert (ours[~varied] == img[np.ix_(rows, cols)][~varied]).all()
    assert (theirs[~varied] == 0).all()


def test_classification_agrees_with_rank_otsu_closer_than_rank_otsus_own_footprints_do(naip_nir: np.ndarray) -> None:
    """The bound: interpolating between block centres changes fewer pixels than swapping
    rank.otsu's square footprint for a disk of the same radius (both are "local Otsu of
    radius 15"); local Otsu flips pixels near the threshold in flat areas, so neither is 1.
    """
    img, radius = naip_nir, 15
    local = block_thresholds(img.astype(np.intp), np.ones(img.shape, bool), 256, radius)
    field = interpolate_thresholds(local, (0, 0), (0, img.shape[0], 0, img.shape[1]))
    ours = img > field
    square = img > rank.otsu(img, _square(radius))
    round_ = img > rank.otsu(img, disk(radius))
    varied = _non_uniform(img, radius)  # rank.otsu's 0 on a uniform collar is not compared
    ours_vs_square = (ours == square)[varied].mean()
    disk_vs_square = (round_ == square)[varied].mean()
    assert ours_vs_square > disk_vs_square
    assert ours_vs_square > 0.95


def test_tile_matches_rank_otsu_at_block_centres_and_mostly_elsewhere(client) -> None:
    """The API's tile against rank.otsu run on the raw tile read with the same halo."""
    radius = 15
    params = {"radius": radius}
    classes, valid = load_npy(
        client.get(NAIP_URL + ".npy", params=_q(algorithm="localotsu", algorithm_params=params)).content
    )
    halo = LocalOtsu(**params).halo
    with GridExactReader(str(NAIP), tms=TMS) as src:
        raw = src.tile(NAIP_TILE.x, NAIP_TILE.y, 14, indexes=4, buffer=halo).array[0]
    window = np.ma.getdata(raw)
    expected = (window > rank.otsu(window, _square(radius)))[halo:-halo, halo:-halo]
    varied = _non_uniform(window, radius)[halo:-halo, halo:-halo] & valid
    s = block_size(radius)
    on_centre = np.zeros_like(varied)
    g0 = (NAIP_TILE.y * 256, NAIP_TILE.x * 256)
    on_centre[(g0[0] + np.arange(256)) % s == 0, :] = True
    on_centre[:, (g0[1] + np.arange(256)) % s != 0] = False
    assert (on_centre & varied).sum() > 500
    np.testing.assert_array_equal(classes[0][on_centre & varied], expected[on_centre & varied])
    assert (classes[0] == expected)[varied].mean() > 0.95


def test_block_size_and_halo_follow_the_radius() -> None:
    assert [block_size(r) for r in (4, 6, 11, 12, 15, 22, 23, 45, 46, 64)] == [4, 4, 4, 8, 8, 8, 16, 16, 32, 32]
    for r in range(4, 65):
        assert block_size(r) <= r  # every pixel lies in its four centres' neighbourhoods
        assert local_support(r) == r + block_size(r) - 1
    algo = LocalOtsu(radius=15, sigma=1.5, opening=1, closing=2)
    assert algo.halo == 6 + 15 + 7 + 2 + 4


@pytest.mark.parametrize("tms_id", ["WebMercatorQuad", "WGS1984Quad"])
def test_block_grid_from_bounds_matches_the_readers_grid_position(tms_id: str) -> None:
    """Readers that drop the metadata (mosaics) get the same block grid from the bounds."""
    tms = morecantile.tms.get(tms_id)
    with GridExactReader(str(NAIP), tms=tms) as src:
        for z in range(src.minzoom, src.maxzoom + 3):
            t = tms.tile(-99.15, 47.02, z)
            for size, buffer in [(256, 0), (512, 37), (256, 95)]:
                img = src.tile(t.x, t.y, z, tilesize=size, indexes=4, buffer=buffer)
                exact = grid_origin(img.metadata, img.bounds, (img.height, img.width))
                assert exact == (t.y * size - buffer, t.x * size - buffer)
                from_bounds = grid_origin(None, img.bounds, (img.height, img.width))
                assert (exact[0] - from_bounds[0]) % MAX_BLOCK == 0
                assert (exact[1] - from_bounds[1]) % MAX_BLOCK == 0


# ---------------------------------------------------------------------------- seams

SEAM_CASES = {
    "naip_nir_sigma_opening": (NAIP, 4, {"radius": 15, "sigma": 1, "opening": 1}),
    "s2_b08_uint16_closing": (B08, 1, {"radius": 20, "closing": 1, "invert": True}),
    "dem_float": (DEM, 1, {"radius": 8}),
    "rgb_red_nodata": (RGB, 1, {"radius": 30}),
}


@pytest.mark.parametrize("case", list(SEAM_CASES))
def test_512_tile_equals_its_four_256_children(client, case: str) -> None:
    path, bidx, params = SEAM_CASES[case]
    assert _compare(client, "WebMercatorQuad", path, bidx, {"algorithm": "localotsu", "params": params}) == []


def test_512_tile_equals_its_four_256_children_wgs84quad(client) -> None:
    algo = {"algorithm": "localotsu", "params": {"radius": 12, "closing": 2}}
    assert _compare(client, "WGS1984Quad", NAIP, 4, algo) == []


def test_stac_item_and_stacapi_mosaic_tiles_are_seamless(stac_client, stac_items) -> None:
    """Multi-asset STAC (grid position in per-asset metadata) and STAC API mosaics (no grid
    metadata: the block grid comes from the bounds), on an NDWI expression (float input)."""
    from tests.stac_fixtures import NDWI, seam_differences
    from tests.web import test_stacapi

    local = {"algorithm": "localotsu", "algorithm_params": json.dumps({"radius": 12, "closing": 1})}
    t = TMS.tile(23.75, 32.0, 10)
    item = {"url": str(stac_items.item1), "expression": NDWI, **local}
    assert seam_differences(stac_client, "/stac", 10, t.x, t.y, item) == (0, 0)
    for z, lon, lat in [(9, *test_stacapi.ITEM1_EAST_EDGE), (10, *test_stacapi.ITEM2_WEST_EDGE)]:
        t = TMS.tile(lon, lat, z)
        search = {**test_stacapi._q(expression=NDWI, bbox=test_stacapi.BBOX), **local}
        assert seam_differences(stac_client, test_stacapi.PREFIX, z, t.x, t.y, search) == (0, 0)


# ---------------------------------------------------------------------------- API


def test_invert_is_the_complement_on_valid_pixels(client) -> None:
    plain, valid = load_npy(client.get(NAIP_URL + ".npy", params=_q(algorithm="localotsu")).content)
    inverted, valid2 = load_npy(
        client.get(NAIP_URL + ".npy", params=_q(algorithm="localotsu", algorithm_params={"invert": True})).content
    )
    assert (valid == valid2).all() and valid.any()
    assert ((plain[0] ^ inverted[0]) == 1)[valid].all()


def test_thresholds_header_is_min_median_max_of_the_local_thresholds(client) -> None:
    r = client.get(NAIP_URL + ".npy", params=_q(algorithm="localotsu", algorithm_params={"radius": 10}))
    lo, med, hi = _header(r)
    assert lo < med < hi
    classes, valid = load_npy(r.content)
    raw = load_npy(client.get(NAIP_URL + ".npy", params=_q()).content)[0][0]
    # every pixel above the highest local threshold is foreground, none below the lowest
    assert (classes[0][valid & (raw > hi)] == 1).all() and (raw > hi).any()
    assert (classes[0][valid & (raw <= lo)] == 0).all()


def test_png_overlay_and_tif_work(client) -> None:
    r = client.get(NAIP_URL + ".png", params=_q(algorithm="localotsu", algorithm_params={"invert": True}))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    r = client.get(NAIP_URL + ".tif", params=_q(algorithm="localotsu"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/tiff")


def test_threshold_endpoint_returns_the_distribution_of_local_thresholds(client) -> None:
    body = client.get("/cog/threshold", params=_q(algorithm="localotsu", algorithm_params={"radius": 15})).json()
    assert set(body) >= {"algorithm", "scope", "thresholds", "nbins", "histogram", "pixels"}
    assert body["algorithm"] == "localotsu" and body["scope"] == "local"
    counts, edges = body["histogram"]["counts"], body["histogram"]["edges"]
    assert len(edges) == len(counts) + 1 == body["nbins"] + 1 == 257  # 8-bit: one bin per value
    # pixels = number of block thresholds counted (NAIP is 934 x 724 at full size, block 8)
    assert sum(counts) == body["pixels"] == 118 * 92
    lo, med, hi = body["thresholds"]
    centres = np.repeat((np.array(edges[:-1]) + np.array(edges[1:])) / 2, counts)
    assert (lo, med, hi) == (centres.min(), np.median(centres), centres.max())
    part = client.get("/cog/threshold", params=_q(algorithm="localotsu", bbox="-99.16,47.01,-99.14,47.03")).json()
    assert 0 < part["pixels"] < body["pixels"] and part["scope"] == "local"


def test_threshold_distribution_of_uint16_uses_the_dataset_bins(client) -> None:
    local = client.get("/cog/threshold", params={"url": str(B08), "algorithm": "localotsu"}).json()
    values = client.get("/cog/threshold", params={"url": str(B08), "algorithm": "otsu"}).json()
    assert local["nbins"] == values["nbins"] == 256
    assert np.allclose(local["histogram"]["edges"], values["histogram"]["edges"])
    assert values["histogram"]["edges"][0] <= local["thresholds"][0] < local["thresholds"][2]


def test_localotsu_is_listed_with_radius_and_without_fixed_thresholds(client) -> None:
    algos = {a["id"]: a for a in client.get("/algorithms").json()["algorithms"]}
    params = algos["localotsu"]["parameters"]
    assert {"radius", "sigma", "opening", "closing", "invert"} <= set(params)
    assert "threshold" not in params and params["radius"]["minimum"] == 4 and params["radius"]["maximum"] == 64
    assert client.get("/algorithms/localotsu").json()["outputs"]["dtype"] == "uint8"


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"radius": 3}, "'radius'"),
        ({"radius": 65}, "'radius'"),
        ({"radius": "wide"}, "'radius'"),
        ({"radius": 7.5}, "'radius'"),
        ({"scope": "dataset"}, "'scope'"),
        ({"threshold": 90}, "'threshold'"),
        ({"radius": 64, "sigma": 4}, "radius"),  # beyond MAX_HALO: says to lower radius
    ],
)
def test_bad_parameters_are_400_naming_the_key(client, params: dict, key: str) -> None:
    r = client.get(NAIP_URL + ".png", params=_q(algorithm="localotsu", algorithm_params=params))
    assert r.status_code == 400 and key in r.json()["detail"]


def test_non_8bit_input_without_dataset_histogram_says_what_is_missing() -> None:
    with GridExactReader(str(B08), tms=TMS) as src:
        t = TMS.tile(23.8, 32.0, 10)
        img = src.tile(t.x, t.y, 10, indexes=1)
    with pytest.raises(BadRequestError, match="histogram"):
        LocalOtsu()(img)


def test_multiband_input_says_how_to_pick_a_band(client) -> None:
    r = client.get(NAIP_URL + ".png", params={"url": str(NAIP), "algorithm": "localotsu"})
    assert r.status_code == 400 and "bidx" in r.json()["detail"]

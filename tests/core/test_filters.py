"""Neighbourhood filters: nodata-aware Gaussian smoothing and its no-nodata fast path."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window
from scipy import ndimage

from tests.conftest import B08
from titiler_otsu.core.filters import GAUSSIAN_TRUNCATE, gaussian_support, masked_gaussian


@pytest.fixture(scope="module")
def b08() -> np.ndarray:
    """A 400 x 600 px piece of Sentinel-2 NIR (uint16, no nodata inside)."""
    with rasterio.open(B08) as ds:
        band = ds.read(1, window=Window(450, 0, 600, 400))
    assert (band != 0).all()
    return band


def _normalised_convolution(values: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    """The definition, written out: gaussian(values * valid) / gaussian(valid)."""
    kw = {"sigma": sigma, "truncate": GAUSSIAN_TRUNCATE, "mode": "constant", "cval": 0.0}
    num = ndimage.gaussian_filter(np.where(valid, values, 0).astype(np.float32), **kw)
    den = ndimage.gaussian_filter(valid.astype(np.float32), **kw)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[den <= 1e-6] = np.nan
    return out


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0, 3.7])
@pytest.mark.parametrize("shape", [(64, 64), (268, 268), (97, 300), (5, 300), (300, 9), (1, 1), (17, 17)])
def test_all_valid_fast_path_is_bitwise_the_normalised_convolution(b08, shape, sigma):
    values = np.ascontiguousarray(b08[: shape[0], : shape[1]])
    valid = np.ones(shape, bool)
    for _ in range(2):  # the second call reuses the cached weights
        got = masked_gaussian(values, valid, sigma)
        np.testing.assert_array_equal(got, _normalised_convolution(values, valid, sigma))


def test_nodata_pixels_do_not_bleed_into_their_neighbours(b08):
    values = np.ascontiguousarray(b08[:200, :200]).astype(np.float32)
    valid = np.ones(values.shape, bool)
    valid[:, :50] = False
    values[~valid] = 60000  # nodata holds a huge value: it must not brighten the edge
    got = masked_gaussian(values, valid, 2.0)
    np.testing.assert_array_equal(got, _normalised_convolution(values, valid, 2.0))
    assert np.nanmax(got[:, 50:]) <= values[valid].max()


def test_pixels_without_a_valid_neighbour_are_nan():
    values = np.full((40, 40), 7, np.uint16)
    valid = np.zeros((40, 40), bool)
    valid[:5, :5] = True
    got = masked_gaussian(values, valid, 1.0)
    r = gaussian_support(1.0)
    assert np.isnan(got[5 + r + 1 :, :]).all()
    assert np.allclose(got[:5, :5], 7)


def test_cached_weights_cannot_be_modified_by_a_caller(b08):
    values = np.ascontiguousarray(b08[:64, :64])
    valid = np.ones(values.shape, bool)
    out = masked_gaussian(values, valid, 1.0)
    out[:] = 0  # the result is the caller's own array
    np.testing.assert_array_equal(masked_gaussian(values, valid, 1.0), _normalised_convolution(values, valid, 1.0))


def test_sigma_zero_returns_the_values_as_float32_with_nodata_zeroed():
    values = np.arange(16, dtype=np.uint16).reshape(4, 4)
    valid = values % 3 != 0
    got = masked_gaussian(values, valid, 0)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.where(valid, values, 0))


def _nodata_layouts(shape: tuple[int, int]) -> dict[str, np.ndarray]:
    h, w = shape
    rng = np.random.default_rng(7)
    layouts = {
        "west border": np.s_[:, : w // 20],
        "east border": np.s_[:, w - 3 :],
        "north-east corner": np.s_[: h // 7, w - w // 5 :],
        "south border": np.s_[h - 1 :, :],
        "blob inside": np.s_[h // 3 : h // 3 + 9, w // 2 : w // 2 + 5],
        "half the image (whole-image path)": np.s_[:, : w // 2 + 3],
    }
    masks = {}
    for name, region in layouts.items():
        valid = np.ones(shape, bool)
        valid[region] = False
        masks[name] = valid
    specks = np.ones(shape, bool)
    specks[rng.integers(0, h, 6), rng.integers(0, w, 6)] = False
    masks["scattered specks"] = specks
    single = np.ones(shape, bool)
    single[0, 0] = False
    masks["one corner pixel"] = single
    return masks


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0, 3.7])
@pytest.mark.parametrize("shape", [(268, 268), (97, 300)])
def test_weights_recomputed_near_nodata_only_are_bitwise_the_normalised_convolution(b08, shape, sigma):
    values = np.ascontiguousarray(b08[: shape[0], : shape[1]])
    for name, valid in _nodata_layouts(shape).items():
        got = masked_gaussian(values, valid, sigma)
        want = _normalised_convolution(values, valid, sigma)
        np.testing.assert_array_equal(got, want, err_msg=name)


def test_a_nodata_border_recomputes_only_the_weights_beside_it(monkeypatch):
    # A 2056-px export window with a 40-px nodata border on the west.
    import titiler_otsu.core.filters as filters

    smoothed_shapes = []
    whole_image_pass = filters._smooth_weights

    def recording(valid, sigma):
        smoothed_shapes.append(valid.shape)
        return whole_image_pass(valid, sigma)

    monkeypatch.setattr(filters, "_smooth_weights", recording)
    values = np.random.default_rng(3).integers(1, 4000, (2056, 2056)).astype(np.uint16)
    valid = np.ones(values.shape, bool)
    valid[:, :40] = False
    got = masked_gaussian(values, valid, 1.0)
    assert values.shape not in smoothed_shapes  # no Gaussian pass over the whole window's weights
    # the border, the weights it changes (1 support) and their inputs (1 more); the west edge clips
    assert (2056, 40 + 2 * gaussian_support(1.0)) in smoothed_shapes
    np.testing.assert_array_equal(got, _normalised_convolution(values, valid, 1.0))

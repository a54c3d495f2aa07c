"""Otsu and multi-Otsu of titiler_otsu.core equal scikit-image's on real data; edge cases of the whole path."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.filters import threshold_multiotsu as sk_multiotsu
from skimage.filters import threshold_otsu as sk_otsu

from tests.core.conftest import _as_floats
from titiler_otsu.core.classify import classify
from titiler_otsu.core.histogram import valid_histogram
from titiler_otsu.core.multiotsu import threshold_multiotsu, threshold_multiotsu_from_histogram
from titiler_otsu.core.otsu import threshold_otsu, threshold_otsu_from_histogram

# --------------------------------------------------------------------------------------
# Real data
# --------------------------------------------------------------------------------------


def _assert_equals_skimage(
    values: np.ndarray, nbins: int = 256, classes_to_check: tuple[int, ...] = (2, 3, 4, 5)
) -> None:
    # scikit-image's brute force takes seconds for 5 classes and 256 bins.
    assert threshold_otsu(values, nbins=nbins) == float(sk_otsu(values, nbins=nbins))
    for classes in classes_to_check:
        ours = threshold_multiotsu(values, classes=classes, nbins=nbins)
        ref = _as_floats(sk_multiotsu(values, classes=classes, nbins=nbins))
        assert ours == ref, f"classes={classes}"


def test_naip_nir_equals_skimage_otsu_and_multiotsu(naip_b4):
    _assert_equals_skimage(naip_b4.ravel())


def test_naip_nir_otsu_splits_water_near_92(naip_b4):
    t = threshold_otsu(naip_b4)
    assert abs(t - 92) <= 1
    water = classify(naip_b4, [t], invert=True).mean()
    assert 0.20 < water < 0.26  # README: about 23 % water


def test_valid_argument_equals_skimage_on_the_valid_subset(naip_b4):
    valid = naip_b4 > 60
    assert threshold_otsu(naip_b4, valid) == float(sk_otsu(naip_b4[valid]))
    assert threshold_multiotsu(naip_b4, valid, classes=4) == _as_floats(sk_multiotsu(naip_b4[valid], classes=4))


@pytest.mark.parametrize("band", [0, 1, 2])
def test_rgb_byte_valid_pixels_equal_skimage(rgb_valid, band):
    _assert_equals_skimage(rgb_valid[band])


def test_sentinel2_scl_valid_pixels_equal_skimage(scl_valid):
    # Few distinct values (a class raster) and a value held by a single pixel: the
    # float32 near-ties of scikit-image's objective decide several thresholds here.
    assert np.count_nonzero(np.bincount(scl_valid)) <= 12
    _assert_equals_skimage(scl_valid)


def test_sentinel2_b08_float64_equals_skimage_with_256_bins(b08):
    band, valid = b08
    values = band[valid].astype(np.float64)
    _assert_equals_skimage(values, nbins=256)


def test_sentinel2_b08_uint16_otsu_is_near_3049_with_37_percent_water(b08):
    band, valid = b08
    hist = valid_histogram(band, valid)
    assert not hist.integer_bins and hist.nbins == 256
    t = threshold_otsu_from_histogram(hist)
    assert abs(t - 3049) < 5
    water = classify(band, [t], invert=True)[valid].mean()
    assert 0.34 < water < 0.40
    # Same bins as float64 values with nbins=256, hence the same threshold.
    assert t == threshold_otsu(band[valid].astype(np.float64))


# --------------------------------------------------------------------------------------
# Edge cases
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32, np.float64])
def test_uniform_image_thresholds_equal_the_value_and_everything_is_class_0(dtype):
    values = np.full((8, 8), 42, dtype=dtype)
    hist = valid_histogram(values)
    assert hist.nbins == 1 and hist.pixels == 64
    assert hist.centers[0] == 42
    assert threshold_otsu(values) == 42 == float(sk_otsu(values))
    for classes in (2, 3, 5):
        assert threshold_multiotsu(values, classes=classes) == [42.0] * (classes - 1)
    assert not classify(values, threshold_multiotsu(values, classes=4)).any()


def test_single_valid_pixel_thresholds_equal_its_value():
    values = np.array([[1.5, 2.5], [3.25, 9.0]], dtype=np.float32)
    valid = np.array([[False, False], [True, False]])
    assert threshold_otsu(values, valid) == 3.25
    assert threshold_multiotsu(values, valid, classes=3) == [3.25, 3.25]
    assert valid_histogram(values, valid).pixels == 1


def test_no_valid_pixel_gives_empty_histogram_and_nan_thresholds():
    cases = [
        (np.arange(16, dtype=np.uint8).reshape(4, 4), np.zeros((4, 4), bool)),
        (np.full((3, 3), np.nan), None),
        (np.array([np.inf, -np.inf, np.nan], dtype=np.float32), None),
        (np.zeros((0, 5), np.uint16), None),
        (np.ma.masked_all((4, 4), dtype=np.int16), None),
    ]
    for values, valid in cases:
        hist = valid_histogram(values, valid)
        assert hist.pixels == 0 and hist.nbins == 0
        assert math.isnan(threshold_otsu_from_histogram(hist))
        thresholds = threshold_multiotsu_from_histogram(hist, classes=4)
        assert len(thresholds) == 3 and all(math.isnan(t) for t in thresholds)
        assert math.isnan(threshold_otsu(values, valid))


def test_no_valid_pixel_with_value_range_gives_zero_counts_over_the_range():
    hist = valid_histogram(np.zeros(4, np.uint8), np.zeros(4, bool), value_range=(0, 9))
    assert hist.integer_bins and hist.nbins == 10 and hist.pixels == 0
    hist = valid_histogram(np.zeros(4), np.zeros(4, bool), nbins=8, value_range=(0, 1))
    assert hist.nbins == 8 and hist.pixels == 0
    assert math.isnan(threshold_multiotsu_from_histogram(hist, 2)[0])


def test_nan_and_inf_are_ignored():
    rng = np.random.default_rng(11)
    clean = rng.normal(10, 3, size=(50, 50))
    dirty = clean.copy()
    dirty[::7, ::3] = np.nan
    dirty[1::9, ::5] = np.inf
    dirty[2::11, 1::4] = -np.inf
    finite = dirty[np.isfinite(dirty)]
    assert threshold_otsu(dirty) == threshold_otsu(finite) == float(sk_otsu(finite))
    assert threshold_multiotsu(dirty, classes=4) == _as_floats(sk_multiotsu(finite, classes=4))


def test_masked_array_mask_marks_invalid_pixels_and_combines_with_valid(naip_b4):
    masked = np.ma.masked_less(naip_b4, 50)
    keep = naip_b4 >= 50
    assert threshold_otsu(masked) == threshold_otsu(naip_b4, keep)
    assert threshold_multiotsu(masked, classes=3) == threshold_multiotsu(naip_b4, keep, classes=3)
    extra = naip_b4 < 200
    assert threshold_otsu(masked, extra) == float(sk_otsu(naip_b4[keep & extra]))
    # A masked array without a mask is all valid.
    assert threshold_otsu(np.ma.asarray(naip_b4)) == threshold_otsu(naip_b4)


def test_valid_mask_broadcasts_to_values():
    values = np.arange(12, dtype=np.uint8).reshape(3, 4)
    valid_columns = np.array([True, False, True, False])
    hist = valid_histogram(values, valid_columns)
    assert hist.pixels == 6
    np.testing.assert_array_equal(hist.centers[hist.counts > 0], [0, 2, 4, 6, 8, 10])


def test_fewer_occupied_bins_than_classes_repeats_the_top_value():
    values = np.array([10, 10, 20, 20, 20], dtype=np.uint8)
    assert threshold_multiotsu(values, classes=4) == [10.0, 20.0, 20.0]
    classes = classify(values, threshold_multiotsu(values, classes=4))
    np.testing.assert_array_equal(classes, [0, 0, 1, 1, 1])
    # Exactly as many occupied bins as classes: scikit-image's answer.
    three = np.array([1, 5, 5, 9], dtype=np.uint8)
    assert threshold_multiotsu(three, classes=3) == _as_floats(sk_multiotsu(three, classes=3))
    # Float values landing in fewer bins than classes.
    floats = np.array([0.0, 0.001, 1.0, 1.0])
    assert threshold_multiotsu(floats, classes=5, nbins=4) == [0.125, 0.875, 0.875, 0.875]


def test_out_of_range_classes_or_nbins_raise_value_error():
    values = np.arange(100, dtype=np.uint8)
    for bad in (1, 0, -3, 257, 2.5, True, "3"):
        with pytest.raises(ValueError, match="classes"):
            threshold_multiotsu(values, classes=bad)
        with pytest.raises(ValueError, match="classes"):
            threshold_multiotsu_from_histogram(valid_histogram(values), classes=bad)
    for bad in (1, 0, -5, 3.0):
        with pytest.raises(ValueError, match="nbins"):
            valid_histogram(values, nbins=bad)
        with pytest.raises(ValueError, match="nbins"):
            threshold_otsu(values, nbins=bad)


def test_non_numeric_values_raise_value_error():
    with pytest.raises(ValueError, match="numeric"):
        valid_histogram(np.array(["a", "b"]))
    with pytest.raises(ValueError, match="numeric"):
        classify(np.array([1 + 2j]), [0.5])


def test_bool_values_are_zeros_and_ones():
    values = np.array([True, False, True, True])
    assert threshold_otsu(values) == 0.0
    np.testing.assert_array_equal(classify(values, [0.5]), [1, 0, 1, 1])


def test_int16_with_negative_values_equals_skimage():
    rng = np.random.default_rng(5)
    values = np.concatenate([rng.normal(-60, 15, 3000), rng.normal(40, 20, 5000), rng.normal(100, 5, 1000)]).astype(
        np.int16
    )
    assert valid_histogram(values).integer_bins
    _assert_equals_skimage(values, classes_to_check=(2, 3, 4))


def test_sparse_float_histogram_equals_skimage():
    # Few distinct values in 256 bins: long runs of empty bins where any threshold
    # gives the same partition; scikit-image keeps the first.
    rng = np.random.default_rng(2)
    values = rng.choice([0.1, 0.35, 0.36, 0.9, 1.0, 2.5, 2.6], size=2000)
    _assert_equals_skimage(values, classes_to_check=(2, 3, 4))


def test_random_tiles_equal_skimage(naip_b4, b08):
    rng = np.random.default_rng(2024)
    band, valid = b08
    for _ in range(12):
        r, c = rng.integers(0, 600, size=2)
        tile = (naip_b4[r : r + 64, c : c + 64] // rng.integers(1, 6)).astype(np.uint8)
        classes = int(rng.integers(2, 5))
        assert threshold_multiotsu(tile, classes=classes) == _as_floats(sk_multiotsu(tile, classes=classes))
        window = band[r : r + 96, c : c + 96][valid[r : r + 96, c : c + 96]].astype(float)
        if np.unique(window).size > 8:
            assert threshold_multiotsu(window, classes=classes, nbins=64) == _as_floats(
                sk_multiotsu(window, classes=classes, nbins=64)
            )

"""Behaviour of titiler_otsu.core.histogram: binning like scikit-image and NumPy."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from titiler_otsu.core.histogram import Histogram, valid_histogram
from titiler_otsu.core.otsu import threshold_otsu


def test_uint8_histogram_has_one_bin_per_integer_between_min_and_max():
    values = np.array([[3, 7, 7], [5, 3, 9]], dtype=np.uint8)
    hist = valid_histogram(values)
    assert hist.integer_bins
    assert hist.nbins == 7  # 3..9, regardless of nbins=256
    np.testing.assert_array_equal(hist.centers, np.arange(3, 10))
    np.testing.assert_array_equal(hist.edges, np.arange(3, 11) - 0.5)
    np.testing.assert_array_equal(hist.counts, [2, 0, 1, 0, 2, 0, 1])
    assert hist.counts.dtype == np.int64 and hist.edges.dtype == np.float64
    assert hist.pixels == 6


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.int32, np.uint32, np.int64])
def test_wide_integer_range_bins_like_numpy_histogram(dtype):
    rng = np.random.default_rng(7)
    low = -3000 if np.issubdtype(dtype, np.signedinteger) else 0
    values = rng.integers(low, 9000, size=(256, 256)).astype(dtype)
    hist = valid_histogram(values, nbins=100)
    counts, edges = np.histogram(values, bins=100, range=(values.min(), values.max()))
    assert not hist.integer_bins
    np.testing.assert_array_equal(hist.counts, counts)
    np.testing.assert_array_equal(hist.edges, edges)
    np.testing.assert_array_equal(hist.centers, (edges[:-1] + edges[1:]) / 2)


def test_integer_range_just_wider_than_nbins_bins_like_numpy_histogram():
    values = np.arange(0, 257, dtype=np.uint16)  # 257 levels > 256 bins
    hist = valid_histogram(values)
    counts, edges = np.histogram(values, bins=256, range=(0, 256))
    np.testing.assert_array_equal(hist.counts, counts)
    np.testing.assert_array_equal(hist.edges, edges)
    assert not hist.integer_bins
    assert valid_histogram(values[:-1]).integer_bins


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_histogram_equals_numpy_histogram_over_valid_range(dtype):
    rng = np.random.default_rng(3)
    values = rng.normal(size=(64, 64)).astype(dtype)
    hist = valid_histogram(values, nbins=50)
    counts, edges = np.histogram(values, bins=50, range=(values.min(), values.max()))
    np.testing.assert_array_equal(hist.counts, counts)
    np.testing.assert_array_equal(hist.edges, edges.astype(np.float64))
    assert hist.pixels == values.size


def test_uint16_tile_histogram_is_fast():
    rng = np.random.default_rng(0)
    tile = rng.integers(0, 10000, size=(256, 256), dtype=np.uint16)
    valid = rng.random((256, 256)) > 0.1
    valid_histogram(tile, valid)
    best = math.inf
    for _ in range(20):
        start = time.perf_counter()
        valid_histogram(tile, valid)
        best = min(best, time.perf_counter() - start)
    assert best < 1e-3, f"{best * 1e3:.2f} ms"


def test_value_range_clips_outside_values_into_end_bins():
    values = np.array([0, 5, 10, 12, 15, 20, 30, 255], dtype=np.uint8)
    hist = valid_histogram(values, value_range=(10, 20))
    assert hist.integer_bins and hist.nbins == 11
    np.testing.assert_array_equal(hist.centers, np.arange(10, 21))
    assert hist.counts[0] == 3  # 0, 5, 10
    assert hist.counts[-1] == 3  # 20, 30, 255
    assert hist.pixels == values.size

    floats = np.array([-5.0, 0.0, 0.3, 0.5, 0.99, 1.0, 7.0])
    hist = valid_histogram(floats, nbins=4, value_range=(0, 1))
    np.testing.assert_array_equal(hist.edges, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_array_equal(hist.counts, [2, 1, 1, 3])

    wide = np.array([-40000, 0, 5000, 99999], dtype=np.int32)
    hist = valid_histogram(wide, nbins=4, value_range=(0, 10000))
    np.testing.assert_array_equal(hist.counts, [2, 0, 1, 1])


def test_value_range_on_float32_keeps_every_valid_pixel():
    values = np.linspace(0.0, 1.0, 1001, dtype=np.float32)
    hist = valid_histogram(values, nbins=10, value_range=(0.7, 0.9))
    assert hist.pixels == values.size
    assert hist.counts[0] == np.count_nonzero(values < np.float32(0.72))


def test_extreme_float_ranges_do_not_raise():
    values = np.array([-3e38, 0.0, 3e38], dtype=np.float32)
    hist = valid_histogram(values, nbins=4)
    np.testing.assert_array_equal(hist.counts, [1, 0, 1, 1])
    assert np.isfinite(hist.centers).all()
    assert threshold_otsu(values, nbins=4) == hist.centers[0]
    huge = np.array([-1.7e308, 0.0, 1.7e308])
    hist = valid_histogram(huge, nbins=4)
    np.testing.assert_array_equal(hist.counts, [1, 0, 1, 1])
    assert np.isfinite(hist.centers).all()


def test_value_range_must_be_a_finite_ordered_pair():
    for bad in [(5, 1), (0, math.nan), (0, math.inf), (1,), "ab"]:
        with pytest.raises(ValueError, match="value_range"):
            valid_histogram(np.arange(10), value_range=bad)


def test_histogram_rejects_inconsistent_arrays():
    with pytest.raises(ValueError, match="edges"):
        Histogram(np.array([1, 2]), np.array([0.0, 1.0]), False)
    with pytest.raises(ValueError, match="non-negative"):
        Histogram(np.array([1, -2]), np.array([0.0, 1.0, 2.0]), False)
    hist = Histogram(np.array([1, 2]), np.array([0.0, 1.0, 2.0]), False)
    with pytest.raises(ValueError):
        hist.counts[0] = 5  # read-only

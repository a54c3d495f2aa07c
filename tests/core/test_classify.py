"""Behaviour of titiler_otsu.core.classify."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.filters import threshold_otsu as sk_otsu

from titiler_otsu.core.classify import classify
from titiler_otsu.core.otsu import threshold_otsu


def test_binary_classify_is_value_greater_than_threshold_like_skimage(naip_b4):
    t = threshold_otsu(naip_b4)
    np.testing.assert_array_equal(classify(naip_b4, [t]), naip_b4 > sk_otsu(naip_b4))
    np.testing.assert_array_equal(classify(naip_b4, t, invert=True), naip_b4 <= t)


def test_classify_counts_thresholds_strictly_below_the_value():
    values = np.array([[0.5, 1.0, 1.5], [2.0, 2.5, 9.0]])
    out = classify(values, [1.0, 2.0])
    assert out.dtype == np.uint8 and out.shape == values.shape
    np.testing.assert_array_equal(out, [[0, 0, 1], [1, 2, 2]])
    np.testing.assert_array_equal(classify(values, [1.0, 2.0], invert=True), [[2, 2, 1], [1, 0, 0]])
    # Repeated thresholds (fewer distinct values than classes) skip a class.
    np.testing.assert_array_equal(classify(values, [1.0, 1.0]), [[0, 0, 2], [2, 2, 2]])


def test_classify_gives_nan_class_0_even_inverted():
    values = np.array([np.nan, 0.0, 5.0], dtype=np.float32)
    np.testing.assert_array_equal(classify(values, [1.0]), [0, 0, 1])
    np.testing.assert_array_equal(classify(values, [1.0], invert=True), [0, 1, 0])
    many = list(np.linspace(-1, 1, 20))
    np.testing.assert_array_equal(classify(values, many, invert=True), [0, 10, 0])


def test_classify_with_nan_thresholds_puts_everything_in_class_0():
    values = np.arange(10, dtype=np.uint16)
    assert not classify(values, [math.nan, math.nan]).any()
    assert (classify(values, [math.nan], invert=True) == 1).all()


@pytest.mark.parametrize("thresholds", [[92.0], [65.5, 151.0], [0.0, 39.0, 110.0, 255.0], [-3.0, 300.0]])
def test_classify_uint8_lookup_table_equals_generic_path(naip_b4, thresholds):
    for invert in (False, True):
        lut = classify(naip_b4, thresholds, invert=invert)
        generic = classify(naip_b4.astype(np.float64), thresholds, invert=invert)
        np.testing.assert_array_equal(lut, generic)
        searched = np.searchsorted(thresholds, naip_b4, side="left")
        if invert:
            searched = len(thresholds) - searched
        np.testing.assert_array_equal(lut, searched)


def test_classify_many_thresholds_binary_search_equals_comparisons():
    rng = np.random.default_rng(4)
    values = rng.integers(0, 5000, size=(40, 40)).astype(np.uint16)
    thresholds = np.sort(rng.uniform(0, 5000, size=20))
    expected = (values[..., None] > thresholds).sum(axis=-1)
    np.testing.assert_array_equal(classify(values, thresholds), expected)
    few = thresholds[:5]
    np.testing.assert_array_equal(classify(values, few), (values[..., None] > few).sum(axis=-1))


def test_classify_ignores_the_mask_of_a_masked_array():
    values = np.ma.masked_greater(np.array([1.0, 5.0, 9.0]), 4.0)
    out = classify(values, [4.0])
    assert not isinstance(out, np.ma.MaskedArray)
    np.testing.assert_array_equal(out, [0, 1, 1])


def test_classify_rejects_descending_or_too_many_thresholds():
    with pytest.raises(ValueError, match="ascending"):
        classify(np.arange(4), [2.0, 1.0])
    with pytest.raises(ValueError, match="at most"):
        classify(np.arange(4), np.arange(256.0))
    with pytest.raises(ValueError, match="NaN"):
        classify(np.arange(4), [math.nan, 1.0])

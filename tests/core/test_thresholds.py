"""Behaviour of titiler_otsu.core.thresholds: histograms, Otsu, multi-Otsu, classification."""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from skimage.filters import threshold_multiotsu as sk_multiotsu
from skimage.filters import threshold_otsu as sk_otsu

from titiler_otsu.core import histogram as th
from titiler_otsu.core.histogram import (
    Histogram,
    classify,
    threshold_multiotsu,
    threshold_multiotsu_from_histogram,
    threshold_otsu,
    threshold_otsu_from_histogram,
    valid_histogram,
)

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"

NAIP = SHARED_DATA / "m_4709963_se_14_1_20180716.tif"
RGB = SHARED_DATA / "RGB.byte.tif"
S2 = SHARED_DATA / "sentinel2_S2A_34SGA_20200318_L2A"
SCL = S2 / "SCL.tif"
B08 = S2 / "B08.tif"


def _require(path: Path) -> Path:
    if not path.is_file():
        pytest.fail(f"shared test raster missing: {path} (expected beside the clone)")
    return path


# --------------------------------------------------------------------------------------
# Real data
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def naip_b4() -> np.ndarray:
    with rasterio.open(_require(NAIP)) as ds:
        band = ds.read(4)
    assert band.dtype == np.uint8
    assert not (band == 0).any()  # the declared nodata never occurs: all pixels valid
    return band


@pytest.fixture(scope="module")
def rgb_valid() -> list[np.ndarray]:
    with rasterio.open(_require(RGB)) as ds:
        valid = ds.dataset_mask() > 0
        bands = [ds.read(b)[valid] for b in (1, 2, 3)]
    assert 0.5 < valid.mean() < 0.8
    return bands


@pytest.fixture(scope="module")
def scl_valid() -> np.ndarray:
    with rasterio.open(_require(SCL)) as ds:
        scl = ds.read(1)
    return scl[scl != ds.nodata]


@pytest.fixture(scope="module")
def b08() -> tuple[np.ndarray, np.ndarray]:
    with rasterio.open(_require(B08)) as ds:
        band = ds.read(1)
        assert ds.nodata == 0
    return band, band != 0


def _as_floats(values) -> list[float]:
    return [float(v) for v in values]


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
# Histograms
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Multi-Otsu algorithm
# --------------------------------------------------------------------------------------


def _between_class_objective(counts: np.ndarray, ends: tuple[int, ...]) -> float:
    bounds = (0, *ends, counts.size)
    positions = np.arange(counts.size, dtype=np.float64)
    total = 0.0
    for a, b in itertools.pairwise(bounds):
        weight = counts[a:b].sum()
        if weight:
            total += (counts[a:b] @ positions[a:b]) ** 2 / weight
    return total


def test_textbook_dynamic_programme_finds_the_brute_force_optimum():
    rng = np.random.default_rng(9)
    for _ in range(60):
        n = int(rng.integers(6, 14))
        counts = rng.integers(0, 50, size=n)
        counts[0] = counts[-1] = int(rng.integers(1, 50))
        classes = int(rng.integers(2, 5))
        hist = Histogram(counts, np.arange(n + 1) - 0.5, True)
        if np.count_nonzero(counts) <= classes:
            continue
        ours = threshold_multiotsu_from_histogram(hist, classes, skimage_compat=False)
        ends = tuple(int(t) + 1 for t in ours)
        best = max(_between_class_objective(counts, e) for e in itertools.combinations(range(1, n), classes - 1))
        assert _between_class_objective(counts, ends) == pytest.approx(best, rel=1e-12)
        assert ours == sorted(ours)


def test_skimage_compat_reproduces_skimage_quirks_where_textbook_differs(naip_b4):
    # scikit-image's objective places bin 0 at position 1; on NAIP NIR this moves the
    # optimum by a bin, so the textbook objective disagrees with scikit-image here.
    exact = threshold_multiotsu(naip_b4, classes=3)
    textbook = threshold_multiotsu(naip_b4, classes=3, skimage_compat=False)
    assert exact == _as_floats(sk_multiotsu(naip_b4, classes=3))
    assert textbook != exact
    assert max(abs(a - b) for a, b in zip(textbook, exact, strict=True)) <= 2


def test_two_class_multiotsu_can_differ_from_otsu_exactly_like_skimage(naip_b4):
    # scikit-image's two objectives differ (see skimage_compat); so do ours, identically.
    assert threshold_otsu(naip_b4) == float(sk_otsu(naip_b4)) == 91.0
    assert threshold_multiotsu(naip_b4, classes=2) == [92.0]
    assert float(sk_multiotsu(naip_b4, classes=2)[0]) == 92.0


def test_chunked_dynamic_programme_equals_dense(monkeypatch, b08):
    band, valid = b08
    values = band[valid][::7]
    hist = valid_histogram(values, nbins=96)
    dense = [threshold_multiotsu_from_histogram(hist, c) for c in (3, 4)]
    dense_textbook = threshold_multiotsu_from_histogram(hist, 4, skimage_compat=False)
    monkeypatch.setattr(th, "_DENSE_DP_MAX_BINS", 8)
    assert [threshold_multiotsu_from_histogram(hist, c) for c in (3, 4)] == dense
    assert threshold_multiotsu_from_histogram(hist, 4, skimage_compat=False) == dense_textbook


def test_too_many_near_ties_falls_back_to_the_exact_optimum(monkeypatch, naip_b4):
    monkeypatch.setattr(th, "_MAX_CANDIDATES", 0)
    thresholds = threshold_multiotsu(naip_b4, classes=4)
    assert len(thresholds) == 3 and thresholds == sorted(thresholds)
    assert thresholds == _as_floats(sk_multiotsu(naip_b4, classes=4))


def test_multiotsu_with_256_bins_and_5_classes_is_fast():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(m, 9, 4000) for m in (30, 90, 140, 200)])
    hist = valid_histogram(values, nbins=256)
    assert hist.nbins == 256
    best = math.inf
    for _ in range(10):
        start = time.perf_counter()
        threshold_multiotsu_from_histogram(hist, classes=5)
        best = min(best, time.perf_counter() - start)
    assert best < 3e-3, f"{best * 1e3:.2f} ms"


# --------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------


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

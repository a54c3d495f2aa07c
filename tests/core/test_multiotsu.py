"""Behaviour of titiler_otsu.core.multiotsu (dynamic programme, scikit-image compatibility)."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest
from skimage.filters import threshold_multiotsu as sk_multiotsu
from skimage.filters import threshold_otsu as sk_otsu

from tests.core.conftest import _as_floats
from titiler_otsu.core import multiotsu_dp, skimage_compat
from titiler_otsu.core.histogram import Histogram, valid_histogram
from titiler_otsu.core.multiotsu import threshold_multiotsu, threshold_multiotsu_from_histogram
from titiler_otsu.core.otsu import threshold_otsu


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
    monkeypatch.setattr(multiotsu_dp, "_DENSE_DP_MAX_BINS", 8)
    assert [threshold_multiotsu_from_histogram(hist, c) for c in (3, 4)] == dense
    assert threshold_multiotsu_from_histogram(hist, 4, skimage_compat=False) == dense_textbook


def test_too_many_near_ties_falls_back_to_the_exact_optimum(monkeypatch, naip_b4):
    monkeypatch.setattr(skimage_compat, "_MAX_CANDIDATES", 0)
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

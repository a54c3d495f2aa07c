"""Multi-level Otsu thresholds of a histogram or of the valid pixels of an image (pure NumPy).

* :func:`threshold_multiotsu_from_histogram` gives the same result as
  :func:`skimage.filters.threshold_multiotsu`, but it finds the optimum by dynamic programming
  in ``O(classes * nbins**2)`` (vectorised, :mod:`titiler_otsu.core.multiotsu_dp`) instead of
  by brute force in ``O(nbins**(classes - 1))``. With ``skimage_compat`` (the default) the
  near-ties of scikit-image's float32 objective are then resolved as scikit-image does
  (:mod:`titiler_otsu.core.skimage_compat`).
* :func:`threshold_multiotsu` is the convenience wrapper: :func:`~.histogram.valid_histogram`
  then :func:`threshold_multiotsu_from_histogram`.

Neither raises on awkward data (no valid pixel, a uniform image, fewer distinct values than
classes): they return documented, well-defined thresholds instead. An invalid ``classes``
raises :class:`ValueError`.

May import: NumPy, SciPy, scikit-image, morecantile and `core`; nothing else of ours (no GDAL, no web).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from titiler_otsu.core.classify import _MAX_CLASSES
from titiler_otsu.core.histogram import Histogram, _occupied_span, valid_histogram
from titiler_otsu.core.multiotsu_dp import _backtrack, _ClassScores, _suffix_best
from titiler_otsu.core.skimage_compat import _near_optimal, _skimage_pick

__all__ = [
    "threshold_multiotsu_from_histogram",
    "threshold_multiotsu",
]


def _check_classes(classes: Any) -> int:
    if isinstance(classes, bool) or not isinstance(classes, int | np.integer):
        raise ValueError(f"classes must be an integer >= 2, got {classes!r}")
    if not 2 <= classes <= _MAX_CLASSES:
        raise ValueError(f"classes must be between 2 and {_MAX_CLASSES}, got {classes}")
    return int(classes)


def _multiotsu_indices(counts: np.ndarray, thresh_count: int, skimage_compat: bool) -> np.ndarray:
    """Indices of the last bin of each class but the last, for the optimal partition.

    ``counts`` must be trimmed (first and last bins occupied) with more occupied bins
    than classes.
    """
    scores = _ClassScores(counts, skimage_compat)
    best = _suffix_best(scores, thresh_count)
    if skimage_compat:
        top = float(np.max(scores.rows(np.zeros(1, np.intp))[0] + best[thresh_count]))
        # scikit-image adds thresh_count + 1 float32 scores sequentially, and so does the
        # float32 dynamic programme (in another order): each addition rounds by at most
        # 2**-24 of the running sum. Any partition scikit-image may prefer is within a
        # few such roundings of the optimum, and every prefix of it passes the bound
        # below despite the rounding of our own sums.
        margin = 8.0 * (thresh_count + 1) * 2.0**-24 * abs(top)
        # Thresholds inside a run of empty bins give bit-identical float32 sums, and
        # scikit-image keeps the first: only occupied bins (and bin 1, see the bin-0
        # quirk) can end a class.
        allowed = np.zeros(scores.n + 1, bool)
        allowed[1:] = counts > 0
        allowed[2] = True
        ends = _near_optimal(scores, best, thresh_count, top - margin, allowed)
        if ends is not None and len(ends):
            return _skimage_pick(scores, ends) - 1
    return _backtrack(scores, best, thresh_count) - 1


def threshold_multiotsu_from_histogram(
    hist: Histogram, classes: int = 3, *, skimage_compat: bool = True
) -> list[float]:
    """Return the ``classes - 1`` multi-Otsu thresholds of a histogram.

    Parameters
    ----------
    hist : Histogram
        Histogram of the valid pixels, e.g. from :func:`valid_histogram`.
    classes : int, optional
        Number of classes (2 to 256; 2 to 5 are the practical values).
    skimage_compat : bool, optional
        Optimise scikit-image's float32 objective, quirks included (see Notes), so that
        results equal :func:`skimage.filters.threshold_multiotsu` bit for bit. Default
        True. False optimises the textbook objective in float64.

    Returns
    -------
    thresholds : list of float
        ``classes - 1`` bin centres in ascending order. Class ``k`` holds the values
        ``thresholds[k-1] < v <= thresholds[k]``, see :func:`classify`.

    Raises
    ------
    ValueError
        If ``classes`` is not an integer in ``[2, 256]``.

    Notes
    -----
    The thresholds maximise the between-class variance, ``sum_k W_k * (mu_k - mu)**2``,
    over every partition of the (trimmed) histogram into ``classes`` contiguous runs of
    bins, as in scikit-image. Rather than scikit-image's brute-force enumeration of all
    ``C(nbins - 1, classes - 1)`` threshold tuples, the optimum is found by dynamic
    programming over the cumulative moments: ``O(classes * nbins**2)`` operations,
    vectorised with NumPy. That is under 1 ms for 256 bins and up to 5 classes, about
    0.1 s for 1024 bins and under a second for 4096 bins, where scikit-image's brute
    force would not finish. Among equal optima the lexicographically smallest tuple of
    thresholds wins, as in scikit-image's enumeration (which keeps the first strict
    maximum).

    With ``skimage_compat=True`` (the default) the objective is the one scikit-image
    actually computes in ``skimage/filters/_multiotsu.pyx``, reproduced bit for bit:

    * class scores come from float32 cumulative sums of the float32 probabilities;
    * ``first_moment[0] = prob[0]``: the first bin gets the position of the second;
    * the class made of the first bin alone scores 0 (a lookup-table cell that is never
      filled);
    * the scores of a partition are added in float32, in scikit-image's order.

    The dynamic programme (in float32 too) finds the optimum of these class scores up to
    float32 rounding. Every partition within a margin of a few float32 roundings of it
    is then re-scored exactly like scikit-image, and the first maximum in scikit-image's
    enumeration order is kept. If too many partitions fall within that margin (more
    than 20 000, or more than ~4 million scores to evaluate: in practice only with
    thousands of bins, where scikit-image's brute force is intractable anyway), the
    re-scoring is skipped and the dynamic programme's optimum is returned.

    The quirks and the float32 rounding only matter for nearly tied partitions, but
    those do occur on real data (NAIP band 4, Sentinel-2 SCL and B08 in the tests:
    the textbook float64 objective disagrees with scikit-image there by one bin).
    They also make ``threshold_multiotsu_from_histogram(h, 2)`` differ from
    :func:`threshold_otsu_from_histogram` by a bin on some data, exactly as in
    scikit-image (NAIP band 4: 92 vs 91).

    Edge cases, none of which raises:

    * Empty histogram (no valid pixel): ``classes - 1`` NaNs.
    * ``m`` occupied bins with ``m <= classes`` (uniform image, single valid pixel, or
      fewer distinct values than classes): with occupied bin centres
      ``c_1 < ... < c_m`` the thresholds are ``c_1, ..., c_(m-1)`` followed by ``c_m``
      repeated to make ``classes - 1`` values. Each occupied value gets its own class
      ``0 .. m-1`` and the upper classes stay empty; a uniform image gives
      ``[v] * (classes - 1)`` and is all class 0. For ``m == classes`` this is
      scikit-image's result too (it raises for ``m < classes``).
    """
    classes = _check_classes(classes)
    thresh_count = classes - 1
    if hist.pixels == 0:
        return [math.nan] * thresh_count
    start, stop = _occupied_span(hist.counts)
    counts = hist.counts[start:stop]
    centers = hist.centers[start:stop]
    occupied = np.flatnonzero(counts)
    if occupied.size <= classes:
        picks = list(occupied[:-1]) + [occupied[-1]] * (classes - occupied.size)
        return [float(centers[i]) for i in picks]
    indices = _multiotsu_indices(counts, thresh_count, skimage_compat)
    return [float(centers[i]) for i in indices]


def threshold_multiotsu(
    values: Any,
    valid: Any = None,
    classes: int = 3,
    nbins: int = 256,
    *,
    skimage_compat: bool = True,
) -> list[float]:
    """Return the ``classes - 1`` multi-Otsu thresholds of the valid pixels of an image.

    Parameters
    ----------
    values : ndarray or numpy.ma.MaskedArray
        Pixel values, see :func:`valid_histogram`.
    valid : ndarray of bool, optional
        True marks a valid pixel; NaN and +/-inf are always invalid.
    classes : int, optional
        Number of classes (2 to 256).
    nbins : int, optional
        Number of bins for float images or integer images with a range wider than
        ``nbins``.
    skimage_compat : bool, optional
        See :func:`threshold_multiotsu_from_histogram`.

    Returns
    -------
    thresholds : list of float
        Ascending thresholds; see :func:`threshold_multiotsu_from_histogram` for the
        edge cases (NaNs when there is no valid pixel, repeated values when there are
        fewer distinct values than classes).

    Raises
    ------
    ValueError
        If ``classes`` or ``nbins`` is out of range.
    """
    classes = _check_classes(classes)
    hist = valid_histogram(values, valid, nbins)
    return threshold_multiotsu_from_histogram(hist, classes, skimage_compat=skimage_compat)

"""Otsu's threshold of a histogram or of the valid pixels of an image (pure NumPy).

* :func:`threshold_otsu_from_histogram` is Otsu's method on a :class:`~.histogram.Histogram`
  and gives the same result as :func:`skimage.filters.threshold_otsu`, arithmetic and dtypes
  included (float32 counts and class weights, float64 class means).
* :func:`threshold_otsu` is the convenience wrapper: :func:`~.histogram.valid_histogram` then
  :func:`threshold_otsu_from_histogram`.

The foreground is ``value > threshold`` (scikit-image's convention), see
:func:`titiler_otsu.core.classify.classify`. No valid pixel gives NaN, a uniform image gives
the value itself; neither raises.

May import: NumPy, SciPy, scikit-image, morecantile and `core`; nothing else of ours (no GDAL, no web).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from titiler_otsu.core.histogram import Histogram, _occupied_span, valid_histogram

__all__ = [
    "threshold_otsu_from_histogram",
    "threshold_otsu",
]


def threshold_otsu_from_histogram(hist: Histogram) -> float:
    """Return the Otsu threshold of a histogram.

    Parameters
    ----------
    hist : Histogram
        Histogram of the valid pixels, e.g. from :func:`valid_histogram`.

    Returns
    -------
    threshold : float
        The bin centre that maximises the between-class variance. Pixels with a value
        strictly greater than the threshold are the foreground (scikit-image's
        convention), see :func:`classify`.

    Notes
    -----
    The computation is the one of :func:`skimage.filters.threshold_otsu`, arithmetic
    and dtypes included (float32 counts and cumulative class weights, float64 class
    means): the between-class variance ``w1 * w2 * (m1 - m2)**2`` of every split
    between two bins of the histogram trimmed to its occupied range, first maximum
    wins. On integer images, and on float64 images with the same ``nbins``, the result
    equals scikit-image's exactly.

    Edge cases, none of which raises:

    * Empty histogram (no valid pixel): ``nan``.
    * Only one occupied bin (uniform image, single valid pixel): that bin's centre, i.e.
      the value itself for integer bins and for uniform floating-point images. Every
      pixel is then background (class 0).
    """
    if hist.pixels == 0:
        return math.nan
    start, stop = _occupied_span(hist.counts)
    centers = hist.centers[start:stop]
    if stop - start == 1:
        return float(centers[0])
    # scikit-image's arithmetic, dtypes included: float32 counts and class weights.
    counts = hist.counts[start:stop].astype(np.float32)
    weight1 = np.cumsum(counts)
    weight2 = np.cumsum(counts[::-1])[::-1]
    moment = counts * centers
    mean1 = np.cumsum(moment) / weight1
    mean2 = (np.cumsum(moment[::-1]) / weight2[::-1])[::-1]
    variance12 = weight1[:-1] * weight2[1:] * (mean1[:-1] - mean2[1:]) ** 2
    return float(centers[int(np.argmax(variance12))])


def threshold_otsu(values: Any, valid: Any = None, nbins: int = 256) -> float:
    """Return the Otsu threshold of the valid pixels of an image.

    Parameters
    ----------
    values : ndarray or numpy.ma.MaskedArray
        Pixel values, see :func:`valid_histogram`.
    valid : ndarray of bool, optional
        True marks a valid pixel; NaN and +/-inf are always invalid.
    nbins : int, optional
        Number of bins for float images or integer images with a range wider than
        ``nbins``.

    Returns
    -------
    threshold : float
        Foreground is ``value > threshold``. NaN when there is no valid pixel; the value
        itself for a uniform image.

    Notes
    -----
    ``threshold_otsu_from_histogram(valid_histogram(values, valid, nbins))``. On
    integer images with at most ``nbins`` distinct levels, and on float images with the
    same ``nbins``, the result equals :func:`skimage.filters.threshold_otsu` applied to
    the valid pixels.
    """
    return threshold_otsu_from_histogram(valid_histogram(values, valid, nbins))

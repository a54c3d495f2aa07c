"""Classification of pixel values by ascending thresholds (pure NumPy).

* :func:`classify` maps values to class indices (``uint8``): the number of thresholds strictly
  below the value, so with one threshold the foreground is ``value > threshold`` like
  ``image > skimage.filters.threshold_otsu(image)``. ``invert`` counts classes from the top.
* ``_MAX_CLASSES``: the largest number of classes (class indices must fit in ``uint8``), also
  the limit of :mod:`titiler_otsu.core.multiotsu`.

``uint8`` input goes through a 256-entry lookup table, other dtypes are compared with each
threshold in float64 (binary search above ``_MAX_COMPARISONS`` thresholds). NaN values and
NaN thresholds give class 0. Descending or too many thresholds raise :class:`ValueError`.

May import: NumPy, SciPy, scikit-image, morecantile and `core`; nothing else of ours (no GDAL, no web).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "classify",
]

#: Largest number of classes: class indices must fit in ``uint8``.
_MAX_CLASSES = 256

#: Up to this many thresholds, :func:`classify` compares instead of binary searching.
_MAX_COMPARISONS = 8


def classify(values: Any, thresholds: Sequence[float] | np.ndarray | float, invert: bool = False) -> np.ndarray:
    """Return the class index of every pixel.

    Parameters
    ----------
    values : ndarray or numpy.ma.MaskedArray
        Pixel values of any shape and real dtype. The mask of a masked array is ignored
        (the underlying data are classified); callers mask the result.
    thresholds : sequence of float or float
        Ascending (non-decreasing) thresholds, e.g. from :func:`threshold_multiotsu`.
        A single number means one threshold.
    invert : bool, optional
        Count classes from the top: ``len(thresholds) - class``. With one threshold the
        foreground (1) is then ``value <= threshold``, the dark side.

    Returns
    -------
    classes : ndarray of uint8
        Same shape as ``values``. The class is the number of thresholds strictly below
        the value, ``np.searchsorted(thresholds, value, side="left")``, so with one
        threshold it is ``value > threshold`` like
        ``image > skimage.filters.threshold_otsu(image)``.

    Raises
    ------
    ValueError
        If ``thresholds`` are not ascending, or there are more than 255 of them, or
        ``values`` is not a real numeric array.

    Notes
    -----
    * NaN values get class 0 (also with ``invert``); mask them in the caller.
    * NaN thresholds (no valid pixel when they were computed) compare above every
      value, so every pixel gets class 0 (``len(thresholds)`` with ``invert``).
    * ``uint8`` (and bool) input goes through a 256-entry lookup table; other dtypes
      are compared with each threshold (binary search above 8 thresholds). Comparisons
      are made in float64, so they are exact for every dtype except 64-bit integers
      beyond 2**53.
    """
    thr = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if thr.ndim != 1:
        raise ValueError("thresholds must be a 1-D sequence of numbers")
    if thr.size > _MAX_CLASSES - 1:
        raise ValueError(f"at most {_MAX_CLASSES - 1} thresholds are supported, got {thr.size}")
    finite = thr[~np.isnan(thr)]
    if finite.size != thr.size and np.isnan(thr[: finite.size]).any():
        raise ValueError("NaN thresholds may only come last")
    if np.any(np.diff(finite) < 0):
        raise ValueError(f"thresholds must be ascending, got {thr.tolist()}")

    data = np.asarray(values.data if isinstance(values, np.ma.MaskedArray) else values)
    if data.dtype == np.bool_:
        data = data.view(np.uint8)
    if data.dtype.kind not in "uif":
        raise ValueError(f"values must be a real numeric array, got dtype {data.dtype}")
    top = thr.size

    if data.dtype == np.uint8:
        lut = np.searchsorted(thr, np.arange(256, dtype=np.float64), side="left")
        if invert:
            lut = top - lut
        return np.take(lut.astype(np.uint8), data)

    if top <= _MAX_COMPARISONS:
        # One comparison per threshold beats a binary search for a few thresholds.
        # Comparing with float64 scalars keeps the comparison exact for every dtype.
        cls = np.zeros(data.shape, np.uint8)
        above = np.empty(data.shape, bool)
        for t in thr:
            np.greater(data, np.float64(t), out=above)
            cls += above
    else:
        cls = np.searchsorted(thr, data, side="left").astype(np.uint8)
        if data.dtype.kind == "f":
            cls[np.isnan(data)] = 0  # NaN sorts above every threshold
    if invert:
        np.subtract(np.uint8(top), cls, out=cls)
        if data.dtype.kind == "f":
            cls[np.isnan(data)] = 0
    return cls

"""Histograms of the valid pixels of an image (pure NumPy).

The thresholds of :mod:`titiler_otsu.core.otsu` and :mod:`titiler_otsu.core.multiotsu` are computed
from these histograms, so the binning decides whether they equal scikit-image's.

* :class:`Histogram` holds the counts and the bin edges (immutable); an *empty* histogram (no
  valid pixel) and a *degenerate* one (a single zero-width bin) are well-defined values.
* :func:`valid_histogram` bins the valid (unmasked, finite) values. Integer images whose
  value range fits in ``nbins`` get one bin per integer value, like
  :func:`skimage.exposure.histogram`; everything else gets ``nbins`` equal-width bins, like
  :func:`numpy.histogram`. Integer values are counted with ``np.bincount`` in both cases.
* The private helpers shared by the threshold modules: the ``nbins`` check and the occupied
  span of a histogram (the range the thresholds are searched in).

:func:`valid_histogram` does not raise on awkward data (no valid pixel, a uniform image); it
returns a documented histogram instead. Invalid arguments raise :class:`ValueError`.

May import: NumPy, SciPy, scikit-image, morecantile and `core`; nothing else of ours (no GDAL, no web).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Histogram",
    "valid_histogram",
]

#: Largest integer value range counted level by level with ``np.bincount``. Wider
#: integer ranges go through ``np.histogram`` instead.
_MAX_LEVELS = 1 << 20


@dataclass(frozen=True, eq=False)
class Histogram:
    """Histogram of the valid pixels of an image.

    Parameters
    ----------
    counts : ndarray of int64, shape (nbins,)
        Number of valid pixels in each bin.
    edges : ndarray of float64, shape (nbins + 1,)
        Bin edges. A bin holds the values ``edges[i] <= v < edges[i + 1]``; the last bin
        also holds ``v == edges[-1]``, as in :func:`numpy.histogram`.
    integer_bins : bool
        True when every bin holds exactly one integer value. Then the edges are
        ``vmin - 0.5, vmin + 0.5, ..., vmax + 0.5`` and :attr:`centers` are the integers
        ``vmin ... vmax``.

    Notes
    -----
    Two special shapes exist:

    * An *empty* histogram (no valid pixel and no ``value_range``) has ``nbins == 0``,
      ``counts`` of shape ``(0,)`` and ``edges == [nan]``.
    * A *degenerate* floating-point histogram (every valid value equal, or a
      ``value_range`` with equal ends) has one zero-width bin ``edges == [v, v]`` whose
      centre is exactly ``v``.

    Instances are immutable. Equality is identity (arrays do not define ``==``).
    """

    counts: np.ndarray
    edges: np.ndarray
    integer_bins: bool

    def __post_init__(self) -> None:
        counts = np.ascontiguousarray(self.counts, dtype=np.int64)
        edges = np.ascontiguousarray(self.edges, dtype=np.float64)
        if counts.ndim != 1:
            raise ValueError(f"counts must be 1-D, got shape {counts.shape}")
        if edges.shape != (counts.size + 1,):
            raise ValueError(f"edges must have shape (nbins + 1,) = ({counts.size + 1},), got {edges.shape}")
        if counts.size and counts.min() < 0:
            raise ValueError("counts must be non-negative")
        counts.setflags(write=False)
        edges.setflags(write=False)
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "integer_bins", bool(self.integer_bins))

    @property
    def centers(self) -> np.ndarray:
        """Bin centres, ``(edges[:-1] + edges[1:]) / 2`` (float64, shape ``(nbins,)``)."""
        # Halving first is bit-identical (halving is exact) and cannot overflow.
        return self.edges[:-1] * 0.5 + self.edges[1:] * 0.5

    @property
    def pixels(self) -> int:
        """Number of valid pixels counted, ``counts.sum()``."""
        return int(self.counts.sum())

    @property
    def nbins(self) -> int:
        """Number of bins."""
        return int(self.counts.size)


def _check_nbins(nbins: Any) -> int:
    if isinstance(nbins, bool) or not isinstance(nbins, int | np.integer):
        raise ValueError(f"nbins must be an integer >= 2, got {nbins!r}")
    if nbins < 2:
        raise ValueError(f"nbins must be >= 2, got {nbins}")
    return int(nbins)


def _check_value_range(value_range: Any) -> tuple[float, float] | None:
    if value_range is None:
        return None
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(f"value_range must be a (min, max) pair, got {value_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"value_range must be finite with min <= max, got {value_range!r}")
    return lo, hi


def _valid_values(values: Any, valid: Any) -> np.ndarray:
    """Return the valid, finite values as a 1-D array of the input dtype."""
    if isinstance(values, np.ma.MaskedArray):
        mask = np.ma.getmask(values)
        data = np.asarray(values.data)
        keep = None if mask is np.ma.nomask else ~np.asarray(mask, dtype=bool)
    else:
        data = np.asarray(values)
        keep = None
    if data.dtype == np.bool_:
        data = data.view(np.uint8)
    if data.dtype.kind not in "uif":
        raise ValueError(f"values must be a real numeric array, got dtype {data.dtype}")
    if keep is not None and keep.shape != data.shape:
        keep = np.broadcast_to(keep, data.shape)
    if valid is not None:
        v = np.broadcast_to(np.asarray(valid, dtype=bool), data.shape)
        keep = v if keep is None else (keep & v)
    if data.dtype.kind == "f":
        finite = np.isfinite(data)
        keep = finite if keep is None else (keep & finite)
    if keep is None:
        return data.reshape(-1)
    return data[keep]


def _empty_histogram() -> Histogram:
    return Histogram(np.zeros(0, np.int64), np.full(1, np.nan), False)


def _integer_bins_apply(lo: float, hi: float, nbins: int) -> bool:
    return lo.is_integer() and hi.is_integer() and (hi - lo + 1) <= nbins


def _level_counts(v: np.ndarray, vmin: int, vmax: int) -> np.ndarray:
    """Count each integer level ``vmin..vmax`` of an integer array (np.bincount)."""
    kind, size = v.dtype.kind, v.dtype.itemsize
    if kind == "u" and size <= 2:
        # uint8/uint16 are safely cast to intp by bincount: no offset copy needed.
        return np.bincount(v, minlength=vmax + 1)[vmin:]
    if kind == "u" and size == 8:
        off = (v - np.uint64(vmin)).astype(np.intp)
    else:
        off = v.astype(np.intp, copy=False) - vmin
    return np.bincount(off, minlength=vmax - vmin + 1)


def _rebin_levels(level_counts: np.ndarray, vmin: int, edges: np.ndarray) -> np.ndarray:
    """Sum integer level counts into bins; levels outside the edges go to the end bins."""
    levels = np.arange(vmin, vmin + level_counts.size, dtype=np.int64)
    cum = np.zeros(level_counts.size + 1, np.int64)
    np.cumsum(level_counts, out=cum[1:])
    # Number of levels strictly below each interior edge (numpy.histogram semantics:
    # a value equal to an edge belongs to the bin on its right).
    cuts = np.searchsorted(levels, edges[1:-1], side="left")
    bounds = np.concatenate(([0], cuts, [level_counts.size]))
    return cum[bounds[1:]] - cum[bounds[:-1]]


def _integer_edges(lo: int, hi: int) -> np.ndarray:
    return np.arange(lo, hi + 2, dtype=np.float64) - 0.5


def valid_histogram(
    values: Any,
    valid: Any = None,
    nbins: int = 256,
    value_range: tuple[float, float] | None = None,
) -> Histogram:
    """Return the histogram of the valid pixels of an image.

    Parameters
    ----------
    values : ndarray or numpy.ma.MaskedArray
        Pixel values of any shape; integer (``uint8``, ``uint16``, ``int16``...), float
        or bool dtype. The mask of a masked array marks invalid pixels.
    valid : ndarray of bool, optional
        Validity mask broadcastable to ``values``; True marks a valid pixel. Combined
        with the mask of a masked array. NaN and +/-inf are always invalid.
    nbins : int, optional
        Number of bins (at least 2). For integer values whose range fits, see Notes.
    value_range : (float, float), optional
        Fixed ``(min, max)`` of the bins instead of the min and max of the valid values.
        Values outside it are counted in the first or last bin.

    Returns
    -------
    hist : Histogram
        Counts, edges and the kind of binning.

    Raises
    ------
    ValueError
        If ``nbins < 2``, ``value_range`` is not a finite ``(min, max)`` pair with
        ``min <= max``, or ``values`` is not a real numeric array.

    Notes
    -----
    Binning follows :func:`skimage.exposure.histogram` so that thresholds equal
    scikit-image's:

    * Integer dtype and ``vmax - vmin + 1 <= nbins`` (with ``vmin``/``vmax`` integral):
      one bin per integer value, ``edges = vmin - 0.5, ..., vmax + 0.5``. The histogram
      then has ``vmax - vmin + 1`` bins, not ``nbins``. It is computed with
      ``np.bincount``.
    * Otherwise: ``nbins`` equal-width bins, exactly as
      ``np.histogram(v, bins=nbins, range=(vmin, vmax))``. Integer inputs are still
      counted with ``np.bincount`` per integer level and then summed into the bins.

    ``vmin``/``vmax`` are the min and max of the valid values, or ``value_range``. With
    a ``value_range``, values are clipped to it in float64 (integers with integral ends
    and at most ``nbins`` levels keep one bin per integer). Float values whose range
    overflows their dtype are binned in float64.

    Edge cases, none of which raises:

    * No valid pixel: an empty histogram (``pixels == 0``; ``nbins == 0`` and
      ``edges == [nan]`` unless ``value_range`` is given, in which case the bins span it
      and all counts are zero).
    * Floating-point values that are all equal (or ``value_range`` with equal ends): one
      zero-width bin ``[v, v]`` whose centre is ``v`` (``np.histogram`` would widen the
      range to ``v +/- 0.5``, and the bin centre would no longer be ``v``).
    """
    nbins = _check_nbins(nbins)
    rng = _check_value_range(value_range)
    v = _valid_values(values, valid)
    is_int = v.dtype.kind in "ui"

    if v.size == 0:
        if rng is None:
            return _empty_histogram()
        lo, hi = rng
        if is_int and _integer_bins_apply(lo, hi, nbins):
            edges = _integer_edges(int(lo), int(hi))
            return Histogram(np.zeros(edges.size - 1, np.int64), edges, True)
        if lo == hi:
            return Histogram(np.zeros(1, np.int64), np.array([lo, hi]), False)
        return Histogram(np.zeros(nbins, np.int64), np.linspace(lo, hi, nbins + 1), False)

    vmin, vmax = v.min(), v.max()

    if is_int and int(vmax) - int(vmin) < _MAX_LEVELS:
        dmin, dmax = int(vmin), int(vmax)
        level_counts = _level_counts(v, dmin, dmax)
        if rng is None:
            if dmax - dmin + 1 <= nbins:
                return Histogram(level_counts, _integer_edges(dmin, dmax), True)
            edges = np.linspace(float(dmin), float(dmax), nbins + 1)
            return Histogram(_rebin_levels(level_counts, dmin, edges), edges, False)
        lo, hi = rng
        if _integer_bins_apply(lo, hi, nbins):
            edges = _integer_edges(int(lo), int(hi))
            return Histogram(_rebin_levels(level_counts, dmin, edges), edges, True)
        if lo == hi:
            return Histogram(np.array([v.size]), np.array([lo, hi]), False)
        edges = np.linspace(lo, hi, nbins + 1)
        return Histogram(_rebin_levels(level_counts, dmin, edges), edges, False)

    # Floating point values, or integers spanning a very wide range.
    if rng is None:
        lo_v, hi_v = vmin, vmax
        if is_int and int(vmax) - int(vmin) + 1 <= nbins:  # only with a huge nbins
            edges = _integer_edges(int(vmin), int(vmax))
            return Histogram(np.histogram(v, bins=edges)[0], edges, True)
    else:
        lo_v, hi_v = rng
        if is_int and _integer_bins_apply(lo_v, hi_v, nbins):
            edges = _integer_edges(int(lo_v), int(hi_v))
            clipped = np.clip(v.astype(np.float64), lo_v, hi_v)
            return Histogram(np.histogram(clipped, bins=edges)[0], edges, True)
        v = np.clip(v.astype(np.float64), lo_v, hi_v)
    if lo_v == hi_v:
        return Histogram(np.array([v.size]), np.array([float(lo_v), float(hi_v)]), False)
    return _float_histogram(v, nbins, lo_v, hi_v)


def _float_histogram(v: np.ndarray, nbins: int, lo: Any, hi: Any) -> Histogram:
    """``np.histogram(v, nbins, (lo, hi))``, also when ``hi - lo`` overflows."""
    with np.errstate(over="ignore"):
        span = np.subtract(hi, lo)
    if not np.isfinite(span):
        v, lo, hi = v.astype(np.float64), float(lo), float(hi)
        if not math.isfinite(hi - lo):  # beyond float64: bin the halves (exact)
            counts, edges = np.histogram(v * 0.5, bins=nbins, range=(lo * 0.5, hi * 0.5))
            return Histogram(counts, edges * 2.0, False)
    edges = np.linspace(lo, hi, nbins + 1)
    if not (edges[1:] > edges[:-1]).all():  # a range a few ulps wide (smoothed uniform data): one bin
        return Histogram(np.array([v.size]), np.array([float(lo), float(hi)]), False)
    counts, edges = np.histogram(v, bins=nbins, range=(lo, hi))
    return Histogram(counts, edges, False)


def _occupied_span(counts: np.ndarray) -> tuple[int, int]:
    nz = np.flatnonzero(counts)
    return int(nz[0]), int(nz[-1]) + 1

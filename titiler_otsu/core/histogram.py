"""Otsu and multi-Otsu thresholds from histograms of valid pixels (pure NumPy).

This module has no web or raster I/O dependency: it turns arrays of pixel values (with a
validity mask) into histograms, histograms into thresholds, and values into classes.

* :func:`valid_histogram` bins the valid (unmasked, finite) values. Integer images whose
  value range fits in ``nbins`` get one bin per integer value, like
  :func:`skimage.exposure.histogram`; everything else gets ``nbins`` equal-width bins, like
  :func:`numpy.histogram`.
* :func:`threshold_otsu_from_histogram` is Otsu's method and gives the same result as
  :func:`skimage.filters.threshold_otsu`.
* :func:`threshold_multiotsu_from_histogram` is multi-level Otsu. It gives the same result
  as :func:`skimage.filters.threshold_multiotsu`, but it finds the optimum by dynamic
  programming in ``O(classes * nbins**2)`` (vectorised) instead of by brute force in
  ``O(nbins**(classes - 1))``.
* :func:`classify` maps values to class indices, with scikit-image's convention that the
  foreground is ``value > threshold``.

None of these functions raises on awkward data (no valid pixel, a uniform image, fewer
distinct values than classes). They return documented, well-defined results instead.
Invalid arguments raise :class:`ValueError`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = [
    "Histogram",
    "valid_histogram",
    "threshold_otsu_from_histogram",
    "threshold_multiotsu_from_histogram",
    "threshold_otsu",
    "threshold_multiotsu",
    "classify",
]

#: Largest integer value range counted level by level with ``np.bincount``. Wider
#: integer ranges go through ``np.histogram`` instead.
_MAX_LEVELS = 1 << 20

#: Largest number of classes: class indices must fit in ``uint8``.
_MAX_CLASSES = 256

#: Above this many histogram bins the multi-Otsu score matrix is built one block of
#: rows at a time instead of as a whole.
_DENSE_DP_MAX_BINS = 1024

#: Up to this many thresholds, :func:`classify` compares instead of binary searching.
_MAX_COMPARISONS = 8

#: Most near-optimal partitions examined to reproduce scikit-image's float32 choice,
#: and most score-matrix cells evaluated per level while enumerating them.
_MAX_CANDIDATES = 20_000
_CANDIDATE_CELLS = 1 << 22


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


# --------------------------------------------------------------------------------------
# Histograms
# --------------------------------------------------------------------------------------


def _check_nbins(nbins: Any) -> int:
    if isinstance(nbins, bool) or not isinstance(nbins, int | np.integer):
        raise ValueError(f"nbins must be an integer >= 2, got {nbins!r}")
    if nbins < 2:
        raise ValueError(f"nbins must be >= 2, got {nbins}")
    return int(nbins)


def _check_classes(classes: Any) -> int:
    if isinstance(classes, bool) or not isinstance(classes, int | np.integer):
        raise ValueError(f"classes must be an integer >= 2, got {classes!r}")
    if not 2 <= classes <= _MAX_CLASSES:
        raise ValueError(f"classes must be between 2 and {_MAX_CLASSES}, got {classes}")
    return int(classes)


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


# --------------------------------------------------------------------------------------
# Otsu
# --------------------------------------------------------------------------------------


def _occupied_span(counts: np.ndarray) -> tuple[int, int]:
    nz = np.flatnonzero(counts)
    return int(nz[0]), int(nz[-1]) + 1


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


# --------------------------------------------------------------------------------------
# Multi-Otsu (dynamic programming)
# --------------------------------------------------------------------------------------


def _penalty(mask: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``-inf`` where ``mask``, 0 elsewhere."""
    penalty = np.zeros(mask.shape, dtype)
    penalty[mask] = -np.inf
    return penalty


@lru_cache(maxsize=16)
def _not_after(size: int, dtype: np.dtype) -> np.ndarray:
    """Read-only ``(size, size)`` penalty: ``-inf`` on cells ``b <= a``, else 0."""
    penalty = _penalty(np.tri(size, dtype=bool), dtype)
    penalty.setflags(write=False)
    return penalty


def _divide_scores(sq: np.ndarray, dw: np.ndarray) -> np.ndarray:
    """``sq**2 / dw`` in the dtype of the inputs (in place in ``sq``), 0 unless ``dw > 0``.

    A plain division then ``fmax(., 0)``: cells with ``dw == 0`` (empty class: 0/0) or
    ``dw < 0`` (not a class) become 0, well-formed classes (``>= 0``) are untouched.
    """
    np.square(sq, out=sq)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        np.divide(sq, dw, out=sq)
    return np.fmax(sq, 0, out=sq)


class _ClassScores:
    """Scores ``S**2 / W`` of every class of consecutive histogram bins.

    ``row(a)[b]`` is the score of the class made of bins ``a .. b-1`` (``0 <= a < b <=
    n``): the squared first moment over the zeroth moment of its pixels. It is 0 for a
    class holding no pixel and ``-inf`` when ``b <= a`` (not a class). The multi-Otsu
    objective of a partition is the sum of the scores of its classes.

    With ``skimage_compat`` the scores are computed in float32 exactly as scikit-image's
    lookup table (``skimage/filters/_multiotsu.pyx``, ``_set_var_btwcls_lut``):
    probabilities ``counts / counts.sum()`` rounded to float32, bin *index* as position,
    sequential float32 cumulative sums, ``first_moment[0] = prob[0]`` (so bin 0 sits at
    position 1), and the class of bin 0 alone scoring 0 (a lookup-table cell that is
    never filled). Otherwise they are the textbook float64 scores, with positions
    centred on the mean to limit cancellation. The dynamic programme runs in the dtype
    of the scores.
    """

    def __init__(self, counts: np.ndarray, skimage_compat: bool) -> None:
        n = counts.size
        self.n = n
        self.skimage_compat = skimage_compat
        if skimage_compat:
            prob = (counts / counts.sum()).astype(np.float32)
            terms = np.arange(n, dtype=np.float32) * prob
            terms[0] = prob[0]
            dtype: np.dtype = np.dtype(np.float32)
            weights = prob
        else:
            weights = counts.astype(np.float64)
            position = np.arange(n, dtype=np.float64)
            position -= float(weights @ position) / float(weights.sum())
            terms = weights * position
            dtype = np.dtype(np.float64)
        # Cumulative moments with a leading zero: bins a..b-1 hold cw[b] - cw[a].
        self.dtype = dtype
        self.cw = np.zeros(n + 1, dtype)
        np.cumsum(weights, out=self.cw[1:])
        self.cs = np.zeros(n + 1, dtype)
        np.cumsum(terms, out=self.cs[1:])
        self._full: np.ndarray | None = None

    @property
    def dense(self) -> bool:
        """Whether the whole ``(n+1, n+1)`` score matrix is small enough to keep."""
        return self.n + 1 <= _DENSE_DP_MAX_BINS

    def _rows(self, a: np.ndarray | None) -> np.ndarray:
        """Score rows for the class starts ``a``; None means every row."""
        size = self.n + 1
        if a is None:  # every row: plain broadcasting and a cached mask
            dw = self.cw[None, :] - self.cw[:, None]
            sq = self.cs[None, :] - self.cs[:, None]
            not_a_class = _not_after(size, self.dtype)
        else:
            dw = self.cw[None, :] - self.cw[a, None]
            sq = self.cs[None, :] - self.cs[a, None]
            not_a_class = _penalty(a[:, None] >= np.arange(size)[None, :], self.dtype)
        score = _divide_scores(sq, dw)
        score += not_a_class
        if self.skimage_compat:
            if a is None:
                score[0, 1] = 0.0
            else:
                score[(a == 0), 1] = 0.0
        return score

    def pairs(self, a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
        """Scores of the classes ``a[i] .. b[i]-1`` (same arithmetic as the rows)."""
        dw = self.cw[b] - self.cw[a]
        sq = self.cs[b] - self.cs[a]
        score = _divide_scores(sq, dw)
        score[b <= a] = -np.inf
        if self.skimage_compat:
            score[(a == 0) & (b == 1)] = 0.0
        return score

    def full(self) -> np.ndarray | None:
        """The whole score matrix (computed once), or None if it is too large."""
        if self._full is None and self.dense:
            self._full = self._rows(None)
        return self._full

    def rows(self, a: np.ndarray) -> np.ndarray:
        """Score rows for the class starts ``a`` (1-D int array), shape ``(a.size, n+1)``."""
        if self._full is not None:
            return self._full[a]
        if 8 * a.size > self.n + 1 and self.full() is not None:
            return self._full[a]  # type: ignore[index]
        return self._rows(a)

    def row_blocks(self) -> Iterator[np.ndarray]:
        """Yield all score rows, in blocks of consecutive rows."""
        size = self.n + 1
        full = self.full()
        if full is not None:
            yield full
            return
        step = max(1, (1 << 20) // size)
        for a0 in range(0, size, step):
            yield self._rows(np.arange(a0, min(a0 + step, size)))


def _suffix_best(scores: _ClassScores, thresh_count: int) -> list[np.ndarray]:
    """``best[k][a]``: best objective of bins ``a..n-1`` split into ``k`` classes."""
    n = scores.n
    # One class a..n-1: O(n), so two classes never need the whole score matrix.
    best = [np.empty(0), scores.pairs(np.arange(n + 1), n)]
    for k in range(2, thresh_count + 1):
        prev = best[k - 1][None, :]
        full = scores.full()
        if full is not None:
            best.append((full + prev).max(axis=1))
        else:
            best.append(np.concatenate([(block + prev).max(axis=1) for block in scores.row_blocks()]))
    return best


def _backtrack(scores: _ClassScores, best: list[np.ndarray], thresh_count: int) -> np.ndarray:
    """Class ends ``b_1 < ... < b_(C-1)`` of the lexicographically first optimum."""
    ends = np.empty(thresh_count, np.intp)
    a = 0
    for i, k in enumerate(range(thresh_count, 0, -1)):
        a = int(np.argmax(scores.rows(np.array([a]))[0] + best[k]))  # first maximum
        ends[i] = a
    return ends


def _near_optimal(
    scores: _ClassScores,
    best: list[np.ndarray],
    thresh_count: int,
    floor: float,
    allowed_end: np.ndarray,
) -> np.ndarray | None:
    """Every partition scoring at least ``floor``, as class ends, in lexicographic order.

    Branch and bound over the dynamic-programming table (``best`` bounds every
    completion exactly, so no branch is a dead end). Class ends are restricted to
    ``allowed_end``. Returns None if there are more than ``_MAX_CANDIDATES`` or the
    enumeration would evaluate more than ``_CANDIDATE_CELLS`` scores at one level.
    """
    starts = np.zeros(1, np.intp)
    partial = np.zeros(1, scores.dtype)
    levels: list[tuple[np.ndarray, np.ndarray]] = []  # (parent row, class end) per level
    for k in range(thresh_count, 0, -1):
        if starts.size * (scores.n + 1) > _CANDIDATE_CELLS:
            return None
        row_scores = scores.rows(starts)
        total = row_scores + best[k]
        total += partial[:, None]
        keep = total >= floor
        keep &= allowed_end
        rows, cols = np.nonzero(keep)
        if rows.size > _MAX_CANDIDATES:
            return None
        partial = partial[rows] + row_scores[rows, cols]
        levels.append((rows, cols))
        starts = cols
    # Walk the parents back to spell out every partition.
    ends = np.empty((starts.size, thresh_count), np.intp)
    pick = np.arange(starts.size)
    for level in range(thresh_count - 1, -1, -1):
        rows, cols = levels[level]
        ends[:, level] = cols[pick]
        pick = rows[pick]
    return ends


def _skimage_pick(scores: _ClassScores, ends: np.ndarray) -> np.ndarray:
    """Candidate scikit-image keeps: first maximum of its float32 sum, in its order."""
    if len(ends) == 1:
        return ends[0]
    count, thresh_count = ends.shape
    starts = np.zeros((count, thresh_count + 1), np.intp)
    starts[:, 1:] = ends
    stops = np.full((count, thresh_count + 1), scores.n, np.intp)
    stops[:, :-1] = ends
    full = scores.full()
    if full is not None:
        class_scores = full[starts, stops]
    else:
        class_scores = scores.pairs(starts.ravel(), stops.ravel()).reshape(starts.shape)
    # scikit-image: first class + last class, then the middle classes in order.
    sigma = class_scores[:, 0] + class_scores[:, -1]
    for k in range(1, thresh_count):
        sigma = sigma + class_scores[:, k]
    return ends[int(np.argmax(sigma))]


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


# --------------------------------------------------------------------------------------
# Convenience wrappers
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------


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

"""The dynamic programme behind multi-Otsu: class scores and the optimal partition (pure NumPy).

The multi-Otsu objective of a partition of a histogram into contiguous classes is the sum of
the scores ``S**2 / W`` of its classes (squared first moment over pixel count), which is the
between-class variance up to a constant. This module holds:

* :class:`_ClassScores`: the score of every class ``a .. b-1`` of consecutive bins, from
  cumulative moments, as a whole ``(n+1, n+1)`` matrix up to ``_DENSE_DP_MAX_BINS`` bins and
  one block of rows at a time above. With ``skimage_compat`` the scores are scikit-image's
  float32 lookup table (``skimage/filters/_multiotsu.pyx``), quirks included; otherwise the
  textbook float64 scores.
* :func:`_suffix_best`: ``best[k][a]``, the best objective of bins ``a .. n-1`` split into
  ``k`` classes, in ``O(classes * nbins**2)`` vectorised operations.
* :func:`_backtrack`: the class ends of the lexicographically first optimum (as scikit-image's
  enumeration, which keeps the first strict maximum).

Private to :mod:`titiler_otsu.core.multiotsu` and :mod:`titiler_otsu.core.skimage_compat`.

May import: NumPy, SciPy, scikit-image, morecantile and `core`; nothing else of ours (no GDAL, no web).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

import numpy as np

#: Above this many histogram bins the multi-Otsu score matrix is built one block of
#: rows at a time instead of as a whole.
_DENSE_DP_MAX_BINS = 1024


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

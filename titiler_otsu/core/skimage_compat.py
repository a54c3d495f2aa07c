"""Reproduce scikit-image's multi-Otsu choice among float32 near-ties (pure NumPy).

scikit-image's :func:`skimage.filters.threshold_multiotsu` adds float32 class scores in its
own order and keeps the first maximum of its enumeration. Partitions whose scores differ by a
few float32 roundings are then decided by that rounding, which the dynamic programme of
:mod:`titiler_otsu.core.multiotsu_dp` (adding in another order) does not reproduce. This
module recovers scikit-image's pick:

* :func:`_near_optimal` enumerates every partition scoring within a margin of the optimum
  (branch and bound over the dynamic-programming table), giving up beyond
  ``_MAX_CANDIDATES`` partitions or ``_CANDIDATE_CELLS`` scores per level;
* :func:`_skimage_pick` re-scores those candidates exactly as scikit-image (first class +
  last class, then the middle classes, in float32) and keeps its first maximum.

The float32 class scores themselves (scikit-image's lookup table) are computed by
:class:`titiler_otsu.core.multiotsu_dp._ClassScores` with ``skimage_compat=True``.

May import: NumPy, SciPy, scikit-image, morecantile and `core`; nothing else of ours (no GDAL, no web).
"""

from __future__ import annotations

import numpy as np

from titiler_otsu.core.multiotsu_dp import _ClassScores

#: Most near-optimal partitions examined to reproduce scikit-image's float32 choice,
#: and most score-matrix cells evaluated per level while enumerating them.
_MAX_CANDIDATES = 20_000
_CANDIDATE_CELLS = 1 << 22


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

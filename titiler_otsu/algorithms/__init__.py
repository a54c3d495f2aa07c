"""Segmentation algorithms, registered on top of TiTiler's default algorithms.

May import: `core`, `algorithms`, `errors`, `settings`.
"""

from __future__ import annotations

from titiler.core.algorithm import Algorithms
from titiler.core.algorithm import algorithms as titiler_algorithms
from titiler.core.algorithm.base import BaseAlgorithm

from titiler_otsu.algorithms.local import LocalOtsu
from titiler_otsu.algorithms.otsu import MultiOtsu, Otsu, SegmentationAlgorithm

__all__ = ["SegmentationAlgorithm", "Otsu", "MultiOtsu", "LocalOtsu", "otsu_algorithms", "halo_of"]


def otsu_algorithms() -> Algorithms:
    """TiTiler's algorithms plus ours (a new registry; TiTiler's global one is untouched)."""
    ours: dict[str, type[BaseAlgorithm]] = {"otsu": Otsu, "multiotsu": MultiOtsu, "localotsu": LocalOtsu}
    return titiler_algorithms.register(ours)  # type: ignore[arg-type]


def halo_of(algorithm: BaseAlgorithm | None) -> int:
    """Halo (pixels per side) a tile must be read with for this algorithm.

    Our algorithms (localotsu included: smoothing + radius + block + clean-up) declare it
    from their parameters; TiTiler's own algorithms that crop a
    `buffer` (hillshade, slope, contours...) get exactly that buffer.
    """
    if algorithm is None:
        return 0
    if isinstance(algorithm, SegmentationAlgorithm):
        return algorithm.halo
    return int(getattr(algorithm, "buffer", 0) or 0)

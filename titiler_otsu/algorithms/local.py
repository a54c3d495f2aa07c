"""`localotsu`: adaptive Otsu, each pixel thresholded by the Otsu of its neighbourhood.

The math is in :mod:`titiler_otsu.core.local_otsu`; this module wraps it as a TiTiler
algorithm: single-band check, optional smoothing, the level scale, the block grid's
anchoring, clean-up, halo cropping and output metadata.

May import: `core`, `algorithms`, `errors`, `settings`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field
from rio_tiler.models import ImageData

from titiler_otsu.algorithms.otsu import SegmentationAlgorithm
from titiler_otsu.core.filters import clean_classes, gaussian_support, masked_gaussian, morphology_support
from titiler_otsu.core.histogram import Histogram
from titiler_otsu.core.local_otsu import (
    LevelScale,
    LocalThresholds,
    block_size,
    block_thresholds,
    grid_origin,
    interpolate_thresholds,
    local_support,
    thresholds_around,
)
from titiler_otsu.errors import BadRequestError, MultiBandInputError

__all__ = ["LocalOtsu"]

#: Bounds of `radius`, pixels.
MIN_RADIUS, MAX_RADIUS = 4, 64


class LocalOtsu(SegmentationAlgorithm):
    """Adaptive Otsu: class 1 where a pixel is above the Otsu threshold of its neighbourhood.

    Thresholds are Otsu's on the ``(2 radius + 1)``-pixel square around block centres
    spaced ``block_size(radius)`` pixels apart on the global pixel grid (exactly
    ``skimage.filters.rank.otsu`` with that square, at those pixels), bilinearly
    interpolated in between. See :mod:`titiler_otsu.core.local_otsu`.

    There is no ``scope``: thresholds are neither the dataset's, the tile's nor fixed
    (``scope`` only accepts ``"local"``). 8-bit input is binned per value; other input
    into ``nbins`` bins spanning the dataset histogram (bound by the server), so the bins
    are the same for every tile. ``X-Otsu-Thresholds`` / ``metadata["thresholds"]`` carry
    the minimum, median and maximum of the block thresholds used for the tile.
    """

    title: ClassVar[str] = "Local (adaptive) Otsu"
    description: ClassVar[str] = (
        "Binary segmentation with a threshold per pixel: Otsu's threshold of the "
        "(2 radius + 1)-pixel square around block centres on the global pixel grid "
        "(scikit-image rank.otsu at those pixels), interpolated bilinearly. 1 = above the "
        "local threshold (at/below it with invert). For uneven illumination."
    )

    scope: Literal["local"] = Field(  # type: ignore[assignment]
        "local",
        description="Always 'local': each pixel's threshold comes from its neighbourhood.",
    )
    radius: int = Field(
        15,
        ge=MIN_RADIUS,
        le=MAX_RADIUS,
        description=f"Neighbourhood half-size in pixels ({MIN_RADIUS}-{MAX_RADIUS}): thresholds "
        "come from (2 radius + 1)-pixel squares.",
    )
    nbins: int = Field(
        256, ge=16, le=256, description="Histogram bins for non-8-bit data (spanning the dataset's range)."
    )

    @property
    def halo(self) -> int:
        """Smoothing support + neighbourhood and block reach + clean-up support."""
        return (
            gaussian_support(self.sigma) + local_support(self.radius) + morphology_support(self.opening, self.closing)
        )

    @property
    def block(self) -> int:
        """Pixels between block centres."""
        return block_size(self.radius)

    @property
    def needs_dataset_histogram(self) -> bool:
        """Always: non-8-bit input is binned over the dataset's range."""
        return True

    def fixed_thresholds(self) -> list[float] | None:
        """None: local thresholds are never fixed."""
        return None

    def thresholds_from_histogram(self, histogram: Histogram) -> list[float]:
        """No threshold: local thresholds come from neighbourhoods, not from one histogram."""
        return []

    def level_scale(self, dtype: np.dtype) -> LevelScale:
        """Bins of the neighbourhood histograms: per value for uint8, else the dataset's range."""
        if dtype == np.uint8:
            return LevelScale.uint8()
        if self._dataset_histogram is None:
            raise BadRequestError(
                "'localotsu' on non-8-bit data needs the source's histogram to fix its bins; "
                "this endpoint cannot compute it. Use 8-bit data or the tile endpoints."
            )
        return LevelScale.from_edges(self._dataset_histogram.edges)

    def _prepare(self, img: ImageData) -> tuple[np.ndarray, np.ndarray, LevelScale]:
        """Values (smoothed), validity and level scale of a one-band image."""
        if img.count != 1:
            raise MultiBandInputError(
                f"'localotsu' segments one band but the input has {img.count} bands "
                f"({', '.join(img.band_names)}). Pick a band with `bidx` (e.g. bidx=1) or build "
                "one with `expression` (e.g. expression=(b4-b1)/(b4+b1))."
            )
        band = img.array[0]
        valid = ~np.ma.getmaskarray(band)
        values = np.ma.getdata(band)
        scale = self.level_scale(values.dtype)
        if values.dtype.kind == "f":
            valid &= np.isfinite(values)
        if self.sigma > 0:
            values = masked_gaussian(values, valid, self.sigma)
            valid &= np.isfinite(values)
        return values, valid, scale

    def local_thresholds(self, img: ImageData) -> tuple[LocalThresholds, LevelScale]:
        """Block thresholds over a whole image (centres anchored at its pixel (0, 0)).

        For `/threshold`: the distribution of local thresholds of a preview or region.
        """
        values, valid, scale = self._prepare(img)
        return block_thresholds(scale.bins(values), valid, scale.nbins, self.radius), scale

    def threshold_distribution(self, img: ImageData) -> tuple[list[float], Histogram]:
        """Min, median and max of an image's block thresholds, and their histogram.

        The histogram counts block centres per bin of the level scale (value units), so it
        shares the value axis of the data's histogram.
        """
        local, scale = self.local_thresholds(img)
        used = local.bins[local.valid]
        counts = np.bincount(used, minlength=scale.nbins)[: scale.nbins]
        edges = scale.lo + np.arange(scale.nbins + 1) * scale.width
        integer = scale.width == 1.0 and float(scale.lo + 0.5).is_integer()
        return _summary(scale.values(used)), Histogram(counts, edges, integer)

    def __call__(self, img: ImageData) -> ImageData:
        """Segment a one-band image into classes 0/1 (uint8), cropping the halo."""
        values, valid, scale = self._prepare(img)
        height, width = values.shape
        halo = int((img.metadata or {}).get("halo", 0))
        # Classes are needed on the cropped tile plus the clean-up's reach (as far as the
        # image goes); thresholds on that region; block centres around it.
        margin = min(halo, morphology_support(self.opening, self.closing))
        region = (halo - margin, height - halo + margin, halo - margin, width - halo + margin)
        origin = grid_origin(img.metadata, img.bounds, (height, width))
        local = block_thresholds(scale.bins(values), valid, scale.nbins, self.radius, origin, region)
        field = scale.values(interpolate_thresholds(local, origin, region))
        r0, r1, c0, c1 = region
        sub_values, sub_valid = values[r0:r1, c0:c1], valid[r0:r1, c0:c1]
        with np.errstate(invalid="ignore"):
            above = sub_values > field
            classes = (~above & np.isfinite(field)) if self.invert else above
        classes = classes & sub_valid
        if self.opening or self.closing:
            classes = clean_classes(classes.astype(np.uint8), sub_valid, self.opening, self.closing)
        inner = (slice(margin, classes.shape[0] - margin), slice(margin, classes.shape[1] - margin))
        classes = np.where(sub_valid, classes, 0).astype(np.uint8)[inner]
        out_valid = sub_valid[inner]

        # Thresholds reported: those of the centres around the output pixels.
        report = thresholds_around(local, origin, (halo, height - halo, halo, width - halo))
        self._last_thresholds = _summary(scale.values(report))
        bounds = img.bounds
        if halo:
            left, bottom, right, top = img.bounds  # type: ignore[misc]
            rx, ry = (right - left) / width, (top - bottom) / height
            bounds = (left + halo * rx, bottom + halo * ry, right - halo * rx, top - halo * ry)
        return ImageData(
            np.ma.MaskedArray(classes[None], mask=~out_valid[None]),
            assets=img.assets,
            crs=img.crs,
            bounds=bounds,
            band_names=["class"],
            metadata={
                **(img.metadata or {}),
                "halo": 0,
                "otsu_classes": 2,
                "thresholds": self._last_thresholds,
                "local_radius": self.radius,
                "local_block": local.block,
            },
            nodata=0,
        )


def _summary(thresholds: np.ndarray) -> list[float]:
    """[min, median, max] of thresholds (NaN x 3 when there are none)."""
    if thresholds.size == 0:
        return [float("nan")] * 3
    return [float(thresholds.min()), float(np.median(thresholds)), float(thresholds.max())]

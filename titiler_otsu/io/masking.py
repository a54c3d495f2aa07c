"""Quality masking: pixels flagged by a classification or bit-flag raster become nodata.

`mask_asset=SCL&mask_values=3,8,9,10` (Sentinel-2 scene classification: cloud shadow, clouds,
cirrus) or `mask_asset=QA_PIXEL&mask_bits=3,4` (Landsat bit flags) on `/stac` and `/stacapi`;
`mask_url=...` instead of `mask_asset` on `/cog`. The parameters are a reader dependency
(`web/mask_params.py`: `QualityMaskParams`), so they reach every reader the factories open (tiles, previews,
parts, dataset histograms, areas, vectors, change); the readers read the mask raster on the
*same* output grid as the data (tiles: the same grid-exact window, nearest, the mask at its
own resolution) and mask the flagged pixels before any algorithm sees the image. Each masked
image carries `metadata["masked_pixels"]` and the boolean raster of the pixels it removed
(`QUALITY_MASK_KEY`), for `/threshold` and `/areas`.

May import: `core`, `security`, `io`, `errors`, `settings`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rio_tiler.models import ImageData

from titiler_otsu.errors import BadRequestError

__all__ = [
    "QUALITY_MASK_KEY",
    "QualityMask",
    "apply_quality_mask",
    "masked_pixels",
    "mosaic_removed",
    "removed_pixels",
    "with_quality_mask",
]

#: `ImageData.metadata` key of the (height, width) bool raster of pixels the mask removed.
QUALITY_MASK_KEY = "quality_masked"


@dataclass(frozen=True)
class QualityMask:
    """Which raster flags pixels, and how.

    Attributes:
        source: asset name (STAC) or resolved path/URL of a raster (COG `mask_url`).
        values: classification values to mask (a pixel equal to one of them).
        bits: bit positions to mask (a pixel with any of them set).

    """

    source: str
    values: tuple[int, ...] = ()
    bits: tuple[int, ...] = ()

    def flags(self, band: np.ma.MaskedArray) -> np.ndarray:
        """Pixels of a mask band to mask: valid ones with a listed value or bit."""
        data = np.ma.getdata(band)
        valid = ~np.ma.getmaskarray(band)
        hit = np.zeros(data.shape, dtype=bool)
        if self.values:
            hit |= np.isin(data, np.asarray(self.values))
        if self.bits:
            if data.dtype.kind not in "iub":
                raise BadRequestError(
                    f"mask_bits needs an integer mask raster, but '{self.source.rsplit('/', 1)[-1]}' "
                    f"holds {data.dtype} values: use mask_values instead."
                )
            flags = sum(1 << b for b in self.bits)
            hit |= (data.astype(np.int64) & flags) != 0
        return hit & valid


def apply_quality_mask(img: ImageData, mask: QualityMask, mask_img: ImageData) -> ImageData:
    """Mask the pixels of `img` that `mask_img` (same grid, band 1) flags.

    Returns:
        `img`, its array mask extended, with `metadata["masked_pixels"]` (pixels that had data
        and were removed) and `metadata[QUALITY_MASK_KEY]` (where).

    """
    band = mask_img.array[0]
    if band.shape != (img.height, img.width):
        raise BadRequestError(
            f"The mask raster was read as {band.shape[1]}x{band.shape[0]} pixels for a "
            f"{img.width}x{img.height} image: it must cover the same area."
        )
    hit = mask.flags(band)
    current = np.ma.getmaskarray(img.array)
    had_data = ~current.all(axis=0)
    removed = hit & had_data
    img.array.mask = current | hit[np.newaxis]
    img.metadata = {**(img.metadata or {}), "masked_pixels": int(removed.sum()), QUALITY_MASK_KEY: removed}
    return img


def removed_pixels(img: ImageData) -> np.ndarray | None:
    """The bool raster of pixels the quality mask removed from `img` (None: no mask applied)."""
    removed = (img.metadata or {}).get(QUALITY_MASK_KEY)
    return removed if isinstance(removed, np.ndarray) else None


def masked_pixels(img: ImageData) -> int:
    """Pixels the quality mask removed from `img` (0 without a mask)."""
    return int((img.metadata or {}).get("masked_pixels", 0))


def with_quality_mask(
    mask: QualityMask | None,
    read: Callable[[], ImageData],
    read_mask: Callable[[QualityMask, ImageData], ImageData],
) -> ImageData:
    """`read()`, masked by `read_mask(mask, image)` (the flags on the image's grid) when asked for."""
    img = read()
    return img if mask is None else apply_quality_mask(img, mask, read_mask(mask, img))


def mosaic_removed(final: ImageData, parts: Sequence[ImageData | Any]) -> ImageData:
    """Quality-mask metadata of a mosaic: pixels removed from some item and filled by none."""
    rasters = [r for p in parts if (r := removed_pixels(p)) is not None and r.shape == (final.height, final.width)]
    if not rasters:
        return final
    removed = np.logical_or.reduce(rasters) & np.ma.getmaskarray(final.array).all(axis=0)
    final.metadata = {**(final.metadata or {}), "masked_pixels": int(removed.sum()), QUALITY_MASK_KEY: removed}
    return final

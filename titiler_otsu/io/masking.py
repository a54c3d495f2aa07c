"""Quality masking: pixels flagged by a classification or bit-flag raster become nodata.

`mask_asset=SCL&mask_values=3,8,9,10` (Sentinel-2 scene classification: cloud shadow, clouds,
cirrus) or `mask_asset=QA_PIXEL&mask_bits=3,4` (Landsat bit flags) on `/stac` and `/stacapi`;
`mask_url=...` instead of `mask_asset` on `/cog`. The parameters are a reader dependency
(`QualityMaskParams`), so they reach every reader the factories open (tiles, previews,
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
from typing import Annotated, Any

import numpy as np
from fastapi import Query
from rio_tiler.models import ImageData
from titiler.core.dependencies import DefaultDependency

from titiler_otsu.errors import BadRequestError
from titiler_otsu.security.sources import SourcePolicy

__all__ = [
    "QUALITY_MASK_KEY",
    "QualityMask",
    "QualityMaskParams",
    "ReaderOptions",
    "apply_quality_mask",
    "cog_mask_params",
    "masked_pixels",
    "mosaic_removed",
    "removed_pixels",
    "with_quality_mask",
]

#: `ImageData.metadata` key of the (height, width) bool raster of pixels the mask removed.
QUALITY_MASK_KEY = "quality_masked"
#: Most values/bits one request may list.
MAX_MASK_ENTRIES = 64


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


def _int_list(name: str, text: str, low: int, high: int) -> tuple[int, ...]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise BadRequestError(f"{name} is empty: give comma-separated integers, e.g. {name}=3,8,9,10.")
    if len(parts) > MAX_MASK_ENTRIES:
        raise BadRequestError(f"{name} lists {len(parts)} entries; at most {MAX_MASK_ENTRIES}.")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError as e:
        raise BadRequestError(f"{name} must be comma-separated integers (e.g. 3,8,9,10), got '{text}'.") from e
    bad = [v for v in values if not low <= v <= high]
    if bad:
        raise BadRequestError(f"{name} entries must be within {low}..{high}; got {', '.join(map(str, bad))}.")
    return tuple(sorted(set(values)))


def _quality_mask(source_name: str, source: str | None, values: str | None, bits: str | None) -> QualityMask | None:
    """Validated mask parameters (None when no mask is asked for)."""
    if source is None:
        given = [n for n, v in (("mask_values", values), ("mask_bits", bits)) if v is not None]
        if given:
            raise BadRequestError(
                f"{' and '.join(given)} given without {source_name}: name the raster that holds the flags "
                f"(e.g. {source_name}={'SCL' if source_name == 'mask_asset' else '/data/qa.tif'})."
            )
        return None
    if not source.strip():
        raise BadRequestError(f"{source_name} is empty: name the mask raster.")
    if values is None and bits is None:
        raise BadRequestError(
            f"{source_name} needs mask_values=v1,v2 (classification values, e.g. SCL 3,8,9,10) "
            "or mask_bits=b1,b2 (bit flags, e.g. Landsat QA_PIXEL 3,4)."
        )
    return QualityMask(
        source=source.strip(),
        values=_int_list("mask_values", values, -(2**31), 2**32 - 1) if values is not None else (),
        bits=_int_list("mask_bits", bits, 0, 62) if bits is not None else (),
    )


_VALUES_DOC = "Mask pixels whose mask value is one of these (comma-separated), e.g. SCL 3,8,9,10."
_BITS_DOC = "Mask pixels with any of these bits set (comma-separated, 0 = lowest), e.g. QA_PIXEL 3,4."


class _MaskReaderOptions(DefaultDependency):
    """Reader options of the mask parameters: `{"quality_mask": QualityMask}` or nothing."""

    quality_mask: QualityMask | None

    def as_dict(self, exclude_none: bool = True) -> dict:
        """Reader options."""
        return {"quality_mask": self.quality_mask} if self.quality_mask else {}


@dataclass
class QualityMaskParams(_MaskReaderOptions):
    """`mask_asset`, `mask_values`, `mask_bits`: reader option `quality_mask` (STAC families)."""

    mask_asset: Annotated[
        str | None, Query(description="Asset holding per-pixel quality flags (e.g. SCL, QA_PIXEL).")
    ] = None
    mask_values: Annotated[str | None, Query(description=_VALUES_DOC)] = None
    mask_bits: Annotated[str | None, Query(description=_BITS_DOC)] = None

    def __post_init__(self) -> None:
        """Validate (400 naming the parameter)."""
        self.quality_mask = _quality_mask("mask_asset", self.mask_asset, self.mask_values, self.mask_bits)


def cog_mask_params(policy: SourcePolicy) -> type[DefaultDependency]:
    """`mask_url`, `mask_values`, `mask_bits` for `/cog` (`mask_url` checked by the allow-list)."""

    @dataclass
    class CogQualityMaskParams(_MaskReaderOptions):
        """`mask_url` (a raster on any grid), `mask_values`, `mask_bits`: reader option `quality_mask`."""

        #: resolving a remote mask_url probes the network: not on the event loop
        performs_io = True

        mask_url: Annotated[
            str | None, Query(description="Path or URL of a raster of quality flags (band 1), any grid.")
        ] = None
        mask_values: Annotated[str | None, Query(description=_VALUES_DOC)] = None
        mask_bits: Annotated[str | None, Query(description=_BITS_DOC)] = None

        def __post_init__(self) -> None:
            """Validate and resolve `mask_url` through the allow-list."""
            mask = _quality_mask("mask_url", self.mask_url, self.mask_values, self.mask_bits)
            if mask is not None:
                mask = QualityMask(policy.resolve(mask.source), mask.values, mask.bits)
            self.quality_mask = mask

    return CogQualityMaskParams


@dataclass
class ReaderOptions(_MaskReaderOptions):
    """Reader options built in code (e.g. the `before` date of a change): a quality mask or none."""

    quality_mask: QualityMask | None = None


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

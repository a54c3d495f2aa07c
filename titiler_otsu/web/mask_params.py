"""The quality-mask request parameters: `mask_asset`/`mask_url`, `mask_values`, `mask_bits`.

TiTiler reader dependencies (`DefaultDependency`) that validate the parameters (400 naming the
one to change) and hand the readers one option, `quality_mask` (an `io.masking.QualityMask`);
the masking itself is `io/masking.py`.

May import: `core`, `security`, `io`, `algorithms`, `web`, `errors`, `settings` (never `export`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Query
from titiler.core.dependencies import DefaultDependency

from titiler_otsu.errors import BadRequestError
from titiler_otsu.io.masking import QualityMask
from titiler_otsu.security.sources import SourcePolicy

__all__ = ["QualityMaskParams", "ReaderOptions", "cog_mask_params"]

#: Most values/bits one request may list.
MAX_MASK_ENTRIES = 64


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

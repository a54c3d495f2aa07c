"""Response models of the analytic endpoints.

May import: `core`, `security`, `io`, `algorithms`, `web`, `errors`, `settings` (never `export`).
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class HistogramModel(BaseModel):
    """A histogram: `counts[i]` pixels have values in `[edges[i], edges[i+1])`."""

    counts: list[int]
    edges: list[float]


class ThresholdResponse(BaseModel):
    """Thresholds of an algorithm and the histogram they were computed from."""

    algorithm: str
    scope: str
    thresholds: list[float | None] = Field(description="null when there is no valid pixel")
    nbins: int
    histogram: HistogramModel
    pixels: int = Field(description="Valid pixels in the histogram")
    masked_pixels: int = Field(0, description="Pixels with data removed by the quality mask (mask_asset/mask_url)")
    bbox: tuple[float, float, float, float] | None = None

"""Server settings, read from `TITILER_OTSU_*` environment variables."""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_cache_dir() -> Path:
    """Per-user cache directory (the demo scene is generated there)."""
    return Path(platformdirs.user_cache_dir("titiler-otsu"))


class Settings(BaseSettings):
    """titiler-otsu settings (environment prefix `TITILER_OTSU_`).

    List values are given as JSON in the environment, e.g.
    `TITILER_OTSU_ALLOWED_SOURCES='["/data", "https://example.com/cogs/"]'`.
    """

    model_config = SettingsConfigDict(env_prefix="TITILER_OTSU_", extra="ignore")

    sources: list[str] = Field(default_factory=list, description="Sources listed at /sources (paths or URLs).")
    allowed_sources: list[str] | None = Field(
        None,
        description="Path and URL prefixes a request may read. Default: the directories of "
        "`sources` and the demo cache directory; remote URLs only when listed here.",
    )
    stac_api_url: str | None = Field(None, description="Default STAC API for /stacapi.")
    cache_dir: Path | None = Field(None, description="Where the demo scene is generated.")
    title: str = "titiler-otsu"
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])

    histogram_max_size: int = Field(
        1024, ge=64, le=8192, description="Longest side of the overview read for dataset histograms."
    )
    histogram_cache_size: int = Field(512, ge=0, description="Dataset histograms kept in memory.")
    histogram_cache_ttl: float = Field(3600.0, ge=0, description="Seconds a dataset histogram is kept.")

    max_tilesize: int = Field(1024, ge=64, le=4096, description="Largest tilesize accepted.")
    max_halo: int = Field(96, ge=0, le=512, description="Largest halo an algorithm may ask for.")
    max_classes: int = Field(5, ge=2, le=5, description="Most classes multiotsu may make.")
    max_aoi_pixels: int = Field(50_000_000, ge=1, description="Most pixels an AOI request reads.")

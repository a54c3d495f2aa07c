"""Server settings, read from `TITILER_OTSU_*` environment variables.

May import: nothing of ours.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: GDAL options for serving COGs: no directory listing on open (no sidecar lookups), a
#: bounded block cache per process (MB), and fewer, merged HTTP range requests for remote files.
GDAL_CONFIG_DEFAULTS: dict[str, str] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_CACHEMAX": "200",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "GDAL_HTTP_VERSION": "2",
    # remote COGs (README "Serving from object storage"): the header in one GET at open, a
    # bigger process-wide byte cache shared by every handle (GDAL's default is 16 MB), the
    # blocks of one read fetched as parallel range requests
    "GDAL_INGESTED_BYTES_AT_OPEN": "65536",
    "CPL_VSIL_CURL_CACHE_SIZE": str(256 * 2**20),
    "GDAL_HTTP_MULTIRANGE": "YES",
}


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
    stac_api_allow_user_url: bool = Field(
        False, description="Whether /stacapi requests may name another API with api=."
    )
    stac_timeout: float = Field(10.0, gt=0, le=300, description="Seconds to wait for a STAC API or remote item.")
    stac_search_cache_size: int = Field(1024, ge=0, description="STAC API searches kept in memory.")
    stac_search_cache_ttl: float = Field(300.0, ge=0, description="Seconds a STAC API search result is kept.")
    stac_min_zoom: int = Field(6, ge=0, le=30, description="/stacapi refuses tiles below this zoom (400).")
    stac_max_zoom: int = Field(14, ge=0, le=30, description="/stacapi TileJSON maxzoom when the collection has no gsd.")
    stac_search_zoom_offset: int = Field(
        3, ge=0, le=8, description="/stacapi searches the ancestor tile this many zooms up (shared by neighbours)."
    )
    stac_max_items: int = Field(100, ge=1, le=1000, description="Most items one /stacapi search mosaics.")
    stac_read_threads: int = Field(
        1, ge=1, le=64, description="Threads reading the assets of an item / the items of a mosaic (1: in turn)."
    )
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
    max_aoi_features: int = Field(100, ge=1, description="Most features one /areas request may hold.")
    max_vector_features: int = Field(50_000, ge=1, description="Most polygons one /vectors tile may return.")

    # ------------------------------------------------------------------ time series (titiler_otsu/web/timeseries.py)
    timeseries_max_items: int = Field(
        60, ge=1, le=1000, description="Most items one /stacapi time series measures (more: 400, narrow datetime=)."
    )
    timeseries_threads: int = Field(
        2,
        ge=1,
        le=64,
        description="Dates of one time series measured at the same time (threads; more for remote COGs).",
    )

    # ------------------------------------------------------------------ security limits (see README "Security")
    remote_timeout: float = Field(
        10.0, gt=0, le=300, description="Seconds to wait for a remote source (redirect check and GDAL HTTP reads)."
    )
    request_timeout: float = Field(
        60.0, gt=0, le=3600, description="Seconds after which a request that has not started answering gets a 504."
    )
    max_image_size: int = Field(
        4096, ge=64, le=16384, description="Largest width, height or max_size of preview/bbox/feature/statistics."
    )
    max_request_bytes: int = Field(
        10_000_000, ge=1024, description="Largest request body (GeoJSON for /areas, /feature...): beyond, 413."
    )
    max_expression_length: int = Field(512, ge=16, le=65536, description="Longest `expression` accepted.")
    max_param_length: int = Field(8192, ge=256, description="Longest value of any one query parameter.")
    max_histogram_bins: int = Field(4096, ge=2, description="Most bins /statistics may compute.")

    # HTTP caching and per-process caches (see titiler_otsu/web/http_cache.py, datasets.py)
    cache_control_tiles: str | None = Field(
        "public, max-age=3600", description="Cache-Control of successful tile responses (empty: none)."
    )
    cache_control_tilejson: str | None = Field(
        "public, max-age=300", description="Cache-Control of successful TileJSON responses (empty: none)."
    )
    etag: bool = Field(
        True,
        description="ETag on /cog tiles and TileJSON of local files (from the file's size and mtime and the "
        "request), and 304 Not Modified on a matching If-None-Match.",
    )
    dataset_cache_size: int = Field(
        32, ge=0, le=4096, description="Open datasets kept idle per process between requests (0: open per request)."
    )
    dataset_cache_ttl: float = Field(
        300.0, ge=0, description="Seconds an idle open dataset is kept (bounds how long a remote file may be stale)."
    )
    worker_threads: int = Field(
        8,
        ge=1,
        le=256,
        description="Threads per worker process running blocking work (tile reads, sync dependencies); "
        "few threads keep CPU-bound tiles fast and memory bounded, more suit slow remote sources.",
    )
    gdal_config: dict[str, str] = Field(
        default_factory=lambda: dict(GDAL_CONFIG_DEFAULTS),
        description="GDAL configuration options, set in the process environment when the app is created "
        "(a variable already in the environment wins).",
    )

    # ---------------------------------------------------- remote sources (README "Serving from object storage")
    remote_revalidate_seconds: float = Field(
        60.0,
        gt=0,
        le=86400,
        description="Seconds a remote source's HEAD probe (redirect check + ETag/Last-Modified) is reused: "
        "a changed object is reopened, with its dataset histogram recomputed, at most this late.",
    )
    remote_reader: Literal["direct", "gdal"] = Field(
        "direct",
        description="How http(s) sources are read: `direct`, our own HTTP client behind a GDAL virtual file "
        "system (exact byte ranges, no redirect ever followed, the open served by the redirect guard's probe: "
        "titiler_otsu/io/remote_vsi.py), or `gdal`, GDAL's /vsicurl/ (one HEAD and one header GET more per "
        "open; use it for GDAL_HTTP_* authentication options). Set in the environment for export workers.",
    )
    remote_trust_named_hosts: bool = Field(
        False,
        description="Skip the redirect guard's ranged-GET probe for remote URLs below an ALLOWED_SOURCES prefix "
        "that names its host: such a server is trusted not to answer GET with a redirect its HEAD did not give. "
        "Hosts admitted by a host wildcard (`https://`) are always probed. With REMOTE_READER=direct the reader "
        "then reads the header itself (no request saved); with `gdal`, one request fewer per source open.",
    )
    histogram_disk_cache: bool = Field(
        True,
        description="Share dataset histograms between worker processes through files in `cache_dir` "
        "(keyed by source identity, read options and HISTOGRAM_MAX_SIZE; expire with HISTOGRAM_CACHE_TTL).",
    )
    # ------------------------------------------------------------------ memory at rest (titiler_otsu/web/memory.py)
    malloc_arena_max: int = Field(
        2,
        ge=0,
        le=1024,
        description="glibc malloc arenas per process (0: glibc's default of 8 per core); fewer arenas hold "
        "less freed memory between requests.",
    )
    trim_idle_seconds: float = Field(
        2.0, ge=0, description="Seconds without a request after which freed heap is returned to the kernel (0: never)."
    )

    viewer_vendor_url: str = Field(
        "https://unpkg.com",
        description="Where the web viewer loads its map libraries (Leaflet, Leaflet-Geoman) from: "
        "an npm CDN with `name@version/path` URLs.",
    )
    viewer_vendor_dir: Path | None = Field(
        None,
        description="Offline deployments: a folder where `npm install leaflet@1.9.4 "
        "@geoman-io/leaflet-geoman-free@2.20.2` was run (its `node_modules`, or the folder holding "
        "it). Served at /vendor and used by the viewer instead of `viewer_vendor_url`.",
    )

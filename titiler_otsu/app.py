"""The FastAPI application: `create_app(settings)`.

May import: anything in the package (top-level glue).
"""

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio.to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from rio_tiler.constants import WGS84_CRS
from titiler.core.factory import TMSFactory

from titiler_otsu.algorithms import otsu_algorithms
from titiler_otsu.errors import add_error_handlers
from titiler_otsu.io import remote_vsi
from titiler_otsu.io.datasets import apply_gdal_config, configure_dataset_cache
from titiler_otsu.io.reader import GridExactReader
from titiler_otsu.security.limits import (
    BodySizeLimitMiddleware,
    RequestTimeoutMiddleware,
    gdal_http_environment,
    request_guard,
)
from titiler_otsu.security.sources import SourcePolicy
from titiler_otsu.settings import Settings, default_cache_dir
from titiler_otsu.version import __version__
from titiler_otsu.viewer import mount_viewer
from titiler_otsu.web.algorithm_routes import OtsuAlgorithmFactory
from titiler_otsu.web.areas import AreasExtension
from titiler_otsu.web.change import ChangeExtension, cog_change_sources
from titiler_otsu.web.cog import OtsuTilerFactory
from titiler_otsu.web.dependencies import path_dependency
from titiler_otsu.web.http_cache import HTTPCacheMiddleware, cache_rules, server_salt
from titiler_otsu.web.mask_params import cog_mask_params
from titiler_otsu.web.memory import IdleTrimMiddleware, limit_arenas
from titiler_otsu.web.middleware import THRESHOLDS_HEADER, ThresholdsHeaderMiddleware, TileScaleMiddleware
from titiler_otsu.web.mixin import OTSU_ALGORITHM_STATE
from titiler_otsu.web.stac_routes import mount_stac
from titiler_otsu.web.vectors import VectorsExtension


def source_policy(settings: Settings) -> SourcePolicy:
    """Allow-list from settings: explicit prefixes, else the sources themselves and the demo folder."""
    if settings.allowed_sources is not None:
        return SourcePolicy.from_prefixes(
            settings.allowed_sources,
            timeout=settings.remote_timeout,
            probe_ttl=settings.remote_revalidate_seconds,
            trust_named_hosts=settings.remote_trust_named_hosts,
        )
    prefixes = [str(settings.cache_dir or default_cache_dir())]
    for source in settings.sources:
        if "://" in source and not source.startswith("file://"):
            prefixes.append(source)
        else:
            prefixes.append(os.path.realpath(source.removeprefix("file://")))
    return SourcePolicy.from_prefixes(
        prefixes,
        timeout=settings.remote_timeout,
        probe_ttl=settings.remote_revalidate_seconds,
        trust_named_hosts=settings.remote_trust_named_hosts,
    )


def _source_entry(request: Request, source: str) -> dict[str, Any]:
    """`/sources` entry for a COG source."""
    name = Path(source.rstrip("/")).name
    entry: dict[str, Any] = {
        "id": Path(name).stem,
        "title": name,
        "kind": "cog",
        "url": source,
        "tilejson": f"{str(request.base_url).rstrip('/')}/cog/WebMercatorQuad/tilejson.json?"
        + urlencode({"url": source}),
    }
    try:
        with GridExactReader(source) as src:
            entry["bounds"] = list(src.get_geographic_bounds(WGS84_CRS))
            entry["minzoom"], entry["maxzoom"] = src.minzoom, src.maxzoom
            entry["count"] = src.dataset.count
            entry["dtype"] = src.dataset.dtypes[0]
            entry["band_descriptions"] = [d or f"b{i + 1}" for i, d in enumerate(src.dataset.descriptions)]
    except Exception as e:  # noqa: BLE001 - a broken source is reported, not fatal
        entry["error"] = f"cannot open: {e.__class__.__name__}"
    return entry


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the titiler-otsu application.

    Args:
        settings: server settings; default from `TITILER_OTSU_*` environment variables.

    Returns:
        FastAPI: the application (COG family, algorithms, TMS, sources, viewer).

    """
    settings = settings or Settings()
    app = FastAPI(
        title=settings.title,
        version=__version__,
        description="Seamless on-the-fly Otsu segmentation tiles (a TiTiler extension).",
        dependencies=[Depends(request_guard(settings))],
    )
    app.state.settings = settings
    apply_gdal_config(settings.gdal_config)
    apply_gdal_config(gdal_http_environment(settings))
    remote_vsi.configure(settings.remote_reader)
    configure_dataset_cache(settings.dataset_cache_size, settings.dataset_cache_ttl)
    limit_arenas(settings.malloc_arena_max)

    async def limit_worker_threads() -> None:
        """Bound the threads running blocking work in this worker (anyio's default limiter: 40)."""
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads

    app.router.on_startup.append(limit_worker_threads)
    policy = source_policy(settings)
    registry = otsu_algorithms()

    cog = OtsuTilerFactory(
        router_prefix="/cog",
        path_dependency=path_dependency(policy),
        reader_dependency=cog_mask_params(policy),
        extensions=[AreasExtension(), VectorsExtension(), ChangeExtension(sources=cog_change_sources(policy))],
        settings=settings,
        algorithm_registry=registry,
    )
    app.include_router(cog.router, prefix="/cog", tags=["Cloud Optimized GeoTIFF"])
    app.state.cog_factory = cog
    mount_stac(app, settings, policy, registry)
    app.include_router(OtsuAlgorithmFactory(supported_algorithm=registry).router, tags=["Algorithms"])
    app.include_router(TMSFactory().router, tags=["Tiling Schemes"])

    @app.get("/healthz", tags=["Health"], summary="Liveness.")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/sources", tags=["Sources"], summary="Sources the server was started with.")
    def sources(request: Request) -> list[dict[str, Any]]:
        return [_source_entry(request, s) for s in settings.sources]

    mount_viewer(app, settings)

    add_error_handlers(app)
    app.add_middleware(ThresholdsHeaderMiddleware, state_key=OTSU_ALGORITHM_STATE)
    app.add_middleware(
        HTTPCacheMiddleware,
        rules=cache_rules(settings),
        policy=policy.offline() if settings.etag else None,
        salt=server_salt(settings),
    )
    app.add_middleware(TileScaleMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(RequestTimeoutMiddleware, timeout=settings.request_timeout)
    app.add_middleware(IdleTrimMiddleware, delay=settings.trim_idle_seconds)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["*"],
        expose_headers=[THRESHOLDS_HEADER],
    )
    return app

"""Mounting of the STAC families: `/stac` (one Item) and `/stacapi/collections/{collection_id}`.

May import: `core`, `security`, `io`, `algorithms`, `web`, `errors`, `settings` (never `export`).
"""

from __future__ import annotations

from fastapi import FastAPI
from titiler.core.algorithm import Algorithms

from titiler_otsu.io.stac_mosaic import stacapi_backend
from titiler_otsu.io.stac_reader import stac_reader
from titiler_otsu.io.stac_search import StacApiSearcher
from titiler_otsu.security.sources import SourcePolicy
from titiler_otsu.settings import Settings
from titiler_otsu.web.stac import OtsuMultiBaseTilerFactory, stac_path_dependency
from titiler_otsu.web.stacapi import OtsuSTACAPITilerFactory, stacapi_source_dependency
from titiler_otsu.web.timeseries import TimeSeriesExtension

STACAPI_PREFIX = "/stacapi/collections/{collection_id}"


def mount_stac(app: FastAPI, settings: Settings, policy: SourcePolicy, registry: Algorithms) -> None:
    """Add the `/stac` and `/stacapi` factories to `app` (the searcher is `app.state.stac_searcher`)."""
    stac = OtsuMultiBaseTilerFactory(
        router_prefix="/stac",
        reader=stac_reader(policy, settings.stac_timeout, settings.stac_read_threads),
        path_dependency=stac_path_dependency(policy),
        settings=settings,
        algorithm_registry=registry,
    )
    app.include_router(stac.router, prefix="/stac", tags=["STAC Item"])

    searcher = StacApiSearcher(
        timeout=settings.stac_timeout,
        cache_size=settings.stac_search_cache_size,
        cache_ttl=settings.stac_search_cache_ttl,
        max_items=settings.stac_max_items,
    )
    stacapi = OtsuSTACAPITilerFactory(
        router_prefix=STACAPI_PREFIX,
        reader=stacapi_backend(
            searcher, settings, stac_reader(policy, settings.stac_timeout, settings.stac_read_threads)
        ),
        path_dependency=stacapi_source_dependency(settings),
        settings=settings,
        algorithm_registry=registry,
    )
    TimeSeriesExtension().register(stacapi)
    app.include_router(stacapi.router, prefix=STACAPI_PREFIX, tags=["STAC API mosaic"])
    app.state.stac_factory = stac
    app.state.stacapi_factory = stacapi
    app.state.stac_searcher = searcher

"""`/stacapi/collections/{collection_id}`: STAC API searches mosaicked per tile.

`OtsuSTACAPITilerFactory` plugs `STACAPIBackend` (`titiler_otsu.io.stac_mosaic`: the search
per tile's ancestor, grid-exact item reads, `mosaic_reader`) into TiTiler's `TilerFactory`
with our analytics mixin. `stacapi_source_dependency` builds the source key from the path's
collection id and the search query parameters, `stacapi_change_sources` the two dates of a
change request, `mosaic_grid` the pixel grid `/areas` reads a mosaic on.

May import: `core`, `security`, `io`, `algorithms`, `web`, `errors`, `settings` (never `export`).
"""

from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any, Literal, cast
from urllib.parse import urlparse

from affine import Affine
from attrs import define, field
from fastapi import Depends, Path, Query
from rio_tiler.io import BaseReader
from titiler.core.algorithm import Algorithms
from titiler.core.dependencies import DefaultDependency
from titiler.core.factory import FactoryExtension, TilerFactory

from titiler_otsu.algorithms import otsu_algorithms
from titiler_otsu.errors import BadRequestError, SourceNotAllowedError
from titiler_otsu.io.histograms import DatasetHistograms
from titiler_otsu.io.stac_mosaic import PIXEL_SELECTION, STACAPIBackend, StacApiSource
from titiler_otsu.io.stac_windows import to_tms_bounds, window_for_bounds
from titiler_otsu.settings import Settings
from titiler_otsu.web.areas import AreasExtension, NativeGrid
from titiler_otsu.web.change import ChangeExtension, ChangePeriod, ChangeSources
from titiler_otsu.web.mask_params import QualityMaskParams
from titiler_otsu.web.mixin import OtsuAnalyticsMixin, parse_bbox
from titiler_otsu.web.render import render_tile
from titiler_otsu.web.stac import StacLayerParams
from titiler_otsu.web.vectors import VectorsExtension

__all__ = ["OtsuSTACAPITilerFactory", "mosaic_grid", "stacapi_change_sources", "stacapi_source_dependency"]


def mosaic_grid(src: BaseReader) -> NativeGrid:
    """Pixel grid of a mosaic for /areas: the TMS level at its maxzoom, over its bounds."""
    mosaic = cast(STACAPIBackend, src)
    tms = mosaic.tms
    bounds = to_tms_bounds(tms, mosaic.bounds, mosaic.crs)
    window = window_for_bounds(tms, bounds, None, mosaic.maxzoom)
    left, _, _, top = window.bounds
    transform = Affine(window.grid.res, 0.0, left, 0.0, -window.grid.res, top)
    return NativeGrid(tms.rasterio_crs, tms.rasterio_crs, transform, window.width, window.height)


def stacapi_change_sources(factory: Any) -> Callable[..., ChangeSources]:
    """The two dates of a `/stacapi` change request: `before=`/`after=` over the same search filters."""
    selection = Literal[PIXEL_SELECTION]  # type: ignore[valid-type]

    def sources(
        source: Annotated[str, Depends(factory.path_dependency)],
        reader_params: Annotated[DefaultDependency, Depends(factory.reader_dependency)],
        before: Annotated[str, Query(description="First date: STAC datetime or interval, e.g. 2020-03-01/2020-03-31.")],
        after: Annotated[str, Query(description="Second date: STAC datetime or interval.")],
        before_pixel_selection: Annotated[
            selection | None, Query(description="Mosaic method of the first date (default: pixel_selection).")
        ] = None,
        after_pixel_selection: Annotated[
            selection | None, Query(description="Mosaic method of the second date (default: pixel_selection).")
        ] = None,
    ) -> ChangeSources:
        base = StacApiSource.from_key(source)
        if base.datetime:
            raise BadRequestError("Change endpoints compare two dates: give before= and after=, not datetime=.")
        periods = []
        for name, when, method in (("before", before, before_pixel_selection), ("after", after, after_pixel_selection)):
            if not when.strip():
                raise BadRequestError(f"{name} is empty: give a STAC datetime interval, e.g. 2020-03-01/2020-03-31.")
            period = replace(base, datetime=when.strip(), pixel_selection=method or base.pixel_selection)
            periods.append(ChangePeriod(name, period.key, reader_params))
        return ChangeSources(periods[0], periods[1])

    return sources


def _api_url(settings: Settings, api: str | None) -> str:
    if api:
        if not settings.stac_api_allow_user_url:
            raise SourceNotAllowedError(
                "api= is disabled on this server: drop it to use the configured STAC API "
                "(setting TITILER_OTSU_STAC_API_URL), or enable TITILER_OTSU_STAC_API_ALLOW_USER_URL."
            )
        if urlparse(api).scheme not in ("http", "https"):
            raise BadRequestError("api must be an http(s) URL of a STAC API landing page.")
        return api.rstrip("/")
    if not settings.stac_api_url:
        raise BadRequestError("No STAC API is configured: set TITILER_OTSU_STAC_API_URL (or pass api= if allowed).")
    return settings.stac_api_url.rstrip("/")


def stacapi_source_dependency(settings: Settings) -> Callable[..., str]:
    """The `/stacapi` source from the path's collection id and the search query parameters."""

    def source(
        collection_id: Annotated[str, Path(description="STAC collection id.")],
        datetime: Annotated[
            str | None, Query(description="RFC 3339 datetime or interval, e.g. 2020-03-01/2020-03-31.")
        ] = None,
        filter: Annotated[str | None, Query(description="CQL2 filter, as cql2-text or cql2-json.")] = None,
        sortby: Annotated[
            str | None,
            Query(description="Mosaic order, e.g. -properties.datetime (default: newest first), ties by id."),
        ] = None,
        bbox: Annotated[
            str | None,
            Query(description="minx,miny,maxx,maxy (lon/lat): required for scope 'dataset' on /stacapi."),
        ] = None,
        pixel_selection: Annotated[
            Literal[PIXEL_SELECTION],  # type: ignore[valid-type]
            Query(description="Mosaic method: first valid pixel (default) or a statistic of all items."),
        ] = "first",
        api: Annotated[str | None, Query(description="STAC API URL (only if the server allows it).")] = None,
    ) -> str:
        return StacApiSource(
            api=_api_url(settings, api),
            collection=collection_id,
            datetime=datetime or None,
            filter=filter or None,
            sortby=sortby or None,
            bbox=parse_bbox(bbox) if bbox else None,
            pixel_selection=pixel_selection,
        ).key

    return source


@define(kw_only=True)
class OtsuSTACAPITilerFactory(OtsuAnalyticsMixin, TilerFactory):
    """TiTiler factory over `STACAPIBackend`: tiles, tilejson, WMTS, info, threshold."""

    reader: type[BaseReader] = STACAPIBackend
    layer_dependency: type[DefaultDependency] = StacLayerParams
    reader_dependency: type[DefaultDependency] = QualityMaskParams
    settings: Settings = field(factory=Settings)
    histograms: DatasetHistograms | None = field(default=None)
    algorithm_registry: Algorithms = field(factory=otsu_algorithms)
    render_func: Any = render_tile
    add_preview: bool = False
    add_part: bool = False
    add_viewer: bool = False
    add_ogc_maps: bool = False
    extensions: list[FactoryExtension] = field(
        factory=lambda: [
            AreasExtension(grid_of=mosaic_grid),
            VectorsExtension(),
            ChangeExtension(sources=stacapi_change_sources, grid_of=mosaic_grid),
        ]
    )

    def info(self) -> None:
        """Register `GET /info`: the collection, search and zoom range."""

        @self.router.get(
            "/info",
            operation_id=f"{self.operation_prefix}getInfo",
            summary="Collection, search parameters, bounds and zooms of the mosaic.",
        )
        def info(src_path: Annotated[str, Depends(self.path_dependency)]) -> dict[str, Any]:
            with self.reader(src_path) as src:
                return src.info().model_dump()

    def statistics(self) -> None:
        """Not offered for search mosaics."""

    def tilesets(self) -> None:
        """Not offered for search mosaics."""

    def point(self) -> None:
        """Not offered for search mosaics."""

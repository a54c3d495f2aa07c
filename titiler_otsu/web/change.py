"""Change between two dates: `{prefix}/change/tiles/...`, `.../change/{tms}/tilejson.json`, `POST .../change/areas`.

`ChangeExtension` adds them to any Otsu factory. A family says what its two dates are with a
`sources` builder (a dependency returning `ChangeSources`: `/stacapi` takes `before=` and
`after=` STAC datetime intervals over the same search filters and `bbox`; `/cog` takes `url`
(after) and `before_url`). Each date goes through the factory's own reader exactly as a
single-date request does (the mosaic, its `pixel_selection`, the quality mask, grid-exact
tiles with the algorithm's halo, `/areas`' native-grid reads) and is segmented by its own
copy of the algorithm: `scope: "dataset"` thresholds come from each date's dataset histogram
(on `/stacapi` over the same `bbox`), `fixed` ones are shared. Binary classes combine into

    0 background at both dates, 1 foreground at both, 2 gained, 3 lost

(nodata where either date has no valid pixel: masked, outside, nodata); `change/areas`
also gives the class transition matrix (any number of classes, e.g. `multiotsu`). The
classification and what `change/areas` measures are in `change_measure`.

May import: `core`, `security`, `io`, `algorithms`, `web`, `errors`, `settings` (never `export`).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlencode

import rasterio
from attrs import define, field
from fastapi import Body, Depends, Path, Query, Request, Response
from geojson_pydantic import FeatureCollection
from rio_tiler.constants import WGS84_CRS
from rio_tiler.io import BaseReader
from titiler.core.algorithm.base import BaseAlgorithm
from titiler.core.dependencies import DefaultDependency
from titiler.core.factory import FactoryExtension
from titiler.core.resources.enums import ImageType

from titiler_otsu.algorithms import SegmentationAlgorithm
from titiler_otsu.errors import BadRequestError
from titiler_otsu.io.masking import QualityMask
from titiler_otsu.security.sources import SourcePolicy
from titiler_otsu.web.areas import (
    AreaJob,
    AreaRequest,
    NativeGrid,
    check_feature_count,
    native_grid,
    segmentation_algorithm,
)
from titiler_otsu.web.change_measure import (
    GAINED,
    LOST,
    STABLE,
    ChangeAreasResponse,
    ChangeFeature,
    FeatureChange,
    change_classes,
    measure_change,
)
from titiler_otsu.web.dependencies import algorithm_dependency
from titiler_otsu.web.mask_params import ReaderOptions
from titiler_otsu.web.middleware import THRESHOLDS_HEADER, format_thresholds

if TYPE_CHECKING:
    from titiler_otsu.web.mixin import OtsuAnalyticsMixin

__all__ = [
    "CHANGE_COLORMAP",
    "ChangeExtension",
    "ChangePeriod",
    "ChangeSources",
    "cog_change_sources",
]

#: Overlay colours: gained blue, lost orange-red, stable foreground faint grey, the rest transparent.
CHANGE_COLORMAP: dict[int, tuple[int, int, int, int]] = {v: (0, 0, 0, 0) for v in range(256)} | {
    STABLE: (160, 170, 180, 70),
    GAINED: (33, 102, 172, 230),
    LOST: (230, 85, 13, 230),
}


@dataclass(frozen=True)
class ChangePeriod:
    """One date of a change request: the factory's source string and its reader options."""

    name: str
    src: str
    reader_params: DefaultDependency


@dataclass(frozen=True)
class ChangeSources:
    """The two dates compared."""

    before: ChangePeriod
    after: ChangePeriod

    @property
    def periods(self) -> tuple[ChangePeriod, ChangePeriod]:
        """(before, after)."""
        return (self.before, self.after)


def cog_change_sources(policy: SourcePolicy) -> Callable[["OtsuAnalyticsMixin"], Callable[..., ChangeSources]]:
    """The two dates of a `/cog` change request: `url` (after) and `before_url` (allow-listed)."""

    def build(factory: "OtsuAnalyticsMixin") -> Callable[..., ChangeSources]:
        def sources(
            url: Annotated[str, Depends(factory.path_dependency)],
            reader_params: Annotated[DefaultDependency, Depends(factory.reader_dependency)],
            before_url: Annotated[str, Query(description="Path or URL of the first date's COG (`url` is the second).")],
            before_mask_url: Annotated[
                str | None,
                Query(
                    description="Quality flags of the first date (mask_url masks `url`; same mask_values/mask_bits)."
                ),
            ] = None,
        ) -> ChangeSources:
            after_mask: QualityMask | None = getattr(reader_params, "quality_mask", None)
            before_mask = None
            if before_mask_url is not None:
                if after_mask is None:
                    raise BadRequestError(
                        "before_mask_url needs mask_url (the second date's flags) and mask_values or mask_bits."
                    )
                before_mask = QualityMask(policy.resolve(before_mask_url), after_mask.values, after_mask.bits)
            return ChangeSources(
                ChangePeriod("before", policy.resolve(before_url), ReaderOptions(quality_mask=before_mask)),
                ChangePeriod("after", url, reader_params),
            )

        return sources

    return build


# ---------------------------------------------------------------------- per-date algorithms
def period_algorithms(
    factory: "OtsuAnalyticsMixin",
    algorithm: BaseAlgorithm | None,
    sources: ChangeSources,
    layer_params: DefaultDependency,
    dataset_params: DefaultDependency,
) -> tuple[SegmentationAlgorithm, SegmentationAlgorithm]:
    """One algorithm instance per date, each bound to its own dataset histogram when it needs one."""
    bound = []
    for period in sources.periods:
        copy = algorithm.model_copy(deep=True) if algorithm is not None else None
        if isinstance(copy, SegmentationAlgorithm) and copy.needs_dataset_histogram:
            copy.bind_dataset_histogram(
                factory.dataset_histogram(period.src, period.reader_params, layer_params, dataset_params, copy.nbins)
            )
        bound.append(
            segmentation_algorithm(factory, copy, period.src, period.reader_params, layer_params, dataset_params)
        )
    return bound[0], bound[1]


def _binary(algorithm: SegmentationAlgorithm) -> None:
    if algorithm.n_classes != 2:
        raise BadRequestError(
            f"Change tiles need a binary algorithm (otsu, localotsu); '{algorithm.algorithm_name()}' makes "
            f"{algorithm.n_classes} classes. Use POST change/areas for its class transition matrix."
        )


# ---------------------------------------------------------------------- extension
@define
class ChangeExtension(FactoryExtension):
    """Adds `change/tiles`, `change/{tms}/tilejson.json` and `POST change/areas` to an Otsu factory.

    Attributes:
        sources: builds the dependency that gives the two dates of a request (from the factory).
        grid_of: the pixel grid `change/areas` reads on (of the *after* source; as `AreasExtension`).

    """

    sources: Callable[["OtsuAnalyticsMixin"], Callable[..., ChangeSources]]
    grid_of: Callable[[BaseReader], NativeGrid] = field(default=native_grid)

    def register(self, factory: "OtsuAnalyticsMixin") -> None:  # type: ignore[override]
        """Register the three endpoints on the factory's router."""
        sources_dependency = self.sources(factory)
        parse = algorithm_dependency(factory.algorithm_registry, factory.settings)
        tms_ids = Literal[tuple(factory.supported_tms.list())]  # type: ignore[valid-type]
        self._tiles(factory, sources_dependency, parse, tms_ids)
        self._tilejson(factory, sources_dependency, tms_ids)
        self._areas(factory, sources_dependency, parse)

    # ------------------------------------------------------------------ tiles
    def _tiles(self, factory: "OtsuAnalyticsMixin", sources_dependency: Any, parse: Any, tms_ids: Any) -> None:
        from titiler_otsu.web.mixin import tile_halo

        def change_tile(
            request: Request,
            tileMatrixSetId: Annotated[tms_ids, Path(description="TileMatrixSet identifier.")],
            z: Annotated[int, Path(description="Zoom.")],
            x: Annotated[int, Path(description="Column.")],
            y: Annotated[int, Path(description="Row.")],
            sources: Annotated[ChangeSources, Depends(sources_dependency)],
            algorithm: Annotated[BaseAlgorithm | None, Depends(parse)],
            layer_params: Annotated[DefaultDependency, Depends(factory.layer_dependency)],
            dataset_params: Annotated[DefaultDependency, Depends(factory.dataset_dependency)],
            env: Annotated[dict, Depends(factory.environment_dependency)],
            format: ImageType | None = None,
            tilesize: Annotated[int | None, Query(gt=0, description="Tile size in pixels.")] = None,
        ) -> Response:
            before_alg, after_alg = period_algorithms(factory, algorithm, sources, layer_params, dataset_params)
            _binary(after_alg)
            halo = tile_halo(factory.settings, request, after_alg).buffer
            tms = factory.supported_tms.get(tileMatrixSetId)
            classes = []
            with rasterio.Env(**env):
                for period, alg in zip(sources.periods, (before_alg, after_alg), strict=True):
                    with factory.reader(period.src, tms=tms, **period.reader_params.as_dict()) as src:
                        img = src.tile(
                            x,
                            y,
                            z,
                            tilesize=tilesize,
                            buffer=halo,
                            **layer_params.as_dict(),
                            **dataset_params.as_dict(),
                        )
                    classes.append(alg(img))
            image = change_classes(classes[0], classes[1])
            content, media_type = factory.render_func(image, output_format=format, colormap=CHANGE_COLORMAP)
            thresholds = ";".join(format_thresholds(a.last_thresholds or []) for a in (before_alg, after_alg))
            return Response(content, media_type=media_type, headers={THRESHOLDS_HEADER: thresholds})

        for path, name in (
            ("/change/tiles/{tileMatrixSetId}/{z}/{x}/{y}.{format}", "change_tile_format"),
            ("/change/tiles/{tileMatrixSetId}/{z}/{x}/{y}", "change_tile"),
        ):
            factory.router.add_api_route(
                path,
                change_tile,
                methods=["GET"],
                name=name,
                operation_id=f"{factory.operation_prefix}get{name.title().replace('_', '')}",
                summary="Change classes between two dates (0 background, 1 stable foreground, 2 gained, 3 lost).",
                response_class=Response,
                responses={200: {"content": {"image/png": {}, "image/tiff": {}, "application/x-binary": {}}}},
            )

    # ------------------------------------------------------------------ tilejson
    def _tilejson(self, factory: "OtsuAnalyticsMixin", sources_dependency: Any, tms_ids: Any) -> None:
        @factory.router.get(
            "/change/{tileMatrixSetId}/tilejson.json",
            operation_id=f"{factory.operation_prefix}getChangeTileJSON",
            summary="TileJSON of the change tiles (same query parameters).",
        )
        def change_tilejson(
            request: Request,
            tileMatrixSetId: Annotated[tms_ids, Path(description="TileMatrixSet identifier.")],
            sources: Annotated[ChangeSources, Depends(sources_dependency)],
            tile_format: Annotated[ImageType | None, Query(description="Tile format (default png).")] = None,
        ) -> dict[str, Any]:
            tms = factory.supported_tms.get(tileMatrixSetId)
            after = sources.after
            with factory.reader(after.src, tms=tms, **after.reader_params.as_dict()) as src:
                bounds = list(src.get_geographic_bounds(WGS84_CRS))
                minzoom, maxzoom = src.minzoom, src.maxzoom
            route = {"tileMatrixSetId": tileMatrixSetId, "z": "{z}", "x": "{x}", "y": "{y}"}
            if tile_format:
                url = factory.url_for(request, "change_tile_format", **route, format=tile_format.value)
            else:
                url = factory.url_for(request, "change_tile", **route)
            query = [(k, v) for k, v in request.query_params.multi_items() if k != "tile_format"]
            if query:
                url += "?" + urlencode(query)
            return {
                "tilejson": "3.0.0",
                "name": f"change {sources.before.src} -> {after.src}",
                "version": "1.0.0",
                "scheme": "xyz",
                "tiles": [url],
                "minzoom": minzoom,
                "maxzoom": maxzoom,
                "bounds": bounds,
                "center": [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2, minzoom],
            }

    # ------------------------------------------------------------------ areas
    def _areas(self, factory: "OtsuAnalyticsMixin", sources_dependency: Any, parse: Any) -> None:
        grid_of = self.grid_of

        @factory.router.post(
            "/change/areas",
            response_model=ChangeAreasResponse,
            operation_id=f"{factory.operation_prefix}postChangeAreas",
            summary="Gained / lost areas and the class transition matrix between two dates, per GeoJSON polygon.",
        )
        def change_areas(
            geojson: Annotated[
                AreaRequest,
                Body(description="A GeoJSON Feature or FeatureCollection of (Multi)Polygons in lon/lat."),
            ],
            sources: Annotated[ChangeSources, Depends(sources_dependency)],
            algorithm: Annotated[BaseAlgorithm | None, Depends(parse)],
            layer_params: Annotated[DefaultDependency, Depends(factory.layer_dependency)],
            dataset_params: Annotated[DefaultDependency, Depends(factory.dataset_dependency)],
            env: Annotated[dict, Depends(factory.environment_dependency)],
        ) -> ChangeAreasResponse:
            features = geojson.features if isinstance(geojson, FeatureCollection) else [geojson]
            check_feature_count(features, factory.settings.max_aoi_features)
            before_alg, after_alg = period_algorithms(factory, algorithm, sources, layer_params, dataset_params)
            if before_alg.n_classes != after_alg.n_classes:  # pragma: no cover - same parameters
                raise BadRequestError("Both dates must make the same number of classes.")
            read_options = {**layer_params.as_dict(), **dataset_params.as_dict()}
            before, after = sources.periods
            with rasterio.Env(**env):
                with (
                    factory.reader(after.src, **after.reader_params.as_dict()) as after_src,
                    factory.reader(before.src, **before.reader_params.as_dict()) as before_src,
                ):
                    job = AreaJob(
                        after_src, grid_of(after_src), after_alg, read_options, factory.settings.max_aoi_pixels
                    )
                    results = [measure_change(job, before_src, before_alg, i, f) for i, f in enumerate(features)]
            answered = [
                ChangeFeature(
                    id=f.id,
                    geometry=f.geometry.model_dump(exclude_none=True) if f.geometry is not None else None,
                    properties=FeatureChange(**{**(f.properties or {}), **r.model_dump(by_alias=True)}),
                )
                for f, r in zip(features, results, strict=True)
            ]
            return ChangeAreasResponse(
                algorithm=after_alg.algorithm_name(),
                scope=str(after_alg.scope),
                before=before.src,
                after=after.src,
                features=answered,
            )

"""TiTiler factories with grid-exact reads and Otsu analytics.

May import: `core`, `security`, `io`, `algorithms`, `web`, `errors`, `settings` (never `export`).
"""

import math
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlencode

import numpy as np
from fastapi import Depends, Path, Query, Request
from rio_tiler.constants import WGS84_CRS
from starlette.concurrency import run_in_threadpool
from titiler.core.algorithm import Algorithms
from titiler.core.algorithm.base import BaseAlgorithm
from titiler.core.dependencies import DefaultDependency, PartFeatureParams
from titiler.core.factory import TilerFactory
from titiler.core.resources.enums import ImageType
from titiler.core.resources.responses import XMLResponse
from titiler.core.utils import tms_limits
from titiler.extensions.wmts import DEFAULT_TEMPLATES as WMTS_TEMPLATES

from titiler_otsu.algorithms import LocalOtsu, SegmentationAlgorithm, halo_of
from titiler_otsu.algorithms.otsu import Otsu
from titiler_otsu.core.histogram import Histogram, valid_histogram
from titiler_otsu.errors import BadRequestError, OtsuError
from titiler_otsu.io.histograms import DatasetHistograms, histogram_disk_dir
from titiler_otsu.io.masking import masked_pixels
from titiler_otsu.security.limits import BoundedPartParams
from titiler_otsu.settings import Settings
from titiler_otsu.web.dependencies import HaloParams, algorithm_dependency, on_event_loop
from titiler_otsu.web.models import ThresholdResponse
from titiler_otsu.web.tms import SharedTileMatrixSets, shared_tms

OTSU_ALGORITHM_STATE = "otsu_algorithm"

#: Factory attributes holding pure parameter parsing (TiTiler's parameter classes): run on
#: the event loop (`on_event_loop`). Not the path dependency: STAC ones fetch items.
_PURE_DEPENDENCIES = (
    "reader_dependency",
    "layer_dependency",
    "dataset_dependency",
    "render_dependency",
    "colormap_dependency",
    "environment_dependency",
    "stats_dependency",
    "histogram_dependency",
    "img_preview_dependency",
    "img_part_dependency",
)


def _finite_or_none(values: list[float]) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values]


def _histogram_options(
    layer_params: DefaultDependency, dataset_params: DefaultDependency, reader_params: DefaultDependency | None = None
) -> dict[str, Any]:
    """The band/expression and dataset options a dataset histogram depends on (its cache key).

    Reader options (the quality mask) are part of the key under `reader`, not read options.
    """
    reader = reader_params.as_dict() if reader_params is not None else {}
    return {**layer_params.as_dict(), **dataset_params.as_dict(), **({"reader": reader} if reader else {})}


def parse_bbox(bbox: str) -> tuple[float, float, float, float]:
    """`minx,miny,maxx,maxy` as four floats (400 naming the format otherwise)."""
    try:
        minx, miny, maxx, maxy = (float(v) for v in bbox.split(","))
    except ValueError as e:
        raise BadRequestError("bbox must be 'minx,miny,maxx,maxy' in longitude/latitude.") from e
    if not (minx < maxx and miny < maxy and -180 <= minx and maxx <= 180 and -90 <= miny and maxy <= 90):
        raise BadRequestError("bbox must be 'minx,miny,maxx,maxy' in lon/lat with min < max.")
    return minx, miny, maxx, maxy


def tile_halo(settings: Settings, request: Request, algorithm: BaseAlgorithm | None) -> HaloParams:
    """The halo a tile is read with (the algorithm's), checked against MAX_TILESIZE and MAX_HALO."""
    tilesize = request.query_params.get("tilesize")
    if tilesize and tilesize.isdigit() and int(tilesize) > settings.max_tilesize:
        raise BadRequestError(f"tilesize must be at most {settings.max_tilesize} (setting MAX_TILESIZE).")
    halo = halo_of(algorithm)
    if halo > settings.max_halo:
        raise BadRequestError(
            f"These parameters need a {halo}-pixel halo, more than the server's limit of "
            f"{settings.max_halo} (setting MAX_HALO): lower "
            f"{'radius, ' if isinstance(algorithm, LocalOtsu) else ''}sigma, opening or closing."
        )
    return HaloParams(buffer=halo or None)


if TYPE_CHECKING:
    _FactoryBase = TilerFactory
else:
    _FactoryBase = object


class OtsuAnalyticsMixin(_FactoryBase):
    """Grid-exact tiles and Otsu analytics for any TiTiler factory (mix in before it).

    On top of the factory's endpoints: the algorithm's halo is read with every tile,
    scope 'dataset' thresholds are bound from the cached dataset histogram, class tiles
    render as overlays, and `/threshold` and `/{tileMatrixSetId}/WMTSCapabilities.xml` are
    added. The concrete factory declares the `settings`, `histograms` and
    `algorithm_registry` fields.
    """

    settings: Settings
    histograms: DatasetHistograms | None
    algorithm_registry: Algorithms

    def __attrs_post_init__(self) -> None:
        """Wire our dependencies before TiTiler registers the routes."""
        if self.histograms is None:
            s = self.settings
            self.histograms = DatasetHistograms(
                s.histogram_cache_size, s.histogram_cache_ttl, s.histogram_max_size, histogram_disk_dir(s)
            )
        if self.img_part_dependency is PartFeatureParams:  # bbox/feature: max_size 1024 unless sized
            self.img_part_dependency = BoundedPartParams
        if not isinstance(self.supported_tms, SharedTileMatrixSets):
            self.supported_tms = shared_tms(self.supported_tms)
        for name in _PURE_DEPENDENCIES:
            if hasattr(self, name):
                setattr(self, name, on_event_loop(getattr(self, name)))
        self.process_dependency = self._bound_algorithm_dependency()
        self.tile_dependency = self._halo_dependency()
        super().__attrs_post_init__()

    # ------------------------------------------------------------------ dependencies
    def _bound_algorithm_dependency(self) -> Any:
        """The algorithm, with the source's dataset histogram bound when it needs it."""
        parse = algorithm_dependency(self.algorithm_registry, self.settings)
        factory = self

        async def post_process(
            request: Request,
            algorithm: Annotated[BaseAlgorithm | None, Depends(parse)],
            src_path: Annotated[str, Depends(self.path_dependency)],
            reader_params: Annotated[DefaultDependency, Depends(self.reader_dependency)],
            layer_params: Annotated[DefaultDependency, Depends(self.layer_dependency)],
            dataset_params: Annotated[DefaultDependency, Depends(self.dataset_dependency)],
        ) -> BaseAlgorithm | None:
            if isinstance(algorithm, SegmentationAlgorithm):
                setattr(request.state, OTSU_ALGORITHM_STATE, algorithm)
                if algorithm.needs_dataset_histogram:
                    nbins = algorithm.nbins
                    # cached (the usual case while panning): inline; else an overview read, in a thread
                    options = _histogram_options(layer_params, dataset_params, reader_params)
                    hist = factory._histograms().cached(src_path, options, nbins)
                    if hist is None:
                        hist = await run_in_threadpool(
                            factory.dataset_histogram, src_path, reader_params, layer_params, dataset_params, nbins
                        )
                    algorithm.bind_dataset_histogram(hist)
            return algorithm

        return post_process

    def _halo_dependency(self) -> Any:
        """Tile options: the halo the algorithm declares (bounded by settings)."""
        settings = self.settings

        async def tile_params(
            request: Request,
            algorithm: Annotated[BaseAlgorithm | None, Depends(self.process_dependency)],
        ) -> HaloParams:
            return tile_halo(settings, request, algorithm)

        return tile_params

    def dataset_histogram(
        self,
        src_path: str,
        reader_params: DefaultDependency,
        layer_params: DefaultDependency,
        dataset_params: DefaultDependency,
        nbins: int,
    ) -> Histogram:
        """Histogram of the whole source for this band/expression (cached)."""
        options = _histogram_options(layer_params, dataset_params, reader_params)
        return self._histograms().get(
            lambda: self.reader(src_path, **reader_params.as_dict()), src_path, options, nbins
        )

    def _histograms(self) -> DatasetHistograms:
        assert self.histograms is not None, "the factory's histogram cache is set in __attrs_post_init__"
        return self.histograms

    # ------------------------------------------------------------------ routes
    def register_routes(self) -> None:
        """TiTiler's routes plus /threshold and per-TMS WMTS."""
        super().register_routes()
        self.threshold()
        self.wmts()

    def threshold(self) -> None:
        """Register `GET /threshold`."""

        @self.router.get(
            "/threshold",
            response_model=ThresholdResponse,
            operation_id=f"{self.operation_prefix}getThreshold",
            summary="Thresholds and histogram of the source (or of a lon/lat bbox).",
        )
        def threshold(
            algorithm: Annotated[BaseAlgorithm | None, Depends(self.process_dependency)],
            src_path: Annotated[str, Depends(self.path_dependency)],
            reader_params: Annotated[DefaultDependency, Depends(self.reader_dependency)],
            layer_params: Annotated[DefaultDependency, Depends(self.layer_dependency)],
            dataset_params: Annotated[DefaultDependency, Depends(self.dataset_dependency)],
            bbox: Annotated[
                str | None,
                Query(description="Restrict the histogram to minx,miny,maxx,maxy (lon/lat)."),
            ] = None,
        ) -> dict[str, Any]:
            if algorithm is None:
                algorithm = Otsu()
            if not isinstance(algorithm, SegmentationAlgorithm):
                raise BadRequestError("/threshold works with the segmentation algorithms (otsu, multiotsu, localotsu).")
            if isinstance(algorithm, LocalOtsu):
                # No single threshold: the distribution of its block thresholds instead.
                image = self._region_image(src_path, reader_params, layer_params, dataset_params, bbox)
                thresholds, hist = algorithm.threshold_distribution(image)
                masked = masked_pixels(image)
            elif bbox:
                hist, masked = self._bbox_histogram(
                    src_path, reader_params, layer_params, dataset_params, bbox, algorithm
                )
            else:
                hist = self.dataset_histogram(src_path, reader_params, layer_params, dataset_params, algorithm.nbins)
                masked = self._histograms().masked_pixels(
                    src_path, _histogram_options(layer_params, dataset_params, reader_params), algorithm.nbins
                )
            if algorithm.scope == "fixed":
                thresholds = algorithm.fixed_thresholds() or []
            elif not isinstance(algorithm, LocalOtsu):
                thresholds = algorithm.thresholds_from_histogram(hist)
            return {
                "algorithm": algorithm.algorithm_name(),
                "scope": algorithm.scope,
                "thresholds": _finite_or_none(thresholds),
                "nbins": hist.nbins,
                "histogram": {"counts": hist.counts.tolist(), "edges": hist.edges.tolist()},
                "pixels": hist.pixels,
                "masked_pixels": masked,
                "bbox": parse_bbox(bbox) if bbox else None,
            }

    def _region_image(
        self,
        src_path: str,
        reader_params: DefaultDependency,
        layer_params: DefaultDependency,
        dataset_params: DefaultDependency,
        bbox: str | None,
    ) -> Any:
        """One read of the source decimated to HISTOGRAM_MAX_SIZE, or of a lon/lat bbox."""
        options = {**layer_params.as_dict(), **dataset_params.as_dict()}
        max_size = self.settings.histogram_max_size
        with self.reader(src_path, **reader_params.as_dict()) as src:
            if bbox:
                return src.part(parse_bbox(bbox), bounds_crs=WGS84_CRS, max_size=max_size, **options)
            return src.preview(max_size=max_size, **options)

    def _bbox_histogram(
        self,
        src_path: str,
        reader_params: DefaultDependency,
        layer_params: DefaultDependency,
        dataset_params: DefaultDependency,
        bbox: str,
        algorithm: SegmentationAlgorithm,
    ) -> tuple[Histogram, int]:
        """Histogram of a lon/lat bbox and the pixels the quality mask removed from it."""
        bounds = parse_bbox(bbox)
        with self.reader(src_path, **reader_params.as_dict()) as src:
            img = src.part(
                bounds,
                bounds_crs=WGS84_CRS,
                max_size=self.settings.histogram_max_size,
                **layer_params.as_dict(),
                **dataset_params.as_dict(),
            )
        if img.count != 1:
            raise BadRequestError("Pick one band with `bidx` or build one with `expression`.")
        band = img.array[0]
        hist = valid_histogram(np.ma.getdata(band), ~np.ma.getmaskarray(band), nbins=algorithm.nbins)
        return hist, masked_pixels(img)

    def wmts(self) -> None:
        """Register `GET /{tileMatrixSetId}/WMTSCapabilities.xml` (OGC WMTS, RESTful)."""

        @self.router.get(
            "/{tileMatrixSetId}/WMTSCapabilities.xml",
            response_class=XMLResponse,
            operation_id=f"{self.operation_prefix}getWMTSCapabilities",
            summary="OGC WMTS capabilities for one TileMatrixSet: an imagery and a mask layer.",
        )
        def wmts_capabilities(
            request: Request,
            tileMatrixSetId: Annotated[
                Literal[tuple(self.supported_tms.list())],  # type: ignore[valid-type]
                Path(description="TileMatrixSet identifier."),
            ],
            src_path: Annotated[str, Depends(self.path_dependency)],
            reader_params: Annotated[DefaultDependency, Depends(self.reader_dependency)],
            layer_params: Annotated[DefaultDependency, Depends(self.layer_dependency)],
            dataset_params: Annotated[DefaultDependency, Depends(self.dataset_dependency)],
            tile_format: Annotated[ImageType, Query(description="Tile format.")] = ImageType.png,
        ) -> Any:
            tms = self.supported_tms.get(tileMatrixSetId)
            with self.reader(src_path, tms=tms, **reader_params.as_dict()) as src:
                bounds = src.get_geographic_bounds(WGS84_CRS)
                zooms = (src.minzoom, src.maxzoom)
                band_count = getattr(getattr(src, "dataset", None), "count", None)
            skip = {"tile_format", "service", "request", "acceptversions", "tilesize"}
            params = [(k, v) for k, v in request.query_params.multi_items() if k.lower() not in skip]
            keys = [k for k, _ in params]
            imagery = [(k, v) for k, v in params if k not in ("algorithm", "algorithm_params")]
            if "rescale" not in keys:
                imagery += [
                    ("rescale", r) for r in self._stretch(src_path, reader_params, layer_params, dataset_params)
                ]
            one_band = "bidx" in keys or "expression" in keys or keys.count("assets") == 1 or band_count == 1
            mask = params if "algorithm" in keys else [*params, ("algorithm", "otsu")]
            tiles_url = self.url_for(
                request,
                "tile",
                tileMatrixSetId=tileMatrixSetId,
                z="{TileMatrix}",
                x="{TileCol}",
                y="{TileRow}",
                format=tile_format.value,
            )
            name = src_path.rsplit("/", 1)[-1]
            algorithm = dict(mask).get("algorithm", "otsu")
            layers = [("imagery", f"{name} imagery", imagery)]
            if "algorithm" in keys or one_band:
                layers.append(("mask", f"{name} {algorithm} mask", mask))
            return WMTS_TEMPLATES.TemplateResponse(
                request,
                name="wmts.xml",
                context={
                    "layers": [
                        {
                            "title": title,
                            "identifier": f"{kind}_{tileMatrixSetId}",
                            "tms_identifier": tileMatrixSetId,
                            "tms_limits": tms_limits(tms, bounds, zooms=zooms),
                            "tiles_url": tiles_url,
                            "query_string": urlencode(query),
                            "bbox_crs_type": "WGS84BoundingBox",
                            "bbox_crs_uri": "urn:ogc:def:crs:OGC:2:84",
                            "bbox": bounds,
                        }
                        for kind, title, query in layers
                    ],
                    "tileMatrixSets": [{"id": tileMatrixSetId, "crs": tms.crs.srs, "matrices": tms.tileMatrices}],
                    "media_type": tile_format.mediatype,
                },
                media_type="application/xml",
            )

    def _stretch(
        self,
        src_path: str,
        reader_params: DefaultDependency,
        layer_params: DefaultDependency,
        dataset_params: DefaultDependency,
    ) -> list[str]:
        """`rescale` of a one-band imagery layer: 2nd-98th percentiles of the dataset histogram."""
        try:
            hist = self.dataset_histogram(src_path, reader_params, layer_params, dataset_params, 256)
        except OtsuError:  # several bands, or no dataset histogram (e.g. a search): as they are
            return []
        if not hist.pixels:
            return []
        cumulative = np.cumsum(hist.counts) / hist.pixels
        lo = float(hist.edges[int(np.searchsorted(cumulative, 0.02))])
        hi = float(hist.edges[int(np.searchsorted(cumulative, 0.98)) + 1])
        return [f"{lo:g},{hi:g}"]

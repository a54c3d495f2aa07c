"""`POST {prefix}/areas`: true ground area of each class inside GeoJSON polygons.

Each polygon (lon/lat) is clipped to the source, projected to the source CRS and read on
the source's own pixel grid (native resolution, or a decimated read when the AOI exceeds
`max_aoi_pixels`), with the algorithm's halo around the polygon's bounding box, so a
pixel's class is the one the whole-image computation would give. Pixels whose centre lies
in the polygon are counted per class. Areas are true ground areas: every 1x16 block of
the read grid is measured in a Lambert azimuthal equal-area projection (on the source's
own ellipsoid) centred on the AOI, so neither a geographic nor a Web-Mercator source
inflates them. That geometry, apart from the web framework, is `io.aoi`; this module holds
the request and response models, the per-feature measurement and the extension.

May import: `core`, `security`, `io`, `algorithms`, `web`, `errors`, `settings` (never `export`).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import rasterio
import shapely
from attrs import define, field
from fastapi import Body, Depends
from geojson_pydantic import Feature, FeatureCollection, MultiPolygon, Polygon
from pydantic import BaseModel, ConfigDict, Field
from rasterio.features import geometry_mask
from rio_tiler.constants import WGS84_CRS
from rio_tiler.io import BaseReader
from rio_tiler.models import ImageData
from titiler.core.algorithm.base import BaseAlgorithm
from titiler.core.dependencies import DefaultDependency
from titiler.core.factory import FactoryExtension

from titiler_otsu.algorithms import SegmentationAlgorithm, halo_of
from titiler_otsu.algorithms.otsu import Otsu
from titiler_otsu.errors import BadRequestError
from titiler_otsu.io.aoi import (
    DENSIFY_DEG,
    AoiRead,
    NativeGrid,
    block_counts,
    block_pixel_areas,
    cached_transformer,
    lonlat_area,
    native_grid,
    plan_read,
    polygonal,
    repair,
    transform_geom,
)
from titiler_otsu.io.masking import removed_pixels

if TYPE_CHECKING:
    from titiler_otsu.web.mixin import OtsuAnalyticsMixin

__all__ = ["AreasExtension", "AreasResponse", "feature_collection", "segmentation_algorithm"]

AreaGeometry = Annotated[Polygon | MultiPolygon, Field(discriminator="type")]
AreaFeature = Feature[AreaGeometry, dict[str, Any]]
AreaRequest = Annotated[AreaFeature | FeatureCollection[AreaFeature], Field(discriminator="type")]


# ---------------------------------------------------------------------- response models
class ClassArea(BaseModel):
    """Pixels and true ground area of one class inside a polygon."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    class_: int = Field(alias="class", description="Class value (0 .. k-1).")
    pixels: int = Field(description="Valid pixels of this class whose centre is in the polygon.")
    fraction: float = Field(description="pixels / valid pixels in the polygon (0 when there are none).")
    area_m2: float = Field(description="True ground area of those pixels, square metres.")


class FeatureAreas(BaseModel):
    """Class areas of one input feature."""

    model_config = ConfigDict(extra="forbid")

    index: int = Field(description="Position of the feature in the request.")
    id: int | float | str | None = Field(None, description="The feature's `id`, if it had one.")
    classes: list[ClassArea]
    thresholds: list[float | None] = Field(description="Thresholds used (null: no valid pixel).")
    pixels: int = Field(description="Valid pixels in the polygon (sum over classes).")
    nodata_pixels: int = Field(description="Pixels in the polygon (inside the source) without data.")
    area_m2: float = Field(description="True ground area of the valid pixels (sum over classes).")
    polygon_area_m2: float = Field(description="Ellipsoidal area of the (repaired) polygon.")
    coverage: float = Field(description="Fraction of the polygon's area inside the source's extent.")
    outside_source: bool = Field(description="True when the polygon does not overlap the source at all.")
    resolution_m: float | None = Field(
        description="Ground size of the pixels read: side of a square of their mean true area (null if none read)."
    )
    pixel_area_m2: float | None = Field(description="Mean true area of one pixel read.")
    decimation: int = Field(description="Source pixels per pixel read, per axis (1 = native resolution).")
    overview: bool = Field(description="True when the AOI was too large and a decimated overview was read.")
    repaired: bool = Field(description="True when an invalid (e.g. self-intersecting) polygon was repaired.")
    masked_pixels: int = Field(
        0, description="Pixels in the polygon with data that the quality mask removed (part of nodata_pixels)."
    )
    masked_area_m2: float = Field(0.0, description="True ground area of the masked pixels.")
    notes: list[str] = Field(default_factory=list)


class AreaProperties(FeatureAreas):
    """`properties` of an answered feature: the input feature's own properties, then the results."""

    model_config = ConfigDict(extra="allow")


class AreaResultFeature(BaseModel):
    """One input feature (its geometry as given) with the results under `properties`."""

    type: Literal["Feature"] = "Feature"
    id: int | float | str | None = None
    geometry: dict[str, Any] | None
    properties: AreaProperties


class AreasResponse(BaseModel):
    """Response of `POST /areas`: a GeoJSON FeatureCollection of the input features, in order.

    `algorithm` and `scope` are foreign members of the collection.
    """

    type: Literal["FeatureCollection"] = "FeatureCollection"
    algorithm: str
    scope: str
    features: list[AreaResultFeature]


def answer_feature(feature: AreaFeature, result: BaseModel) -> AreaResultFeature:
    """The input feature with `result`'s keys merged into its properties (results win)."""
    merged = {**(feature.properties or {}), **result.model_dump(by_alias=True)}
    geometry = feature.geometry.model_dump(exclude_none=True) if feature.geometry is not None else None
    return AreaResultFeature(id=feature.id, geometry=geometry, properties=AreaProperties(**merged))


def feature_collection(algorithm: str, scope: str, features: list[AreaFeature], results: list[Any]) -> AreasResponse:
    """`AreasResponse` of the input features and their results (same order)."""
    answered = [answer_feature(f, r) for f, r in zip(features, results, strict=True)]
    return AreasResponse(algorithm=algorithm, scope=scope, features=answered)


# ---------------------------------------------------------------------- algorithm
def segmentation_algorithm(
    factory: "OtsuAnalyticsMixin",
    algorithm: BaseAlgorithm | None,
    src_path: str,
    reader_params: DefaultDependency,
    layer_params: DefaultDependency,
    dataset_params: DefaultDependency,
) -> SegmentationAlgorithm:
    """The request's segmentation algorithm; default `otsu` (dataset scope), bound.

    Raises:
        BadRequestError: for a non-segmentation algorithm (e.g. hillshade).

    """
    if algorithm is None:
        algorithm = Otsu()
        algorithm.bind_dataset_histogram(
            factory.dataset_histogram(src_path, reader_params, layer_params, dataset_params, algorithm.nbins)
        )
    if not isinstance(algorithm, SegmentationAlgorithm):
        raise BadRequestError(
            f"This endpoint needs a segmentation algorithm (otsu, multiotsu...), not '{type(algorithm).__name__}'."
        )
    halo = halo_of(algorithm)
    if halo > factory.settings.max_halo:
        raise BadRequestError(
            f"These parameters need a {halo}-pixel halo, more than the server's limit of "
            f"{factory.settings.max_halo} (setting MAX_HALO): lower the neighbourhood parameters "
            "(sigma, opening, closing, radius)."
        )
    return algorithm


def _known_thresholds(algorithm: SegmentationAlgorithm) -> list[float]:
    """Thresholds known before reading (scopes 'fixed' and 'dataset'; none for 'tile')."""
    if algorithm.scope == "fixed":
        return algorithm.fixed_thresholds() or []
    if algorithm.scope == "dataset":
        return algorithm.dataset_thresholds()
    return []


def _finite_or_none(values: list[float]) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values]


# ---------------------------------------------------------------------- computation
@dataclass
class AreaJob:
    """Everything needed to measure the features of one request."""

    src: Any  # a rio-tiler reader whose `part()` takes dst_crs/width/height (Reader, STACReader...)
    grid: NativeGrid
    algorithm: SegmentationAlgorithm
    read_options: dict[str, Any]
    max_pixels: int


def _empty_classes(n: int) -> list[ClassArea]:
    return [ClassArea(class_=k, pixels=0, fraction=0.0, area_m2=0.0) for k in range(n)]


@dataclass
class FeaturePlan:
    """A feature prepared for reading: the result so far, and (if it meets the source) where to read.

    Attributes:
        result: `FeatureAreas` fields known before reading (pixels still 0).
        plan: the read, None when nothing is to be read.
        in_polygon: (height, width) pixels of the read (halo excluded) whose centre is inside.
        areas, row_starts, col_starts: true pixel area per `AREA_BLOCK` block (`block_pixel_areas`).

    """

    result: dict[str, Any]
    plan: AoiRead | None = None
    in_polygon: np.ndarray | None = None
    areas: np.ndarray | None = None
    row_starts: np.ndarray | None = None
    col_starts: np.ndarray | None = None

    def measure(self, pixels: np.ndarray) -> tuple[int, float]:
        """Pixel count and true area (m²) of a (height, width) bool raster of the read."""
        assert self.areas is not None and self.row_starts is not None and self.col_starts is not None
        per_block = block_counts(pixels, self.row_starts, self.col_starts)
        return int(per_block.sum()), float((per_block * self.areas).sum())


def plan_feature(job: AreaJob, index: int, feature: AreaFeature, n_classes: int) -> FeaturePlan:
    """Repair, clip and project a feature; plan its read on the job's grid; its pixel areas."""
    if feature.geometry is None:
        raise BadRequestError(f"Feature {index} has no geometry: give a Polygon or MultiPolygon in lon/lat.")
    notes: list[str] = []
    geom, reason = repair(shapely.geometry.shape(feature.geometry.model_dump(exclude_none=True)))
    if reason:
        notes.append(f"The polygon was invalid ({reason}) and was repaired with make_valid.")
    polygon_area = lonlat_area(geom)
    result: dict[str, Any] = {
        "index": index,
        "id": feature.id,
        "classes": _empty_classes(n_classes),
        "thresholds": _finite_or_none(_known_thresholds(job.algorithm)),
        "pixels": 0,
        "nodata_pixels": 0,
        "area_m2": 0.0,
        "polygon_area_m2": polygon_area,
        "coverage": 0.0,
        "outside_source": True,
        "resolution_m": None,
        "pixel_area_m2": None,
        "decimation": 1,
        "overview": False,
        "repaired": reason is not None,
        "notes": notes,
    }

    # clip in lon/lat first (points far outside a projected CRS's domain do not project)
    west, south, east, north = job.src.get_geographic_bounds(WGS84_CRS)
    clipped = geom.intersection(shapely.box(west, south, east, north))
    if not clipped.is_empty:
        to_src = cached_transformer("EPSG:4326", job.grid.crs.to_wkt())
        projected = transform_geom(shapely.segmentize(clipped, DENSIFY_DEG), to_src)
        projected = repair(projected)[0].intersection(job.grid.box)
        clipped = polygonal(projected)
    if clipped.is_empty or clipped.area == 0:
        notes.append("The polygon does not overlap the source: no pixels.")
        return FeaturePlan(result)

    result["outside_source"] = False
    to_lonlat = cached_transformer(job.grid.crs.to_wkt(), "EPSG:4326")
    inside_lonlat = transform_geom(clipped, to_lonlat)
    result["coverage"] = min(1.0, lonlat_area(inside_lonlat) / polygon_area) if polygon_area else 0.0
    if result["coverage"] < 0.999:
        notes.append(f"{100 * (1 - result['coverage']):.1f}% of the polygon lies outside the source's extent.")

    plan = plan_read(clipped, job.grid, job.algorithm.halo, job.max_pixels)
    if plan.width == 0 or plan.height == 0:
        return FeaturePlan(result)
    if plan.decimation > 1:
        result["overview"] = True
        result["decimation"] = plan.decimation
        notes.append(
            f"The AOI needs more than {job.max_pixels} pixels at native resolution (setting MAX_AOI_PIXELS): "
            f"read at 1/{plan.decimation} resolution (an overview); areas are approximate, and pixel-based "
            "parameters (sigma, opening, closing) apply to the coarser pixels."
        )
    shape = (plan.height, plan.width)
    transform = plan.transform(job.grid)
    in_polygon = geometry_mask([clipped], out_shape=shape, transform=transform, invert=True)
    centroid = inside_lonlat.centroid
    areas, row_starts, col_starts = block_pixel_areas(transform, job.grid.crs, shape, (centroid.x, centroid.y))
    npix = np.diff(np.r_[row_starts, shape[0]])[:, None] * np.diff(np.r_[col_starts, shape[1]])
    mean_pixel_area = float((areas * npix).sum() / npix.sum())
    result["pixel_area_m2"] = mean_pixel_area
    result["resolution_m"] = math.sqrt(mean_pixel_area)
    return FeaturePlan(result, plan, in_polygon, areas, row_starts, col_starts)


def read_classes(
    src: Any, algorithm: SegmentationAlgorithm, plan: AoiRead, grid: NativeGrid, read_options: dict[str, Any]
) -> tuple[ImageData, np.ndarray | None]:
    """The classes of a planned read (halo cropped) and the pixels the quality mask removed."""
    img = src.part(
        plan.read_bounds(grid),
        dst_crs=grid.read_crs,
        bounds_crs=grid.read_crs,
        width=plan.width + 2 * plan.halo,
        height=plan.height + 2 * plan.halo,
        max_size=None,
        align_bounds_with_dataset=True,
        **read_options,
    )
    img.metadata = {**(img.metadata or {}), "halo": plan.halo}
    removed = removed_pixels(img)
    out: ImageData = algorithm(img)
    if removed is not None:
        h = plan.halo
        removed = removed[h : h + plan.height, h : h + plan.width]
    return out, removed


def measure_feature(job: AreaJob, index: int, feature: AreaFeature) -> FeatureAreas:
    """Class pixels and true areas of one feature."""
    n_classes = job.algorithm.n_classes
    fp = plan_feature(job, index, feature, n_classes)
    result = fp.result
    if fp.plan is None or fp.in_polygon is None:
        return FeatureAreas(**result)
    out, removed = read_classes(job.src, job.algorithm, fp.plan, job.grid, job.read_options)
    classes = np.ma.getdata(out.array[0])
    valid = ~np.ma.getmaskarray(out.array[0])
    inside = fp.in_polygon & valid
    measured = [fp.measure(inside & (classes == k)) for k in range(n_classes)]
    total = sum(c for c, _ in measured)
    result["classes"] = [
        ClassArea(class_=k, pixels=c, fraction=c / total if total else 0.0, area_m2=a)
        for k, (c, a) in enumerate(measured)
    ]
    result["thresholds"] = _finite_or_none(list((out.metadata or {}).get("thresholds", [])))
    result["pixels"] = total
    result["nodata_pixels"] = int((fp.in_polygon & ~valid).sum())
    result["area_m2"] = float(sum(a for _, a in measured))
    if removed is not None:
        result["masked_pixels"], result["masked_area_m2"] = fp.measure(fp.in_polygon & removed)
    return FeatureAreas(**result)


def check_feature_count(features: list[Any], limit: int) -> None:
    """400 beyond `limit` features (setting MAX_AOI_FEATURES)."""
    if len(features) > limit:
        raise BadRequestError(
            f"{len(features)} features given; at most {limit} per request (setting MAX_AOI_FEATURES). "
            "Split the FeatureCollection into several requests."
        )


# ---------------------------------------------------------------------- extension
@define
class AreasExtension(FactoryExtension):
    """Adds `POST /areas` to an Otsu factory (any source family).

    Attributes:
        grid_of: the native pixel grid of an open reader (default: its `crs`,
            `transform`, `width`, `height`); a family whose readers lack them passes its own.

    """

    grid_of: Callable[[BaseReader], NativeGrid] = field(default=native_grid)

    def register(self, factory: "OtsuAnalyticsMixin") -> None:  # type: ignore[override]
        """Register `POST /areas` on the factory's router."""

        @factory.router.post(
            "/areas",
            response_model=AreasResponse,
            operation_id=f"{factory.operation_prefix}postAreas",
            summary="Pixels, fraction and true ground area of each class inside GeoJSON polygons.",
        )
        def areas(
            geojson: Annotated[
                AreaRequest,
                Body(description="A GeoJSON Feature or FeatureCollection of (Multi)Polygons in lon/lat."),
            ],
            algorithm: Annotated[BaseAlgorithm | None, Depends(factory.process_dependency)],
            src_path: Annotated[str, Depends(factory.path_dependency)],
            reader_params: Annotated[DefaultDependency, Depends(factory.reader_dependency)],
            layer_params: Annotated[DefaultDependency, Depends(factory.layer_dependency)],
            dataset_params: Annotated[DefaultDependency, Depends(factory.dataset_dependency)],
            env: Annotated[dict, Depends(factory.environment_dependency)],
        ) -> AreasResponse:
            features = geojson.features if isinstance(geojson, FeatureCollection) else [geojson]
            check_feature_count(features, factory.settings.max_aoi_features)
            segmentation = segmentation_algorithm(
                factory, algorithm, src_path, reader_params, layer_params, dataset_params
            )
            with rasterio.Env(**env):
                with factory.reader(src_path, **reader_params.as_dict()) as src:
                    job = AreaJob(
                        src=src,
                        grid=self.grid_of(src),
                        algorithm=segmentation,
                        read_options={**layer_params.as_dict(), **dataset_params.as_dict()},
                        max_pixels=factory.settings.max_aoi_pixels,
                    )
                    results = [measure_feature(job, i, f) for i, f in enumerate(features)]
            return feature_collection(segmentation.algorithm_name(), str(segmentation.scope), features, results)

"""`POST {prefix}/areas`: true ground area of each class inside GeoJSON polygons.

Each polygon (lon/lat) is clipped to the source, projected to the source CRS and read on
the source's own pixel grid (native resolution, or a decimated read when the AOI exceeds
`max_aoi_pixels`), with the algorithm's halo around the polygon's bounding box, so a
pixel's class is the one the whole-image computation would give. Pixels whose centre lies
in the polygon are counted per class. Areas are true ground areas: every 1x16 block of
the read grid is measured in a Lambert azimuthal equal-area projection (on the source's
own ellipsoid) centred on the AOI, so neither a geographic nor a Web-Mercator source
inflates them.
"""

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import rasterio
import shapely
from affine import Affine
from attrs import define, field
from fastapi import Body, Depends
from geojson_pydantic import Feature, FeatureCollection, MultiPolygon, Polygon
from pydantic import BaseModel, ConfigDict, Field
from pyproj import CRS, Transformer
from pyproj.crs import ProjectedCRS
from pyproj.crs.coordinate_operation import LambertAzimuthalEqualAreaConversion
from rasterio.features import geometry_mask
from rio_tiler.constants import WGS84_CRS
from rio_tiler.io import BaseReader
from rio_tiler.models import ImageData
from shapely.geometry.base import BaseGeometry
from titiler.core.algorithm.base import BaseAlgorithm
from titiler.core.dependencies import DefaultDependency
from titiler.core.factory import FactoryExtension

from titiler_otsu.algorithms import SegmentationAlgorithm, halo_of
from titiler_otsu.algorithms.otsu import Otsu
from titiler_otsu.errors import BadRequestError
from titiler_otsu.io.masking import removed_pixels

if TYPE_CHECKING:
    from titiler_otsu.web.mixin import OtsuAnalyticsMixin

__all__ = ["AreasExtension", "AreasResponse", "cached_transformer", "feature_collection", "segmentation_algorithm"]

#: Blocks whose true area is measured: one row by 16 columns of read pixels. A pixel's
#: area is taken constant within its block. Along a row it varies very little in the
#: projections rasters come in (UTM: < 1e-7 over 16 px); across rows it can vary fast
#: (geographic and Web-Mercator grids: 3e-5 per 0.001 degree row at 60 N), so every row is
#: measured.
AREA_BLOCK = (1, 16)
#: Polygon edges are straight lines in lon/lat (RFC 7946): they are densified to this
#: step, in degrees, before projection to the source CRS.
DENSIFY_DEG = 0.001
#: Global equal-area CRS (WGS 84 / NSIDC EASE-Grid 2.0 Global, cylindrical equal-area) for
#: polygon areas: lon/lat straight edges, the antimeridian and whole-world boxes are exact.
_GLOBAL_EQUAL_AREA = "EPSG:6933"


@functools.lru_cache(maxsize=64)
def cached_transformer(src: str, dst: str) -> Transformer:
    """`always_xy` transformer between two CRSs (user input or WKT), built once (tens of ms)."""
    return Transformer.from_crs(CRS.from_user_input(src), CRS.from_user_input(dst), always_xy=True)


@functools.lru_cache(maxsize=64)
def _equal_area_transformer(crs_wkt: str, lon0: int, lat0: int) -> Transformer:
    """Transformer to a Lambert azimuthal equal-area projection on the CRS's own datum.

    The projection is exactly equal-area everywhere; its centre (whole degrees, so that it
    is cached) only limits shape distortion, which does not matter for 1x16-pixel blocks.
    """
    crs = CRS.from_wkt(crs_wkt)
    laea = ProjectedCRS(conversion=LambertAzimuthalEqualAreaConversion(lat0, lon0), geodetic_crs=crs.geodetic_crs)
    return Transformer.from_crs(crs, laea, always_xy=True)


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


# ---------------------------------------------------------------------- geometry
def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """The polygonal part of a geometry (make_valid may add lines or points)."""
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def repair(geom: BaseGeometry) -> tuple[BaseGeometry, str | None]:
    """Return a valid polygonal geometry and, if it was invalid, why."""
    if shapely.is_valid(geom):
        return geom, None
    reason = shapely.is_valid_reason(geom)
    return _polygonal(shapely.make_valid(geom)), reason


def lonlat_area(geom: BaseGeometry) -> float:
    """Ellipsoidal area (m²) of a lon/lat geometry whose edges are straight in lon/lat."""
    if geom.is_empty:
        return 0.0
    minx, miny, maxx, maxy = geom.bounds
    step = max(DENSIFY_DEG, max(maxx - minx, maxy - miny) / 1000)
    return float(
        _transform_geom(shapely.segmentize(geom, step), cached_transformer("EPSG:4326", _GLOBAL_EQUAL_AREA)).area
    )


def _transform_geom(geom: BaseGeometry, transformer: Transformer) -> BaseGeometry:
    def project(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geom, project)


@dataclass(frozen=True)
class NativeGrid:
    """The pixel grid a source is read on: CRS, north-up transform and size."""

    crs: CRS
    read_crs: Any  # the same CRS as the reader's `part(dst_crs=...)` takes it (rasterio CRS)
    transform: Affine
    width: int
    height: int

    @property
    def box(self) -> BaseGeometry:
        """Extent of the grid, in its CRS."""
        t = self.transform
        return shapely.box(t.c, t.f + self.height * t.e, t.c + self.width * t.a, t.f)


def native_grid(src: BaseReader) -> NativeGrid:
    """The source's own pixel grid (a rio-tiler reader with `transform`, `width`, `height`)."""
    transform = getattr(src, "transform", None)
    width, height = getattr(src, "width", None), getattr(src, "height", None)
    if transform is None or not width or not height:
        raise BadRequestError("/areas needs a source with a single pixel grid (a COG or an item with proj: info).")
    if transform.b != 0 or transform.d != 0 or transform.a <= 0 or transform.e >= 0:
        raise BadRequestError("/areas supports north-up sources only (this one is rotated or flipped).")
    return NativeGrid(CRS.from_user_input(src.crs), src.crs, transform, int(width), int(height))


@dataclass(frozen=True)
class AoiRead:
    """How an AOI is read: a window of the native grid, decimated, with a halo."""

    col: int
    row: int
    width: int  # read pixels (after decimation), halo excluded
    height: int
    decimation: int
    halo: int

    def transform(self, grid: NativeGrid, with_halo: bool = False) -> Affine:
        """Transform of the read pixels (halo included or not)."""
        pad = self.halo * self.decimation if with_halo else 0
        return grid.transform * Affine.translation(self.col - pad, self.row - pad) * Affine.scale(self.decimation)

    def read_bounds(self, grid: NativeGrid) -> tuple[float, float, float, float]:
        """Bounds of the read, halo included."""
        t = self.transform(grid, with_halo=True)
        w, h = self.width + 2 * self.halo, self.height + 2 * self.halo
        return (t.c, t.f + h * t.e, t.c + w * t.a, t.f)

    @property
    def pixels(self) -> int:
        """Pixels read, halo included."""
        return (self.width + 2 * self.halo) * (self.height + 2 * self.halo)


def plan_read(geom: BaseGeometry, grid: NativeGrid, halo: int, max_pixels: int) -> AoiRead:
    """Native window covering the geometry (source CRS); decimated until within `max_pixels`."""
    t = grid.transform
    minx, miny, maxx, maxy = geom.bounds
    c0 = max(0, math.floor((minx - t.c) / t.a))
    c1 = min(grid.width, math.ceil((maxx - t.c) / t.a))
    r0 = max(0, math.floor((maxy - t.f) / t.e))
    r1 = min(grid.height, math.ceil((miny - t.f) / t.e))
    width, height = max(c1 - c0, 0), max(r1 - r0, 0)
    d = 1
    if (width + 2 * halo) * (height + 2 * halo) > max_pixels:
        d = max(1, math.floor(math.sqrt(width * height / max_pixels)))
        while (math.ceil(width / d) + 2 * halo) * (math.ceil(height / d) + 2 * halo) > max_pixels:
            d += 1
    return AoiRead(c0, r0, math.ceil(width / d), math.ceil(height / d), d, halo)


def block_pixel_areas(
    transform: Affine, crs: CRS, shape: tuple[int, int], centre: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True area of one pixel in each `AREA_BLOCK` block of a grid.

    The block corners are projected to a Lambert azimuthal equal-area projection centred on
    `centre` (lon, lat), on the grid CRS's own datum, and each block's quadrilateral area is
    shared among its pixels.

    Returns:
        (areas, row_starts, col_starts): `areas[i, j]` m² per pixel of the block starting at
        row `row_starts[i]`, column `col_starts[j]`.

    """
    height, width = shape
    rows = np.r_[np.arange(0, height, AREA_BLOCK[0]), height]
    cols = np.r_[np.arange(0, width, AREA_BLOCK[1]), width]
    cc, rr = np.meshgrid(cols.astype(np.float64), rows.astype(np.float64))
    xs, ys = transform * (cc, rr)
    to_laea = _equal_area_transformer(crs.to_wkt(), round(centre[0]), round(centre[1]))
    ex, ey = to_laea.transform(xs, ys)
    # quadrilateral p00, p01, p11, p10: area = |(p11 - p00) x (p10 - p01)| / 2
    dx1, dy1 = ex[1:, 1:] - ex[:-1, :-1], ey[1:, 1:] - ey[:-1, :-1]
    dx2, dy2 = ex[1:, :-1] - ex[:-1, 1:], ey[1:, :-1] - ey[:-1, 1:]
    quad = 0.5 * np.abs(dx1 * dy2 - dy1 * dx2)
    npix = np.diff(rows)[:, None] * np.diff(cols)[None, :]
    return quad / npix, rows[:-1], cols[:-1]


def _block_counts(mask: np.ndarray, row_starts: np.ndarray, col_starts: np.ndarray) -> np.ndarray:
    per_cols = np.add.reduceat(mask, col_starts, axis=1, dtype=np.int64)
    return per_cols if len(row_starts) == mask.shape[0] else np.add.reduceat(per_cols, row_starts, axis=0)


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
        per_block = _block_counts(pixels, self.row_starts, self.col_starts)
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
        projected = _transform_geom(shapely.segmentize(clipped, DENSIFY_DEG), to_src)
        projected = repair(projected)[0].intersection(job.grid.box)
        clipped = _polygonal(projected)
    if clipped.is_empty or clipped.area == 0:
        notes.append("The polygon does not overlap the source: no pixels.")
        return FeaturePlan(result)

    result["outside_source"] = False
    to_lonlat = cached_transformer(job.grid.crs.to_wkt(), "EPSG:4326")
    inside_lonlat = _transform_geom(clipped, to_lonlat)
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

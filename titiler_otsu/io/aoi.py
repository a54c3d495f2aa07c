"""Polygons on a source's pixel grid: repair, projection, read plan and true pixel areas.

The geometry of `POST /areas` (and of change areas, time series and vectors), apart from the
web framework. Polygons are lon/lat (RFC 7946: straight edges in lon/lat), repaired when
invalid and densified before projection to the source CRS; `plan_read` gives the native (or
decimated) window that covers one; `block_pixel_areas` measures the true ground area of the
pixels of a grid, per `AREA_BLOCK` block, in a Lambert azimuthal equal-area projection on the
source's own ellipsoid.

May import: `core`, `security`, `io`, `errors`, `settings`.
"""

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from affine import Affine
from pyproj import CRS, Transformer
from pyproj.crs import ProjectedCRS
from pyproj.crs.coordinate_operation import LambertAzimuthalEqualAreaConversion
from rio_tiler.io import BaseReader
from shapely.geometry.base import BaseGeometry

from titiler_otsu.errors import BadRequestError

__all__ = [
    "AREA_BLOCK",
    "DENSIFY_DEG",
    "AoiRead",
    "NativeGrid",
    "block_counts",
    "block_pixel_areas",
    "cached_transformer",
    "lonlat_area",
    "native_grid",
    "plan_read",
    "polygonal",
    "repair",
    "transform_geom",
]

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


def polygonal(geom: BaseGeometry) -> BaseGeometry:
    """The polygonal part of a geometry (make_valid may add lines or points)."""
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def repair(geom: BaseGeometry) -> tuple[BaseGeometry, str | None]:
    """Return a valid polygonal geometry and, if it was invalid, why."""
    if shapely.is_valid(geom):
        return geom, None
    reason = shapely.is_valid_reason(geom)
    return polygonal(shapely.make_valid(geom)), reason


def lonlat_area(geom: BaseGeometry) -> float:
    """Ellipsoidal area (m²) of a lon/lat geometry whose edges are straight in lon/lat."""
    if geom.is_empty:
        return 0.0
    minx, miny, maxx, maxy = geom.bounds
    step = max(DENSIFY_DEG, max(maxx - minx, maxy - miny) / 1000)
    return float(
        transform_geom(shapely.segmentize(geom, step), cached_transformer("EPSG:4326", _GLOBAL_EQUAL_AREA)).area
    )


def transform_geom(geom: BaseGeometry, transformer: Transformer) -> BaseGeometry:
    """The geometry with its coordinates transformed (all of them in one call)."""

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


def block_counts(mask: np.ndarray, row_starts: np.ndarray, col_starts: np.ndarray) -> np.ndarray:
    """Pixels of a bool raster in each block starting at `row_starts` x `col_starts` (`block_pixel_areas`)."""
    per_cols = np.add.reduceat(mask, col_starts, axis=1, dtype=np.int64)
    return per_cols if len(row_starts) == mask.shape[0] else np.add.reduceat(per_cols, row_starts, axis=0)

"""The output grid of an export and its windows.

An export is computed on one *output grid*: the source's own pixel grid by default
(optionally cut to a lon/lat bbox, pixel-aligned with the source), or a north-up grid of
square pixels in a given CRS and resolution, anchored at multiples of the resolution (so
two exports with the same CRS and resolution align). The grid is cut into windows; each is
read with a halo, segmented, cropped and written back at its place.

May import: `core`, `security`, `io`, `algorithms`, `export`, `errors`, `settings` (never `web`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from affine import Affine
from pyproj import Geod
from rasterio.crs import CRS
from rasterio.warp import calculate_default_transform, transform_bounds

from titiler_otsu.core.grid import PixelGrid
from titiler_otsu.errors import BadRequestError
from titiler_otsu.io.sampling import transformer_for

#: Tolerance, in pixels, under which two grids count as aligned.
_ALIGN_TOL = 1e-6

_GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True)
class Window:
    """A rectangle of the output grid (columns/rows counted from its top-left pixel)."""

    col: int
    row: int
    width: int
    height: int

    def grow(self, halo: int, limits: tuple[int, int, int, int]) -> tuple[Window, int, int]:
        """Grow the window by `halo` on every side, clipped to `limits` (c0, r0, c1, r1).

        Returns:
            the grown window and the (col, row) offset of this window inside it.

        """
        c0, r0 = max(self.col - halo, limits[0]), max(self.row - halo, limits[1])
        c1 = min(self.col + self.width + halo, limits[2])
        r1 = min(self.row + self.height + halo, limits[3])
        return Window(c0, r0, c1 - c0, r1 - r0), self.col - c0, self.row - r0


@dataclass(frozen=True)
class OutputGrid:
    """A georeferenced pixel grid: CRS (WKT), affine transform and size.

    `anchor_col`/`anchor_row` place pixel (0, 0) on a larger lattice (the source's grid for
    a bbox cut, multiples of the resolution for a reprojected grid), so that grid-anchored
    algorithms (localotsu's block centres) give a cut the same pixels as the whole.
    `extent` (c0, r0, c1, r1, in this grid's pixels) is the whole image a bbox was cut
    from: halos read into it, and are clipped only at its edges, like the whole image's.
    """

    crs_wkt: str
    transform: tuple[float, float, float, float, float, float]
    width: int
    height: int
    anchor_col: int = 0
    anchor_row: int = 0
    extent: tuple[int, int, int, int] | None = None

    @property
    def halo_limits(self) -> tuple[int, int, int, int]:
        """Where halos may read: the whole image's extent (default: this grid)."""
        return self.extent or (0, 0, self.width, self.height)

    @property
    def crs(self) -> CRS:
        """The grid's CRS."""
        return CRS.from_wkt(self.crs_wkt)

    @property
    def affine(self) -> Affine:
        """The grid's geotransform."""
        return Affine(*self.transform)

    @property
    def pixels(self) -> int:
        """Number of pixels."""
        return self.width * self.height

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in the grid's CRS (north-up grids)."""
        t = self.affine
        xs = [t.c, t.c + t.a * self.width]
        ys = [t.f, t.f + t.e * self.height]
        return (min(xs), min(ys), max(xs), max(ys))

    def is_square_north_up(self) -> bool:
        """True for north-up grids with square pixels (what `PixelGrid` describes)."""
        t = self.affine
        return t.b == 0 and t.d == 0 and t.a > 0 and math.isclose(t.a, -t.e, rel_tol=1e-12)

    def pixel_grid(self) -> PixelGrid:
        """The grid as a global `PixelGrid` (for grid-exact sampling of the source)."""
        t = self.affine
        return PixelGrid(origin_x=t.c, origin_y=t.f, res=t.a, level=0)

    def offset_in(self, crs: CRS, transform: Affine) -> tuple[int, int] | None:
        """Pixel offset of this grid inside another one, if they are the same lattice.

        Returns (col, row) of this grid's pixel (0, 0) in the other grid, or None when the
        CRS, pixel size or alignment differ (then the source must be resampled).
        """
        t = self.affine
        if CRS.from_user_input(crs) != self.crs:
            return None
        if (t.a, t.b, t.d, t.e) != (transform.a, transform.b, transform.d, transform.e):
            return None
        col, row = ~transform * (t.c, t.f)
        if abs(col - round(col)) > _ALIGN_TOL or abs(row - round(row)) > _ALIGN_TOL:
            return None
        return int(round(col)), int(round(row))

    def windows(self, size: int) -> Iterator[Window]:
        """Windows of `size` pixels (smaller at the right and bottom edges), row-major."""
        for row in range(0, self.height, size):
            for col in range(0, self.width, size):
                yield Window(col, row, min(size, self.width - col), min(size, self.height - row))

    def window_ground_pixel_area(self, window: Window) -> float | None:
        """Mean ground area, m² on the WGS84 ellipsoid, of one pixel of a window.

        The window's outline (16 points per side) is taken to lon/lat and measured
        geodesically, so areas are true ground areas whatever the CRS (not inflated
        by Web Mercator or UTM scale factors).
        """
        if not self.crs_wkt:
            return None
        t = self.affine
        n = 16
        s = np.linspace(0.0, 1.0, n, endpoint=False)
        w, h = window.width, window.height
        cols = np.concatenate([s * w, np.full(n, w), (1 - s) * w, np.zeros(n)]) + window.col
        rows = np.concatenate([np.zeros(n), s * h, np.full(n, h), (1 - s) * h]) + window.row
        xs = t.a * cols + t.b * rows + t.c
        ys = t.d * cols + t.e * rows + t.f
        crs = self.crs
        if crs != CRS.from_epsg(4326):
            xs, ys = transformer_for(crs, CRS.from_epsg(4326)).transform(xs, ys)
        if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
            return None
        area, _ = _GEOD.polygon_area_perimeter(xs, ys)
        return abs(float(area)) / (w * h)


def _bbox_in(crs: CRS, bbox: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """A lon/lat bbox in another CRS (densified edges)."""
    return transform_bounds(CRS.from_epsg(4326), crs, *bbox, densify_pts=21)


def _intersect(
    a: tuple[float, float, float, float], b: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    return (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))


def native_grid(
    crs: CRS, transform: Affine, width: int, height: int, bbox: tuple[float, float, float, float] | None = None
) -> OutputGrid:
    """The source's own grid, optionally cut (pixel-aligned) to a lon/lat bbox."""
    col0, row0, col1, row1 = 0, 0, width, height
    if bbox is not None:
        left, bottom, right, top = _bbox_in(crs, bbox)
        inv = ~transform
        corners = [inv * (x, y) for x in (left, right) for y in (bottom, top)]
        cs = [c for c, _ in corners]
        rs = [r for _, r in corners]
        col0, col1 = max(0, math.floor(min(cs))), min(width, math.ceil(max(cs)))
        row0, row1 = max(0, math.floor(min(rs))), min(height, math.ceil(max(rs)))
        if col1 <= col0 or row1 <= row0:
            raise BadRequestError("--bbox does not overlap the source: give minx,miny,maxx,maxy (lon/lat) inside it.")
    t = transform * Affine.translation(col0, row0)
    extent = (-col0, -row0, width - col0, height - row0)
    return OutputGrid(crs.to_wkt(), (t.a, t.b, t.c, t.d, t.e, t.f), col1 - col0, row1 - row0, col0, row0, extent)


def reprojected_grid(
    src_crs: CRS,
    src_transform: Affine,
    src_width: int,
    src_height: int,
    dst_crs: CRS | None = None,
    resolution: float | None = None,
    bbox: tuple[float, float, float, float] | None = None,
) -> OutputGrid:
    """A north-up grid of square pixels in `dst_crs` (default: the source CRS).

    Args:
        src_crs: source CRS.
        src_transform: source geotransform.
        src_width: source width.
        src_height: source height.
        dst_crs: output CRS.
        resolution: pixel size in `dst_crs` units (default: GDAL's suggestion, which keeps
            about the source's number of pixels).
        bbox: lon/lat (minx, miny, maxx, maxy) to cut the output to.

    Returns:
        OutputGrid: covering the source footprint (∩ bbox), origin at multiples of the
        resolution.

    """
    dst_crs = dst_crs or src_crs
    left, bottom, right, top = _src_bounds(src_transform, src_width, src_height)
    if resolution is None:
        t, _, _ = calculate_default_transform(src_crs, dst_crs, src_width, src_height, left, bottom, right, top)
        resolution = abs(t.a)
    if not (resolution > 0 and math.isfinite(resolution)):
        raise BadRequestError("--resolution must be a positive number (in units of the output CRS).")
    full = transform_bounds(src_crs, dst_crs, left, bottom, right, top, densify_pts=21)
    whole = _snapped(full, resolution, check=bbox is None)
    if bbox is None:
        x0, y1, width, height = whole
        return OutputGrid(dst_crs.to_wkt(), (resolution, 0.0, x0, 0.0, -resolution, y1), width, height,
                          round(x0 / resolution), round(-y1 / resolution))  # fmt: skip
    cut = _intersect(full, _bbox_in(dst_crs, bbox))
    if cut[2] <= cut[0] or cut[3] <= cut[1]:
        raise BadRequestError("--bbox does not overlap the source: give minx,miny,maxx,maxy (lon/lat) inside it.")
    x0, y1, width, height = _snapped(cut, resolution)
    wx0, wy1, wwidth, wheight = whole
    dc, dr = round((wx0 - x0) / resolution), round((y1 - wy1) / resolution)
    return OutputGrid(
        dst_crs.to_wkt(),
        (resolution, 0.0, x0, 0.0, -resolution, y1),
        width,
        height,
        round(x0 / resolution),
        round(-y1 / resolution),
        (dc, dr, dc + wwidth, dr + wheight),
    )


def _snapped(
    extent: tuple[float, float, float, float], resolution: float, check: bool = True
) -> tuple[float, float, int, int]:
    """Top-left corner (at multiples of the resolution) and size of a grid covering `extent`."""
    x0 = math.floor(extent[0] / resolution) * resolution
    y1 = math.ceil(extent[3] / resolution) * resolution
    width = max(1, math.ceil((extent[2] - x0) / resolution - 1e-9))
    height = max(1, math.ceil((y1 - extent[1]) / resolution - 1e-9))
    if check and width * height > 2**34:
        raise BadRequestError(
            f"The output grid would be {width} x {height} pixels: give a coarser --resolution "
            "(in units of the output CRS) or a smaller --bbox."
        )
    return x0, y1, width, height


def _src_bounds(transform: Affine, width: int, height: int) -> tuple[float, float, float, float]:
    xs = [(transform * (c, r))[0] for c in (0, width) for r in (0, height)]
    ys = [(transform * (c, r))[1] for c in (0, width) for r in (0, height)]
    return (min(xs), min(ys), max(xs), max(ys))

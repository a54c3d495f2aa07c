"""Grid windows for whole-source and bbox reads of multi-asset sources.

A dataset histogram or a bbox histogram of a STAC Item (or of a STAC API mosaic) reads every
asset on *one* window of a TMS level's global pixel grid, chosen from the bounds alone, so
assets of different resolutions (10 m, 20 m) and different items line up pixel for pixel,
exactly as they do in tiles.

May import: `core`, `security`, `io`, `errors`, `settings`.
"""

from __future__ import annotations

import math

from morecantile import TileMatrixSet
from rasterio.crs import CRS
from rasterio.warp import transform_bounds

from titiler_otsu.core.grid import GridWindow, pixel_grid

BBox = tuple[float, float, float, float]


def to_tms_bounds(tms: TileMatrixSet, bounds: BBox, crs: CRS) -> BBox:
    """Bounds in the TMS CRS (densified transform)."""
    if crs == tms.rasterio_crs:
        return bounds
    left, bottom, right, top = transform_bounds(crs, tms.rasterio_crs, *bounds, densify_pts=21)
    return (left, bottom, right, top)


def window_for_bounds(tms: TileMatrixSet, bounds: BBox, max_size: int | None, max_zoom: int) -> GridWindow:
    """The window covering `bounds` (TMS CRS) at the finest level with at most `max_size` px a side.

    Args:
        tms: the TileMatrixSet.
        bounds: (left, bottom, right, top) in the TMS CRS.
        max_size: longest side in pixels; None reads at `max_zoom`.
        max_zoom: finest zoom to use (the source's native resolution).

    Returns:
        GridWindow: pixels of one level of the TMS grid (the level of a tile at that zoom).

    """
    left, bottom, right, top = bounds
    best = None
    for zoom in range(tms.minzoom, max(max_zoom, tms.minzoom) + 1):
        window = _cover(tms, zoom, left, bottom, right, top)
        if best is None or max_size is None or max(window.width, window.height) <= max_size:
            best = window
        else:
            break
    assert best is not None
    return best


def _cover(tms: TileMatrixSet, zoom: int, left: float, bottom: float, right: float, top: float) -> GridWindow:
    matrix = tms.matrix(zoom)
    grid = pixel_grid(tms, zoom, matrix.tileWidth)
    col0 = math.floor((left - grid.origin_x) / grid.res)
    col1 = math.ceil((right - grid.origin_x) / grid.res)
    row0 = math.floor((grid.origin_y - top) / grid.res)
    row1 = math.ceil((grid.origin_y - bottom) / grid.res)
    return GridWindow(grid, col0, row0, max(col1 - col0, 1), max(row1 - row0, 1))

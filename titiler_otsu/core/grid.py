"""Global pixel grids of a TileMatrixSet.

A tile request `(z, x, y, tilesize)` is a window into one *global pixel grid*: the grid
of all pixels of one resolution level of the TileMatrixSet, with integer column/row
numbers counted from the matrix origin. On a quadtree TMS, a 512-px tile at zoom z and
the four 256-px tiles of zoom z+1 below it are the same window of the same level, so
anything computed from `(level, column, row)` alone is seamless by construction.

May import: NumPy, SciPy, scikit-image, morecantile and `core`; nothing else of ours (no GDAL, no web).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from morecantile import TileMatrixSet


@dataclass(frozen=True)
class PixelGrid:
    """One resolution level of a TileMatrixSet as a global pixel grid.

    Attributes:
        origin_x: X of the top-left corner of pixel (0, 0), in TMS CRS units.
        origin_y: Y of the top-left corner of pixel (0, 0), in TMS CRS units.
        res: pixel size in TMS CRS units (square pixels).
        level: the canonical TMS zoom this grid belongs to.

    """

    origin_x: float
    origin_y: float
    res: float
    level: int

    def node_x(self, node_cols: np.ndarray) -> np.ndarray:
        """X of pixel *corners* at integer global column numbers."""
        return self.origin_x + node_cols.astype(np.float64) * self.res

    def node_y(self, node_rows: np.ndarray) -> np.ndarray:
        """Y of pixel *corners* at integer global row numbers."""
        return self.origin_y - node_rows.astype(np.float64) * self.res

    def bounds(self, col: int, row: int, width: int, height: int) -> tuple[float, float, float, float]:
        """Bounds (left, bottom, right, top) of a window of the grid."""
        left = self.origin_x + col * self.res
        top = self.origin_y - row * self.res
        return (left, top - height * self.res, left + width * self.res, top)


@dataclass(frozen=True)
class GridWindow:
    """A rectangular window of a global pixel grid (a tile, optionally with a halo)."""

    grid: PixelGrid
    col: int
    row: int
    width: int
    height: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Bounds of the window in TMS CRS units."""
        return self.grid.bounds(self.col, self.row, self.width, self.height)


def _power_of_two(n: float) -> int | None:
    """Return k if n == 2**k for an integer k (k may be negative), else None."""
    if n <= 0:
        return None
    k = round(math.log2(n))
    return k if 2.0**k == n else None


_GRID_CACHE: dict[tuple[str, int, int], PixelGrid] = {}


def pixel_grid(tms: TileMatrixSet, zoom: int, tilesize: int) -> PixelGrid:
    """Global pixel grid of the pixels of a `tilesize` tile at `zoom` (cached)."""
    key = (tms.id or repr(tms.crs), zoom, tilesize)
    grid = _GRID_CACHE.get(key)
    if grid is None:
        if len(_GRID_CACHE) > 4096:
            _GRID_CACHE.clear()
        grid = _GRID_CACHE[key] = _make_pixel_grid(tms, zoom, tilesize)
    return grid


def _make_pixel_grid(tms: TileMatrixSet, zoom: int, tilesize: int) -> PixelGrid:
    matrix = tms.matrix(zoom)
    k = _power_of_two(tilesize / matrix.tileWidth) if matrix.tileWidth == matrix.tileHeight else None
    if k is not None and matrix.cornerOfOrigin == "topLeft" and not tms.is_variable:
        level = zoom + k
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                fine = tms.matrix(level)
        except Exception:  # noqa: BLE001 - TMS cannot extrapolate: fall back below
            fine = None
        if (
            fine is not None
            and fine.tileWidth == matrix.tileWidth
            and fine.cornerOfOrigin == "topLeft"
            and fine.matrixWidth == matrix.matrixWidth * 2**k
            and fine.matrixHeight == matrix.matrixHeight * 2**k
        ):
            origin = tms._matrix_origin(fine)
            return PixelGrid(origin.x, origin.y, float(fine.cellSize), level)
    # Not a quadtree-aligned request: a grid of its own for this zoom and tile size.
    origin = tms._matrix_origin(matrix)
    res = float(matrix.cellSize) * matrix.tileWidth / tilesize
    return PixelGrid(origin.x, origin.y, res, zoom)


def tile_window(tms: TileMatrixSet, x: int, y: int, z: int, tilesize: int, halo: int = 0) -> GridWindow:
    """Window of the global pixel grid covered by a tile, grown by `halo` pixels.

    Args:
        tms: the TileMatrixSet.
        x: tile column.
        y: tile row.
        z: tile zoom.
        tilesize: output size in pixels (square).
        halo: pixels added on every side.

    Returns:
        GridWindow: the tile's window; its grid is shared by every request of the same
        resolution (e.g. 512 px at z and 256 px at z+1 on WebMercatorQuad).

    """
    grid = pixel_grid(tms, z, tilesize)
    return GridWindow(grid, x * tilesize - halo, y * tilesize - halo, tilesize + 2 * halo, tilesize + 2 * halo)

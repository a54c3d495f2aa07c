"""Writing the class raster: blocks into a temporary tiled GeoTIFF, then a COG, atomically.

Blocks arrive in any order (as Dask tasks complete) and go straight to disk, so the
driver never holds the scene. At the end, GDAL's COG driver adds overviews
(`mode` or `nearest`: class values are never averaged) and compression, and the COG is
moved onto the output path with `os.replace`. Nothing is ever written at the output path
before that rename: a failed or killed export leaves the previous file (or none) there,
and the temporary files (named `.OUT.<id>.partial.tif`, beside OUT) are removed on any
error.

May import: `core`, `security`, `io`, `algorithms`, `export`, `errors`, `settings` (never `web`).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
import rasterio
from rasterio.shutil import copy as gdal_copy
from rasterio.windows import Window as RioWindow

from titiler_otsu.export.grid import OutputGrid, Window

#: Class value of nodata pixels in the output (classes are 0..4).
NODATA = 255

#: Compression of the temporary GeoTIFF: fast ZSTD (level 1) keeps it small and cheap.
COMPRESS_TEMP = "zstd"

#: GDAL block cache of the writing process while blocks arrive (bounds driver memory).
WRITE_CACHE_MB = 256

#: Creation options of the COG: DEFLATE (readable everywhere), 512-px tiles, overviews
#: down to one tile, compressed by all cores. GDAL's COG driver called directly: through
#: rio-cogeo the same conversion took 3.4 x longer (1.45 s vs 0.43 s for 100 Mpix).
COG_OPTIONS = {"COMPRESS": "DEFLATE", "BLOCKSIZE": "512", "NUM_THREADS": "ALL_CPUS", "BIGTIFF": "IF_SAFER"}


def block_size_for(window_size: int) -> int:
    """Largest GeoTIFF tile size (≤ 512, multiple of 16) dividing the window size."""
    for size in (512, 256, 128, 64, 32, 16):
        if window_size % size == 0:
            return size
    raise ValueError("window size must be a multiple of 16")


class ClassRasterWriter:
    """Temporary tiled GeoTIFF of classes beside `out`, turned into a COG on `commit()`."""

    def __init__(self, out: Path, grid: OutputGrid, window_size: int, tags: dict[str, str]) -> None:
        """Prepare (nothing is created until the context is entered).

        Args:
            out: final path of the COG.
            grid: output grid.
            window_size: export window size (the temporary tiles divide it).
            tags: GeoTIFF metadata (algorithm, parameters, thresholds...).

        """
        self.out = out
        self.grid = grid
        self.tags = tags
        token = uuid.uuid4().hex[:12]
        self.tmp_path = out.parent / f".{out.name}.{token}.partial.tif"
        self.cog_path = out.parent / f".{out.name}.{token}.partial.cog.tif"
        self._blocksize = block_size_for(window_size)
        self._ds: Any = None
        self._env: rasterio.Env | None = None

    def __enter__(self) -> ClassRasterWriter:
        """Create the temporary GeoTIFF."""
        self._env = rasterio.Env(GDAL_CACHEMAX=WRITE_CACHE_MB)
        self._env.__enter__()
        profile = {
            "driver": "GTiff",
            "dtype": "uint8",
            "count": 1,
            "width": self.grid.width,
            "height": self.grid.height,
            "crs": self.grid.crs,
            "transform": self.grid.affine,
            "nodata": NODATA,
            "tiled": True,
            "blockxsize": self._blocksize,
            "blockysize": self._blocksize,
            "compress": COMPRESS_TEMP,
            "zstd_level": 1,
            "bigtiff": "if_safer",
        }
        self._ds = rasterio.open(self.tmp_path, "w", **profile)
        return self

    def write(self, window: Window, classes: np.ndarray) -> None:
        """Write one window of classes (uint8, NODATA where invalid)."""
        self._ds.write(classes, 1, window=RioWindow(window.col, window.row, window.width, window.height))

    def commit(self, overview_resampling: Literal["mode", "nearest"]) -> None:
        """Close the temporary file, convert it to a COG and rename it onto `out`.

        No colour table is embedded: readers (TiTiler, rio-tiler) would expand a paletted
        band to RGB, and the product is the raw class values.
        """
        self._ds.update_tags(**self.tags)
        self._ds.set_band_description(1, "class")
        self._ds.close()
        with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"):
            gdal_copy(
                str(self.tmp_path),
                str(self.cog_path),
                driver="COG",
                OVERVIEW_RESAMPLING=overview_resampling.upper(),
                **COG_OPTIONS,
            )
        os.replace(self.cog_path, self.out)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close and remove the temporary files (also after an error)."""
        if self._ds is not None and not self._ds.closed:
            self._ds.close()
        if self._env is not None:
            self._env.__exit__(exc_type, exc, tb)
        for path in (self.tmp_path, self.cog_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

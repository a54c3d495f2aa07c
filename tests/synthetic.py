"""A small factory of synthetic COGs for edge-case tests.

Usage::

    from tests.synthetic import write_cog

    path = write_cog(tmp_path / "x.tif", np.zeros((64, 64), np.uint8), nodata=0)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from rasterio.io import MemoryFile
from rasterio.transform import Affine
from rio_cogeo.cogeo import cog_translate
from rio_cogeo.profiles import cog_profiles

__all__ = ["DEFAULT_ORIGIN", "default_transform", "write_cog"]

#: Upper-left corner of the default grid: a plausible UTM position (zone 33N).
DEFAULT_ORIGIN = (500000.0, 5200000.0)


def default_transform(pixel_size: float = 10.0) -> Affine:
    """Return a north-up transform with ``pixel_size`` metre pixels at ``DEFAULT_ORIGIN``."""
    x0, y0 = DEFAULT_ORIGIN
    return Affine(pixel_size, 0.0, x0, 0.0, -pixel_size, y0)


def _overview_levels(height: int, width: int, blocksize: int) -> int:
    """Return enough 2x overview levels to get down to about one block (at least one)."""
    longest = max(height, width)
    if longest < 2:
        return 0
    return max(1, math.ceil(math.log2(longest / blocksize)))


def write_cog(
    path: Path,
    data: np.ndarray,
    *,
    crs: str = "EPSG:32633",
    transform: Affine | None = None,
    nodata: float | None = None,
    overviews: bool = True,
    blocksize: int = 256,
    band_descriptions: list[str] | None = None,
) -> Path:
    """Write ``data`` as a deflate-compressed Cloud Optimized GeoTIFF.

    Args:
        path: Destination file (parent directories are created).
        data: ``(bands, h, w)`` or ``(h, w)`` array of any GDAL-supported dtype
            (bool is stored as uint8). Float arrays may contain NaN.
        crs: CRS of the grid.
        transform: Geotransform; default 10 m pixels with the upper-left corner at
            ``DEFAULT_ORIGIN``.
        nodata: Nodata value (``float("nan")`` for NaN), or None for no nodata.
        overviews: Build internal overviews (nearest resampling, so overview pixels are
            exact copies of full-resolution pixels).
        blocksize: Internal tile size (a multiple of 16).
        band_descriptions: One description per band.

    Returns:
        ``path``.
    """
    arr = np.asarray(data)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.ndim != 3:
        raise ValueError(f"data must be 2D or 3D, got shape {arr.shape}")
    if blocksize <= 0 or blocksize % 16:
        raise ValueError(f"blocksize must be a positive multiple of 16, got {blocksize}")
    count, height, width = arr.shape
    if band_descriptions is not None and len(band_descriptions) != count:
        raise ValueError(f"{len(band_descriptions)} band descriptions for {count} bands")

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    src_profile = {
        "driver": "GTiff",
        "dtype": arr.dtype.name,
        "count": count,
        "height": height,
        "width": width,
        "crs": crs,
        "transform": transform if transform is not None else default_transform(),
        "nodata": nodata,
    }
    dst_profile = cog_profiles.get("deflate")
    dst_profile.update(blockxsize=blocksize, blockysize=blocksize)
    levels = _overview_levels(height, width, blocksize) if overviews else 0
    with MemoryFile() as mem:
        with mem.open(**src_profile) as tmp:
            tmp.write(arr)
            for i, description in enumerate(band_descriptions or [], start=1):
                tmp.set_band_description(i, description)
        with mem.open() as src:
            cog_translate(
                src,
                str(path),
                dst_profile,
                nodata=nodata,
                overview_level=levels,
                overview_resampling="nearest",
                in_memory=True,
                quiet=True,
            )
    return path

"""Writing the demo scene: its georeferencing (UTM 33N, 10 m pixels) and the COG writer.

May import: anything in the package (top-level glue).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from rasterio.io import MemoryFile
from rasterio.transform import Affine
from rio_cogeo.cogeo import cog_translate
from rio_cogeo.profiles import cog_profiles

from titiler_otsu.demo.bands import _WAVELENGTHS_NM, BAND_DESCRIPTIONS, NODATA

DEMO_CRS = "EPSG:32633"
#: Upper-left corner (UTM 33N metres), near Krakow am See, Mecklenburg Lake District.
DEMO_ORIGIN = (320000.0, 5950000.0)
PIXEL_SIZE = 10.0


def demo_transform() -> Affine:
    """Return the geotransform of the demo scene (10 m pixels, north-up, UTM 33N).

    The upper-left corner is fixed; larger scenes grow to the east and south.

    Returns:
        The affine transform.
    """
    return Affine(PIXEL_SIZE, 0.0, DEMO_ORIGIN[0], 0.0, -PIXEL_SIZE, DEMO_ORIGIN[1])


def _write_cog(data: np.ndarray, path: Path, seed: int) -> None:
    """Write the scene array as a deflate COG with internal overviews.

    Args:
        data: ``(4, size, size)`` uint16 array.
        path: Destination file (overwritten).
        seed: Seed used, recorded in the metadata.
    """
    count, height, width = data.shape
    src_profile = {
        "driver": "GTiff",
        "dtype": data.dtype.name,
        "count": count,
        "height": height,
        "width": width,
        "crs": DEMO_CRS,
        "transform": demo_transform(),
        "nodata": NODATA,
    }
    dst_profile = cog_profiles.get("deflate")
    dst_profile.update(blockxsize=512, blockysize=512, predictor=2, zlevel=1)  # noise compresses poorly anyway
    levels = max(1, math.ceil(math.log2(max(width, height) / 256)))
    with MemoryFile() as mem:
        with mem.open(**src_profile) as tmp:
            tmp.write(data)
            for i, (desc, nm) in enumerate(zip(BAND_DESCRIPTIONS, _WAVELENGTHS_NM, strict=True)):
                tmp.set_band_description(i + 1, desc)
                tmp.update_tags(i + 1, WAVELENGTH_NM=str(nm))
        with mem.open() as src:
            cog_translate(
                src,
                str(path),
                dst_profile,
                nodata=NODATA,
                overview_level=levels,
                overview_resampling="average",
                in_memory=True,
                forward_band_tags=True,
                additional_cog_metadata={
                    "TIFFTAG_IMAGEDESCRIPTION": (
                        "titiler-otsu synthetic demo scene (Sentinel-2-like L2A, "
                        "surface reflectance x 10000). Not real data."
                    ),
                    "SYNTHETIC": "true",
                    "DEMO_SEED": str(seed),
                    "DEMO_VERSION": "1",
                },
                quiet=True,
            )

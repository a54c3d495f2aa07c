"""A small factory of synthetic COGs for edge-case tests.

Usage::

    from tests.synthetic import write_cog

    path = write_cog(tmp_path / "x.tif", np.zeros((64, 64), np.uint8), nodata=0)
"""

from __future__ import annotations

import math
import random
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from rasterio.transform import Affine
from rio_cogeo.cogeo import cog_translate
from rio_cogeo.profiles import cog_profiles

__all__ = [
    "DEFAULT_ORIGIN",
    "RasterSpec",
    "default_transform",
    "one_axis_at_a_time",
    "pairwise_rows",
    "uncovered_pairs",
    "write_cog",
]

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


# ---------------------------------------------------------------------- generated-raster matrix
#: Axes of the generated-raster matrix (tests/web/test_raster_matrix.py). Each raster is small
#: (at most 64 x 64, or 512 x 4 for "tall") and written once per session.
DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "int64", "float32", "float64", "complex64")
GEOREFS = (
    "utm",  # EPSG:32633, 10 m pixels
    "geographic",  # EPSG:4326
    "polar",  # EPSG:3031 with the South Pole inside the raster
    "antimeridian",  # EPSG:4326, longitudes 179.99..180.006
    "none",  # no CRS, no geotransform
    "geotransform_only",  # a geotransform but no CRS
    "gcps",  # ground control points (EPSG:4326), no geotransform
    "engineering",  # a local (engineering) CRS
    "mars",  # a CRS of another body (IAU_2015:49900)
)
SHAPES = (
    "square",
    "1x1",
    "1xN",
    "Nx1",
    "tall",
    "uniform",
    "all_nodata",
    "all_nan",
    "inf",
    "extreme",
    "nbits1",  # a 1-bit GeoTIFF (uint8 band, NBITS=1): values 0/1
    "palette",  # a paletted uint8 GeoTIFF (colour table, photometric palette): classes 0..3
)
#: Shapes that are a storage layout of uint8 pixels (the dtype axis is coerced to uint8).
UINT8_LAYOUTS = ("nbits1", "palette")
_PALETTE = {0: (0, 0, 0, 0), 1: (0, 90, 200, 255), 2: (40, 160, 40, 255), 3: (230, 220, 180, 255)}
NODATAS = ("none", "nan", "outside")

_ENGINEERING_WKT = (
    'LOCAL_CS["Arbitrary site grid",LOCAL_DATUM["Site datum",32767],UNIT["metre",1],'
    'AXIS["Easting",EAST],AXIS["Northing",NORTH]]'
)


@dataclass(frozen=True)
class RasterSpec:
    """One raster of the matrix: dtype x georeferencing x shape x nodata.

    Combinations that cannot exist are coerced by `effective` (NaN/inf shapes and a NaN
    nodata need a float or complex dtype: integer dtypes become float32; "all_nodata"
    without nodata uses the "outside" nodata).
    """

    dtype: str = "uint16"
    georef: str = "utm"
    shape: str = "square"
    nodata: str = "none"

    def effective(self) -> RasterSpec:
        """The raster actually written (impossible combinations coerced, see above)."""
        spec = self
        if spec.shape in UINT8_LAYOUTS:
            spec = replace(spec, dtype="uint8", nodata="none" if spec.nodata == "nan" else spec.nodata)
        needs_float = spec.shape in ("all_nan", "inf") or spec.nodata == "nan"
        if needs_float and np.dtype(spec.dtype).kind not in "fc":
            spec = replace(spec, dtype="float32")
        if spec.shape == "all_nodata" and spec.nodata == "none":
            spec = replace(spec, nodata="outside")
        return spec

    @property
    def name(self) -> str:
        """File stem, e.g. ``uint16-utm-square-none``."""
        return f"{self.dtype}-{self.georef}-{self.shape}-{self.nodata}"

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return {"1x1": (1, 1), "1xN": (1, 64), "Nx1": (64, 1), "tall": (512, 4)}.get(self.shape, (64, 64))

    @property
    def earth_georeferenced(self) -> bool:
        """Whether the raster has georeferencing a web map can place."""
        return self.georef in ("utm", "geographic", "polar", "antimeridian", "gcps")

    def nodata_value(self) -> float | None:
        """The nodata value written in the file."""
        if self.nodata == "none":
            return None
        if self.nodata == "nan":
            return float("nan")
        kind = np.dtype(self.dtype).kind
        if kind in "fc":  # far outside the data, as -3.4e38 fill values are in the wild
            return -3.0e38 if self.dtype in ("float32", "complex64") else -1.0e300
        return float(np.iinfo(self.dtype).min)  # data never reaches the type's minimum

    def data(self) -> np.ndarray:
        """The pixel values: a two-level pattern with noise (so Otsu has something to split)."""
        h, w = self.size
        dtype = np.dtype(self.dtype)
        yy, xx = np.mgrid[:h, :w]
        dark = (xx - w / 2) ** 2 + (yy - h / 2) ** 2 < (max(h, w) / 3) ** 2
        noise = np.random.default_rng(zlib.crc32(self.name.encode())).normal(0, 5, (h, w))
        base = np.where(dark, 40.0, 110.0) + noise  # 10..140: inside every integer dtype
        if self.shape == "uniform":
            base = np.full((h, w), 77.0)
        if dtype.kind in "fc":
            values = base.astype(dtype) if dtype.kind == "f" else (base + 1j * base[::-1]).astype(dtype)
        else:
            values = np.clip(base, 10, 120).astype(dtype)
        if self.shape == "all_nan":
            values[...] = np.nan
        elif self.shape == "inf":
            values[: h // 4 + 1] = np.inf
            values[-(h // 4) - 1 :] = -np.inf
        elif self.shape == "extreme":
            if dtype.kind in "fc":
                big = np.finfo(dtype).max
                values = np.where(dark, -big * 0.999, big * 0.999).astype(dtype)
            else:
                info = np.iinfo(dtype)
                values = np.where(dark, info.min + 1, info.max).astype(dtype)
        elif self.shape == "nbits1":
            values = (~dark).astype(dtype)
        elif self.shape == "palette":
            values = (np.where(dark, 1, 2) + (noise > 4)).astype(dtype)
        elif self.shape == "all_nodata":
            nodata = self.nodata_value()
            values[...] = np.nan if nodata is None or math.isnan(nodata) else nodata
        return values

    def georeferencing(self) -> dict[str, Any]:
        """rasterio profile keys (crs, transform) and GCPs for this georeferencing."""
        h, w = self.size
        if self.georef == "utm":
            return {"crs": "EPSG:32633", "transform": default_transform()}
        if self.georef == "geographic":
            return {"crs": "EPSG:4326", "transform": Affine(1e-4, 0, 15.0, 0, -1e-4, 47.0)}
        if self.georef == "polar":  # the pole in the middle of the raster
            return {"crs": "EPSG:3031", "transform": Affine(10.0, 0, -5.0 * w, 0, -10.0, 5.0 * h)}
        if self.georef == "antimeridian":
            return {"crs": "EPSG:4326", "transform": Affine(2.5e-4, 0, 179.99, 0, -2.5e-4, -16.0)}
        if self.georef == "none":
            return {}
        if self.georef == "geotransform_only":
            return {"transform": default_transform()}
        if self.georef == "gcps":
            corners = [(0, 0, 15.0, 47.0), (0, w, 15.0 + w * 1e-4, 47.0), (h, 0, 15.0, 47.0 - h * 1e-4)]
            corners.append((h, w, 15.0 + w * 1e-4, 47.0 - h * 1e-4))
            return {"gcps": [GroundControlPoint(row=r, col=c, x=x, y=y) for r, c, x, y in corners]}
        if self.georef == "engineering":
            return {"crs": _ENGINEERING_WKT, "transform": default_transform()}
        if self.georef == "mars":
            return {"crs": "IAU_2015:49900", "transform": Affine(1e-4, 0, 15.0, 0, -1e-4, 47.0)}
        raise ValueError(f"unknown georeferencing {self.georef!r}")

    def lonlat(self) -> tuple[float, float] | None:
        """Longitude/latitude of the raster's centre (None without Earth georeferencing)."""
        h, w = self.size
        geo = self.georeferencing()
        if self.georef == "gcps":
            return 15.0 + w * 0.5e-4, 47.0 - h * 0.5e-4
        if not self.earth_georeferenced:
            return None
        x, y = geo["transform"] * (w / 2, h / 2)
        lon, lat = Transformer.from_crs(geo["crs"], "EPSG:4326", always_xy=True).transform(x, y)
        return float(lon), float(lat)

    def write(self, directory: Path) -> Path:
        """Write the raster (tiled, deflate, internal nearest overviews when big enough)."""
        spec = self.effective()
        path = Path(directory) / f"{spec.name}.tif"
        if path.exists():
            return path
        data = spec.data()
        h, w = spec.size
        geo = spec.georeferencing()
        gcps = geo.pop("gcps", None)
        profile: dict[str, Any] = {
            "driver": "GTiff",
            "dtype": data.dtype.name,
            "count": 1,
            "height": h,
            "width": w,
            "nodata": spec.nodata_value(),
            "compress": "deflate",
            **geo,
        }
        if min(h, w) >= 16:
            profile.update(tiled=True, blockxsize=16, blockysize=16)
        if spec.shape == "nbits1":
            profile.update(nbits=1)
        if spec.shape == "palette":
            profile.update(photometric="palette")
        tmp = path.with_suffix(".partial.tif")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(tmp, "w", **profile) as dst:
                dst.write(data, 1)
                if spec.shape == "palette":
                    dst.write_colormap(1, _PALETTE)
                if gcps:
                    dst.gcps = (gcps, CRS.from_epsg(4326))
                if min(h, w) >= 32:
                    dst.build_overviews([2, 4], Resampling.nearest)
        tmp.replace(path)
        return path


def one_axis_at_a_time(base: RasterSpec | None = None) -> list[RasterSpec]:
    """The base raster and every raster differing from it in one axis value (deduplicated)."""
    base = base or RasterSpec()
    specs = [base]
    for axis, values in (("dtype", DTYPES), ("georef", GEOREFS), ("shape", SHAPES), ("nodata", NODATAS)):
        specs += [replace(base, **{axis: v}) for v in values if v != getattr(base, axis)]
    return list(dict.fromkeys(specs))


def uncovered_pairs(axes: dict[str, Sequence[str]], rows: Sequence[dict[str, str]]) -> set:
    """The pairs of values of two axes that no row holds (empty: `rows` is a pairwise cover)."""
    names = list(axes)
    wanted = {
        ((a, va), (b, vb)) for i, a in enumerate(names) for b in names[i + 1 :] for va in axes[a] for vb in axes[b]
    }
    for row in rows:
        items = [(n, row[n]) for n in names]
        wanted -= {(p, q) for i, p in enumerate(items) for q in items[i + 1 :]}
    return wanted


def pairwise_rows(axes: dict[str, Sequence[str]], seed: int = 0, candidates: int = 24) -> list[dict[str, str]]:
    """A small set of rows in which every pair of values of any two axes occurs (AETG-style greedy).

    Args:
        axes: axis name -> values.
        seed: random seed (the rows are deterministic for a seed).
        candidates: candidate rows tried per added row (more: fewer rows).

    Returns:
        list: rows (axis -> value) covering every pair.

    """
    names = list(axes)
    rng = random.Random(seed)
    uncovered = {
        ((a, va), (b, vb)) for i, a in enumerate(names) for b in names[i + 1 :] for va in axes[a] for vb in axes[b]
    }

    def gain(row: dict[str, str]) -> int:
        items = [(n, row[n]) for n in names if n in row]
        return sum((p, q) in uncovered for i, p in enumerate(items) for q in items[i + 1 :])

    rows: list[dict[str, str]] = []
    while uncovered:
        (a, va), (b, vb) = min(uncovered)  # seed each row with an uncovered pair: always progresses
        best: dict[str, str] | None = None
        for _ in range(candidates):
            row = {a: va, b: vb}
            for n in rng.sample([n for n in names if n not in row], len(names) - 2):
                row[n] = max(axes[n], key=lambda v, n=n: (gain({**row, n: v}), rng.random()))
            if best is None or gain(row) > gain(best):
                best = row
        assert best is not None
        items = [(n, best[n]) for n in names]
        uncovered -= {(p, q) for i, p in enumerate(items) for q in items[i + 1 :]}
        rows.append(best)
    return rows

"""Scene-sized generated COGs: a Sentinel-2-like NIR band of any size, written in strips.

`write_scene(path, size, blocksize)` writes a one-band uint16 DEFLATE COG (UTM 33N, 10 m,
nodata 0, internal overviews, `blocksize`-px blocks) whose content is a function of the
pixel position alone: dark lakes and a meandering river (NIR ~300-700) in land made of
fields (NIR ~1,800-4,200, blocky parcels with texture), plus a nodata wedge cut diagonally
into the east side, as on a Sentinel-2 tile at the edge of its orbit swath. The full
10,980 x 10,980 px scene is one S2 tile; CI uses small sizes of the same generator.

Memory is bounded by one strip (`strip` rows x `size` columns, a few arrays of float32 and
the hash's uint64), so the 47k x 47k export scene generates in about 1 GB (`strip=256`).
Nothing here is committed as data.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.transform import Affine
from rasterio.windows import Window

#: Upper-left corner of the generated grid (UTM 33N, a plausible S2 tile origin).
ORIGIN = (600000.0, 5300040.0)
PIXEL = 10.0


def scene_transform() -> Affine:
    """The geotransform of generated scenes (10 m pixels at ORIGIN)."""
    return Affine(PIXEL, 0.0, ORIGIN[0], 0.0, -PIXEL, ORIGIN[1])


def _waves(seed: int, n: int, wavelengths: tuple[float, float]) -> list[tuple[float, float, float, float]]:
    """Random plane waves (kx, ky, phase, amplitude) with wavelengths in pixels."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        wl = math.exp(rng.uniform(math.log(wavelengths[0]), math.log(wavelengths[1])))
        angle = rng.uniform(0, math.pi)
        k = 2 * math.pi / wl
        out.append((k * math.cos(angle), k * math.sin(angle), rng.uniform(0, 2 * math.pi), wl**0.5))
    return out


def _field(cols: np.ndarray, rows: np.ndarray, waves: list[tuple[float, float, float, float]]) -> np.ndarray:
    total = sum(w[3] for w in waves)
    acc = np.zeros((rows.size, cols.size), np.float32)
    for kx, ky, phase, amp in waves:
        # separable: sin(a + b) = sin a cos b + cos a sin b, evaluated on the row and column axes
        a = (kx * cols + phase).astype(np.float32)
        b = (ky * rows).astype(np.float32)[:, None]
        acc += np.float32(amp / total) * (np.sin(a)[None, :] * np.cos(b) + np.cos(a)[None, :] * np.sin(b))
    return acc


def _hash(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """A deterministic pseudo-random value in [0, 1) per integer cell (vectorised integer hash)."""
    h = ix.astype(np.uint64) * np.uint64(0x9E3779B1) ^ iy.astype(np.uint64) * np.uint64(0x85EBCA77)
    h ^= np.uint64(seed * 0xC2B2AE3D & 0xFFFFFFFF)
    h ^= h >> np.uint64(15)
    h *= np.uint64(0x2C1B3C6D)
    h ^= h >> np.uint64(12)
    h *= np.uint64(0x297A2D39)
    h ^= h >> np.uint64(15)
    return (h & np.uint64(0xFFFFFF)).astype(np.float32) / np.float32(1 << 24)


def render_strip(row0: int, height: int, size: int, seed: int = 14) -> np.ndarray:
    """Rows `row0 .. row0 + height` of the `size` x `size` scene (uint16, 0 = nodata)."""
    scale = size / 10980.0  # features keep their ground size relative to one S2 tile
    cols = np.arange(size, dtype=np.float64)
    rows = np.arange(row0, row0 + height, dtype=np.float64)
    relief = _field(cols, rows, _waves(seed, 7, (900 * scale, 6000 * scale)))
    lakes = relief > 0.3  # ~11 % of the scene
    # a river: a band around a meandering line across the scene
    centre = size * 0.35 + 0.05 * size * np.sin(rows / (size / 7.3)) + 0.02 * size * np.sin(rows / (size / 23.0))
    half_width = 12 + 6 * np.sin(rows / 433.0)
    river = np.abs(cols[None, :] - centre[:, None]) < half_width[:, None]
    water = lakes | river
    # fields: parcels ~ 60 x 45 px with their own brightness, sheared a little
    parcel_x = ((cols[None, :].astype(np.float32) + np.float32(0.2) * rows[:, None].astype(np.float32)) // 64).astype(
        np.int32
    )
    parcel_y = np.broadcast_to((rows // 45).astype(np.int32)[:, None], parcel_x.shape)
    parcel = _hash(parcel_x, parcel_y, seed)
    del parcel_x
    rng = np.random.default_rng([seed, row0, size])
    noise = rng.standard_normal((height, size), dtype=np.float32)
    land = 1800 + 2400 * parcel + 350 * relief + 90 * noise
    wet = 450 - 150 * relief + 40 * noise
    values = np.where(water, wet, land)
    out = np.clip(values, 1, 65535).astype(np.uint16)
    # nodata wedge: a diagonal cut into the east side (wider at the bottom)
    edge = size * (0.92 - 0.25 * rows / size)
    out[cols[None, :] >= edge[:, None]] = 0
    return out


def write_scene(
    path: Path,
    size: int,
    blocksize: int = 1024,
    *,
    strip: int = 512,
    seed: int = 14,
) -> Path:
    """Write the `size` x `size` scene as a DEFLATE COG with `blocksize`-px blocks and overviews.

    The scene is written strip by strip into a temporary tiled GeoTIFF, then GDAL's COG
    driver copies it (overviews nearest, down to about one block). Idempotent: an existing
    `path` is kept.

    Returns:
        `path`.

    """
    path = Path(path)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.strips.tif")
    profile = {
        "driver": "GTiff",
        "dtype": "uint16",
        "count": 1,
        "width": size,
        "height": size,
        "crs": "EPSG:32633",
        "transform": scene_transform(),
        "nodata": 0,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "zstd",
        "zstd_level": 1,
        "bigtiff": "yes",
    }
    strip = max(256, strip - strip % 256)  # whole rows of the temporary file's 256-px blocks
    try:
        with rasterio.Env(GDAL_CACHEMAX=256):
            with rasterio.open(tmp, "w", **profile) as dst:
                for r0 in range(0, size, strip):
                    h = min(strip, size - r0)
                    dst.write(render_strip(r0, h, size, seed), 1, window=Window(0, r0, size, h))
            out = path.with_name(f".{path.name}.{os.getpid()}.cog.tif")
            rasterio.shutil.copy(
                tmp,
                out,
                driver="COG",
                BLOCKSIZE=blocksize,
                COMPRESS="DEFLATE",
                RESAMPLING="NEAREST",
                OVERVIEW_RESAMPLING="NEAREST",
                NUM_THREADS="ALL_CPUS",
                BIGTIFF="IF_SAFER",
            )
            os.replace(out, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path

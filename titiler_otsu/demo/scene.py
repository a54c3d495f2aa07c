"""The demo scene composed: water over land, clouds and shadows, sensor noise, swath edge.

:func:`render_demo_scene` returns the ``(4, size, size)`` uint16 array.

May import: anything in the package (top-level glue).
"""

from __future__ import annotations

import numpy as np

from titiler_otsu.demo.bands import _DEEP_WATER, _NOISE_SIGMA, _SHADOW_FACTOR, _SHALLOW_WATER, NODATA
from titiler_otsu.demo.clouds import _blend_shadow, _clouds, _shadow
from titiler_otsu.demo.draw import _coords, _noise
from titiler_otsu.demo.land import _land
from titiler_otsu.demo.water import _water

#: Swath edge: the valid footprint is left of the line (x at the top, x at the bottom).
_SWATH_EDGE = (1.06, 0.70)


def _footprint(size: int) -> np.ndarray:
    """Return the valid swath footprint: a slanted edge with a slight detector sawtooth.

    Args:
        size: Side length in pixels.

    Returns:
        A ``(size, size)`` boolean array, False in the nodata wedge.
    """
    x, y = _coords(size)
    top, bottom = _SWATH_EDGE
    period = max(size / 12.0, 4.0)
    rows = np.arange(size, dtype=np.float32)[:, None]
    sawtooth = 3.0 * ((rows % period) / period) / size
    return x < top + (bottom - top) * y + sawtooth


def _sensor(rng: np.random.Generator, bands: np.ndarray) -> np.ndarray:
    """Add Gaussian noise (slightly signal-dependent) and per-column striping.

    Args:
        rng: Random generator.
        bands: ``(4, h, w)`` reflectance, modified in place.

    Returns:
        ``bands``.
    """
    _, h, w = bands.shape
    for b, sigma in enumerate(_NOISE_SIGMA):
        gain = np.asarray(rng.normal(1.0, 0.0015, w), np.float32)
        offset = np.asarray(rng.normal(0.0, 3.0, w), np.float32)
        noise = rng.standard_normal((h, w), dtype=np.float32)
        bands[b] = bands[b] * gain + offset + noise * (sigma + 0.004 * bands[b])
    return bands


def render_demo_scene(size: int = 2048, seed: int = 7) -> np.ndarray:
    """Render the demo scene as an array.

    Args:
        size: Side length in pixels (10 m each); at least 64.
        seed: Random seed; the output is deterministic for a given ``(size, seed)``.

    Returns:
        A ``(4, size, size)`` uint16 array (B02, B03, B04, B08), 0 outside the swath.

    Raises:
        ValueError: If ``size`` is smaller than 64.
    """
    if size < 64:
        raise ValueError(f"size must be >= 64, got {size}")
    rng = np.random.default_rng(seed)
    water, depth = _water(rng, size)
    bands = _land(rng, size, water)

    turbidity = _noise(rng, size, 3.0, kmax=48)
    for b in range(4):
        deep, shallow = _DEEP_WATER[b], _SHALLOW_WATER[b]
        colour = shallow + (deep - shallow) * depth + 25.0 * turbidity * (1.0 + (b == 1))
        bands[b] += water * (colour - bands[b])

    cloud, thickness, sunlit = _clouds(rng, size)
    shadow = _shadow(cloud, size) * np.float32(0.85)
    for b in range(4):
        _blend_shadow(bands[b], shadow, _SHADOW_FACTOR[b])
        top = 5900.0 + 2600.0 * thickness + 700.0 * sunlit - 150.0 * b
        bands[b] += cloud * (top - bands[b])

    _sensor(rng, bands)
    out = np.clip(np.rint(bands), 1, 65535).astype(np.uint16)
    out[:, ~_footprint(size)] = NODATA
    return out

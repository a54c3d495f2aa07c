"""The demo scene's water: glacial lakes with islands, kettle-hole ponds and a meandering river.

May import: anything in the package (top-level glue).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from titiler_otsu.demo.draw import _blur, _draw_line, _noise, _spline, _window

#: Glacial lake basins ``(cx, cy, semi_major, semi_minor, angle_deg)``, unioned: a long,
#: curved tunnel-valley lake with an eastern arm, a two-lobed lake and smaller lakes.
_LAKES: tuple[tuple[float, float, float, float, float], ...] = (
    (0.20, 0.10, 0.070, 0.032, 60.0),
    (0.25, 0.21, 0.085, 0.042, 62.0),
    (0.31, 0.34, 0.090, 0.055, 55.0),
    (0.38, 0.45, 0.080, 0.060, 40.0),
    (0.47, 0.37, 0.085, 0.030, 15.0),
    (0.43, 0.56, 0.060, 0.040, 70.0),
    (0.62, 0.75, 0.120, 0.065, -25.0),
    (0.72, 0.66, 0.070, 0.045, 15.0),
    (0.54, 0.85, 0.045, 0.035, 60.0),
    (0.74, 0.19, 0.065, 0.045, 12.0),
    (0.10, 0.80, 0.060, 0.034, 100.0),
    (0.53, 0.09, 0.035, 0.022, -40.0),
)
#: Islands ``(cx, cy, semi_major, semi_minor, angle_deg)``, cut out of the lake basins.
_ISLANDS: tuple[tuple[float, float, float, float, float], ...] = (
    (0.33, 0.40, 0.020, 0.009, 50.0),
    (0.67, 0.71, 0.012, 0.006, -30.0),
)
#: Valley axis of the river, from the northern edge through two lakes to the southern edge.
_RIVER: tuple[tuple[float, float], ...] = (
    (0.12, -0.03),
    (0.16, 0.05),
    (0.22, 0.12),
    (0.44, 0.57),
    (0.52, 0.66),
    (0.62, 0.74),
    (0.64, 0.84),
    (0.59, 0.93),
    (0.55, 1.03),
)


def _smooth_signal(rng: np.random.Generator, n: int, correlation: float) -> np.ndarray:
    """Return a smooth 1D random signal in ``[-1, 1]`` with a correlation length in samples."""
    signal = ndimage.gaussian_filter1d(rng.standard_normal(n), max(correlation, 1.0))
    return signal / max(np.abs(signal).max(), 1e-12)


def _meander(base: np.ndarray, rng: np.random.Generator, wavelength: float, angle: float, step: float) -> np.ndarray:
    """Meander a river along a base curve with a sine-generated curve (Langbein & Leopold).

    The channel direction oscillates as ``angle * sin(2 pi s / wavelength)`` with slowly
    drifting amplitude and wavelength, which yields natural, partly overturned loops.

    Args:
        base: ``(n, 2)`` densely sampled valley axis.
        rng: Random generator.
        wavelength: Mean meander wavelength measured along the channel (normalised).
        angle: Mean maximum deviation from the valley direction (radians).
        step: Channel sample spacing (normalised).

    Returns:
        The ``(m, 2)`` channel centreline.
    """
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(base, axis=0).T))])
    n = int(3.0 * arc[-1] / step)
    lam = wavelength * (1.0 + 0.45 * _smooth_signal(rng, n, wavelength / step))
    omega = angle * (1.0 + 0.5 * _smooth_signal(rng, n, 0.7 * wavelength / step))
    theta = omega * np.sin(np.cumsum(2.0 * np.pi * step / lam) + rng.uniform(0, 2 * np.pi))
    theta = 0.6 * theta + angle * _smooth_signal(rng, n, 0.12 * wavelength / step)
    along = np.cumsum(np.cos(theta)) * step
    across = np.cumsum(np.sin(theta)) * step
    across -= ndimage.gaussian_filter1d(across, 3.0 * wavelength / step)  # no lateral drift
    keep = along <= arc[-1]
    along, across = along[keep], across[keep]
    tangent = np.gradient(base, axis=0)
    tangent /= np.hypot(*tangent.T)[:, None]
    x = np.interp(along, arc, base[:, 0]) - across * np.interp(along, arc, tangent[:, 1])
    y = np.interp(along, arc, base[:, 1]) + across * np.interp(along, arc, tangent[:, 0])
    return np.stack([x, y], axis=1)


def _ellipse(x: np.ndarray, y: np.ndarray, lake: tuple[float, float, float, float, float]) -> np.ndarray:
    """Return the normalised elliptical distance (1 on the outline) to a lake basin.

    Args:
        x: Normalised column coordinates, shape ``(1, w)``.
        y: Normalised row coordinates, shape ``(h, 1)``.
        lake: ``(cx, cy, semi_major, semi_minor, angle_deg)``; the angle is measured
            from east towards south (image rows).

    Returns:
        A ``(h, w)`` float32 array.
    """
    cx, cy, a, b, angle = lake
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    u = (x - cx) * cos + (y - cy) * sin
    v = -(x - cx) * sin + (y - cy) * cos
    return np.sqrt((u / a) ** 2 + (v / b) ** 2)


def _water(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Model the lakes, kettle-hole ponds and the meandering river.

    Args:
        rng: Random generator.
        size: Side length in pixels.

    Returns:
        ``(alpha, depth)``: water coverage in ``[0, 1]`` (mixed pixels at the shore) and a
        ``[0, 1]`` depth proxy (0 at the shore) used to shade shallow water.
    """
    basin = np.zeros((size, size), dtype=np.float32)
    for lake in _LAKES:  # smooth union ("metaballs") of elliptical basins
        win = _window(size, lake[0], lake[1], 2.5 * lake[2])
        if win is not None:
            (rows, cols), x, y = win
            basin[rows, cols] += np.exp(-(_ellipse(x, y, lake) ** 2))
    # Kettle holes ("Soelle"): small round ponds scattered through the fields.
    for _ in range(14):
        cx, cy, r = rng.uniform(0.04, 0.8), rng.uniform(0.04, 0.96), rng.uniform(0.0025, 0.005)
        win = _window(size, cx, cy, 2.5 * r)
        if win is not None:
            (rows, cols), x, y = win
            basin[rows, cols] += np.exp(-(((x - cx) ** 2 + (y - cy) ** 2) / r**2))
    for island in _ISLANDS:
        win = _window(size, island[0], island[1], 2.5 * island[2])
        if win is not None:
            (rows, cols), x, y = win
            basin[rows, cols] -= 1.5 * np.exp(-(_ellipse(x, y, island) ** 2))
    shore = 0.15 * _noise(rng, size, 3.6, kmax=64) + 0.05 * _noise(rng, size, 3.0, kmax=160)
    lakes = (basin + shore > math.exp(-1.0)).astype(np.float32)
    alpha = ndimage.gaussian_filter(lakes, 0.7)
    depth = np.clip(2.0 * _blur(alpha, 4.0 * size / 2048 + 1.0) - 1.0, 0.0, 1.0)

    step = 0.4 / size
    channel = _meander(_spline(_RIVER, step), rng, 0.05, math.radians(70.0), step)
    half_width = np.linspace(0.9, 1.5, len(channel)) * (1.0 + 0.3 * _smooth_signal(rng, len(channel), 40.0))
    river = _draw_line(size, channel, half_width)
    return np.maximum(alpha, river), depth

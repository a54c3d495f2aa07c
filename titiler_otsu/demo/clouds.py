"""The demo scene's fair-weather cumulus: soft-edged, shaded clouds and their shadows.

May import: anything in the package (top-level glue).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from titiler_otsu.demo.draw import _bbox, _noise, _window

#: Cumulus clusters ``(cx, cy, spread, n_puffs)``.
_CLOUD_CLUSTERS: tuple[tuple[float, float, float, int], ...] = (
    (0.64, 0.33, 0.05, 12),
    (0.47, 0.17, 0.035, 7),
    (0.79, 0.52, 0.04, 8),
    (0.27, 0.47, 0.025, 4),
    (0.40, 0.80, 0.02, 3),
)


def _clouds(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model cumulus clouds: clusters of puffs with billowy, soft edges and 3D shading.

    Args:
        rng: Random generator.
        size: Side length in pixels.

    Returns:
        ``(alpha, thickness, sunlit)``: coverage and thickness in ``[0, 1]`` and a
        ``[-1, 1]`` sunlit (+) / self-shadowed (-) term, all ``(size, size)`` float32.
    """
    envelope = np.zeros((size, size), dtype=np.float32)
    puffs = [  # many overlapping turrets per cluster: a cauliflower outline
        (rng.normal(cx, spread), rng.normal(cy, 0.8 * spread), rng.uniform(0.005, 0.017), rng.uniform(0.7, 1.0))
        for cx, cy, spread, n in _CLOUD_CLUSTERS
        for _ in range(3 * n)
    ]
    puffs += [  # small, weak puffs: the billows make them ragged or break them up
        (
            rng.normal(0.6, 0.2),
            rng.normal(0.4, 0.18),
            rng.uniform(0.003, 0.008),
            rng.uniform(0.6, 0.9),
        )
        for _ in range(20)
    ]
    for cx, cy, r, peak in puffs:
        win = _window(size, cx, cy, 2.5 * r)
        if win is not None:
            (rows, cols), x, y = win
            envelope[rows, cols] += peak * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / r**2)
    billow = _noise(rng, size, 2.4, kmax=size // 6)
    alpha, thickness, sunlit = np.zeros((3, size, size), dtype=np.float32)
    box = _bbox(envelope > 0.05, pad=4)  # no cloud can form outside this box
    if envelope[box].size < 4:
        return alpha, thickness, sunlit
    env = envelope[box]
    lumpy = env - 0.5 + 0.42 * billow[box] * np.clip(2.0 * env, 0.0, 1.0)
    density = np.clip(lumpy / 0.8, 0.0, 1.0)
    cover = 1.0 - np.exp(-3.5 * density)
    alpha[box] = cover / max(float(cover.max()), 1e-6)
    thickness[box] = np.sqrt(density)
    gy, gx = np.gradient(ndimage.gaussian_filter(thickness[box], 1.5))
    lit = 0.42 * gx + 0.91 * gy
    sunlit[box] = np.clip(lit / max(float(np.abs(lit).max()), 1e-6) * 3.0, -1.0, 1.0)
    return alpha, thickness, sunlit


def _shadow(alpha: np.ndarray, size: int) -> np.ndarray:
    """Cast cloud shadows: shift the cloud mask towards NNW and soften it (penumbra).

    With the sun at an azimuth of ~155 deg at the 10:30 overpass, shadows fall towards
    ~335 deg, about 1 km from their clouds.

    Args:
        alpha: Cloud coverage.
        size: Side length in pixels.

    Returns:
        Shadow strength in ``[0, 1]``.
    """
    dx, dy = -max(1, round(0.022 * size)), -max(1, round(0.048 * size))
    shifted = np.zeros_like(alpha)
    shifted[:dy, :dx] = alpha[-dy:, -dx:]
    sigma = 1.5 * size / 2048 + 0.5
    box = _bbox(shifted > 0, pad=int(4 * sigma) + 1)
    shifted[box] = ndimage.gaussian_filter(shifted[box], sigma)
    return shifted


def _blend_shadow(band: np.ndarray, shadow: np.ndarray, factor: float) -> None:
    """Darken ``band`` in place where ``shadow`` > 0 (``factor`` = light left in full shadow)."""
    idx = np.nonzero(shadow > 0)
    band[idx] *= 1.0 - shadow[idx] * (1.0 - factor)

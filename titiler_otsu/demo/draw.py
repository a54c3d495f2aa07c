"""Drawing primitives of the demo scene, in normalised ``[0, 1]`` scene coordinates.

Fractal noise, blurs, windows, spectrum blending, splines and anti-aliased strokes,
shared by the water, land and cloud modules.

May import: anything in the package (top-level glue).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import fft, ndimage
from scipy.interpolate import CubicSpline

from titiler_otsu.demo.bands import Spectrum


def _noise(rng: np.random.Generator, size: int, beta: float, kmax: int | None = None) -> np.ndarray:
    """Return a periodic power-law ("fractal") random field with zero mean and unit std.

    The field is synthesised from random Fourier coefficients, optionally band-limited
    to ``kmax`` cycles per scene (which makes smooth fields cheap and outlines smooth).

    Args:
        rng: Random generator.
        size: Side length in pixels.
        beta: Slope of the power spectrum (1 = grainy, 2-3 = rough, 4 = smooth).
        kmax: Highest spatial frequency kept, in cycles per scene (default: all).

    Returns:
        A ``(size, size)`` float32 array.
    """
    kmax = size // 2 if kmax is None else min(kmax, size // 2)
    fy = np.fft.fftfreq(size, 1.0 / size)
    rows = np.flatnonzero(np.abs(fy) <= kmax)
    cols = np.arange(kmax + 1)
    freq = np.hypot(fy[rows][:, None], cols[None, :]).astype(np.float32)
    freq[freq == 0] = np.inf
    amp = np.where(freq <= kmax, freq ** np.float32(-beta / 2.0), np.float32(0.0))
    re, im = rng.standard_normal((2, len(rows), len(cols)), dtype=np.float32)
    spectrum = np.zeros((size, size // 2 + 1), dtype=np.complex64)
    spectrum[rows[:, None], cols[None, :]] = (re + 1j * im) * amp
    field = fft.irfft2(spectrum, s=(size, size), workers=-1).astype(np.float32, copy=False)
    field /= field.std()
    return field


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; large sigmas are applied on a block-averaged copy, then upsampled.

    Args:
        image: 2D float array.
        sigma: Standard deviation in pixels.

    Returns:
        The blurred float32 array.
    """
    image = image.astype(np.float32, copy=False)
    if sigma < 4.0:
        return ndimage.gaussian_filter(image, sigma)
    f = int(sigma // 2)
    h, w = image.shape
    padded = np.pad(image, ((0, -h % f), (0, -w % f)), mode="edge")
    small = padded.reshape(padded.shape[0] // f, f, padded.shape[1] // f, f).mean(axis=(1, 3))
    small = ndimage.gaussian_filter(small, math.sqrt(sigma**2 - (f * f - 1) / 12.0) / f)
    return ndimage.zoom(small, f, order=1, grid_mode=True, mode="nearest")[:h, :w]


def _bbox(mask: np.ndarray, pad: int) -> tuple[slice, slice]:
    """Return the (padded) bounding box of the True pixels of ``mask`` as slices."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return slice(0, 0), slice(0, 0)
    h, w = mask.shape
    return (
        slice(max(rows[0] - pad, 0), min(rows[-1] + pad + 1, h)),
        slice(max(cols[0] - pad, 0), min(cols[-1] + pad + 1, w)),
    )


def _coords(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Return normalised pixel-centre coordinates as broadcastable ``(x, y)`` arrays."""
    c = (np.arange(size, dtype=np.float32) + 0.5) / size
    return c[None, :], c[:, None]


Window = tuple[tuple[slice, slice], np.ndarray, np.ndarray]


def _window(size: int, cx: float, cy: float, reach: float) -> Window | None:
    """Return a square window around a point with its normalised coordinates.

    Args:
        size: Raster side length in pixels.
        cx: Centre x (normalised).
        cy: Centre y (normalised).
        reach: Half-width of the window (normalised).

    Returns:
        ``((rows, cols), x, y)`` or None when the window is outside the raster.
    """
    c0, c1 = max(0, int((cx - reach) * size)), min(size, math.ceil((cx + reach) * size))
    r0, r1 = max(0, int((cy - reach) * size)), min(size, math.ceil((cy + reach) * size))
    if c0 >= c1 or r0 >= r1:
        return None
    x = (np.arange(c0, c1, dtype=np.float32)[None, :] + 0.5) / size
    y = (np.arange(r0, r1, dtype=np.float32)[:, None] + 0.5) / size
    return (slice(r0, r1), slice(c0, c1)), x, y


def _blend(land: np.ndarray, spectrum: Spectrum, alpha: np.ndarray, gain: np.ndarray | None = None) -> None:
    """Blend a constant spectrum (optionally textured by ``gain``) into ``land`` in place.

    Sparse overlays (roads, clouds) only touch their own pixels.

    Args:
        land: ``(4, h, w)`` reflectance array, modified in place.
        spectrum: Reflectance of the overlay, one value per band.
        alpha: Overlay coverage in ``[0, 1]``, shape ``(h, w)``.
        gain: Optional multiplicative texture of the overlay, shape ``(h, w)``.
    """
    cover = alpha > 0
    idx: tuple[Any, ...]
    if cover.mean() < 0.3:
        idx = np.nonzero(cover)
        alpha = alpha[idx]
        gain = None if gain is None else gain[idx]
    else:
        idx = (slice(None), slice(None))
    for b, value in enumerate(spectrum):
        band = land[b]
        overlay = value if gain is None else value * gain
        band[idx] += alpha * (overlay - band[idx])


def _spline(points: tuple[tuple[float, float], ...], step: float) -> np.ndarray:
    """Return points spaced ~``step`` apart on a smooth curve through ``points``.

    Args:
        points: Control points ``(x, y)`` (normalised).
        step: Approximate sample spacing (normalised).

    Returns:
        A ``(n, 2)`` array of ``(x, y)``.
    """
    pts = np.asarray(points, dtype=np.float64)
    chord = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
    n = max(int(chord[-1] / step * 1.3), 2)  # splines are a bit longer than chords
    return CubicSpline(chord, pts, bc_type="natural")(np.linspace(0.0, chord[-1], n))


def _draw_line(size: int, curve: np.ndarray, half_width: np.ndarray | float) -> np.ndarray:
    """Rasterise a curve as an anti-aliased stroke.

    Args:
        size: Raster side length in pixels.
        curve: ``(n, 2)`` curve in normalised coordinates, sampled at sub-pixel spacing.
        half_width: Stroke half-width in pixels (scalar or one value per sample).

    Returns:
        A ``(size, size)`` float32 coverage in ``[0, 1]``.
    """
    px = curve * size
    hw = np.broadcast_to(np.asarray(half_width, dtype=np.float64), (len(px),))
    cover = np.zeros((size, size), dtype=np.float32)
    reach = int(math.ceil(hw.max())) + 1
    base = np.floor(px).astype(np.int64)
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            ix, iy = base[:, 0] + dx, base[:, 1] + dy
            dist = np.hypot(ix + 0.5 - px[:, 0], iy + 0.5 - px[:, 1])
            value = np.clip(hw + 0.5 - dist, 0.0, 1.0)
            keep = (value > 0) & (ix >= 0) & (ix < size) & (iy >= 0) & (iy < size)
            np.maximum.at(cover, (iy[keep], ix[keep]), value[keep].astype(np.float32))
    return cover

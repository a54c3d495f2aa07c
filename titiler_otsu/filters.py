"""Neighbourhood filters used before and after thresholding (NumPy/SciPy, no web code).

Each filter declares its *support*: how many pixels away an input pixel can influence an
output pixel. A tile read with a halo at least as wide as the summed supports gives, in
its interior, exactly the values the filter would give on the whole image.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage
from skimage.morphology import disk

#: Gaussian kernels are truncated at this many standard deviations (SciPy's default).
GAUSSIAN_TRUNCATE = 4.0


def gaussian_support(sigma: float) -> int:
    """Kernel radius, in pixels, of `masked_gaussian` for `sigma` (0 when sigma is 0)."""
    if sigma <= 0:
        return 0
    return int(GAUSSIAN_TRUNCATE * float(sigma) + 0.5)


def morphology_support(opening: int, closing: int) -> int:
    """Radius of influence of an opening then a closing with disks of these radii.

    An opening is an erosion followed by a dilation, each reaching `r` pixels, so it
    reaches `2 r`; the closing adds `2 r` more.
    """
    return 2 * int(opening) + 2 * int(closing)


def masked_gaussian(values: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing that ignores invalid pixels (normalised convolution).

    Parameters
    ----------
    values : (M, N) ndarray
        Input image; values of invalid pixels are ignored.
    valid : (M, N) bool ndarray
        True where `values` holds data.
    sigma : float
        Standard deviation of the Gaussian, in pixels. 0 returns the input as float32.

    Returns
    -------
    smoothed : (M, N) float32 ndarray
        Weighted mean of the valid neighbours of each pixel; NaN where a pixel has no valid
        neighbour within the kernel.

    Notes
    -----
    `gaussian(values * valid) / gaussian(valid)`: nodata does not bleed dark (or bright)
    values into its neighbours, and a pixel's result depends only on pixels within
    `gaussian_support(sigma)` of it.

    """
    all_valid = bool(valid.all())
    data = values.astype(np.float32) if all_valid else np.where(valid, values, 0).astype(np.float32)
    if sigma <= 0:
        return data
    num = ndimage.gaussian_filter(data, **_gaussian_kwargs(sigma))
    # Without nodata the weights are all ones: their smoothing depends on the shape only and
    # is reused (the same computation on the same input, so the same bits), which halves the
    # work on the usual tile or export window.
    den = _smoothed_ones(valid.shape, float(sigma)) if all_valid else _smooth_weights(valid, sigma)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[den <= 1e-6] = np.nan
    return out


def _gaussian_kwargs(sigma: float) -> dict:
    return {"sigma": float(sigma), "truncate": GAUSSIAN_TRUNCATE, "mode": "constant", "cval": 0.0}


def _smooth_weights(valid: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(valid.astype(np.float32), **_gaussian_kwargs(sigma))


@lru_cache(maxsize=4)
def _smoothed_ones(shape: tuple[int, ...], sigma: float) -> np.ndarray:
    den = _smooth_weights(np.ones(shape, bool), sigma)
    den.flags.writeable = False
    return den


def clean_classes(classes: np.ndarray, valid: np.ndarray, opening: int, closing: int) -> np.ndarray:
    """Morphological clean-up of a class image: grey opening, then grey closing.

    Parameters
    ----------
    classes : (M, N) uint8 ndarray
        Class per pixel (ordered: class k is brighter than class k-1).
    valid : (M, N) bool ndarray
        Pixels with data; invalid pixels take part as class 0 (background).
    opening, closing : int
        Disk radii in pixels (0 = skip). The opening removes specks of a higher class
        smaller than the disk; the closing fills such holes. On a binary image these are
        the usual binary opening and closing.

    Returns
    -------
    cleaned : (M, N) uint8 ndarray

    """
    out = np.where(valid, classes, 0).astype(np.uint8)
    if opening > 0:
        out = ndimage.grey_opening(out, footprint=disk(int(opening)), mode="nearest")
    if closing > 0:
        out = ndimage.grey_closing(out, footprint=disk(int(closing)), mode="nearest")
    return out

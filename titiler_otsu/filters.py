"""Neighbourhood filters used before and after thresholding (NumPy/SciPy, no web code).

Each filter declares its *support*: how many pixels away an input pixel can influence an
output pixel. A tile read with a halo at least as wide as the summed supports gives, in
its interior, exactly the values the filter would give on the whole image.
"""

from __future__ import annotations

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
    data = np.where(valid, values, 0).astype(np.float32)
    if sigma <= 0:
        return data
    weight = valid.astype(np.float32)
    kwargs = {"sigma": float(sigma), "truncate": GAUSSIAN_TRUNCATE, "mode": "constant", "cval": 0.0}
    num = ndimage.gaussian_filter(data, **kwargs)
    den = ndimage.gaussian_filter(weight, **kwargs)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[den <= 1e-6] = np.nan
    return out


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

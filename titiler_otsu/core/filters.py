"""Neighbourhood filters used before and after thresholding (NumPy/SciPy, no web code).

Each filter declares its *support*: how many pixels away an input pixel can influence an
output pixel. A tile read with a halo at least as wide as the summed supports gives, in
its interior, exactly the values the filter would give on the whole image.

May import: NumPy, SciPy, scikit-image, morecantile and `core`; nothing else of ours (no GDAL, no web).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage

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
    den = _smoothed_ones(valid.shape, float(sigma)) if all_valid else _smooth_weights_near_nodata(valid, sigma)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.divide(num, den, out=num)  # in place: one image-sized allocation less
    out[den <= 1e-6] = np.nan
    return out


def _gaussian_kwargs(sigma: float) -> dict:
    return {"sigma": float(sigma), "truncate": GAUSSIAN_TRUNCATE, "mode": "constant", "cval": 0.0}


def _smooth_weights(valid: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(valid.astype(np.float32), **_gaussian_kwargs(sigma))


#: Above this fraction of the image, the weights near nodata are smoothed over the whole image.
LOCAL_WEIGHTS_MAX_FRACTION = 0.5


def _smooth_weights_near_nodata(valid: np.ndarray, sigma: float) -> np.ndarray:
    """`_smooth_weights(valid)`, recomputed only around the invalid pixels (same bits).

    A weight differs from the all-valid one only within `support` pixels of an invalid pixel,
    and depends only on `valid` within `support` pixels: the box around the invalid pixels,
    grown by `support`, is smoothed from a slice grown by `2 * support` (the same sums over
    the same inputs as on the whole image; slices at the image's edges see the same
    constant padding), the rest is the cached all-valid smoothing. A nodata border or corner
    of a window costs a fraction of a second Gaussian pass instead of a whole one.
    """
    s = gaussian_support(sigma)
    rows = np.flatnonzero(~valid.all(axis=1))
    cols = np.flatnonzero(~valid.all(axis=0))
    height, width = valid.shape
    r0, r1 = max(int(rows[0]) - s, 0), min(int(rows[-1]) + 1 + s, height)
    c0, c1 = max(int(cols[0]) - s, 0), min(int(cols[-1]) + 1 + s, width)
    if (r1 - r0) * (c1 - c0) > LOCAL_WEIGHTS_MAX_FRACTION * valid.size:
        return _smooth_weights(valid, sigma)
    sr0, sr1 = max(r0 - s, 0), min(r1 + s, height)
    sc0, sc1 = max(c0 - s, 0), min(c1 + s, width)
    part = _smooth_weights(valid[sr0:sr1, sc0:sc1], sigma)
    den = _smoothed_ones(valid.shape, float(sigma)).copy()
    den[r0:r1, c0:c1] = part[r0 - sr0 : r1 - sr0, c0 - sc0 : c1 - sc0]
    return den


@lru_cache(maxsize=4)
def _smoothed_ones(shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """`_smooth_weights` of an all-valid image of this shape (cached, read-only).

    A smoothed weight depends only on the valid pixels within `support` of it, i.e. on its
    distance to the image's edges up to `support`: every weight of a large image is one of
    the weights of a `(2 support + 1)²` image of ones, computed by the same filter (so with
    the same bits). Gathering them costs a copy instead of a Gaussian pass; export windows
    come in up to nine shapes (edges, corners), more than this cache holds.
    """
    s = gaussian_support(sigma)
    small_shape = tuple(min(n, 2 * s + 1) for n in shape)
    small = _smooth_weights(np.ones(small_shape, bool), sigma)
    if small_shape != tuple(shape):
        rows, cols = (_edge_distance_index(n, s) for n in shape)
        small = small[:, cols][rows]  # distinct rows first (small), then whole rows (copies)
    small.flags.writeable = False
    return small


def _edge_distance_index(n: int, s: int) -> np.ndarray:
    """Row (or column) of the `2 s + 1` ones image with the same distances to both edges."""
    if n <= 2 * s + 1:
        return np.arange(n)
    i = np.arange(n)
    return np.where(i < s, i, np.where(i >= n - s, i - (n - 2 * s - 1), s))


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
    if opening <= 0 and closing <= 0:
        return out
    # imported here: `skimage.morphology` (with the SciPy modules it pulls in) costs ~0.1 s per
    # process, paid by every export worker at start-up, whether it cleans classes or not
    from skimage.morphology import disk

    if opening > 0:
        out = ndimage.grey_opening(out, footprint=disk(int(opening)), mode="nearest")
    if closing > 0:
        out = ndimage.grey_closing(out, footprint=disk(int(closing)), mode="nearest")
    return out

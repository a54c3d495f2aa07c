"""Overlay rendering of class images."""

from __future__ import annotations

import numpy as np
import pytest
from rio_tiler.models import ImageData
from titiler.core.resources.enums import ImageType
from titiler.core.utils import render_image

from titiler_otsu.web.render import class_colormap, render_tile


@pytest.mark.parametrize("n_classes", [2, 3, 4, 5])
@pytest.mark.parametrize("fmt", [ImageType.png, ImageType.webp])
def test_overlay_equals_rendering_with_the_class_colormap(n_classes, fmt):
    rng = np.random.default_rng(n_classes)
    classes = rng.integers(0, n_classes, size=(1, 256, 256), dtype=np.uint8)
    mask = rng.random((1, 256, 256)) < 0.1  # some nodata
    img = ImageData(np.ma.MaskedArray(classes, mask=mask), metadata={"otsu_classes": n_classes})
    got, media = render_tile(img, output_format=fmt)
    want = render_image(img, output_format=fmt, colormap=class_colormap(n_classes))
    if fmt == ImageType.png:  # Pillow's PNG encoder (render.encode_rgba_png): the same pixels
        from rasterio.io import MemoryFile

        def pixels(png: bytes) -> np.ndarray:
            with MemoryFile(png) as f, f.open() as ds:
                return ds.read()

        assert media == want[1]
        np.testing.assert_array_equal(pixels(got), pixels(want[0]))
        return
    assert (got, media) == want


def test_overlay_makes_background_and_nodata_transparent():
    classes = np.array([[[0, 1], [1, 0]]], np.uint8)
    img = ImageData(np.ma.MaskedArray(classes, mask=[[[False, False], [True, False]]]), metadata={"otsu_classes": 2})
    content, _ = render_tile(img, output_format=ImageType.npy)  # raw classes for analysis
    assert np.load(__import__("io").BytesIO(content)).shape[0] == 2
    png, _ = render_tile(img, output_format=ImageType.png)
    from rasterio.io import MemoryFile

    with MemoryFile(png) as f, f.open() as ds:
        alpha = ds.read(4)
    assert alpha[0, 0] == 0 and alpha[1, 1] == 0  # background
    assert alpha[1, 0] == 0  # nodata
    assert alpha[0, 1] > 0  # foreground

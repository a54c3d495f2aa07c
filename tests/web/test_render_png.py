"""The class overlay PNG encoder gives the pixels rio-tiler's GDAL PNG rendering gives."""

from __future__ import annotations

import numpy as np
import pytest
from rasterio.io import MemoryFile
from rio_tiler.models import ImageData
from titiler.core.resources.enums import ImageType
from titiler.core.utils import render_image

from titiler_otsu.web.render import _class_lut, render_tile


def _decode(png: bytes) -> np.ndarray:
    with MemoryFile(png) as mem, mem.open() as ds:
        assert ds.driver == "PNG" and ds.count == 4
        return ds.read()


@pytest.mark.parametrize("n_classes", [2, 3, 4, 5])
@pytest.mark.parametrize("shape", [(256, 256), (512, 512), (7, 300)])
def test_fast_overlay_png_equals_gdal_rendering(n_classes: int, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(n_classes * 1000 + shape[0])
    # class values, a few out-of-palette values, masked pixels holding any value
    data = rng.integers(0, n_classes + 2, size=(1, *shape), dtype=np.uint8)
    data[0, : shape[0] // 3] = rng.integers(0, n_classes, size=(1, shape[1]), dtype=np.uint8)
    mask = rng.random((1, *shape)) < 0.2
    image = ImageData(np.ma.MaskedArray(data, mask=mask), metadata={"otsu_classes": n_classes})

    fast, media = render_tile(image, ImageType.png, add_mask=True)
    reference, _ = render_image(image, output_format=ImageType.png, colormap=_class_lut(n_classes))
    assert media == "image/png"
    np.testing.assert_array_equal(_decode(fast), _decode(reference))


def test_class_overlay_png_does_not_go_through_gdal(monkeypatch) -> None:
    from titiler_otsu.web import render

    def refuse(*args, **kwargs):
        raise AssertionError("the class overlay PNG went through render_image")

    monkeypatch.setattr(render, "render_image", refuse)
    data = np.ma.MaskedArray(np.eye(16, dtype=np.uint8)[None], mask=np.zeros((1, 16, 16), bool))
    png, media = render.render_tile(ImageData(data, metadata={"otsu_classes": 2}), ImageType.png)
    assert media == "image/png" and _decode(png)[3].any()


def test_other_formats_and_colormaps_keep_the_gdal_path() -> None:
    data = np.ma.MaskedArray(np.zeros((1, 8, 8), np.uint8), mask=np.zeros((1, 8, 8), bool))
    image = ImageData(data, metadata={"otsu_classes": 2})
    webp, media = render_tile(image, ImageType.webp)
    assert media == "image/webp" and webp[:4] == b"RIFF"
    custom = {v: (v, 0, 0, 255) for v in range(256)}
    png, _ = render_tile(image, ImageType.png, colormap=custom)
    reference, _ = render_image(image, output_format=ImageType.png, colormap=custom)
    assert png == reference


@pytest.mark.parametrize("algorithm", ["otsu", "multiotsu"])
def test_served_class_tile_takes_the_pillow_path(client, monkeypatch, algorithm: str) -> None:
    """A served `/cog` tile of a source without a palette gets the Pillow encoder.

    TiTiler passes the reader's colormap, an empty dict for such a source: the fast path must
    treat it as no colormap (it once fell back to GDAL for every served tile).
    """
    import morecantile
    import rasterio
    from rasterio.warp import transform_bounds

    from tests.conftest import NAIP
    from titiler_otsu.web import render

    def refuse(*args, **kwargs):
        raise AssertionError("the served class overlay went through render_image")

    monkeypatch.setattr(render, "render_image", refuse)
    with rasterio.open(NAIP) as ds:
        west, south, east, north = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    tile = morecantile.tms.get("WebMercatorQuad").tile((west + east) / 2, (south + north) / 2, 16)
    r = client.get(
        f"/cog/tiles/WebMercatorQuad/{tile.z}/{tile.x}/{tile.y}.png",
        params={"url": str(NAIP), "bidx": 4, "algorithm": algorithm},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert _decode(r.content)[3].any()

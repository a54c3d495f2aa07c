"""QGIS's other way in: the WMTS capabilities, read by OWSLib against the live server."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import numpy as np
import pytest
from owslib.wmts import WebMapTileService
from PIL import Image

from tests.conftest import B08, NAIP, SHARED_DATA
from tests.live_server import live_server


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with live_server([NAIP], [SHARED_DATA]) as base:
        yield base


def _capabilities_url(base: str, **params: str) -> str:
    from urllib.parse import urlencode

    return f"{base}/cog/WebMercatorQuad/WMTSCapabilities.xml?{urlencode(params)}"


def test_owslib_lists_imagery_and_mask_layers_and_fetches_both(server) -> None:
    url = _capabilities_url(
        server, url=str(NAIP), bidx="4", algorithm="otsu", algorithm_params=json.dumps({"invert": True})
    )
    wmts = WebMapTileService(url)
    assert set(wmts.contents) == {"imagery_WebMercatorQuad", "mask_WebMercatorQuad"}
    assert "WebMercatorQuad" in wmts.tilematrixsets
    mask = wmts.contents["mask_WebMercatorQuad"]
    west, south, east, north = mask.boundingBoxWGS84
    assert west == pytest.approx(-99.1856, abs=1e-3) and north == pytest.approx(47.0367, abs=1e-3)
    limits = mask.tilematrixsetlinks["WebMercatorQuad"].tilematrixlimits
    z = max(limits, key=int)
    row = (limits[z].mintilerow + limits[z].maxtilerow) // 2
    col = (limits[z].mintilecol + limits[z].maxtilecol) // 2

    tile = wmts.gettile(
        layer="mask_WebMercatorQuad", tilematrixset="WebMercatorQuad", tilematrix=z, row=row, column=col
    )
    img = np.asarray(Image.open(io.BytesIO(tile.read())))
    assert img.shape == (256, 256, 4)
    water = img[..., 3] > 0
    assert 0.02 < water.mean() < 0.98  # a class overlay, background transparent
    assert (img[water][:, :3] == [31, 120, 180]).all()  # the foreground class colour

    tile = wmts.gettile(
        layer="imagery_WebMercatorQuad", tilematrixset="WebMercatorQuad", tilematrix=z, row=row, column=col
    )
    grey = np.asarray(Image.open(io.BytesIO(tile.read())))
    assert grey.shape[:2] == (256, 256) and grey[..., 0].std() > 10  # stretched imagery, not blank


def test_owslib_gets_a_default_otsu_mask_layer_for_a_one_band_source(server) -> None:
    wmts = WebMapTileService(_capabilities_url(server, url=str(B08)))
    assert set(wmts.contents) == {"imagery_WebMercatorQuad", "mask_WebMercatorQuad"}
    template = wmts.contents["imagery_WebMercatorQuad"].resourceURLs[0]["template"]
    assert "rescale=" in template  # uint16 reflectance is stretched for display
    mask_template = wmts.contents["mask_WebMercatorQuad"].resourceURLs[0]["template"]
    assert "algorithm=otsu" in mask_template

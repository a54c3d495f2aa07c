"""The notebook client: folium layers from real servers, `TileClient` in background threads,
and the example notebook executed with nbclient."""

from __future__ import annotations

import io
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import folium
import httpx
import morecantile
import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient
from PIL import Image

from tests.conftest import B08, NAIP
from titiler_otsu.notebook import OtsuClientError, TileClient, mask_layer, otsu_map, tile_layer

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "sentinel2_water.ipynb"
TMS = morecantile.tms.get("WebMercatorQuad")
WATER = {"invert": True}
POLYGON = {
    "type": "Polygon",
    "coordinates": [[[-99.16, 47.01], [-99.14, 47.01], [-99.14, 47.03], [-99.16, 47.03], [-99.16, 47.01]]],
}


@pytest.fixture(scope="module")
def naip_client() -> Iterator[TileClient]:
    with TileClient(NAIP) as c:
        yield c


def _tile(template: str, lon: float, lat: float, z: int) -> str:
    """Fill a 512-px layer's template (tile zoom = map zoom - 1) for the tile holding lon/lat."""
    t = TMS.tile(lon, lat, z)
    return template.replace("{z}", str(t.z)).replace("{x}", str(t.x)).replace("{y}", str(t.y))


def _port_open(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) == 0


def test_folium_map_references_our_tile_urls_and_they_return_tiles(naip_client) -> None:
    m = naip_client.map(bidx=4, params=WATER, imagery={"bidx": [1, 2, 3]})
    html = m.get_root().render().replace("\\u0026", "&")
    layers = [c for c in m._children.values() if isinstance(c, folium.TileLayer) and c.overlay]
    imagery, mask = layers
    for layer in layers:
        assert layer.tiles.startswith(f"{naip_client.server_url}/cog/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}?")
        assert layer.tiles in html
    assert "algorithm=otsu" in mask.tiles and "rescale=" in imagery.tiles
    assert any(isinstance(c, folium.LayerControl) for c in m._children.values())

    lat, lon = naip_client.center
    z = naip_client.max_zoom
    png = httpx.get(_tile(mask.tiles, lon, lat, z))
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    rgba = np.asarray(Image.open(io.BytesIO(png.content)))
    assert rgba.shape == (512, 512, 4) and 0.02 < (rgba[..., 3] > 0).mean() < 0.98
    rgb = np.asarray(Image.open(io.BytesIO(httpx.get(_tile(imagery.tiles, lon, lat, z)).content)))
    assert rgb.shape[:2] == (512, 512) and rgb[..., 0].std() > 10


def test_layers_carry_attribution_zoom_range_and_bounds(naip_client) -> None:
    layer = naip_client.mask_layer("multiotsu", {"classes": 3}, bidx=4)
    west, south, east, north = naip_client.bounds
    assert layer.options["bounds"] == [[south, west], [north, east]]
    assert layer.options["max_native_zoom"] == naip_client.max_zoom + 1  # 512-px tiles
    assert layer.options["tile_size"] == 512 and layer.options["zoom_offset"] == -1
    assert "titiler-otsu" in layer.options["attribution"]
    assert layer.layer_name == "Mask (multiotsu)"
    assert south < naip_client.center[0] < north and 10 <= naip_client.default_zoom <= naip_client.max_zoom


def test_layer_factory_works_with_any_running_server(naip_client) -> None:
    # naip_client's server stands in for a server started elsewhere (`titiler-otsu serve`).
    url = naip_client.server_url
    m = otsu_map(url, str(NAIP), params=WATER, bidx=4)
    assert isinstance(m, folium.Map)
    imagery = tile_layer(url, str(NAIP), bidx=4, rescale="0,200", name="NIR")
    assert "rescale=0%2C200" in imagery.tiles and imagery.layer_name == "NIR"
    with pytest.raises(OtsuClientError, match=r"400 .*sigma.*less than or equal to 16"):
        mask_layer(url, str(NAIP), bidx=4, params={"sigma": 99})
    with pytest.raises(OtsuClientError, match="404"):
        tile_layer(url, str(NAIP.with_name("missing.tif")))


def test_threshold_and_areas_match_the_http_api(naip_client, client) -> None:
    got = naip_client.threshold(bidx=4, params=WATER)
    api = client.get(
        "/cog/threshold",
        params={"url": str(NAIP), "bidx": 4, "algorithm": "otsu", "algorithm_params": json.dumps(WATER)},
    ).json()
    assert got["thresholds"] == api["thresholds"] and got["histogram"] == api["histogram"]
    areas = naip_client.areas(POLYGON, bidx=4, params=WATER)
    api = client.post(
        "/cog/areas",
        params={"url": str(NAIP), "bidx": 4, "algorithm": "otsu", "algorithm_params": json.dumps(WATER)},
        json={"type": "Feature", "properties": {}, "geometry": POLYGON},
    ).json()
    assert areas["features"][0]["properties"]["classes"] == api["features"][0]["properties"]["classes"]
    water = next(c for c in areas["features"][0]["properties"]["classes"] if c["class"] == 1)
    assert water["area_m2"] > 1e5


def test_several_clients_run_at_once_and_shut_down_cleanly() -> None:
    a, b = TileClient(NAIP), TileClient(B08)
    try:
        assert a.server_url != b.server_url
        assert httpx.get(f"{a.server_url}/sources").json()[0]["url"] == str(NAIP)
        assert httpx.get(f"{b.server_url}/sources").json()[0]["url"] == str(B08)
        a.shutdown()
        assert not a.running and not _port_open(a.server_url)
        assert b.running and httpx.get(f"{b.server_url}/healthz").status_code == 200
        a.shutdown()  # idempotent
    finally:
        a.shutdown()
        b.shutdown()
    assert not b.running and not _port_open(b.server_url)


def test_tile_client_refuses_a_missing_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        TileClient(tmp_path / "nope.tif")


def test_example_notebook_runs_and_tells_the_water_story() -> None:
    nb = nbformat.read(EXAMPLE, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(EXAMPLE.parent)}}
    ).execute()
    text = "\n".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "stream"
    )
    (threshold, percent) = re.search(r"Otsu threshold on NDWI: (-?[\d.]+)\s+\((\d+) % of valid", text).groups()
    assert -0.2 < float(threshold) < 0.0 and 30 <= int(percent) <= 45  # shared data README: ~-0.09, 38 %
    html = next(
        o["data"]["text/html"]
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "execute_result" and "text/html" in o.get("data", {})
    )
    assert "/stac/tiles/WebMercatorQuad/{z}/{x}/{y}" in html and "algorithm=otsu" in html.replace("\\u0026", "&")
    water_km2, water_pct, land_km2 = re.search(r"water: ([\d.]+) km² \((\d+) %\), land: ([\d.]+) km²", text).groups()
    assert float(water_km2) > 100 and float(land_km2) > 100 and 10 < int(water_pct) < 90

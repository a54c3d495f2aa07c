"""Notebook client over time: `StacApiClient` (through `TileClient(stac_api=...)`, a real background
server whose STAC API is a real `rustac serve` of the four-date stack) returns the time series as a
pandas DataFrame equal to the server's JSON rows."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import httpx
import morecantile
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.stac_time_fixtures import (
    DATETIMES,
    GROWTH,
    INTERVALS,
    ITEM_IDS,
    SCL_MASK_VALUES,
    TIME_COLLECTION,
    TimeStack,
)
from titiler_otsu.notebook import OtsuClientError, StacApiClient, TileClient, timeseries_frame

WATER = {"invert": True, "scope": "fixed", "threshold": 2000}
RANGE = "2020-01-01/2020-12-31"
#: window rows 190..310, columns 50..170: the lake and where it grows and shrinks.
LAKE_AREA = (190, 310, 50, 170)


@pytest.fixture(scope="module")
def stack_collection(time_stack: TimeStack, time_api: str) -> Iterator[StacApiClient]:
    with TileClient(time_stack.items[0], allow=[time_stack.directory], stac_api=time_api) as client:
        yield client.collection(TIME_COLLECTION)


def test_timeseries_is_a_dataframe_of_the_servers_rows_indexed_by_date(stack_collection, time_stack) -> None:
    polygon = time_stack.polygon(LAKE_AREA)["geometry"]
    mask = {"mask_asset": "SCL", "mask_values": ",".join(map(str, SCL_MASK_VALUES))}
    df = stack_collection.timeseries(polygon, "otsu", WATER, datetime=RANGE, assets="B08", **mask)
    answer = stack_collection.timeseries_json(polygon, "otsu", WATER, datetime=RANGE, assets="B08", **mask)
    assert isinstance(df, pd.DataFrame) and len(df) == 4
    assert isinstance(df.index, pd.DatetimeIndex) and str(df.index.tz) == "UTC"
    assert list(df.index) == [pd.Timestamp(d) for d in DATETIMES]
    assert df["items"].tolist() == [[i] for i in ITEM_IDS]
    for (_, line), row in zip(df.iterrows(), answer["rows"], strict=True):
        assert line["valid_fraction"] == row["valid_fraction"] and line["thresholds"] == row["thresholds"]
        for c in row["classes"]:
            assert line[f"class_{c['class']}_area_m2"] == c["area_m2"]
            assert line[f"class_{c['class']}_pixels"] == c["pixels"]
    assert df.attrs["algorithm"] == "otsu" and df.attrs["collection"] == TIME_COLLECTION
    assert df["valid_fraction"].min() < 1.0  # the clouds over the lake at 2020-04-17 are masked
    assert df["class_1_area_m2"].idxmax() == pd.Timestamp(DATETIMES[1])  # the lake grew then


def test_timeseries_frame_of_an_empty_answer_has_no_rows() -> None:
    frame = timeseries_frame({"algorithm": "otsu", "scope": "fixed", "rows": []})
    assert frame.empty and frame.attrs["algorithm"] == "otsu"


def test_server_refusals_raise_with_the_servers_message(stack_collection, time_stack) -> None:
    ring = {"type": "FeatureCollection", "features": []}
    with pytest.raises(OtsuClientError, match="one polygon"):
        stack_collection.timeseries(ring, "otsu", WATER, datetime=RANGE, assets="B08")


def test_stacapi_client_layers_point_at_the_servers_tiles(stack_collection, time_stack) -> None:
    layer = stack_collection.mask_layer("otsu", WATER, datetime=RANGE, assets="B08")
    assert f"/stacapi/collections/{TIME_COLLECTION}/tiles/WebMercatorQuad/" in layer.tiles
    ring = time_stack.polygon(LAKE_AREA)["geometry"]["coordinates"][0]
    lon, lat = sum(p[0] for p in ring) / len(ring), sum(p[1] for p in ring) / len(ring)
    t = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, 11)
    url = layer.tiles.replace("{z}", str(t.z)).replace("{x}", str(t.x)).replace("{y}", str(t.y))
    assert json.loads(httpx.URL(url).params["algorithm_params"]) == WATER
    r = httpx.get(url, timeout=60)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text


GAINED_RGBA = (33, 102, 172, 230)


def _tile_pixels(layer, lonlat: tuple[float, float]) -> np.ndarray:
    t = morecantile.tms.get("WebMercatorQuad").tile(*lonlat, 11)
    url = layer.tiles.replace("{z}", str(t.z)).replace("{x}", str(t.x)).replace("{y}", str(t.y))
    r = httpx.get(url, timeout=120)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGBA")).reshape(-1, 4)


def _growth_lonlat(time_stack: TimeStack) -> tuple[float, float]:
    ring = time_stack.polygon(GROWTH)["geometry"]["coordinates"][0]
    return sum(p[0] for p in ring) / len(ring), sum(p[1] for p in ring) / len(ring)


def test_stacapi_change_layer_tiles_show_the_lake_growing(stack_collection, time_stack) -> None:
    layer = stack_collection.change_layer(INTERVALS[0], INTERVALS[1], "otsu", WATER, assets="B08")
    assert f"/stacapi/collections/{TIME_COLLECTION}/change/tiles/WebMercatorQuad/" in layer.tiles
    pixels = _tile_pixels(layer, _growth_lonlat(time_stack))
    assert (pixels == GAINED_RGBA).all(axis=1).sum() > 1000  # GROWTH: thousands of gained pixels


def test_tile_client_change_layer_compares_two_cogs(time_stack) -> None:
    after = json.loads(time_stack.items[1].read_text())["assets"]["B08"]["href"].removeprefix("file://")
    before = json.loads(time_stack.items[0].read_text())["assets"]["B08"]["href"].removeprefix("file://")
    with TileClient(after, allow=[time_stack.directory]) as client:
        layer = client.change_layer(before, "otsu", WATER)
        assert "/cog/change/tiles/WebMercatorQuad/" in layer.tiles and "before_url=" in layer.tiles
        pixels = _tile_pixels(layer, _growth_lonlat(time_stack))
    assert (pixels == GAINED_RGBA).all(axis=1).sum() > 1000

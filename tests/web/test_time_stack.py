"""The multi-date STAC fixture: a real STAC API answers the stack, and its files hold the truth."""

from __future__ import annotations

import numpy as np
import rasterio
from pystac_client import Client

from tests.stac_time_fixtures import DATES, INTERVALS, ITEM_IDS, SCL_MASK_VALUES, TIME_COLLECTION, TimeStack


def test_each_interval_selects_one_dated_item(time_api: str) -> None:
    client = Client.open(time_api)
    everything = [it.id for it in client.search(collections=[TIME_COLLECTION]).items()]
    assert sorted(everything) == sorted(ITEM_IDS)
    for interval, item_id in zip(INTERVALS, ITEM_IDS, strict=True):
        assert [it.id for it in client.search(collections=[TIME_COLLECTION], datetime=interval).items()] == [item_id]


def test_stack_files_hold_the_painted_water_and_clouds(time_stack: TimeStack) -> None:
    for i, _ in enumerate(DATES):
        folder = time_stack.directory / ITEM_IDS[i]
        with rasterio.open(folder / "B08.tif") as ds:
            nir = ds.read(1)
            assert ds.transform == time_stack.transform
        with rasterio.open(folder / "SCL.tif") as ds:
            scl = ds.read(1)
            assert ds.res == (200.0, 200.0)
        with rasterio.open(folder / "QA_PIXEL.tif") as ds:
            qa = ds.read(1)
        cloud = np.kron(np.isin(scl, SCL_MASK_VALUES), np.ones((2, 2), bool))
        assert np.array_equal(cloud, time_stack.cloud(i))
        assert np.array_equal((qa & 0b11000) > 0, time_stack.cloud(i))
        water = (nir <= 507) & ~cloud
        assert np.array_equal(water, time_stack.water(i))

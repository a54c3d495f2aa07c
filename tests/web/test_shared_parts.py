"""Served-path pieces shared between requests: tile matrix sets, event-loop dependencies."""

from __future__ import annotations

import asyncio
import inspect

import morecantile
import pyproj
import pytest
from morecantile.errors import InvalidIdentifier
from titiler.core.dependencies import BidxExprParams

from titiler_otsu.web.dependencies import on_event_loop
from titiler_otsu.web.tms import SharedTileMatrixSets, shared_tms


def test_tms_registry_hands_out_one_instance_per_identifier():
    registry = shared_tms()
    first = registry.get("WebMercatorQuad")
    assert registry.get("WebMercatorQuad") is first
    assert morecantile.tms.get("WebMercatorQuad") is not morecantile.tms.get("WebMercatorQuad")  # why: copies
    assert first.xy_bounds(morecantile.Tile(1, 2, 3)) == morecantile.tms.get("WebMercatorQuad").xy_bounds(1, 2, 3)


def test_unknown_tms_still_raises_and_registered_ones_are_shared():
    registry = shared_tms()
    with pytest.raises(InvalidIdentifier):
        registry.get("NotATileMatrixSet")
    custom = morecantile.TileMatrixSet.custom([0, 0, 1000, 1000], pyproj.CRS.from_epsg(32631), id="Mine")
    extended = registry.register({"Mine": custom})
    assert isinstance(extended, SharedTileMatrixSets)
    assert extended.get("Mine") is extended.get("Mine")
    assert "Mine" not in registry.list()


def test_unknown_tms_in_a_tile_url_is_a_4xx(client):
    r = client.get("/cog/tiles/NotATileMatrixSet/1/0/0.png", params={"url": "/nonexistent.tif"})
    assert 400 <= r.status_code < 500


def test_event_loop_dependency_keeps_the_parameters_and_the_result():
    wrapped = on_event_loop(BidxExprParams)
    assert inspect.iscoroutinefunction(wrapped)
    assert list(inspect.signature(wrapped).parameters) == list(inspect.signature(BidxExprParams).parameters)
    got = asyncio.run(wrapped(indexes=[2], expression=None))
    assert got == BidxExprParams(indexes=[2], expression=None)


def test_event_loop_wrapping_leaves_async_dependencies_alone():
    async def already_async(x: int) -> int:
        return x

    assert on_event_loop(already_async) is already_async

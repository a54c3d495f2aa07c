"""HTTP caching of tiles and TileJSON: Cache-Control, ETag, 304 Not Modified."""

from __future__ import annotations

import os

import morecantile
import numpy as np
import pytest
from fastapi.testclient import TestClient
from rio_tiler.constants import WGS84_CRS

from tests.conftest import B08, NAIP, load_npy
from titiler_otsu import create_app
from titiler_otsu.io.datasets import dataset_cache
from titiler_otsu.io.reader import GridExactReader
from titiler_otsu.web.http_cache import if_none_match

TMS = morecantile.tms.get("WebMercatorQuad")
TILE = "/cog/tiles/WebMercatorQuad/14/3680/5762.png"
TILEJSON = "/cog/WebMercatorQuad/tilejson.json"
OTSU = {"url": str(NAIP), "bidx": 4, "algorithm": "otsu", "algorithm_params": '{"invert": true}'}


def _opens_and_reuses() -> int:
    cache = dataset_cache()
    return cache.opens + cache.reuses


def test_tile_carries_cache_control_and_etag(client: TestClient) -> None:
    r = client.get(TILE, params=OTSU)
    assert r.status_code == 200
    assert r.headers["cache-control"] == "public, max-age=3600"
    etag = r.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 10


def test_matching_if_none_match_is_a_304_that_reads_nothing(client: TestClient) -> None:
    etag = client.get(TILE, params=OTSU).headers["etag"]
    before = _opens_and_reuses()
    r = client.get(TILE, params=OTSU, headers={"If-None-Match": etag})
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["etag"] == etag
    assert r.headers["cache-control"] == "public, max-age=3600"
    assert _opens_and_reuses() == before  # no dataset was touched


@pytest.mark.parametrize("header", ['W/"{tag}"', '"nope", "{tag}"', "*"])
def test_weak_listed_and_star_conditions_match(client: TestClient, header: str) -> None:
    etag = client.get(TILE, params=OTSU).headers["etag"]
    r = client.get(TILE, params=OTSU, headers={"If-None-Match": header.format(tag=etag.strip('"'))})
    assert r.status_code == 304


def test_stale_if_none_match_gets_the_tile(client: TestClient) -> None:
    r = client.get(TILE, params=OTSU, headers={"If-None-Match": '"0123456789abcdef"'})
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    assert len(r.content) > 100


def test_etag_depends_on_the_full_query(client: TestClient) -> None:
    tags = {
        client.get(TILE, params=params).headers["etag"]
        for params in (
            OTSU,
            {**OTSU, "algorithm_params": '{"invert": false}'},
            {**OTSU, "algorithm": "multiotsu", "algorithm_params": '{"classes": 3}'},
            {**OTSU, "bidx": 1},
            {"url": str(NAIP), "bidx": 4, "rescale": "0,255"},
        )
    }
    assert len(tags) == 5
    assert client.get(TILE.replace("3680", "3679"), params=OTSU).headers["etag"] not in tags


def test_etag_is_the_same_in_every_worker(settings) -> None:
    """Two app instances (two workers, two replicas) give the same tag for the same tile."""
    a = TestClient(create_app(settings)).get(TILE, params=OTSU).headers["etag"]
    b = TestClient(create_app(settings)).get(TILE, params=OTSU).headers["etag"]
    assert a == b


def test_etag_changes_when_the_file_changes(client: TestClient, make_cog) -> None:
    path = make_cog(np.full((64, 64), 5, np.uint8), name="http_cache_rewrite.tif")
    params = {"url": str(path)}
    with GridExactReader(str(path)) as src:
        west, south = src.get_geographic_bounds(WGS84_CRS)[:2]
    tile = TMS.tile(west + 1e-4, south + 1e-4, 14)
    url = f"/cog/tiles/WebMercatorQuad/14/{tile.x}/{tile.y}.npy"
    old = client.get(url, params=params).headers["etag"]
    mtime = os.stat(path).st_mtime_ns
    make_cog(np.full((64, 64), 6, np.uint8), name=path.name)
    os.utime(path, ns=(mtime + 2_000_000_000, mtime + 2_000_000_000))
    r = client.get(url, params=params, headers={"If-None-Match": old})
    assert r.status_code == 200
    assert r.headers["etag"] != old
    data, valid = load_npy(r.content)
    assert set(np.unique(data[0][valid])) == {6}


def test_tilejson_has_its_own_cache_control_and_host_dependent_etag(client: TestClient) -> None:
    r = client.get(TILEJSON, params={"url": str(B08)})
    assert r.status_code == 200
    assert r.headers["cache-control"] == "public, max-age=300"
    other = client.get(TILEJSON, params={"url": str(B08)}, headers={"host": "tiles.example.com"})
    assert other.json()["tiles"][0].startswith("http://tiles.example.com/")
    assert other.headers["etag"] != r.headers["etag"]
    again = client.get(TILEJSON, params={"url": str(B08)}, headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"url": "/nowhere/missing.tif"}, 403),
        ({"url": str(NAIP), "bidx": 9}, 400),
        ({"url": str(NAIP), "bidx": 4, "algorithm": "otsu", "algorithm_params": '{"sigma": -1}'}, 400),
    ],
)
def test_errors_are_not_marked_cacheable(client: TestClient, params: dict, status: int) -> None:
    r = client.get(TILE, params=params)
    assert r.status_code == status
    assert "cache-control" not in r.headers
    assert "etag" not in r.headers


def test_missing_file_in_allowed_directory_gets_no_etag(client: TestClient, synthetic_dir) -> None:
    r = client.get(TILE, params={"url": str(synthetic_dir / "never_written.tif")}, headers={"If-None-Match": "*"})
    assert r.status_code == 404
    assert "etag" not in r.headers


def test_other_endpoints_are_left_alone(client: TestClient) -> None:
    r = client.get("/cog/info", params={"url": str(NAIP)})
    assert r.status_code == 200
    assert "etag" not in r.headers
    assert "cache-control" not in r.headers


def test_settings_switch_etag_off_and_set_cache_control(settings) -> None:
    update = {"etag": False, "cache_control_tiles": "no-store", "cache_control_tilejson": ""}
    custom = settings.model_copy(update=update)
    c = TestClient(create_app(custom))
    r = c.get(TILE, params=OTSU)
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    assert "etag" not in r.headers
    tj = c.get(TILEJSON, params={"url": str(NAIP)})
    assert "cache-control" not in tj.headers


def test_if_none_match_parsing() -> None:
    assert if_none_match('"a"', '"a"')
    assert if_none_match('W/"a"', '"a"')
    assert if_none_match('"b" , "a"', '"a"')
    assert not if_none_match('"b"', '"a"')
    assert not if_none_match('"ab"', '"a"')

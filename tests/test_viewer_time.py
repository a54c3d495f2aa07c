"""The viewer's Time section in real headless Chromium (Playwright) against a live server whose
STAC API is a real `rustac serve` of the four-date stack: a drawn area's class areas over time
(chart from `/timeseries`, click a date to show it on the map) and the change between two dates."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser
from pyproj import Transformer

from tests.conftest import SHARED_DATA
from tests.live_server import live_server
from tests.stac_time_fixtures import (
    AOI_RECT,
    CRS,
    DATETIMES,
    GROWTH,
    SCL_MASK_VALUES,
    SIZE,
    TIME_COLLECTION,
    TimeStack,
    expected_area_m2,
)
from tests.test_viewer_browser import OUTPUT, REPO, TIMEOUT_MS, Viewer, browser, npm_modules  # noqa: F401 - fixtures

PREFIX = f"/stacapi/collections/{TIME_COLLECTION}"
WATER = {"invert": True, "scope": "fixed", "threshold": 2000}
RANGE = "2020-01-01/2020-12-31"
README_TIME_SCREENSHOT = REPO / "docs" / "viewer_time.png"


@pytest.fixture(scope="module")
def time_server(npm_modules: Path, time_stack: TimeStack, time_api: str) -> Iterator[str]:  # noqa: F811
    settings = {"stac_api_url": time_api, "stac_min_zoom": "7", "stac_max_zoom": "12"}
    with live_server([], [SHARED_DATA, time_stack.directory], **settings) as base:
        yield base


def _lonlat(time_stack: TimeStack, row: float, col: float) -> tuple[float, float]:
    t = time_stack.transform
    lon, lat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(t.c + col * t.a, t.f + row * t.e)
    return lon, lat


def _fragment(time_stack: TimeStack, **extra: str) -> str:
    lon, lat = _lonlat(time_stack, SIZE / 2, SIZE / 2)
    state = {
        "kind": "stacapi",
        "collection": TIME_COLLECTION,
        "datetime": RANGE,
        "band": "custom",
        "expression": "B08",
        "algorithm": "otsu",
        "params": json.dumps(WATER),
        "imagery": "none",
        "map": f"11/{lat:.5f}/{lon:.5f}",
        **extra,
    }
    return "&".join(f"{k}={quote(str(v), safe='/,:')}" for k, v in state.items())


@pytest.fixture
def time_viewer(browser: Browser, time_server: str, npm_modules: Path) -> Iterator[Viewer]:  # noqa: F811
    pages: list[Viewer] = []

    def _open(fragment: str) -> Viewer:
        v = Viewer(browser, time_server, npm_modules, fragment)
        pages.append(v)
        return v

    yield _open  # type: ignore[misc]
    for v in pages:
        v.close()


def _wait_mask(v: Viewer, previous: str | None = None) -> str:
    v.page.wait_for_function(
        "(prev) => document.body.dataset.maskLoaded && document.body.dataset.maskLoaded !== prev",
        arg=previous,
        timeout=TIMEOUT_MS,
    )
    v.page.wait_for_timeout(600)  # Leaflet's tile fade-in
    return v.page.evaluate("document.body.dataset.maskLoaded")


def _pixel(v: Viewer, lonlat: tuple[float, float]) -> np.ndarray:
    ((x, y),) = v.container_points(np.array([lonlat]))
    return v.screenshot()[y, x]


def test_drawn_area_gives_a_chart_of_class_area_over_time_and_a_click_shows_that_date(
    time_viewer, time_server, time_stack
) -> None:
    v = time_viewer(_fragment(time_stack))
    loaded = _wait_mask(v)
    assert v.page.is_visible("#time-section")
    growth = _lonlat(time_stack, (GROWTH[0] + GROWTH[1]) / 2, (GROWTH[2] + GROWTH[3]) / 2)

    # draw a rectangle around the lake (window rows 170..330, columns 40..200)
    corners = v.container_points(np.array([_lonlat(time_stack, 170, 40), _lonlat(time_stack, 330, 200)]))
    (x0, y0), (x1, y1) = corners.tolist()
    v.page.click(".leaflet-pm-icon-rectangle")
    v.page.mouse.click(x0, y0)
    v.page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2)
    v.page.mouse.click(x1, y1)
    v.page.wait_for_function("document.body.dataset.timeseriesComputed", timeout=TIMEOUT_MS)

    rows = v.page.evaluate("otsuViewer.app.time.rows")
    geometry = v.page.evaluate("otsuViewer.app.aois.getLayers()[0].toGeoJSON().geometry")
    api = httpx.post(
        f"{time_server}{PREFIX}/timeseries",
        params={"assets": "B08", "algorithm": "otsu", "algorithm_params": json.dumps(WATER), "datetime": RANGE},
        json={"type": "Feature", "properties": {}, "geometry": geometry},
        timeout=120,
    )
    assert api.status_code == 200, api.text
    assert rows == api.json()["rows"]
    assert [r["datetime"] for r in rows] == list(DATETIMES)

    # one marker per date, left to right in date order, higher for more water
    markers = v.page.locator("#timeseries-chart circle.date-marker").all()
    assert len(markers) == 4
    cx = [float(m.get_attribute("cx")) for m in markers]
    cy = [float(m.get_attribute("cy")) for m in markers]
    assert cx == sorted(cx) and len(set(cx)) == 4
    water = [next(c["area_m2"] for c in r["classes"] if c["class"] == 1) for r in rows]
    assert np.argsort(cy).tolist() == np.argsort(water)[::-1].tolist()
    bars = v.page.locator("#timeseries-chart rect.valid-bar").all()
    assert len(bars) == 4
    heights = [float(b.get_attribute("height")) for b in bars]
    assert heights == pytest.approx([heights[0] * r["valid_fraction"] for r in rows], rel=1e-6)
    v.screenshot("viewer_timeseries.png")
    newest_on_top = _pixel(v, growth)  # all dates mosaicked newest first: 2020-06-16, GROWTH is land then

    # clicking the 2020-04-17 marker (the lake grown over GROWTH) shows that date on the map
    before = len(v.responses)
    markers[1].click()
    _wait_mask(v, loaded)
    assert v.page.evaluate("document.body.dataset.shownDate") == DATETIMES[1]
    tiles = [(s, u) for s, u in v.responses[before:] if "/tiles/WebMercatorQuad/" in u]
    assert tiles and all(s == 200 for s, _ in tiles)
    assert all(rows[1]["interval"] in httpx.URL(u).params.get("datetime", "") for _, u in tiles)
    that_date = _pixel(v, growth)
    # now painted with the mask's blue (#1f78b4): red falls, blue stays well above red
    assert newest_on_top[0] > 150, newest_on_top  # grey map under the drawn area, no mask
    assert newest_on_top[0] - that_date[0] > 60 and that_date[2] - that_date[0] > 80, (newest_on_top, that_date)
    assert "datetime=" in v.page.evaluate("location.hash")
    assert not v.page_errors and not v.errors_text()


def test_two_dates_give_the_change_layer_and_the_gained_and_lost_areas_of_the_drawn_area(
    time_viewer, time_server, time_stack
) -> None:
    mask = {"mask_asset": "SCL", "mask_values": ",".join(map(str, SCL_MASK_VALUES))}
    aoi = time_stack.polygon()["geometry"]
    v = time_viewer(_fragment(time_stack, aoi=json.dumps([aoi]), **mask))
    _wait_mask(v)
    v.page.wait_for_function("document.body.dataset.timeseriesComputed", timeout=TIMEOUT_MS)
    # the dates default to the first and last of the series
    assert v.page.input_value("#change-before") == DATETIMES[0][:10]
    assert v.page.input_value("#change-after") == DATETIMES[3][:10]
    gained_spot = _lonlat(time_stack, 270, 90)  # GROWTH, clear of CLOUD_A: water from 2020-04-17 on
    without = _pixel(v, gained_spot)

    # pick the 2020-04-17 marker on the chart, use it as the after date, show the change
    v.page.locator("#timeseries-chart circle.date-marker").nth(1).click()
    v.page.click("#use-after")
    assert v.page.input_value("#change-after") == DATETIMES[1][:10]
    before = len(v.responses)
    v.page.click("#show-change")
    v.page.wait_for_function("document.body.dataset.changeLoaded", timeout=TIMEOUT_MS)
    v.page.wait_for_selector("#change-areas table.change", timeout=TIMEOUT_MS)
    v.page.wait_for_timeout(600)
    tiles = [(s, u) for s, u in v.responses[before:] if "/change/tiles/WebMercatorQuad/" in u]
    assert tiles and all(s == 200 for s, _ in tiles), tiles
    q = httpx.URL(tiles[0][1]).params
    assert q["before"].startswith(DATETIMES[0][:10]) and q["after"].startswith(DATETIMES[1][:10])
    assert q["mask_asset"] == "SCL" and "datetime" not in q
    v.screenshot("viewer_change.png")
    if os.environ.get("TITILER_OTSU_UPDATE_SCREENSHOT"):
        README_TIME_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copy(OUTPUT / "viewer_change.png", README_TIME_SCREENSHOT)
    with_change = _pixel(v, gained_spot)
    # gained is drawn blue (#2166ac over the map): red falls, blue stays well above red
    assert without[0] - with_change[0] > 60 and with_change[2] - with_change[0] > 80, (without, with_change)

    shown = {
        int(row.get_attribute("data-class")): float(row.get_attribute("data-area-m2"))
        for row in v.page.locator("#change-areas tr[data-class]").all()
    }
    api = httpx.post(
        f"{time_server}{PREFIX}/change/areas",
        params={"assets": "B08", "algorithm": "otsu", "algorithm_params": json.dumps(WATER), **mask,
                "before": q["before"], "after": q["after"]},
        json={"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": aoi}]},
        timeout=120,
    )  # fmt: skip
    assert api.status_code == 200, api.text
    expected = {c["class"]: c["area_m2"] for c in api.json()["features"][0]["properties"]["classes"]}
    assert shown == {k: pytest.approx(expected[k]) for k in (1, 2, 3)}
    r0, r1, c0, c1 = AOI_RECT
    aoi_px = np.zeros((SIZE, SIZE), bool)
    aoi_px[r0:r1, c0:c1] = True
    change = time_stack.change(0, 1)
    assert shown[2] == pytest.approx(expected_area_m2((change == 2) & aoi_px), rel=0.005)
    assert shown[3] == pytest.approx(expected_area_m2((change == 3) & aoi_px), abs=1.0)
    assert not v.page_errors and not v.errors_text()

"""`POST /stacapi/.../timeseries`: class areas of a polygon date by date, on a real STAC API (rustac)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from fastapi.testclient import TestClient

from tests.stac_fixtures import COLLECTION, ITEM1_ID, ITEM2_ID, NDWI, StacItems, free_port, stac_settings, start_rustac
from tests.stac_time_fixtures import (
    AOI_RECT,
    DATETIMES,
    ITEM_IDS,
    SCL_MASK_VALUES,
    SIZE,
    TIME_COLLECTION,
    TimeStack,
    expected_area_m2,
    time_settings,
)
from tests.synthetic import write_cog
from titiler_otsu import create_app

PREFIX = f"/stacapi/collections/{COLLECTION}"
#: A 0.06 x 0.04 degree box inside both items' overlap.
OVERLAP_BOUNDS = (24.02, 31.85, 24.08, 31.89)
OVERLAP = {
    "type": "Polygon",
    "coordinates": [[[24.02, 31.85], [24.08, 31.85], [24.08, 31.89], [24.02, 31.89], [24.02, 31.85]]],
}


def _q(**params: object) -> dict:
    return {k: json.dumps(v) if k == "algorithm_params" else v for k, v in params.items()}


def feature_properties(body: dict) -> dict:
    """The one feature's results of an /areas answer (GeoJSON properties, or the older flat form)."""
    (feature,) = body["features"]
    return feature.get("properties", feature) if feature.get("type") == "Feature" else feature


NDWI_DATASET = _q(expression=NDWI, algorithm="otsu", algorithm_params={"scope": "dataset"})


def test_series_rows_come_in_date_order_and_equal_areas_of_each_dates_mosaic(stac_client) -> None:
    r = stac_client.post(f"{PREFIX}/timeseries", params=NDWI_DATASET, json=OVERLAP)
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert [row["items"] for row in rows] == [[ITEM1_ID], [ITEM2_ID]]
    assert rows[0]["datetime"] < rows[1]["datetime"]
    bbox = ",".join(repr(v) for v in OVERLAP_BOUNDS)
    for row in rows:
        areas = stac_client.post(
            f"{PREFIX}/areas",
            params={**NDWI_DATASET, "datetime": row["interval"], "bbox": bbox},
            json={"type": "Feature", "properties": {}, "geometry": OVERLAP},
        )
        assert areas.status_code == 200, areas.text
        expected = feature_properties(areas.json())
        assert row["thresholds"] == expected["thresholds"]
        assert [(c["class"], c["pixels"], c["area_m2"]) for c in row["classes"]] == [
            (c["class"], c["pixels"], c["area_m2"]) for c in expected["classes"]
        ]
        assert row["valid_fraction"] == 1.0 and row["decimation"] == 1
    # the two dates really differ (different thresholds and water areas)
    assert rows[0]["thresholds"] != rows[1]["thresholds"]


def test_csv_holds_the_same_rows_as_json(stac_client) -> None:
    as_json = stac_client.post(f"{PREFIX}/timeseries", params=NDWI_DATASET, json=OVERLAP).json()["rows"]
    r = stac_client.post(f"{PREFIX}/timeseries", params={**NDWI_DATASET, "format": "csv"}, json=OVERLAP)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(r.text)))
    assert len(lines) == len(as_json)
    for line, row in zip(lines, as_json, strict=True):
        assert line["datetime"] == row["datetime"] and line["items"].split(" ") == row["items"]
        assert [float(t) for t in line["thresholds"].split(" ")] == row["thresholds"]
        assert float(line["valid_fraction"]) == row["valid_fraction"]
        for c in row["classes"]:
            assert int(line[f"class_{c['class']}_pixels"]) == c["pixels"]
            assert float(line[f"class_{c['class']}_area_m2"]) == c["area_m2"]


def test_more_items_than_timeseries_max_items_is_a_400_naming_the_setting(stac_items: StacItems, rustac_api) -> None:
    client = TestClient(create_app(stac_settings(stac_items, rustac_api, timeseries_max_items=1)))
    r = client.post(f"{PREFIX}/timeseries", params=NDWI_DATASET, json=OVERLAP)
    assert r.status_code == 400
    assert "TIMESERIES_MAX_ITEMS" in r.json()["detail"] and "datetime" in r.json()["detail"]
    narrowed = client.post(
        f"{PREFIX}/timeseries", params={**NDWI_DATASET, "datetime": "2020-03-01/2020-03-20"}, json=OVERLAP
    )
    assert narrowed.status_code == 200 and [row["items"] for row in narrowed.json()["rows"]] == [[ITEM1_ID]]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"type": "FeatureCollection", "features": []}, 400, "one polygon"),
        ({"type": "Point", "coordinates": [24.0, 31.9]}, 422, "type"),
        (
            {"type": "Polygon", "coordinates": [[[10.0, 1.0], [10.1, 1.0], [10.1, 1.1], [10.0, 1.0]]]},
            404,
            "does not overlap the extent",
        ),
    ],
)
def test_bad_polygons_get_a_4xx_saying_what_to_change(stac_client, body, status, words) -> None:
    r = stac_client.post(f"{PREFIX}/timeseries", params=NDWI_DATASET, json=body)
    assert r.status_code == status, r.text
    assert words in json.dumps(r.json()["detail"])


# ---------------------------------------------------------------------- the four-date stack
TIME_PREFIX = f"/stacapi/collections/{TIME_COLLECTION}"
#: Water = B08 below 2000 (the stack's water is <= 799, land >= 4000, clouds >= 9000).
WATER_FIXED = _q(assets="B08", algorithm="otsu", algorithm_params={"invert": True, "scope": "fixed", "threshold": 2000})
SPLIT_COLLECTION = "otsu-time-split"
SPLIT_IDS = ("split_20200318", "split_20200417_west", "split_20200417_east")
#: The split items' datetimes: the east half five seconds after the west half, same day.
SPLIT_DATETIMES = (DATETIMES[0], DATETIMES[1], DATETIMES[1].replace(":00Z", ":05Z"))
HALF = SIZE // 2


def window_box(rect: tuple[int, int, int, int]) -> np.ndarray:
    r0, r1, c0, c1 = rect
    out = np.zeros((SIZE, SIZE), bool)
    out[r0:r1, c0:c1] = True
    return out


AOI = window_box(AOI_RECT)
WEST = window_box((0, SIZE, 0, HALF))


@pytest.fixture(scope="module")
def stack_client(time_stack: TimeStack, time_api: str) -> TestClient:
    """The stack's API; mosaic grid at zoom 12 (~32 m ground pixels over 100 m data: fast, areas to 1e-4)."""
    return TestClient(create_app(time_settings(time_stack, time_api, stac_max_zoom=12)), raise_server_exceptions=False)


def _split_item(time_stack: TimeStack, directory: Path, source: int, item_id: str, when: str, keep: np.ndarray) -> Path:
    """A copy of stack item `source` holding only the `keep` pixels of its B08 (the rest nodata)."""
    item = json.loads(time_stack.items[source].read_text())
    item["id"], item["collection"] = item_id, SPLIT_COLLECTION
    item["properties"]["datetime"] = when
    b08 = Path(item["assets"]["B08"]["href"].removeprefix("file://"))
    with rasterio.open(b08) as ds:
        data, transform = ds.read(1), ds.transform
    path = write_cog(directory / f"{item_id}_B08.tif", np.where(keep, data, 0).astype(data.dtype), crs="EPSG:32634",
                     transform=transform, nodata=0, blocksize=64)  # fmt: skip
    item["assets"]["B08"]["href"] = path.as_uri()
    out = directory / f"{item_id}.json"
    out.write_text(json.dumps(item))
    return out


@pytest.fixture(scope="module")
def split_client(time_stack: TimeStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A real STAC API with date 0 whole and date 1 as two same-day items (west / east half)."""
    directory = tmp_path_factory.mktemp("time_split")
    collection = json.loads(time_stack.collection.read_text())
    collection["id"] = SPLIT_COLLECTION
    (directory / "collection.json").write_text(json.dumps(collection))
    everything = np.ones((SIZE, SIZE), bool)
    items = [
        _split_item(time_stack, directory, 0, SPLIT_IDS[0], SPLIT_DATETIMES[0], everything),
        _split_item(time_stack, directory, 1, SPLIT_IDS[1], SPLIT_DATETIMES[1], WEST),
        _split_item(time_stack, directory, 1, SPLIT_IDS[2], SPLIT_DATETIMES[2], ~WEST),
    ]
    port = free_port()
    proc = start_rustac([directory / "collection.json", *items], port, collection=SPLIT_COLLECTION)
    try:
        settings = time_settings(time_stack, f"http://127.0.0.1:{port}", stac_max_zoom=12)
        settings.allowed_sources = [*(settings.allowed_sources or []), str(directory)]
        yield TestClient(create_app(settings), raise_server_exceptions=False)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _water_area(row: dict) -> float:
    return next(c["area_m2"] for c in row["classes"] if c["class"] == 1)


def test_stack_rows_are_in_date_order_with_the_fixtures_exact_water_areas(stack_client, time_stack) -> None:
    r = stack_client.post(f"{TIME_PREFIX}/timeseries", params=WATER_FIXED, json=time_stack.polygon())
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert [row["datetime"] for row in rows] == list(DATETIMES)
    assert [row["items"] for row in rows] == [[i] for i in ITEM_IDS]
    for i, row in enumerate(rows):
        # without masking, otsu sees cloud shadow as water and clouds as land
        assert _water_area(row) == pytest.approx(expected_area_m2(time_stack._unmasked_water(i) & AOI), rel=0.005)
        assert row["area_m2"] == pytest.approx(expected_area_m2(AOI), rel=0.005)
        assert row["valid_fraction"] == 1.0 and row["thresholds"] == [2000.0] and row["decimation"] == 1
    assert len({round(_water_area(row)) for row in rows}) == 4  # four different water extents


def test_stack_csv_equals_json(stack_client, time_stack) -> None:
    url = f"{TIME_PREFIX}/timeseries"
    rows = stack_client.post(url, params=WATER_FIXED, json=time_stack.polygon()).json()["rows"]
    text = stack_client.post(url, params={**WATER_FIXED, "format": "csv"}, json=time_stack.polygon()).text
    lines = list(csv.DictReader(io.StringIO(text)))
    assert [line["datetime"] for line in lines] == [row["datetime"] for row in rows]
    for line, row in zip(lines, rows, strict=True):
        assert line["items"].split(" ") == row["items"] and line["interval"] == row["interval"]
        assert float(line["valid_fraction"]) == row["valid_fraction"] and int(line["pixels"]) == row["pixels"]
        assert float(line["area_m2"]) == row["area_m2"]
        for c in row["classes"]:
            assert int(line[f"class_{c['class']}_pixels"]) == c["pixels"]
            assert float(line[f"class_{c['class']}_area_m2"]) == c["area_m2"]


def test_one_thread_and_four_threads_give_the_same_rows(time_stack, time_api) -> None:
    answers = []
    for threads in (1, 4):
        settings = time_settings(time_stack, time_api, stac_max_zoom=12, timeseries_threads=threads)
        client = TestClient(create_app(settings))
        params = _q(
            assets="B08",
            algorithm="otsu",
            algorithm_params={"invert": True},
            bbox=",".join(map(repr, time_stack.bbox())),
        )
        r = client.post(f"{TIME_PREFIX}/timeseries", params=params, json=time_stack.polygon())
        assert r.status_code == 200, r.text
        answers.append(r.json())
    assert answers[0] == answers[1]
    assert len({tuple(row["thresholds"]) for row in answers[0]["rows"]}) > 1  # dataset scope: one per date


def test_group_item_gives_a_row_per_half_item_with_its_valid_fraction(split_client, time_stack) -> None:
    r = split_client.post(
        f"/stacapi/collections/{SPLIT_COLLECTION}/timeseries", params=WATER_FIXED, json=time_stack.polygon()
    )
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert [row["items"] for row in rows] == [[i] for i in SPLIT_IDS]
    west_share = expected_area_m2(AOI & WEST) / expected_area_m2(AOI)
    assert rows[0]["valid_fraction"] == 1.0
    assert rows[1]["valid_fraction"] == pytest.approx(west_share, rel=0.005)
    assert rows[2]["valid_fraction"] == pytest.approx(1 - west_share, rel=0.005)
    water = time_stack._unmasked_water(1) & AOI
    assert _water_area(rows[1]) == pytest.approx(expected_area_m2(water & WEST), rel=0.005)
    assert _water_area(rows[2]) == pytest.approx(expected_area_m2(water & ~WEST), rel=0.005)


def test_group_day_mosaics_the_same_day_items_into_one_row(split_client, stack_client, time_stack) -> None:
    url = f"/stacapi/collections/{SPLIT_COLLECTION}/timeseries"
    r = split_client.post(url, params={**WATER_FIXED, "group": "day"}, json=time_stack.polygon())
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert [row["datetime"] for row in rows] == ["2020-03-18", "2020-04-17"]
    assert rows[1]["items"] == [SPLIT_IDS[2], SPLIT_IDS[1]]  # mosaic order: newest first
    assert rows[1]["valid_fraction"] == 1.0 and rows[1]["nodata_pixels"] == 0
    whole = stack_client.post(f"{TIME_PREFIX}/timeseries", params=WATER_FIXED, json=time_stack.polygon()).json()
    assert rows[1]["classes"] == whole["rows"][1]["classes"]  # the two halves mosaicked = the whole item
    assert _water_area(rows[1]) == pytest.approx(expected_area_m2(time_stack._unmasked_water(1) & AOI), rel=0.005)
    day_params = {**WATER_FIXED, "group": "day", "datetime": rows[1]["interval"]}
    day = split_client.post(url, params=day_params, json=time_stack.polygon())
    assert [row["items"] for row in day.json()["rows"]] == [rows[1]["items"]]


def test_a_polygon_beyond_max_aoi_pixels_is_read_decimated_and_flagged(time_stack, time_api) -> None:
    client = TestClient(create_app(time_settings(time_stack, time_api, stac_max_zoom=12, max_aoi_pixels=50_000)))
    r = client.post(f"{TIME_PREFIX}/timeseries", params=WATER_FIXED, json=time_stack.polygon())
    assert r.status_code == 200, r.text
    for i, row in enumerate(r.json()["rows"]):
        assert row["decimation"] > 1 and row["overview"] is True
        assert any("MAX_AOI_PIXELS" in note for note in row["notes"])
        assert _water_area(row) == pytest.approx(expected_area_m2(time_stack._unmasked_water(i) & AOI), rel=0.1)


# ---------------------------------------------------------------------- masked clouds
SCL_MASKED = {**WATER_FIXED, "mask_asset": "SCL", "mask_values": ",".join(map(str, SCL_MASK_VALUES))}


def test_masked_clouds_lower_valid_fraction_by_their_exact_area_and_leave_the_true_water(
    stack_client, time_stack
) -> None:
    r = stack_client.post(f"{TIME_PREFIX}/timeseries", params=SCL_MASKED, json=time_stack.polygon())
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    aoi_area = expected_area_m2(AOI)
    for i, row in enumerate(rows):
        cloud = time_stack.cloud(i) & AOI
        assert row["valid_fraction"] == pytest.approx(1 - expected_area_m2(cloud) / aoi_area, rel=0.005)
        assert row["masked_area_m2"] == pytest.approx(expected_area_m2(cloud), rel=0.005, abs=1.0)
        assert _water_area(row) == pytest.approx(expected_area_m2(time_stack.water(i) & AOI), rel=0.005)
    assert [row["valid_fraction"] == 1.0 for row in rows] == [not time_stack.cloud(i)[AOI].any() for i in range(4)]


def test_dataset_scope_thresholds_of_masked_dates_are_otsu_of_their_unmasked_pixels(stack_client, time_stack) -> None:
    bbox = ",".join(map(repr, time_stack.bbox()))
    params = _q(assets="B08", algorithm="otsu", algorithm_params={"invert": True}, bbox=bbox,
                mask_asset="SCL", mask_values="3,8,9,10")  # fmt: skip
    rows = stack_client.post(f"{TIME_PREFIX}/timeseries", params=params, json=time_stack.polygon()).json()["rows"]
    for i, row in enumerate(rows):
        threshold = stack_client.get(f"{TIME_PREFIX}/threshold", params={**params, "datetime": row["interval"]}).json()
        assert row["thresholds"] == threshold["thresholds"]
        assert (threshold["masked_pixels"] > 0) == bool(time_stack.cloud(i).any())


def test_a_date_masked_entirely_is_a_row_with_no_valid_pixel_not_an_error(stack_client, time_stack) -> None:
    everything = {**WATER_FIXED, "mask_asset": "SCL", "mask_values": ",".join(map(str, range(1, 12)))}
    everything["algorithm_params"] = json.dumps({"invert": True})  # scope dataset: no valid pixel to histogram
    r = stack_client.post(f"{TIME_PREFIX}/timeseries", params=everything, json=time_stack.polygon())
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert len(rows) == 4
    for row in rows:
        assert row["valid_fraction"] == 0.0 and row["pixels"] == 0 and row["thresholds"] == [None]
        assert row["masked_pixels"] == row["nodata_pixels"] > 0
        assert row["masked_area_m2"] == pytest.approx(expected_area_m2(AOI), rel=0.005)


def test_an_item_with_no_data_over_the_polygon_is_a_row_with_a_note_not_a_failed_series(
    time_stack, tmp_path_factory
) -> None:
    directory = tmp_path_factory.mktemp("time_misplaced")
    collection = json.loads(time_stack.collection.read_text())
    collection["id"] = "otsu-time-misplaced"
    (directory / "collection.json").write_text(json.dumps(collection))
    paths = []
    for i, shift in ((0, 0.0), (1, 100_000.0)):  # date 1's raster lies 100 km east of its STAC footprint
        item = json.loads(time_stack.items[i].read_text())
        item["collection"] = collection["id"]
        item["assets"] = {"B08": item["assets"]["B08"]}
        with rasterio.open(Path(item["assets"]["B08"]["href"].removeprefix("file://"))) as ds:
            data, t = ds.read(1), ds.transform
        moved = Affine(t.a, t.b, t.c + shift, t.d, t.e, t.f)
        cog = write_cog(directory / f"{item['id']}_B08.tif", data, crs="EPSG:32634", transform=moved, nodata=0)
        item["assets"]["B08"].update(href=cog.as_uri(), **{"proj:transform": list(moved)[:6]})
        paths.append(directory / f"{item['id']}.json")
        paths[-1].write_text(json.dumps(item))
    port = free_port()
    proc = start_rustac([directory / "collection.json", *paths], port, collection=collection["id"])
    try:
        settings = time_settings(time_stack, f"http://127.0.0.1:{port}", stac_max_zoom=12)
        settings.allowed_sources = [*(settings.allowed_sources or []), str(directory)]
        client = TestClient(create_app(settings), raise_server_exceptions=False)
        params = _q(assets="B08", algorithm="otsu", algorithm_params={"invert": True})  # dataset scope
        r = client.post(f"/stacapi/collections/{collection['id']}/timeseries", params=params, json=time_stack.polygon())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert r.status_code == 200, r.text
    good, misplaced = r.json()["rows"]
    assert good["valid_fraction"] == 1.0 and _water_area(good) > 0
    assert misplaced["items"] == [ITEM_IDS[1]] and misplaced["valid_fraction"] == 0.0 and misplaced["pixels"] == 0
    assert misplaced["thresholds"] == [None] and "No data of these items" in misplaced["notes"][0]

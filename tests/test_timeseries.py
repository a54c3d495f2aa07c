"""`POST /stacapi/.../timeseries`: class areas of a polygon date by date, on a real STAC API (rustac)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from fastapi.testclient import TestClient

from tests.stac_fixtures import COLLECTION, ITEM1_ID, ITEM2_ID, NDWI, StacItems, stac_settings
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

"""Behaviour of the HTTP API on the real rasters: outputs, scopes, headers, endpoints."""

from __future__ import annotations

import io
import json

import morecantile
import numpy as np
import pytest
from PIL import Image
from skimage.filters import threshold_otsu

from tests.conftest import B08, NAIP, RGB, load_npy

TMS = morecantile.tms.get("WebMercatorQuad")
NAIP_TILE = TMS.tile(-99.15, 47.02, 14)
NAIP_URL = f"/cog/tiles/WebMercatorQuad/14/{NAIP_TILE.x}/{NAIP_TILE.y}"


def _q(**params: object) -> dict:
    q = {"url": str(NAIP), "bidx": 4}
    for k, v in params.items():
        q[k] = json.dumps(v) if k == "algorithm_params" else v
    return q


def _thresholds(r) -> list[float]:
    return [float(t) for t in r.headers["x-otsu-thresholds"].split(",")]


def test_png_overlay_is_rgba_with_transparent_background(client) -> None:
    r = client.get(NAIP_URL + ".png", params=_q(algorithm="otsu", algorithm_params={"invert": True}))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = np.asarray(Image.open(io.BytesIO(r.content)))
    assert img.shape == (256, 256, 4)
    alpha = img[..., 3]
    raw = client.get(NAIP_URL + ".npy", params=_q(algorithm="otsu", algorithm_params={"invert": True}))
    classes, valid = load_npy(raw.content)
    assert ((alpha > 0) == ((classes[0] == 1) & valid)).all()
    assert 0.05 < (alpha > 0).mean() < 0.95


def test_default_format_is_png_overlay_and_webp_works(client) -> None:
    r = client.get(NAIP_URL, params=_q(algorithm="otsu"))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    r = client.get(NAIP_URL + ".webp", params=_q(algorithm="otsu"))
    assert r.status_code == 200 and r.headers["content-type"] == "image/webp"


def test_colormap_overrides_class_colours(client) -> None:
    cmap = json.dumps({"0": [0, 0, 0, 0], "1": [255, 0, 0, 255]})
    r = client.get(NAIP_URL + ".png", params=_q(algorithm="otsu", algorithm_params={"invert": True}, colormap=cmap))
    img = np.asarray(Image.open(io.BytesIO(r.content)))
    fg = img[..., 3] > 0
    assert fg.any() and (img[fg][:, :3] == [255, 0, 0]).all()


def test_npy_and_tif_give_raw_class_values_and_mask(client) -> None:
    r = client.get(NAIP_URL + ".npy", params=_q(algorithm="multiotsu", algorithm_params={"classes": 4}))
    classes, valid = load_npy(r.content)
    assert classes.dtype == np.uint8 and classes.shape == (1, 256, 256)
    assert set(np.unique(classes[0][valid])) <= {0, 1, 2, 3}
    assert len(np.unique(classes[0][valid])) >= 3
    r = client.get(NAIP_URL + ".tif", params=_q(algorithm="otsu"))
    assert r.status_code == 200 and r.headers["content-type"] == "image/tiff; application=geotiff"
    from rasterio.io import MemoryFile

    with MemoryFile(r.content) as mem, mem.open() as ds:
        assert ds.dtypes[0] == "uint8" and ds.crs is not None
        assert set(np.unique(ds.read(1))) <= {0, 1}


def test_binary_classes_follow_threshold_and_invert(client) -> None:
    raw = load_npy(client.get(NAIP_URL + ".npy", params=_q()).content)[0][0]
    for invert in (False, True):
        r = client.get(NAIP_URL + ".npy", params=_q(algorithm="otsu", algorithm_params={"invert": invert}))
        (t,) = _thresholds(r)
        classes = load_npy(r.content)[0][0]
        expected = (raw <= t) if invert else (raw > t)
        np.testing.assert_array_equal(classes, expected.astype(np.uint8))


def test_dataset_scope_uses_one_threshold_for_every_tile(client) -> None:
    seen = set()
    for dx in range(-1, 2):
        r = client.get(
            f"/cog/tiles/WebMercatorQuad/14/{NAIP_TILE.x + dx}/{NAIP_TILE.y}.png", params=_q(algorithm="otsu")
        )
        assert r.status_code == 200
        seen.add(r.headers["x-otsu-thresholds"])
    assert len(seen) == 1
    body = client.get("/cog/threshold", params=_q(algorithm="otsu")).json()
    assert seen == {f"{body['thresholds'][0]:.10g}"}
    # close to the README's full-resolution Otsu (about 92)
    assert 85 <= body["thresholds"][0] <= 97


def test_tile_scope_thresholds_come_from_the_tile_pixels(client) -> None:
    r = client.get(NAIP_URL + ".npy", params=_q(algorithm="otsu", algorithm_params={"scope": "tile"}))
    raw = load_npy(client.get(NAIP_URL + ".npy", params=_q()).content)[0][0]
    assert _thresholds(r) == [float(threshold_otsu(raw.astype(np.uint8)))]


def test_tile_scope_thresholds_differ_between_tiles(client) -> None:
    values = set()
    for z, (lon, lat) in [(14, (-99.15, 47.02)), (14, (-99.17, 47.03)), (15, (-99.13, 47.01))]:
        t = TMS.tile(lon, lat, z)
        r = client.get(
            f"/cog/tiles/WebMercatorQuad/{z}/{t.x}/{t.y}.png",
            params=_q(algorithm="otsu", algorithm_params={"scope": "tile"}),
        )
        values.add(r.headers["x-otsu-thresholds"])
    assert len(values) > 1


def test_fixed_scope_uses_given_thresholds(client) -> None:
    r = client.get(
        NAIP_URL + ".png",
        params=_q(algorithm="multiotsu", algorithm_params={"scope": "fixed", "classes": 3, "thresholds": [50, 120.5]}),
    )
    assert r.status_code == 200 and _thresholds(r) == [50.0, 120.5]


def test_threshold_endpoint_returns_contract_keys_and_histogram(client) -> None:
    body = client.get("/cog/threshold", params=_q(algorithm="multiotsu", algorithm_params={"classes": 3})).json()
    assert set(body) >= {"algorithm", "scope", "thresholds", "nbins", "histogram", "pixels"}
    assert body["algorithm"] == "multiotsu" and body["scope"] == "dataset" and len(body["thresholds"]) == 2
    counts, edges = body["histogram"]["counts"], body["histogram"]["edges"]
    assert len(edges) == len(counts) + 1 == body["nbins"] + 1 and sum(counts) == body["pixels"] > 0
    assert edges[0] < body["thresholds"][0] < body["thresholds"][1] < edges[-1]


def test_threshold_bbox_restricts_the_histogram(client) -> None:
    whole = client.get("/cog/threshold", params=_q()).json()
    part = client.get("/cog/threshold", params=_q(bbox="-99.16,47.01,-99.14,47.03")).json()
    assert 0 < part["pixels"] < whole["pixels"] and part["bbox"] == [-99.16, 47.01, -99.14, 47.03]


def test_uint16_dataset_threshold_matches_overview_otsu(client) -> None:
    body = client.get("/cog/threshold", params={"url": str(B08)}).json()
    assert body["nbins"] == 256 and abs(body["thresholds"][0] - 3049) < 150


def test_every_segmented_response_has_thresholds_header(client) -> None:
    for algo, params in [("otsu", {}), ("multiotsu", {"classes": 5}), ("otsu", {"scope": "tile", "sigma": 2})]:
        r = client.get(NAIP_URL + ".png", params=_q(algorithm=algo, algorithm_params=params))
        assert r.status_code == 200
        assert len(_thresholds(r)) == (params.get("classes", 2) - 1)


def test_expression_feeds_the_algorithm(client) -> None:
    q = {"url": str(NAIP), "expression": "(b4-b1)/(b4+b1)", "algorithm": "otsu"}
    r = client.get(NAIP_URL + ".npy", params=q)
    assert r.status_code == 200
    (t,) = _thresholds(r)
    assert -1 < t < 1


def test_titiler_default_algorithms_keep_working(client) -> None:
    from tests.conftest import DEM

    with __import__("rasterio").open(DEM) as ds:
        from rasterio.warp import transform_bounds

        w, s, e, n = transform_bounds(ds.crs, "epsg:4326", *ds.bounds)
    t = TMS.tile((w + e) / 2, (s + n) / 2, 16)
    r = client.get(
        f"/cog/tiles/WebMercatorQuad/16/{t.x}/{t.y}.png",
        params={"url": str(DEM), "algorithm": "hillshade", "algorithm_params": json.dumps({"buffer": 3})},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"


def test_algorithms_are_listed_with_parameter_schemas(client) -> None:
    algos = {a["id"]: a for a in client.get("/algorithms").json()["algorithms"]}
    assert {"otsu", "multiotsu", "hillshade"} <= set(algos)
    assert {"scope", "threshold", "nbins", "sigma", "opening", "closing", "invert"} <= set(algos["otsu"]["parameters"])
    assert {"classes", "thresholds"} <= set(algos["multiotsu"]["parameters"])
    assert algos["multiotsu"]["parameters"]["classes"]["maximum"] == 5
    meta = client.get("/algorithms/otsu").json()
    assert meta["inputs"]["nbands"] == 1 and meta["outputs"]["dtype"] == "uint8"


def test_tilejson_wmts_info_statistics_work(client) -> None:
    q = _q(algorithm="otsu", algorithm_params={"invert": True})
    tj = client.get("/cog/WebMercatorQuad/tilejson.json", params=q).json()
    assert tj["minzoom"] == 12 and "algorithm=otsu" in tj["tiles"][0]
    r = client.get("/cog/WebMercatorQuad/WMTSCapabilities.xml", params=q)
    assert r.status_code == 200 and "<TileMatrixSet>" in r.text.replace(" ", "") or "TileMatrixSet" in r.text
    assert "algorithm=otsu" in r.text
    assert client.get("/cog/info", params={"url": str(NAIP)}).json()["count"] == 4
    stats = client.get("/cog/statistics", params=_q(algorithm="otsu")).json()
    assert "class" in stats


def test_app_endpoints(client) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/docs").status_code == 200
    assert "/cog/threshold" in client.get("/openapi.json").json()["paths"]
    assert client.get("/").status_code == 200
    assert client.get("/sources").json() == []


BAD_REQUESTS = [
    ("missing file", NAIP_URL + ".png", {"url": str(NAIP.parent / "nope.tif")}, 404),
    ("not a raster", NAIP_URL + ".png", {"url": str(NAIP.parent / "README.md")}, 400),
    ("outside allow-list", NAIP_URL + ".png", {"url": "/etc/passwd"}, 403),
    ("vsi prefix", NAIP_URL + ".png", {"url": "/vsicurl/http://127.0.0.1/x.tif"}, 403),
    ("unknown algorithm", NAIP_URL + ".png", _q(algorithm="nope"), 422),
    ("invalid JSON params", NAIP_URL + ".png", {**_q(algorithm="otsu"), "algorithm_params": "{bad"}, 400),
    ("unknown param key", NAIP_URL + ".png", _q(algorithm="otsu", algorithm_params={"sigmaa": 1}), 400),
    ("classes out of range", NAIP_URL + ".png", _q(algorithm="multiotsu", algorithm_params={"classes": 9}), 400),
    ("negative sigma", NAIP_URL + ".png", _q(algorithm="otsu", algorithm_params={"sigma": -1}), 400),
    ("fixed without threshold", NAIP_URL + ".png", _q(algorithm="otsu", algorithm_params={"scope": "fixed"}), 400),
    (
        "wrong thresholds count",
        NAIP_URL + ".png",
        _q(algorithm="multiotsu", algorithm_params={"scope": "fixed", "classes": 3, "thresholds": [1]}),
        400,
    ),
    ("wrong type", NAIP_URL + ".png", _q(algorithm="otsu", algorithm_params={"invert": "maybe"}), 400),
    ("multi-band without bidx", NAIP_URL + ".png", {"url": str(NAIP), "algorithm": "otsu"}, 400),
    ("tile outside bounds", "/cog/tiles/WebMercatorQuad/14/0/0.png", _q(algorithm="otsu"), 404),
    ("unknown TMS", f"/cog/tiles/NoSuchTMS/14/{NAIP_TILE.x}/{NAIP_TILE.y}.png", _q(), 422),
    ("band out of range", NAIP_URL + ".png", {"url": str(NAIP), "bidx": 9}, 400),
    ("tilesize too large", NAIP_URL + ".png", {**_q(), "tilesize": 100000}, 400),
    ("jpeg overlay", NAIP_URL + ".jpg", _q(algorithm="otsu"), 400),
    ("non-nearest resampling", NAIP_URL + ".png", {**_q(), "resampling": "bilinear"}, 400),
    (
        "halo over the limit",
        NAIP_URL + ".png",
        _q(algorithm="otsu", algorithm_params={"sigma": 16, "opening": 16, "closing": 16}),
        400,
    ),
    ("bad bbox", "/cog/threshold", {**_q(), "bbox": "1,2,3"}, 400),
    ("threshold on non-segmentation algorithm", "/cog/threshold", _q(algorithm="hillshade"), 400),
]


@pytest.mark.parametrize(("case", "path", "params", "status"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_input_gets_4xx_json_with_a_message(client, case: str, path: str, params: dict, status: int) -> None:
    r = client.get(path, params=params)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert detail and len(str(detail)) > 10
    # and the server keeps serving
    assert client.get(NAIP_URL + ".png", params=_q(algorithm="otsu")).status_code == 200


def test_rgb_without_bidx_error_says_how_to_pick_a_band(client) -> None:
    t = TMS.tile(-77.76, 24.56, 9)
    r = client.get(f"/cog/tiles/WebMercatorQuad/9/{t.x}/{t.y}.png", params={"url": str(RGB), "algorithm": "otsu"})
    assert r.status_code == 400 and "bidx" in r.json()["detail"] and "expression" in r.json()["detail"]


def test_scale_suffix_doubles_the_tilesize(client) -> None:
    r = client.get(NAIP_URL + "@2x.npy", params=_q(algorithm="otsu"))
    assert r.status_code == 200, r.text
    classes, _ = load_npy(r.content)
    assert classes.shape == (1, 512, 512)
    explicit = client.get(NAIP_URL + ".npy", params={**_q(algorithm="otsu"), "tilesize": 512})
    assert explicit.content == r.content
    assert client.get(NAIP_URL + "@2x", params=_q()).status_code == 200

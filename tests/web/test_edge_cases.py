"""Edge cases on generated COGs: nodata, NaN, uint16, float32, int16, uniform, all-nodata."""

from __future__ import annotations

import json

import morecantile
import numpy as np
import pytest
from rio_tiler.io import Reader

from tests.conftest import load_npy

TMS = morecantile.tms.get("WebMercatorQuad")


def _centre_tile(path, zoom_offset: int = 0) -> tuple[int, int, int]:
    with Reader(str(path)) as src:
        w, s, e, n = src.get_geographic_bounds("epsg:4326")
        z = src.maxzoom + zoom_offset
    t = TMS.tile((w + e) / 2, (s + n) / 2, z)
    return z, t.x, t.y


def _get(client, path, algorithm="otsu", params=None, fmt="npy", **extra):
    z, x, y = _centre_tile(path)
    q = {"url": str(path), "algorithm": algorithm, "algorithm_params": json.dumps(params or {}), **extra}
    return client.get(f"/cog/tiles/WebMercatorQuad/{z}/{x}/{y}.{fmt}", params=q)


def _bimodal(dtype, shape=(512, 512), lo=100, hi=200, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    dark = (xx - shape[1] / 2) ** 2 + (yy - shape[0] / 2) ** 2 < (shape[0] / 4) ** 2
    data = np.where(dark, lo, hi) + rng.normal(0, (hi - lo) / 10, shape)
    return data.astype(dtype)


def test_uint16_with_nodata_border_segments_and_masks_nodata(client, make_cog) -> None:
    data = _bimodal("uint16", lo=1000, hi=3000)
    data[:, :100] = 0
    path = make_cog(data, nodata=0)
    r = _get(client, path, params={"invert": True})
    assert r.status_code == 200, r.text
    (t,) = [float(v) for v in r.headers["x-otsu-thresholds"].split(",")]
    assert 1300 < t < 2700
    classes, valid = load_npy(r.content)
    assert (~valid).any() and valid.any()
    assert (classes[0][~valid] == 0).all()


def test_float32_nan_pixels_are_invalid_not_errors(client, make_cog) -> None:
    data = _bimodal("float32", lo=0.1, hi=0.6)
    data[200:260, :] = np.nan
    path = make_cog(data, nodata=float("nan"))
    r = _get(client, path, params={"sigma": 1.5})
    assert r.status_code == 200, r.text
    (t,) = [float(v) for v in r.headers["x-otsu-thresholds"].split(",")]
    assert 0.2 < t < 0.5
    raw = client.get(r.url.path, params={"url": str(path)})
    assert raw.status_code == 200
    rdata, rvalid = load_npy(raw.content)
    classes, valid = load_npy(r.content)
    assert not np.isnan(rdata[0][rvalid]).any()
    np.testing.assert_array_equal(valid, rvalid)


def test_int16_negative_values_multiotsu(client, make_cog) -> None:
    data = _bimodal("int16", lo=-500, hi=400)
    path = make_cog(data, nodata=-32768)
    r = _get(client, path, algorithm="multiotsu", params={"classes": 3})
    assert r.status_code == 200, r.text
    ts = [float(v) for v in r.headers["x-otsu-thresholds"].split(",")]
    assert len(ts) == 2 and ts[0] <= ts[1]


def test_uniform_source_gives_one_class_without_error(client, make_cog) -> None:
    path = make_cog(np.full((256, 256), 42, dtype="uint8"), nodata=0)
    for algorithm, params in [("otsu", {}), ("multiotsu", {"classes": 4}), ("otsu", {"scope": "tile"})]:
        r = _get(client, path, algorithm=algorithm, params=params)
        assert r.status_code == 200, r.text
        assert set(float(v) for v in r.headers["x-otsu-thresholds"].split(",")) == {42.0}
        classes, valid = load_npy(r.content)
        assert valid.any() and (classes[0][valid] == 0).all()
    body = client.get("/cog/threshold", params={"url": str(path)}).json()
    assert body["thresholds"] == [42.0] and body["pixels"] > 0


def test_all_nodata_source_gives_null_thresholds_and_empty_tiles(client, make_cog) -> None:
    path = make_cog(np.zeros((256, 256), dtype="uint16"), nodata=0)
    body = client.get("/cog/threshold", params={"url": str(path)}).json()
    assert body["thresholds"] == [None] and body["pixels"] == 0
    r = _get(client, path)
    assert r.status_code == 200 and r.headers["x-otsu-thresholds"] == "nan"
    classes, valid = load_npy(r.content)
    assert not valid.any()
    png = _get(client, path, fmt="png")
    assert png.status_code == 200


def test_tile_scope_on_a_tile_without_valid_pixels(client, make_cog) -> None:
    data = _bimodal("uint8")
    data[:, :] = 0
    data[:10, :10] = 100
    path = make_cog(data, nodata=0)
    r = _get(client, path, params={"scope": "tile"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_seamless_on_synthetic_dtypes(client, make_cog, dtype: str) -> None:
    scale = {"uint8": 1, "uint16": 20, "float32": 0.01}[dtype]
    data = (_bimodal("float64", shape=(700, 900)) * scale).astype(dtype)
    data[:50] = 0
    path = make_cog(data, nodata=0)
    z, x, y = _centre_tile(path, zoom_offset=-1)
    q = {"url": str(path), "algorithm": "otsu", "algorithm_params": json.dumps({"sigma": 2, "opening": 1})}
    parent = load_npy(client.get(f"/cog/tiles/WebMercatorQuad/{z}/{x}/{y}.npy", params={**q, "tilesize": 512}).content)
    for dy in (0, 1):
        for dx in (0, 1):
            r = client.get(f"/cog/tiles/WebMercatorQuad/{z + 1}/{2 * x + dx}/{2 * y + dy}.npy", params=q)
            sl = (slice(dy * 256, dy * 256 + 256), slice(dx * 256, dx * 256 + 256))
            if r.status_code == 404:
                assert not parent[1][sl].any()
                continue
            child = load_npy(r.content)
            np.testing.assert_array_equal(parent[0][0][sl], child[0][0])
            np.testing.assert_array_equal(parent[1][sl], child[1])

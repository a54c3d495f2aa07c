"""The seamless guarantee: one 512-px tile at z equals its four 256-px children at z+1.

Checked through the HTTP API on every real raster in ../shared/data, at every zoom from
the file's minzoom to maxzoom+1, on tiles at the centre and at the data's edges, for raw
reads and for every algorithm with neighbourhood parameters, on two TileMatrixSets.
"""

from __future__ import annotations

import json
from pathlib import Path

import morecantile
import numpy as np
import pytest
from rio_tiler.io import Reader

from tests.conftest import NAIP, REAL_SOURCES, load_npy
from titiler_otsu.io.reader import GridExactReader

ALGORITHMS: dict[str, dict | None] = {
    "raw": None,
    "otsu_sigma_opening_closing": {"algorithm": "otsu", "params": {"sigma": 1.5, "opening": 1, "closing": 2}},
    "otsu_invert_sigma": {"algorithm": "otsu", "params": {"sigma": 3, "invert": True}},
    "multiotsu_4_sigma_opening": {"algorithm": "multiotsu", "params": {"classes": 4, "sigma": 1, "opening": 2}},
    "otsu_fixed_closing": {"algorithm": "otsu", "params": {"scope": "fixed", "threshold": 100, "closing": 3}},
}


def _zoom_range(path: Path, tms: morecantile.TileMatrixSet) -> range:
    with GridExactReader(str(path), tms=tms) as src:
        return range(src.minzoom, src.maxzoom + 2)


def _probe_points(path: Path) -> dict[str, tuple[float, float]]:
    """Centre and two opposite corners (just inside) of the raster, lon/lat."""
    with Reader(str(path)) as src:
        w, s, e, n = src.get_geographic_bounds("epsg:4326")
    dx, dy = (e - w) * 0.01, (n - s) * 0.01
    return {
        "centre": ((w + e) / 2, (s + n) / 2),
        "north_west_edge": (w + dx, n - dy),
        "south_east_edge": (e - dx, s + dy),
    }


def _query(path: Path, bidx: int, algo: dict | None, tilesize: int) -> dict[str, str | int]:
    q: dict[str, str | int] = {"url": str(path), "bidx": bidx, "tilesize": tilesize}
    if algo:
        q["algorithm"] = algo["algorithm"]
        q["algorithm_params"] = json.dumps(algo["params"])
    return q


def _tile(client, tms_id: str, z: int, x: int, y: int, query: dict) -> tuple[np.ndarray, np.ndarray] | None:
    r = client.get(f"/cog/tiles/{tms_id}/{z}/{x}/{y}.npy", params=query)
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    return load_npy(r.content)


def _stitched_children(client, tms_id: str, z: int, x: int, y: int, query: dict, shape: tuple[int, ...]):
    data = np.zeros(shape, dtype=np.float64)
    valid = np.zeros(shape[1:], dtype=bool)
    missing = []
    for dy in (0, 1):
        for dx in (0, 1):
            child = _tile(client, tms_id, z + 1, 2 * x + dx, 2 * y + dy, query)
            sl = (slice(dy * 256, (dy + 1) * 256), slice(dx * 256, (dx + 1) * 256))
            if child is None:
                missing.append(sl)
                continue
            data[(slice(None), *sl)] = child[0]
            valid[sl] = child[1]
    return data, valid, missing


def _compare(client, tms_id: str, path: Path, bidx: int, algo: dict | None) -> list[str]:
    """Return a list of failures (empty when every tile pair matches exactly)."""
    tms = morecantile.tms.get(tms_id)
    failures = []
    checked = 0
    for z in _zoom_range(path, tms):
        for where, (lon, lat) in _probe_points(path).items():
            t = tms.tile(lon, lat, z)
            parent = _tile(client, tms_id, z, t.x, t.y, _query(path, bidx, algo, 512))
            if parent is None:
                continue
            pdata, pvalid = parent
            cdata, cvalid, missing = _stitched_children(
                client, tms_id, z, t.x, t.y, _query(path, bidx, algo, 256), pdata.shape
            )
            for sl in missing:  # a child outside the bounds: the parent has no data there
                cvalid[sl] = False
                cdata[(slice(None), *sl)] = pdata[(slice(None), *sl)]
            n_data = int((pdata != cdata).sum())
            n_mask = int((pvalid != cvalid).sum())
            checked += 1
            if n_data or n_mask:
                failures.append(f"z{z} {where}: {n_data} values and {n_mask} mask pixels differ")
    assert checked >= 2, f"too few tile pairs checked for {path.name}"
    return failures


@pytest.mark.parametrize("algo_name", list(ALGORITHMS))
@pytest.mark.parametrize("source", list(REAL_SOURCES))
def test_512_tile_equals_its_four_256_children_webmercator(client, source: str, algo_name: str) -> None:
    path, bidx = REAL_SOURCES[source]
    algo = ALGORITHMS[algo_name]
    if source == "dem" and algo and algo["params"].get("scope") == "fixed":
        algo = {**algo, "params": {**algo["params"], "threshold": 1800}}
    assert _compare(client, "WebMercatorQuad", path, bidx, algo) == []


@pytest.mark.parametrize("algo_name", ["raw", "otsu_sigma_opening_closing"])
@pytest.mark.parametrize("band", ["B03.tif", "B04.tif"])
def test_512_tile_equals_its_four_256_children_other_s2_bands(client, band: str, algo_name: str) -> None:
    path = REAL_SOURCES["s2_b08_nir"][0].parent / band
    assert _compare(client, "WebMercatorQuad", path, 1, ALGORITHMS[algo_name]) == []


@pytest.mark.parametrize("algo_name", ["raw", "otsu_sigma_opening_closing", "multiotsu_4_sigma_opening"])
@pytest.mark.parametrize("source", ["naip_nir", "dem", "s2_b08_nir"])
def test_512_tile_equals_its_four_256_children_wgs84quad(client, source: str, algo_name: str) -> None:
    path, bidx = REAL_SOURCES[source]
    assert _compare(client, "WGS1984Quad", path, bidx, ALGORITHMS[algo_name]) == []


def test_halo_equals_neighbour_pixels() -> None:
    tms = morecantile.tms.get("WebMercatorQuad")
    with GridExactReader(str(NAIP), tms=tms) as src:
        t = tms.tile(-99.15, 47.02, 14)
        halo = 12
        wide = src.tile(t.x, t.y, t.z, indexes=4, buffer=halo).array
        for dx, dy in [(-1, 0), (1, 0), (0, -1), (0, 1), (1, 1)]:
            nb = src.tile(t.x + dx, t.y + dy, t.z, indexes=4).array
            # Overlap of the wide tile with the neighbour, in each one's pixel coordinates.
            rows_w = slice(halo + 256 * dy, halo + 256 * dy + 256)
            cols_w = slice(halo + 256 * dx, halo + 256 * dx + 256)
            ys = range(max(0, rows_w.start), min(wide.shape[1], rows_w.stop))
            xs = range(max(0, cols_w.start), min(wide.shape[2], cols_w.stop))
            w = wide[0, ys.start : ys.stop, xs.start : xs.stop]
            n = nb[
                0, ys.start - rows_w.start : ys.stop - rows_w.start, xs.start - cols_w.start : xs.stop - cols_w.start
            ]
            assert w.size > 0
            np.testing.assert_array_equal(np.ma.getdata(w), np.ma.getdata(n))
            np.testing.assert_array_equal(np.ma.getmaskarray(w), np.ma.getmaskarray(n))


def test_stock_rio_tiler_reads_are_not_grid_consistent() -> None:
    """Why the grid-exact reader exists: stock 512 vs 4x256 reads differ on real data."""
    tms = morecantile.tms.get("WebMercatorQuad")
    with Reader(str(NAIP), tms=tms) as src:
        t = tms.tile(-99.15, 47.02, 13)
        parent = src.tile(t.x, t.y, t.z, tilesize=512, indexes=4).array[0]
        kids = np.zeros((512, 512), dtype=parent.dtype)
        for dy in (0, 1):
            for dx in (0, 1):
                kids[dy * 256 : (dy + 1) * 256, dx * 256 : (dx + 1) * 256] = src.tile(
                    2 * t.x + dx, 2 * t.y + dy, t.z + 1, tilesize=256, indexes=4
                ).array[0]
    differing = float((np.ma.getdata(parent) != kids).mean())
    assert differing > 0.01


@pytest.mark.parametrize("tms_id", ["WebMercatorQuad", "WGS1984Quad"])
@pytest.mark.parametrize("source", ["naip_nir", "dem", "s2_b08_nir"])
def test_anchored_interpolation_is_within_a_hundredth_of_a_pixel_of_exact(source: str, tms_id: str) -> None:
    import rasterio

    from titiler_otsu.core.grid import tile_window
    from titiler_otsu.io.sampling import source_coords, transformer_for

    path, _ = REAL_SOURCES[source]
    tms = morecantile.tms.get(tms_id)
    with rasterio.open(path) as ds, GridExactReader(str(path), tms=tms) as src:
        lon, lat = _probe_points(path)["centre"]
        for z in range(src.minzoom, src.maxzoom + 2):
            t = tms.tile(lon, lat, z)
            w = tile_window(tms, t.x, t.y, z, 256, halo=7)
            approx = source_coords(w, tms.rasterio_crs, ds.crs, ds.transform)
            g = w.grid
            xx, yy = np.meshgrid(
                g.origin_x + (np.arange(w.col, w.col + w.width) + 0.5) * g.res,
                g.origin_y - (np.arange(w.row, w.row + w.height) + 0.5) * g.res,
            )
            sx, sy = transformer_for(tms.rasterio_crs, ds.crs).transform(xx, yy)
            inv = ~ds.transform
            cols, rows = inv.a * sx + inv.b * sy + inv.c, inv.d * sx + inv.e * sy + inv.f
            err = np.hypot(cols - approx.cols, rows - approx.rows)
            src_px_per_out_px = np.hypot(cols[0, 1] - cols[0, 0], rows[0, 1] - rows[0, 0])
            assert np.nanmax(err) / src_px_per_out_px < 0.01

"""Full-resolution export: equal to the whole image at once, to the map's tiles, and a real COG.

Every export here runs on a real Dask cluster (a `LocalCluster` of two worker processes,
shared by the module) with small windows (128 px) so that windows cut through lakes and
fields. References are computed independently, in this process: the whole image read with
rasterio (or with the grid reader for another CRS), the same algorithm class called once
with no halo, and the tile server's thresholds (`/cog/threshold`) as fixed thresholds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import morecantile
import numpy as np
import pyproj
import pytest
import rasterio
from fastapi.testclient import TestClient
from rio_cogeo.cogeo import cog_validate
from rio_tiler.models import ImageData
from typer.testing import CliRunner

from tests.conftest import B08, NAIP, RGB, S2_DIR, SHARED_DATA, load_npy
from titiler_otsu import create_app
from titiler_otsu.algorithms import otsu_algorithms
from titiler_otsu.cli import app as cli_app
from titiler_otsu.core.grid import GridWindow, PixelGrid
from titiler_otsu.core.histogram import valid_histogram
from titiler_otsu.export.driver import ExportRequest, ExportSummary, export
from titiler_otsu.export.exact_histogram import exact_histogram
from titiler_otsu.export.grid import native_grid
from titiler_otsu.export.source import ExportSource
from titiler_otsu.export.tasks import ExportJob
from titiler_otsu.io.reader import GridExactReader
from titiler_otsu.settings import Settings

WINDOW = 128
NODATA = 255
TMS = morecantile.tms.get("WebMercatorQuad")


@pytest.fixture(scope="module")
def dask_client() -> Iterator[object]:
    """A real local Dask cluster: two worker processes, one thread each."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.CRITICAL
    )
    with Client(cluster) as client:
        yield client
    cluster.close()


@pytest.fixture(scope="module")
def out_dir(synthetic_dir: Path) -> Path:
    """Exports go inside the app's allow-list, so the tile server can read them back."""
    path = synthetic_dir / "exports"
    path.mkdir(exist_ok=True)
    return path


def _export(dask_client: object, out: Path, **kwargs: object) -> ExportSummary:
    request = ExportRequest(out=out, window_size=kwargs.pop("window_size", WINDOW), **kwargs)  # type: ignore[arg-type]
    return export(request, client=dask_client)


def _server_thresholds(client: TestClient, path: Path, bidx: int, algorithm: str, params: dict) -> list[float]:
    """Thresholds the tile server uses for scope 'dataset' (GET /cog/threshold)."""
    r = client.get(
        "/cog/threshold",
        params={"url": str(path), "bidx": bidx, "algorithm": algorithm, "algorithm_params": json.dumps(params)},
    )
    assert r.status_code == 200, r.text
    return r.json()["thresholds"]


def _fixed(algorithm: str, params: dict, thresholds: list[float]) -> dict:
    key = "threshold" if algorithm == "otsu" else "thresholds"
    value = thresholds[0] if algorithm == "otsu" else thresholds
    return {**params, "scope": "fixed", key: value}


def _classes_of(img: ImageData, algorithm: str, params: dict) -> np.ndarray:
    """The algorithm applied once to a whole image (no halo): classes, NODATA where invalid."""
    out = otsu_algorithms().get(algorithm)(**params)(img)
    band = out.array[0]
    return np.where(np.ma.getmaskarray(band), NODATA, np.ma.getdata(band)).astype(np.uint8)


def _whole_image(path: Path, bidx: int) -> ImageData:
    with rasterio.open(path) as ds:
        data = ds.read([bidx])
        valid = ds.read_masks([bidx]) > 0
    return ImageData(np.ma.MaskedArray(data, mask=~valid), metadata={"halo": 0, "grid_col": 0, "grid_row": 0})


def _read(path: Path | str) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def _cut_objects(classes: np.ndarray, window: int) -> int:
    """Foreground pixel pairs that straddle a window boundary (objects the windows cut)."""
    fg = (classes > 0) & (classes != NODATA)
    cols = np.arange(window, classes.shape[1], window)
    rows = np.arange(window, classes.shape[0], window)
    return int((fg[:, cols - 1] & fg[:, cols]).sum() + (fg[rows - 1, :] & fg[rows, :]).sum())


# ------------------------------------------------------------------ equal to the whole image


def test_naip_otsu_invert_sigma_opening_equals_whole_image(dask_client, client, out_dir) -> None:
    params = {"invert": True, "sigma": 1.5, "opening": 1, "closing": 1}
    out = out_dir / "naip_otsu.tif"
    summary = _export(dask_client, out, source=str(NAIP), bidx=4, params=params)

    thresholds = _server_thresholds(client, NAIP, 4, "otsu", params)
    assert summary.thresholds == thresholds == summary.thresholds_overview  # the map's thresholds
    expected = _classes_of(_whole_image(NAIP, 4), "otsu", _fixed("otsu", params, thresholds))
    got = _read(out)
    assert got.shape == expected.shape == (724, 934)
    assert int((got != expected).sum()) == 0
    # the 128-px windows really cut through lakes, and without the halo they would differ
    assert _cut_objects(got, WINDOW) > 1000
    assert summary.halo == 6 + 2 + 2 and summary.windows == 6 * 8
    no_halo = expected.copy()
    img = _whole_image(NAIP, 4)
    for r in range(0, 724, WINDOW):
        for c in range(0, 934, WINDOW):
            part = ImageData(img.array[:, r : r + WINDOW, c : c + WINDOW], metadata={"halo": 0})
            no_halo[r : r + WINDOW, c : c + WINDOW] = _classes_of(part, "otsu", _fixed("otsu", params, thresholds))
    assert int((no_halo != expected).sum()) > 50
    # the summary's counts are the raster's
    assert [c.pixels for c in summary.classes] == [int((got == k).sum()) for k in (0, 1)]
    assert summary.valid_pixels == got.size and summary.nodata_pixels == 0


def test_s2_b08_multiotsu_with_nodata_equals_whole_image(dask_client, client, out_dir) -> None:
    params = {"classes": 3, "sigma": 1, "opening": 1, "closing": 2}
    out = out_dir / "b08_multiotsu.tif"
    summary = _export(dask_client, out, source=str(B08), algorithm="multiotsu", params=params)

    thresholds = _server_thresholds(client, B08, 1, "multiotsu", params)
    assert summary.thresholds == thresholds and len(thresholds) == 2
    expected = _classes_of(_whole_image(B08, 1), "multiotsu", _fixed("multiotsu", params, thresholds))
    got = _read(out)
    assert int((got != expected).sum()) == 0
    assert set(np.unique(got)) == {0, 1, 2, NODATA}
    assert 0.2 < summary.nodata_pixels / summary.pixels < 0.35  # the western wedge outside the swath
    assert _cut_objects(got, WINDOW) > 1000


def test_localotsu_equals_whole_image_with_its_block_grid(dask_client, out_dir) -> None:
    params = {"radius": 10, "invert": True, "opening": 1}
    out = out_dir / "naip_local.tif"
    summary = _export(dask_client, out, source=str(NAIP), bidx=4, algorithm="localotsu", params=params)
    expected = _classes_of(_whole_image(NAIP, 4), "localotsu", params)
    assert int((_read(out) != expected).sum()) == 0
    assert summary.scope == "local" and summary.thresholds == []


def test_export_in_another_crs_equals_the_whole_grid_read_at_once(dask_client, client, out_dir) -> None:
    params = {"invert": True, "sigma": 1, "closing": 1}
    out = out_dir / "naip_3857.tif"
    summary = _export(dask_client, out, source=str(NAIP), bidx=4, params=params, crs="EPSG:3857", resolution=6.0)
    with rasterio.open(out) as ds:
        got = ds.read(1)
        t = ds.transform
        assert ds.crs.to_epsg() == 3857 and (t.a, t.e) == (6.0, -6.0)
        assert t.c % 6.0 == 0 and t.f % 6.0 == 0  # anchored at multiples of the resolution
    assert summary.crs == "EPSG:3857" and got.shape == (summary.height, summary.width)

    tms = morecantile.TileMatrixSet.custom(list(summary_bounds(summary)), pyproj.CRS.from_epsg(3857))
    with GridExactReader(str(NAIP), tms=tms) as src:
        whole = GridWindow(PixelGrid(t.c, t.f, 6.0, 0), 0, 0, summary.width, summary.height)
        img = src.read_window(whole, [4])
    img.metadata = {"halo": 0}
    thresholds = _server_thresholds(client, NAIP, 4, "otsu", params)
    expected = _classes_of(img, "otsu", _fixed("otsu", params, thresholds))
    assert int((got != expected).sum()) == 0
    valid = got != NODATA
    assert 0.5 < valid.mean() < 1.0  # the rotated UTM footprint leaves nodata corners


def summary_bounds(summary: ExportSummary) -> tuple[float, float, float, float]:
    a, _, c, _, e, f = summary.transform
    return (c, f + e * summary.height, c + a * summary.width, f)


def test_bbox_export_is_the_same_pixels_as_the_full_export(dask_client, out_dir) -> None:
    params = {"scope": "fixed", "threshold": 92, "invert": True, "sigma": 1, "opening": 2}
    full = out_dir / "naip_fixed_full.tif"
    part = out_dir / "naip_fixed_part.tif"
    _export(dask_client, full, source=str(NAIP), bidx=4, params=params)
    summary = _export(dask_client, part, source=str(NAIP), bidx=4, params=params, bbox=(-99.16, 47.01, -99.15, 47.02))
    assert summary.thresholds == [92.0] and summary.histogram is None
    with rasterio.open(full) as f, rasterio.open(part) as p:
        col, row = (~f.transform) * (p.transform.c, p.transform.f)
        assert col == int(col) and row == int(row)  # pixel-aligned with the source grid
        window = rasterio.windows.Window(int(col), int(row), p.width, p.height)
        assert p.width < f.width and p.height < f.height
        assert int((p.read(1) != f.read(1, window=window)).sum()) == 0


# ------------------------------------------------------------------ thresholds: map-reduce


def _checkered_lakes(size: int = 2048) -> np.ndarray:
    """uint16 lakes (6000) on land (2000), plus +2500 on every other pixel (a checkerboard).

    The nearest-neighbour overviews keep one parity of the checkerboard only, so the
    overview histogram (the tiles') and the full-resolution one differ.
    """
    rows, cols = np.mgrid[0:size, 0:size]
    lakes = (np.sin(cols / 97.0) * np.cos(rows / 131.0)) > 0.3
    values = np.where(lakes, 6000, 2000) + 2500 * ((rows + cols) % 2 == 0)
    noise = np.random.default_rng(0).normal(0, 150, (size, size))
    return np.clip(values + noise, 1, 65535).astype(np.uint16)


def test_exact_histogram_is_the_whole_image_histogram_and_both_thresholds_are_reported(
    dask_client, client, make_cog, out_dir
) -> None:
    data = _checkered_lakes()
    path = make_cog(data, name="checkered_lakes.tif")
    params = {"classes": 3}
    reference = valid_histogram(data, nbins=256)
    source = ExportSource.open(str(path))
    with rasterio.open(path) as ds:
        grid = native_grid(ds.crs, ds.transform, ds.width, ds.height)
    hist = exact_histogram(dask_client, ExportJob(source, grid, "multiotsu", params), 256, worker_timeout=30)
    assert np.array_equal(hist.counts, reference.counts) and np.array_equal(hist.edges, reference.edges)

    out = out_dir / "checkered_exact.tif"
    summary = _export(
        dask_client, out, source=str(path), algorithm="multiotsu", params=params, exact_histogram=True, window_size=512
    )
    algo = otsu_algorithms().get("multiotsu")(**params)
    assert summary.histogram == "exact"
    assert summary.thresholds == summary.thresholds_exact == algo.thresholds_from_histogram(reference)
    assert summary.thresholds_overview == _server_thresholds(client, path, 1, "multiotsu", params)
    assert summary.thresholds_exact != summary.thresholds_overview  # full resolution vs the tiles' overview
    img = ImageData(np.ma.MaskedArray(data[None], mask=np.zeros((1, *data.shape), bool)), metadata={"halo": 0})
    expected = _classes_of(img, "multiotsu", _fixed("multiotsu", params, summary.thresholds))
    assert int((_read(out) != expected).sum()) == 0


# ------------------------------------------------------------------ STAC Items


def test_stac_item_expression_over_assets_equals_whole_image(dask_client, stac_items, out_dir) -> None:
    params = {"sigma": 1, "opening": 1}
    expression = "(B03-B08)/(B03+B08)"
    out = out_dir / "ndwi.tif"
    summary = _export(dask_client, out, source=str(stac_items.item1), expression=expression, params=params)

    app = create_app(Settings(allowed_sources=[str(SHARED_DATA), str(stac_items.directory)]))
    with TestClient(app) as stac_client:
        r = stac_client.get(
            "/stac/threshold",
            params={"url": str(stac_items.item1), "expression": expression, "algorithm": "otsu",
                    "algorithm_params": json.dumps(params)},
        )  # fmt: skip
    assert r.status_code == 200, r.text
    assert summary.thresholds == r.json()["thresholds"]  # the /stac map's thresholds

    with rasterio.open(S2_DIR / "B03.tif") as b3, rasterio.open(S2_DIR / "B08.tif") as b8:
        data = np.concatenate([b3.read(), b8.read()])
        valid = np.concatenate([b3.read_masks(), b8.read_masks()]) > 0
    img = ImageData(np.ma.MaskedArray(data, mask=~valid), band_names=["b1", "b2"]).apply_expression("(b1-b2)/(b1+b2)")
    img.metadata = {"halo": 0}
    expected = _classes_of(img, "otsu", _fixed("otsu", params, summary.thresholds))
    assert int((_read(out) != expected).sum()) == 0
    assert 0.25 < summary.classes[1].fraction < 0.5  # water (NDWI high) of the valid pixels


def test_stac_item_single_asset_equals_the_cog_export(dask_client, stac_items, out_dir) -> None:
    params = {"scope": "fixed", "threshold": 3000, "sigma": 2}
    from_stac, from_cog = out_dir / "stac_b08.tif", out_dir / "cog_b08.tif"
    _export(dask_client, from_stac, source=str(stac_items.item1), assets=["B08"], params=params)
    _export(dask_client, from_cog, source=str(B08), params=params)
    assert np.array_equal(_read(from_stac), _read(from_cog))


# ------------------------------------------------------------------ against the tiles


def _tiles_over(path: Path, zoom: int) -> list[morecantile.Tile]:
    with GridExactReader(str(path)) as src:
        w, s, e, n = src.get_geographic_bounds("epsg:4326")
    return list(TMS.tiles(w, s, e, n, [zoom]))


def _compare_tiles(
    client: TestClient, source: Path, bidx: int, export_path: Path, algorithm: str, params: dict, zoom: int
):
    """(differing valid pixels, pixels compared) between export tiles and on-the-fly tiles."""
    diff = total = 0
    for t in _tiles_over(source, zoom):
        url = f"/cog/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.npy"
        fly = client.get(url, params={"url": str(source), "bidx": bidx, "algorithm": algorithm,
                                      "algorithm_params": json.dumps(params)})  # fmt: skip
        exp = client.get(url, params={"url": str(export_path)})
        assert fly.status_code == exp.status_code == 200, (fly.text, exp.text)
        fly_classes, fly_valid = load_npy(fly.content)
        exp_classes, exp_valid = load_npy(exp.content)
        assert np.array_equal(fly_valid, exp_valid)  # same valid pixels
        diff += int((fly_classes[0][fly_valid] != exp_classes[0][exp_valid]).sum())
        total += int(fly_valid.sum())
    return diff, total


def test_export_tiles_equal_on_the_fly_tiles_for_pointwise_params(dask_client, client, out_dir) -> None:
    """Same grid reader, same pixel, same threshold: class(sampled value) == sampled(class)."""
    naip = out_dir / "naip_pointwise.tif"
    _export(dask_client, naip, source=str(NAIP), bidx=4, params={"invert": True})
    b08 = out_dir / "b08_pointwise.tif"
    _export(dask_client, b08, source=str(B08), algorithm="multiotsu", params={"classes": 4})
    for zoom in (14, 15):  # native zooms of the 5 m NAIP (full-resolution level on both files)
        diff, total = _compare_tiles(client, NAIP, 4, naip, "otsu", {"invert": True}, zoom)
        assert diff == 0 and total > 300_000
    for zoom in (10,):  # a native zoom of the 100 m Sentinel-2 band, nodata wedge included
        diff, total = _compare_tiles(client, B08, 1, b08, "multiotsu", {"classes": 4}, zoom)
        assert diff == 0 and total > 100_000


def test_export_tiles_agree_with_neighbourhood_tiles_within_bound(dask_client, client, out_dir) -> None:
    """Tiles smooth/open in Web Mercator pixels, the export in source pixels: close, not equal."""
    params = {"invert": True, "sigma": 1.5, "opening": 1}
    out = out_dir / "naip_neigh.tif"
    _export(dask_client, out, source=str(NAIP), bidx=4, params=params)
    diff, total = _compare_tiles(client, NAIP, 4, out, "otsu", params, 15)
    agreement = 1 - diff / total
    print(f"neighbourhood params {params}: export vs on-the-fly tiles agree on {100 * agreement:.2f} % of pixels")
    assert 0.98 <= agreement < 1.0  # measured: 99.5 %


# ------------------------------------------------------------------ the product and the CLI

runner = CliRunner()


def test_cli_export_writes_a_valid_cog_with_overviews_and_a_json_summary(tmp_path) -> None:
    out = tmp_path / "naip_classes.tif"
    result = runner.invoke(
        cli_app,
        ["export", str(NAIP), str(out), "--bidx", "4", "--params", '{"invert": true, "sigma": 1}',
         "--window-size", "256", "--workers", "2", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert {"pixels", "classes", "thresholds", "seconds", "mpix_per_s", "peak_worker_rss_mb"} <= set(body)
    assert body["workers"] == 2 and body["scheduler"] == "local" and body["windows"] == 12
    assert [c["class"] for c in body["classes"]] == [0, 1]
    assert sum(c["pixels"] for c in body["classes"]) == body["valid_pixels"] == 934 * 724
    # true ground area: 5 m pixels, UTM scale factor ~0.9996 here -> within 0.2 % of 25 m² each
    area = sum(c["area_m2"] for c in body["classes"])
    assert abs(area / (934 * 724 * 25.0) - 1) < 0.002
    valid, errors, _ = cog_validate(str(out), quiet=True)
    assert valid and not errors
    with rasterio.open(out) as ds:
        assert ds.dtypes[0] == "uint8" and ds.nodata == NODATA and ds.overviews(1) == [2]
        assert ds.tags()["OTSU_ALGORITHM"] == "otsu" and ds.tags()["OTSU_THRESHOLDS"] == f"{body['thresholds'][0]:g}"
        assert ds.colorinterp[0].name == "gray" and ds.descriptions == ("class",)  # raw classes, no palette
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left


def test_cli_prints_a_readable_summary_with_both_thresholds_areas_and_speed(tmp_path, make_cog) -> None:
    path = make_cog(_checkered_lakes(1536), name="checkered_cli.tif")
    out = tmp_path / "classes.tif"
    result = runner.invoke(
        cli_app,
        ["export", str(path), str(out), "--algorithm", "multiotsu", "--params", '{"classes": 3}', "--exact-histogram",
         "--workers", "1", "--window-size", "512"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = result.stdout
    for needle in ("Wrote", "class 2", "km²", "Mpix/s", "exact histogram", "overview histogram gives"):
        assert needle in text, text
    # progress lines when not on a terminal: 2 map passes for the histogram, 3 x 3 windows
    assert "full-resolution histogram: 2/2" in result.stderr and "segmenting windows: 9/9" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--params", "{}"], "--bidx"),  # 3-band source, no band picked
        (["--bidx", "1", "--params", '{"scope": "tile"}'], "scope 'tile'"),
        (["--bidx", "1", "--params", '{"sigmaa": 1}'], "'sigmaa': unknown parameter"),
        (["--bidx", "1", "--algorithm", "hillshade"], "does not make classes"),
        (["--bidx", "9"], "Band 9 does not exist"),
        (["--bidx", "1", "--bbox", "10,10,11,11"], "does not overlap"),
        (["--bidx", "1", "--crs", "EPSG:99999"], "is not a CRS"),
        (["--bidx", "1", "--window-size", "100"], "multiple of 16"),
        (["--bidx", "1", "--params", "{nope"], "not valid JSON"),
    ],
)
def test_cli_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, args, message) -> None:
    out = tmp_path / "never.tif"
    result = runner.invoke(cli_app, ["export", str(RGB), str(out), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert list(tmp_path.iterdir()) == []


def test_missing_source_is_a_clear_error(tmp_path) -> None:
    result = runner.invoke(cli_app, ["export", str(tmp_path / "nope.tif"), str(tmp_path / "o.tif")])
    assert result.exit_code == 2 and "No such source" in result.output

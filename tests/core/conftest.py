"""Real rasters of ../shared/data for the tests of titiler_otsu.core (module-scoped fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"

NAIP = SHARED_DATA / "m_4709963_se_14_1_20180716.tif"
RGB = SHARED_DATA / "RGB.byte.tif"
S2 = SHARED_DATA / "sentinel2_S2A_34SGA_20200318_L2A"
SCL = S2 / "SCL.tif"
B08 = S2 / "B08.tif"


def _require(path: Path) -> Path:
    if not path.is_file():
        pytest.fail(f"shared test raster missing: {path} (expected beside the clone)")
    return path


@pytest.fixture(scope="module")
def naip_b4() -> np.ndarray:
    with rasterio.open(_require(NAIP)) as ds:
        band = ds.read(4)
    assert band.dtype == np.uint8
    assert not (band == 0).any()  # the declared nodata never occurs: all pixels valid
    return band


@pytest.fixture(scope="module")
def rgb_valid() -> list[np.ndarray]:
    with rasterio.open(_require(RGB)) as ds:
        valid = ds.dataset_mask() > 0
        bands = [ds.read(b)[valid] for b in (1, 2, 3)]
    assert 0.5 < valid.mean() < 0.8
    return bands


@pytest.fixture(scope="module")
def scl_valid() -> np.ndarray:
    with rasterio.open(_require(SCL)) as ds:
        scl = ds.read(1)
    return scl[scl != ds.nodata]


@pytest.fixture(scope="module")
def b08() -> tuple[np.ndarray, np.ndarray]:
    with rasterio.open(_require(B08)) as ds:
        band = ds.read(1)
        assert ds.nodata == 0
    return band, band != 0


def _as_floats(values) -> list[float]:
    return [float(v) for v in values]

"""Shared fixtures: the real rasters in ../shared/data, the app, synthetic COGs."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from fastapi.testclient import TestClient

from titiler_otsu import create_app
from titiler_otsu.settings import Settings

if TYPE_CHECKING:
    from tests.remote import ObjectServer

#: STAC items, a real STAC API (rustac) and broken APIs for the STAC tests; the multi-date stack.
pytest_plugins = ["tests.stac_fixtures", "tests.stac_time_fixtures", "tests.matrix_stac_fixtures"]

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
S2_DIR = SHARED_DATA / "sentinel2_S2A_34SGA_20200318_L2A"
NAIP = SHARED_DATA / "m_4709963_se_14_1_20180716.tif"
RGB = SHARED_DATA / "RGB.byte.tif"
DEM = SHARED_DATA / "dem.tif"
B08 = S2_DIR / "B08.tif"
SCL = S2_DIR / "SCL.tif"

#: Every real raster with the band that makes sense to segment.
REAL_SOURCES: dict[str, tuple[Path, int]] = {
    "naip_nir": (NAIP, 4),
    "rgb_byte_red": (RGB, 1),
    "dem": (DEM, 1),
    "s2_b08_nir": (B08, 1),
    "s2_b02_blue": (S2_DIR / "B02.tif", 1),
    "s2_scl": (SCL, 1),
}


def pytest_sessionstart(session: pytest.Session) -> None:
    """Fail loudly (not skip) when the shared rasters are missing."""
    missing = [str(p) for p, _ in REAL_SOURCES.values() if not p.is_file()]
    if missing:
        raise pytest.UsageError(f"shared test rasters missing (expected ../shared/data): {missing}")


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory for generated COGs (inside the app's allow-list)."""
    return tmp_path_factory.mktemp("synthetic")


@pytest.fixture(scope="session")
def settings(synthetic_dir: Path) -> Settings:
    """Settings allowing the shared rasters and the synthetic directory."""
    return Settings(allowed_sources=[str(SHARED_DATA), str(synthetic_dir)], cache_dir=synthetic_dir / "cache")


@pytest.fixture(scope="session")
def client(settings: Settings) -> TestClient:
    """A TestClient on a fresh app (not raising server exceptions: 500s are asserted on)."""
    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.fixture(scope="session")
def make_cog(synthetic_dir: Path) -> Callable[..., Path]:
    """Write a synthetic COG (see tests/synthetic.py) into the allowed directory."""
    from tests.synthetic import write_cog

    counter = iter(range(10_000))

    def _make(data: np.ndarray, name: str | None = None, **kwargs: object) -> Path:
        path = synthetic_dir / (name or f"synthetic_{next(counter)}.tif")
        return write_cog(path, data, **kwargs)  # type: ignore[arg-type]

    return _make


def load_npy(content: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Split TiTiler's .npy tile (bands + mask band) into (data, valid)."""
    arr = np.load(io.BytesIO(content))
    return arr[:-1], arr[-1] > 0


# ---------------------------------------------------------------------- remote sources (nginx, issue 14)
@pytest.fixture(scope="session")
def object_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectServer]:
    """Debian's nginx on a free loopback port serving a temporary directory (see tests/remote.py)."""
    from tests.remote import ObjectServer

    with ObjectServer(tmp_path_factory.mktemp("objects")) as server:
        yield server


@pytest.fixture(scope="session")
def remote_scene(object_server: ObjectServer) -> Path:
    """A 3,072² uint16 COG (256-px blocks, 4 overviews; lakes, river, fields, nodata wedge) nginx serves."""
    from tests.scene import write_scene

    return write_scene(object_server.root / "scene_3072.tif", 3072, 256)

"""The generated-raster matrix as STAC: local Items (/stac) and a real STAC API (rustac, /stacapi).

* `matrix_item(spec, directory)`: a STAC Item with one asset ``data`` (the raster); rasters without
  Earth georeferencing get a null geometry (a valid Item that /stac must refuse with a 4xx).
* `matrix_pair_item`: a two-asset Item (``a`` = the raster, ``b`` = the base raster) plus a
  ``mask`` asset (the palette raster: classes 0..3) for expressions and quality masking.
* `matrix_stacapi`: `rustac serve` over the Items of Earth-georeferenced rasters; each Item has its
  own day, so ``datetime=`` picks exactly one raster out of the collection.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import rasterio
from fastapi.testclient import TestClient
from rasterio.warp import transform_bounds

from tests.stac_fixtures import free_port, start_rustac
from tests.synthetic import RasterSpec, one_axis_at_a_time
from titiler_otsu import create_app
from titiler_otsu.settings import Settings

MATRIX_COLLECTION = "matrix"
FIRST_DAY = dt.date(2021, 1, 1)


def _footprint(path: Path) -> tuple[list[float] | None, dict | None]:
    with rasterio.open(path) as ds:
        if ds.crs is not None and ds.transform != rasterio.Affine.identity():
            try:
                w, s, e, n = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds, densify_pts=21)
            except Exception:  # engineering / other-body CRS: no lon/lat footprint
                return None, None
        elif ds.gcps[0]:
            xs = [g.x for g in ds.gcps[0]]
            ys = [g.y for g in ds.gcps[0]]
            w, s, e, n = min(xs), min(ys), max(xs), max(ys)
        else:
            return None, None
    ring = [[w, s], [e, s], [e, n], [w, n], [w, s]]
    return [w, s, e, n], {"type": "Polygon", "coordinates": [ring]}


PROJ_EXTENSION = "https://stac-extensions.github.io/projection/v1.1.0/schema.json"


def _proj_fields(path: Path) -> dict:
    """Item-level `proj:` fields (CRS, shape, transform) of a raster with a CRS and a geotransform."""
    with rasterio.open(path) as ds:
        if ds.crs is None or ds.transform == rasterio.Affine.identity():
            return {}
        epsg = ds.crs.to_epsg()
        crs = {"proj:epsg": epsg} if epsg else {"proj:epsg": None, "proj:wkt2": ds.crs.to_wkt()}
        return {**crs, "proj:shape": [ds.height, ds.width], "proj:transform": list(ds.transform)[:6]}


def matrix_item(
    spec: RasterSpec, directory: Path, day: dt.date = FIRST_DAY, assets: dict[str, Path] | None = None
) -> dict:
    """A STAC Item whose assets are matrix rasters (default: ``data`` = the raster of `spec`)."""
    path = spec.write(directory)
    assets = assets or {"data": path}
    bbox, geometry = _footprint(path)
    proj = _proj_fields(path)
    item: dict = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": f"{spec.effective().name}-{'-'.join(assets)}",
        "collection": MATRIX_COLLECTION,
        "geometry": geometry,
        "properties": {"datetime": f"{day.isoformat()}T10:00:00Z", **proj},
        "links": [],
        "stac_extensions": [PROJ_EXTENSION] if proj else [],
        "assets": {
            name: {"href": p.as_uri(), "type": "image/tiff; application=geotiff", "roles": ["data"]}
            for name, p in assets.items()
        },
    }
    if bbox is not None:
        item["bbox"] = bbox
    return item


def write_item(item: dict, directory: Path) -> Path:
    """Write `item` as ``<id>.json`` in `directory`."""
    path = directory / f"{item['id']}.json"
    path.write_text(json.dumps(item))
    return path


def matrix_pair_item(spec: RasterSpec, directory: Path) -> Path:
    """Two data assets (``a`` = `spec`'s raster, ``b`` = the base raster) and a ``mask`` asset."""
    assets = {
        "a": spec.write(directory),
        "b": RasterSpec().write(directory),
        "mask": RasterSpec(shape="palette").write(directory),
    }
    return write_item(matrix_item(spec, directory, assets=assets), directory)


#: Rasters of the /stacapi collection: the one-axis-at-a-time sample, Earth-georeferenced only
#: (every dtype, shape and nodata value; every georeferencing a STAC Item can place).
STACAPI_SPECS = [s for s in one_axis_at_a_time() if s.effective().earth_georeferenced]


def stacapi_day(spec: RasterSpec) -> str:
    """The ``datetime=`` that selects `spec`'s Item alone."""
    day = FIRST_DAY + dt.timedelta(days=STACAPI_SPECS.index(spec))
    return f"{day.isoformat()}T00:00:00Z/{day.isoformat()}T23:59:59Z"


@dataclass(frozen=True)
class MatrixApi:
    """The rustac server over the matrix Items and a client whose default API it is."""

    url: str
    client: TestClient


@pytest.fixture(scope="session")
def matrix_stacapi(synthetic_dir: Path) -> Iterator[MatrixApi]:
    """`rustac serve` over one Item per raster of `STACAPI_SPECS` (one day each)."""
    directory = synthetic_dir / "matrix"
    directory.mkdir(exist_ok=True)
    items_dir = synthetic_dir / "matrix-items"
    items_dir.mkdir(exist_ok=True)
    paths = [
        write_item(matrix_item(spec, directory, FIRST_DAY + dt.timedelta(days=i)), items_dir)
        for i, spec in enumerate(STACAPI_SPECS)
    ]
    port = free_port()
    proc = start_rustac(paths, port, collection=MATRIX_COLLECTION)
    url = f"http://127.0.0.1:{port}"
    settings = Settings(
        allowed_sources=[str(synthetic_dir)],
        cache_dir=synthetic_dir / "cache-stacapi",
        stac_api_url=url,
        stac_min_zoom=0,
        stac_timeout=5.0,
    )
    try:
        yield MatrixApi(url, TestClient(create_app(settings), raise_server_exceptions=False))
    finally:
        proc.terminate()
        proc.wait(timeout=10)

"""A multi-date STAC stack with known water change and known clouds, behind a real STAC API.

The stack (`time_stack`) is four items of collection `TIME_COLLECTION` on *one* grid: a
384 x 384-pixel window (100 m, EPSG:32634) of the shared Sentinel-2 scene (rows 400..783,
columns 672..1055 of B08/SCL: sea in the north, the Libyan coast, desert inland). Per date:

* `B08` (uint16, 100 m, nodata 0): the real NIR of the window with a gap opened around Otsu's
  threshold (water 200 + value / 10, land 4000 + (value - threshold) / 2, so every threshold Otsu
  finds on any date lies in the gap and a pixel's class depends only on what we painted), then a painted lake
  whose extent changes (values 250..349, like the sea's), bright clouds (9000..9199) and a dark cloud shadow
  (300, looks like water) where the SCL says so.
* `SCL` (uint8, **200 m**, nodata 0): the real scene classification of the window with its
  cloud classes (3, 8, 9, 10) replaced by 5 (bare soil), then the painted clouds: class 9
  (`CLOUD_A`, date 2), 3 (`SHADOW`, date 3), 8 (`CLOUD_B`) and 10 (`CIRRUS`, date 4). All
  rectangles sit on even rows/columns, so a 200 m SCL pixel covers exactly 2 x 2 B08 pixels.
* `QA_PIXEL` (uint16, 100 m, Landsat-style bit flags): bit 3 where the SCL says cloud or
  cirrus (8, 9, 10), bit 4 where it says shadow (3), bit 1 ("dilated cloud", *not* to be
  masked by `mask_bits=3,4`) in a 4-pixel ring around each cloud, bit 6 ("clear") elsewhere,
  bit 0 (fill) where B08 is nodata.

Water (class 1 of `otsu` with `invert`, B08) per date, window pixel rectangles
`(row0, row1, col0, col1)`, end-exclusive:

    2020-03-18  LAKE                       (6000 px)
    2020-04-17  LAKE + GROWTH              (10000 px; CLOUD_A hides 800 px of GROWTH)
    2020-05-17  LAKE - SHRINK              (4000 px; SHADOW on land)
    2020-06-16  LAKE - SHRINK + POND       (7200 px; CLOUD_B hides 400 px of POND, CIRRUS on land)

plus the real sea (identical at every date). `TimeStack.water(i)` / `.cloud(i)` give the
truth rasters and `expected_area_m2(mask)` the exact ground area of any set of window
pixels: the sum of 100 m x 100 m / areal scale of EPSG:32634 at each pixel centre (pyproj's
projection factors; independent of the server's LAEA area code).

Fixtures: `time_stack` (files + truth), `time_api` (`rustac serve` of the collection and the
four items on a free loopback port), `time_client` (app whose STAC API is `time_api`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient
from pyproj import Proj, Transformer
from rasterio.transform import Affine
from rasterio.warp import transform_bounds
from skimage.filters import threshold_otsu

from tests.conftest import S2_DIR, SHARED_DATA
from tests.stac_fixtures import free_port, start_rustac
from titiler_otsu import create_app
from titiler_otsu.settings import Settings

TIME_COLLECTION = "otsu-time-stack"
DATES = ("2020-03-18", "2020-04-17", "2020-05-17", "2020-06-16")
DATETIMES = tuple(f"{d}T09:10:00Z" for d in DATES)
ITEM_IDS = tuple(f"stack_{d.replace('-', '')}" for d in DATES)
#: One STAC datetime interval per date (each selects exactly one item).
INTERVALS = tuple(f"{d}T00:00:00Z/{d}T23:59:59Z" for d in DATES)
ASSETS = ("B08", "SCL", "QA_PIXEL")

#: The window of the shared 100 m grid the stack covers (rows, columns of B08.tif).
ROW0, COL0, SIZE = 400, 672, 384
PIXEL = 100.0
CRS = "EPSG:32634"

Rect = tuple[int, int, int, int]
LAKE: Rect = (200, 260, 60, 160)
GROWTH: Rect = (260, 300, 60, 160)
SHRINK: Rect = (240, 260, 60, 160)
POND: Rect = (300, 340, 220, 300)
CLOUD_A: Rect = (280, 320, 120, 200)
SHADOW: Rect = (320, 350, 160, 220)
CLOUD_B: Rect = (300, 320, 280, 320)
CIRRUS: Rect = (320, 360, 20, 60)

#: Painted water per date: rectangles added, then rectangles removed.
WATER: tuple[tuple[tuple[Rect, ...], tuple[Rect, ...]], ...] = (
    ((LAKE,), ()),
    ((LAKE, GROWTH), ()),
    ((LAKE,), (SHRINK,)),
    ((LAKE, POND), (SHRINK,)),
)
#: Painted clouds per date: (rectangle, SCL class).
CLOUDS: tuple[tuple[tuple[Rect, int], ...], ...] = (
    (),
    ((CLOUD_A, 9),),
    ((SHADOW, 3),),
    ((CLOUD_B, 8), (CIRRUS, 10)),
)
#: The SCL classes (and QA_PIXEL bits) tests mask.
SCL_MASK_VALUES = (3, 8, 9, 10)
QA_MASK_BITS = (3, 4)

#: Polygon test AOI: window rows 180..380, columns 40..340 (lakes, pond, all clouds; no sea).
AOI_RECT: Rect = (180, 380, 40, 340)


def _box(rect: Rect) -> np.ndarray:
    out = np.zeros((SIZE, SIZE), bool)
    r0, r1, c0, c1 = rect
    out[r0:r1, c0:c1] = True
    return out


@dataclass(frozen=True)
class TimeStack:
    """Files of the stack and its truth rasters (window grid, 100 m)."""

    directory: Path
    collection: Path
    items: tuple[Path, ...]
    #: Real water (the sea and a few dark inland pixels: water at every date) and valid pixels.
    sea: np.ndarray = field(repr=False)
    valid: np.ndarray = field(repr=False)
    transform: Affine = Affine(PIXEL, 0.0, 699960.0 + COL0 * PIXEL, 0.0, -PIXEL, 3600000.0 - ROW0 * PIXEL)

    def painted_water(self, i: int) -> np.ndarray:
        """Painted lake/pond pixels of date `i` (no sea)."""
        add, remove = WATER[i]
        out = np.zeros((SIZE, SIZE), bool)
        for rect in add:
            out |= _box(rect)
        for rect in remove:
            out &= ~_box(rect)
        return out

    def cloud(self, i: int, values: tuple[int, ...] = SCL_MASK_VALUES) -> np.ndarray:
        """Pixels whose SCL class at date `i` is one of `values` (100 m window grid)."""
        out = np.zeros((SIZE, SIZE), bool)
        for rect, value in CLOUDS[i]:
            if value in values:
                out |= _box(rect)
        return out

    def water(self, i: int) -> np.ndarray:
        """Water (foreground of `otsu` + `invert` on masked B08) at date `i`, clouds excluded."""
        return (self.sea | self.painted_water(i)) & ~self.cloud(i) & self.valid

    def change(self, before: int, after: int, masked: bool = True) -> np.ndarray:
        """Change classes between two dates (0 bg, 1 fg at both, 2 gained, 3 lost; 255 masked/nodata)."""
        hidden = ~self.valid
        if masked:
            hidden = hidden | self.cloud(before) | self.cloud(after)
            b, a = self.water(before), self.water(after)
        else:
            b, a = self._unmasked_water(before), self._unmasked_water(after)
        out = np.where(b & a, 1, np.where(a & ~b, 2, np.where(b & ~a, 3, 0))).astype(np.uint8)
        out[hidden] = 255
        return out

    def _unmasked_water(self, i: int) -> np.ndarray:
        """Water as `otsu` sees it without masking: shadows look like water, clouds like land."""
        dark = self.sea | self.painted_water(i) | self.cloud(i, (3,))
        return dark & ~self.cloud(i, (8, 9, 10)) & self.valid

    def pixel_box(self, rect: Rect) -> list[list[float]]:
        """Lon/lat ring of a window rectangle's outline (densified), for GeoJSON polygons."""
        r0, r1, c0, c1 = rect
        t = self.transform
        xs = [t.c + c * PIXEL for c in range(c0, c1 + 1, 10)]
        ys = [t.f - r * PIXEL for r in range(r0, r1 + 1, 10)]
        edge = (
            [(x, ys[0]) for x in xs]
            + [(xs[-1], y) for y in ys[1:]]
            + [(x, ys[-1]) for x in reversed(xs[:-1])]
            + [(xs[0], y) for y in reversed(ys[:-1])]
        )
        to_lonlat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
        ring = [list(to_lonlat.transform(x, y)) for x, y in edge]
        return [*ring, ring[0]]

    def polygon(self, rect: Rect = AOI_RECT) -> dict:
        """GeoJSON Feature of a window rectangle."""
        return {
            "type": "Feature",
            "properties": {},
            "geometry": {"type": "Polygon", "coordinates": [self.pixel_box(rect)]},
        }

    def bbox(self) -> tuple[float, float, float, float]:
        """Lon/lat bbox of the whole window (for scope 'dataset' on /stacapi)."""
        t = self.transform
        w, s, e, n = transform_bounds(
            CRS, "EPSG:4326", t.c, t.f - SIZE * PIXEL, t.c + SIZE * PIXEL, t.f, densify_pts=21
        )
        return (w, s, e, n)


def pixel_area_m2() -> np.ndarray:
    """True ground area of every window pixel: 100 m x 100 m / areal scale of UTM 34N."""
    t = TimeStack.transform
    cols, rows = np.meshgrid(np.arange(SIZE) + 0.5, np.arange(SIZE) + 0.5)
    x = t.c + cols * PIXEL
    y = t.f - rows * PIXEL
    proj = Proj(CRS)
    lon, lat = proj(x, y, inverse=True)
    factors = proj.get_factors(lon, lat)
    return PIXEL * PIXEL / np.asarray(factors.areal_scale)


def expected_area_m2(mask: np.ndarray) -> float:
    """Exact ground area (m²) of a set of window pixels."""
    return float(pixel_area_m2()[mask].sum())


# ---------------------------------------------------------------------- building the files
def _noise(shape: tuple[int, int], span: int) -> np.ndarray:
    rows, cols = np.indices(shape)
    return ((rows * 7 + cols * 13) % span).astype(np.int64)


def _base_nir() -> tuple[np.ndarray, np.ndarray, float]:
    """Real B08 of the window with a gap opened around its Otsu threshold; sea mask; threshold."""
    with rasterio.open(S2_DIR / "B08.tif") as ds:
        nir = ds.read(1)[ROW0 : ROW0 + SIZE, COL0 : COL0 + SIZE].astype(np.int64)
    valid = nir > 0
    t = float(threshold_otsu(nir[valid]))
    sea = valid & (nir <= t)
    out = np.where(sea, 200 + nir // 10, 4000 + (nir - int(t)) // 2)
    return np.where(valid, out, 0), sea, t


def _base_scl() -> np.ndarray:
    with rasterio.open(S2_DIR / "SCL.tif") as ds:
        h = SIZE // 2
        scl = ds.read(1)[ROW0 // 2 : ROW0 // 2 + h, COL0 // 2 : COL0 // 2 + h].copy()
    scl[np.isin(scl, SCL_MASK_VALUES)] = 5
    return scl


def _ring(mask: np.ndarray, width: int) -> np.ndarray:
    from scipy.ndimage import binary_dilation

    return binary_dilation(mask, iterations=width) & ~mask


def _write(path: Path, data: np.ndarray, transform: Affine, nodata: float | None) -> Path:
    from tests.synthetic import write_cog

    return write_cog(path, data, crs=CRS, transform=transform, nodata=nodata, blocksize=64)


def _asset(path: Path, roles: list[str], title: str) -> dict:
    with rasterio.open(path) as ds:
        shape = [ds.height, ds.width]
        transform = list(ds.transform)[:6]
        gsd = ds.transform.a
    return {
        "href": path.as_uri(),
        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
        "title": title,
        "roles": roles,
        "gsd": gsd,
        "proj:shape": shape,
        "proj:transform": transform,
    }


def build_time_stack(directory: Path) -> TimeStack:
    """Write the four dated items (COGs + item JSON) and the collection into `directory`."""
    nir0, sea, t = _base_nir()
    valid = nir0 > 0
    scl0 = _base_scl()
    stack = TimeStack(directory, directory / "collection.json", (), sea, valid)
    land = valid & ~sea
    for rect in (LAKE, GROWTH, POND, CLOUD_A, SHADOW, CLOUD_B, CIRRUS):
        if not land[_box(rect)].all():
            raise AssertionError(f"fixture rectangle {rect} is not all land in the real scene")
    t20 = Affine(2 * PIXEL, 0.0, stack.transform.c, 0.0, -2 * PIXEL, stack.transform.f)
    bbox = list(stack.bbox())
    w, s, e, n = bbox
    geometry = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
    items = []
    for i, (date, when, item_id) in enumerate(zip(DATES, DATETIMES, ITEM_IDS, strict=True)):
        nir = nir0.copy()
        water = stack.painted_water(i)
        nir[water] = 250 + _noise((SIZE, SIZE), 100)[water]
        scl = scl0.copy()
        for rect, value in CLOUDS[i]:
            box = _box(rect)
            nir[box] = 300 if value == 3 else 9000 + _noise((SIZE, SIZE), 200)[box]
            r0, r1, c0, c1 = rect
            scl[r0 // 2 : r1 // 2, c0 // 2 : c1 // 2] = value
        cloudy = stack.cloud(i, (8, 9, 10))
        qa = np.where(valid, 1 << 6, 1).astype(np.uint16)
        qa[cloudy] = 1 << 3
        qa[stack.cloud(i, (3,))] = 1 << 4
        qa[_ring(cloudy, 4) & valid] |= 1 << 1
        masked = stack.cloud(i)
        fg = nir[valid & ~masked]
        tm = float(threshold_otsu(fg))
        tu = float(threshold_otsu(nir[valid]))
        # and the server's binning (256 equal bins): its threshold is a bin edge, up to a bin above
        counts, edges = np.histogram(nir[valid], bins=256)
        tb = float(threshold_otsu(hist=(counts, (edges[:-1] + edges[1:]) / 2)))
        tb += (edges[1] - edges[0]) / 2  # the upper edge of the last background bin
        tm, tu = min(tm, tu, tb), max(tm, tu, tb)
        if not (
            int(nir[(sea | water) & ~masked].max())
            <= min(tm, tu)
            <= max(tm, tu)
            < int(nir[land & ~water & ~masked].min())
        ):
            raise AssertionError(f"date {date}: Otsu thresholds {tm}, {tu} not in the gap of the fixture's B08")
        folder = directory / item_id
        assets = {
            "B08": _asset(_write(folder / "B08.tif", nir.astype(np.uint16), stack.transform, 0), ["data"], "NIR"),
            "SCL": _asset(_write(folder / "SCL.tif", scl, t20, 0), ["data"], "Scene classification"),
            "QA_PIXEL": _asset(_write(folder / "QA_PIXEL.tif", qa, stack.transform, None), ["data"], "QA bit flags"),
        }
        item = {
            "type": "Feature",
            "stac_version": "1.0.0",
            "stac_extensions": ["https://stac-extensions.github.io/projection/v1.1.0/schema.json"],
            "id": item_id,
            "collection": TIME_COLLECTION,
            "bbox": bbox,
            "geometry": geometry,
            "properties": {
                "datetime": when,
                "proj:epsg": 32634,
                "eo:cloud_cover": round(100.0 * float(masked.mean()), 3),
                "gsd": PIXEL,
            },
            "assets": assets,
            "links": [],
        }
        path = directory / f"{item_id}.json"
        path.write_text(json.dumps(item))
        items.append(path)
    collection = {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": TIME_COLLECTION,
        "description": "Test stack: shared Sentinel-2 window at four dates (painted water change, clouds).",
        "license": "proprietary",
        "extent": {
            "spatial": {"bbox": [bbox]},
            "temporal": {"interval": [[DATETIMES[0], DATETIMES[-1]]]},
        },
        "links": [],
    }
    stack.collection.write_text(json.dumps(collection))
    return TimeStack(directory, stack.collection, tuple(items), sea, valid)


@pytest.fixture(scope="session")
def time_stack(tmp_path_factory: pytest.TempPathFactory) -> TimeStack:
    """The four-date stack (files + truth) in a fresh directory."""
    return build_time_stack(tmp_path_factory.mktemp("time_stack"))


@pytest.fixture(scope="session")
def time_api(time_stack: TimeStack) -> Iterator[str]:
    """URL of a real STAC API (`rustac serve`, in-memory) holding the stack."""
    port = free_port()
    proc = start_rustac([time_stack.collection, *time_stack.items], port, collection=TIME_COLLECTION)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def time_settings(time_stack: TimeStack, api: str, **overrides: object) -> Settings:
    """Settings for the stack's tests: shared data + the stack's directory allowed."""
    values: dict = {
        "allowed_sources": [str(SHARED_DATA), str(time_stack.directory)],
        "cache_dir": time_stack.directory / "cache",
        "stac_api_url": api,
        "stac_min_zoom": 7,
        # /stacapi areas read the TMS level of maxzoom: z13 (~16 m ground) keeps them fast
        "stac_max_zoom": 13,
        "stac_timeout": 5.0,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture(scope="session")
def time_client(time_stack: TimeStack, time_api: str) -> TestClient:
    """App whose default STAC API serves the stack."""
    return TestClient(create_app(time_settings(time_stack, time_api)), raise_server_exceptions=False)

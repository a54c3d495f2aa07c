"""What an export reads: a COG (bands or an expression) or a STAC Item (assets).

`ExportSource` is a small picklable description sent to every Dask task. `read_window`
runs in the workers: it reads one window of the output grid, either as a plain rasterio
window (when the output grid is the raster's own pixel lattice: exact, no resampling) or
with the tile server's grid-exact nearest sampling (`GridExactReader.read_window`) in any
other CRS or resolution. Open datasets are cached per worker thread.

May import: `core`, `security`, `io`, `algorithms`, `export`, `errors`, `settings` (never `web`).
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import morecantile
import numpy as np
import pyproj
import rasterio
from rasterio.crs import CRS
from rasterio.io import DatasetReader
from rasterio.windows import Window as RioWindow
from rio_tiler.models import ImageData

from titiler_otsu.core.grid import GridWindow
from titiler_otsu.core.histogram import Histogram
from titiler_otsu.errors import BadRequestError, MultiBandInputError, SourceNotFoundError
from titiler_otsu.export.grid import OutputGrid, Window
from titiler_otsu.io.histograms import DatasetHistograms
from titiler_otsu.io.reader import GridExactReader
from titiler_otsu.io.remote_vsi import gdal_path

_CACHE_SIZE = 16

#: GDAL block cache of a worker process, MB (GDAL's default, 5 % of RAM, would grow with
#: the scene until it is full: worker memory must be bounded by the window size instead).
WORKER_GDAL_CACHE_MB = 128

_gdal_options_applied = False
_gdal_cache_limited = False


def apply_remote_gdal_options() -> None:
    """Set the server's GDAL options in this process (once; the environment wins).

    No sidecar probes, the header in one GET, a shared byte cache big enough that halos re-read
    cached blocks: remote sources are fetched about once. The block cache is left alone here
    (the driver's COG conversion wants GDAL's default); workers cap it with `limit_gdal_cache`.
    """
    global _gdal_options_applied
    if _gdal_options_applied:
        return
    _gdal_options_applied = True
    from titiler_otsu.io.datasets import apply_gdal_config
    from titiler_otsu.settings import GDAL_CONFIG_DEFAULTS

    apply_gdal_config({k: v for k, v in GDAL_CONFIG_DEFAULTS.items() if k != "GDAL_CACHEMAX"})


def limit_gdal_cache() -> None:
    """Cap GDAL's block cache in this (worker) process and set the server's GDAL options (once)."""
    global _gdal_cache_limited
    apply_remote_gdal_options()
    if _gdal_cache_limited:
        return
    _gdal_cache_limited = True
    if "GDAL_CACHEMAX" not in os.environ:
        from rasterio._env import set_gdal_config

        # in bytes: set at run time, a small number is taken as bytes, not MB
        set_gdal_config("GDAL_CACHEMAX", WORKER_GDAL_CACHE_MB * 2**20)


@dataclass(frozen=True)
class ExportSource:
    """A one-band view of a COG or of a STAC Item's assets.

    Attributes:
        path: the COG, or the STAC Item (JSON file or URL).
        kind: "cog" or "stac".
        files: rasters read, in band order (COG: the file; STAC: the assets' hrefs).
        indexes: COG band indexes (None: all bands).
        expression: rio-tiler band math over b1..bn (the selected bands/assets, stacked).
        assets: STAC asset names (stacked as b1..bn, in this order).
        user_expression: the expression as given (STAC: may name assets).
        user_assets: the assets as given (STAC).

    """

    path: str
    kind: Literal["cog", "stac"]
    files: tuple[str, ...]
    indexes: tuple[int, ...] | None = None
    expression: str | None = None
    assets: tuple[str, ...] = field(default_factory=tuple)
    user_expression: str | None = None
    user_assets: tuple[str, ...] = field(default_factory=tuple)

    # ------------------------------------------------------------------ driver side
    @classmethod
    def open(
        cls,
        path: str,
        bidx: int | None = None,
        expression: str | None = None,
        assets: list[str] | None = None,
    ) -> ExportSource:
        """Describe a source, checking it exists and the band selection makes sense."""
        apply_remote_gdal_options()
        if bidx is not None and expression:
            raise BadRequestError("Give either --bidx or --expression, not both.")
        if "://" not in path and not Path(path).is_file():
            raise SourceNotFoundError(f"No such source: {path}")
        if _is_stac_item(path):
            return cls._open_stac(path, bidx, expression, assets or [])
        if assets:
            raise BadRequestError("--assets is for STAC Items; this source is a raster (use --bidx or --expression).")
        with GridExactReader(path) as src:
            count = src.ds.count
        if bidx is not None and not 1 <= bidx <= count:
            raise BadRequestError(f"Band {bidx} does not exist: this source has {count} band(s) (bidx 1..{count}).")
        if bidx is None and not expression and count != 1:
            raise MultiBandInputError(
                f"Segmentation needs one band but the source has {count}. Pick a band with "
                "--bidx (e.g. --bidx 1) or build one with --expression (e.g. '(b4-b1)/(b4+b1)')."
            )
        return cls(path=path, kind="cog", files=(path,), indexes=(bidx,) if bidx else None, expression=expression)

    @classmethod
    def _open_stac(cls, path: str, bidx: int | None, expression: str | None, assets: list[str]) -> ExportSource:
        """A STAC Item, read like `/stac` does (asset names allowed in the expression)."""
        from titiler_otsu.io.stac_expression import resolve_expression
        from titiler_otsu.io.stac_reader import GridExactSTACReader

        if bidx is not None:
            raise BadRequestError("--bidx is for rasters; pick STAC assets with --assets (e.g. --assets B08).")
        with GridExactSTACReader(path) as stac:
            read, expr = list(assets), expression
            if expression:
                resolved, expr = resolve_expression(expression, stac.assets, assets or None)
                read = resolved if resolved is not None else read
            if not read:
                raise BadRequestError(
                    "A STAC Item needs --assets (e.g. --assets B08) or an --expression naming assets "
                    f"(e.g. '(B03-B08)/(B03+B08)'). Available assets: {', '.join(stac.assets)}."
                )
            files = tuple(stac._get_asset_info(a)["url"] for a in read)
        if not expr and len(read) != 1:
            raise MultiBandInputError(
                f"Segmentation needs one band but {len(read)} assets were given: keep one, or "
                "combine them with --expression (e.g. '(B03-B08)/(B03+B08)')."
            )
        return cls(
            path=path,
            kind="stac",
            files=files,
            expression=expr,
            assets=tuple(read),
            user_expression=expression,
            user_assets=tuple(assets),
        )

    def native_grid_info(self) -> tuple[CRS, Any, int, int]:
        """CRS, transform, width and height of the first raster read (the default grid)."""
        with rasterio.open(gdal_path(self.files[0])) as ds:
            return ds.crs, ds.transform, ds.width, ds.height

    def read_options(self) -> dict[str, Any]:
        """Band selection as the tile server passes it to `preview` (the histogram cache key)."""
        if self.kind == "stac":
            options: dict[str, Any] = {}
            if self.user_assets:
                options["assets"] = list(self.user_assets)
            if self.user_expression:
                options["expression"] = self.user_expression
            return options
        if self.expression:
            return {"expression": self.expression}
        return {"indexes": list(self.indexes)} if self.indexes else {}

    def overview_histogram(self, histograms: DatasetHistograms, nbins: int) -> Histogram:
        """The dataset histogram the tile server uses for this source (same overview read)."""
        if self.kind == "stac":
            from titiler_otsu.io.stac_reader import GridExactSTACReader

            def open_reader() -> Any:
                return GridExactSTACReader(self.path)

        else:

            def open_reader() -> Any:
                return GridExactReader(self.path)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return histograms.get(open_reader, self.path, self.read_options(), nbins)

    # ------------------------------------------------------------------ worker side
    def read_window(self, grid: OutputGrid, window: Window) -> ImageData:
        """One band of the source on a window of the output grid (masked, in grid CRS)."""
        limit_gdal_cache()
        arrays = []
        for url in self.files:
            indexes = list(self.indexes) if (self.kind == "cog" and self.indexes) else None
            arrays.append(_read_file_window(url, indexes, grid, window))
        data = np.ma.concatenate(arrays, axis=0) if len(arrays) > 1 else arrays[0]
        t = grid.affine
        left, top = t * (window.col, window.row)
        right, bottom = t * (window.col + window.width, window.row + window.height)
        img = ImageData(
            data,
            bounds=(min(left, right), min(top, bottom), max(left, right), max(top, bottom)),
            crs=grid.crs,
            band_names=[f"b{i + 1}" for i in range(data.shape[0])],
            # where pixel (0, 0) sits on the grid: anchors grid-based algorithms (localotsu)
            metadata={"grid_col": grid.anchor_col + window.col, "grid_row": grid.anchor_row + window.row},
        )
        if self.expression:
            with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)
                img = img.apply_expression(self.expression)
        return img


def _is_stac_item(path: str) -> bool:
    if path.lower().endswith(".json"):
        return True
    if "://" in path:
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(1)
        if head != b"{":
            return False
        with open(path) as f:
            return json.load(f).get("type") == "Feature"
    except (OSError, ValueError, AttributeError):
        return False


class _ThreadCache(threading.local):
    """Per-thread LRU of open datasets and grid readers (rasterio handles are not thread-safe)."""

    def __init__(self) -> None:
        self.items: OrderedDict[tuple, Any] = OrderedDict()

    def get(self, key: tuple, make: Any) -> Any:
        item = self.items.get(key)
        if item is None:
            item = make()
            self.items[key] = item
            if len(self.items) > _CACHE_SIZE:
                _, old = self.items.popitem(last=False)
                old.close()
        else:
            self.items.move_to_end(key)
        return item


_CACHE = _ThreadCache()


def _dataset(url: str) -> DatasetReader:
    return _CACHE.get(("ds", url), lambda: rasterio.open(gdal_path(url)))


def _grid_reader(url: str, grid: OutputGrid) -> GridExactReader:
    def make() -> GridExactReader:
        left, bottom, right, top = grid.bounds
        tms = morecantile.TileMatrixSet.custom([left, bottom, right, top], pyproj.CRS.from_wkt(grid.crs_wkt))
        return GridExactReader(url, tms=tms)

    return _CACHE.get(("grid", url, grid.crs_wkt), make)


def _read_file_window(url: str, indexes: list[int] | None, grid: OutputGrid, window: Window) -> np.ma.MaskedArray:
    """Bands of one raster on a window of the output grid, with the dataset mask."""
    ds = _dataset(url)
    idx = indexes or list(range(1, ds.count + 1))
    offset = grid.offset_in(ds.crs, ds.transform)
    if offset is not None:
        win = RioWindow(window.col + offset[0], window.row + offset[1], window.width, window.height)
        inside = (
            win.col_off >= 0
            and win.row_off >= 0
            and (win.col_off + win.width <= ds.width and win.row_off + win.height <= ds.height)
        )
        fill = ds.nodata if ds.nodata is not None else 0
        data = ds.read(idx, window=win, boundless=not inside, fill_value=fill)
        valid = ds.read_masks(idx, window=win, boundless=not inside) > 0
        if data.dtype.kind == "f":
            valid &= np.isfinite(data)
        return np.ma.MaskedArray(data, mask=~valid)
    if not grid.is_square_north_up():
        raise BadRequestError(
            f"{url} is not on the output grid and the grid is not north-up with square pixels: "
            "give --crs and --resolution."
        )
    reader = _grid_reader(url, grid)
    gw = GridWindow(grid.pixel_grid(), window.col, window.row, window.width, window.height)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        img = reader.read_window(gw, idx)
    return img.array

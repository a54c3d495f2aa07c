"""A rio-tiler Reader whose tiles are exact windows of a global pixel grid.

Stock `Reader.tile` warps each request with its own approximate transform and reads a
buffered tile as a *different* warp, so a tile's halo is not its neighbour's pixels.
`GridExactReader.tile` samples the source with nearest neighbour at coordinates that
depend only on the pixel's position on the TMS grid (see `titiler_otsu.io.sampling`), from an
overview chosen per grid level. The result: every pixel value (and its mask) is the same
whichever tile, tile size or halo asked for it.

May import: `core`, `security`, `io`, `errors`, `settings`.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import attr
import numpy as np
import rasterio
from morecantile import Tile
from rasterio.enums import MaskFlags
from rasterio.errors import RasterioIOError
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window
from rio_tiler.errors import TileOutsideBounds
from rio_tiler.expression import parse_expression
from rio_tiler.io import Reader
from rio_tiler.models import ImageData
from rio_tiler.reader import part as read_part
from rio_tiler.utils import normalize_bounds

from titiler_otsu.core.grid import GridWindow, tile_window
from titiler_otsu.errors import (
    BadRequestError,
    SourceNotFoundError,
    SourceNotReadableError,
    translate_gdal_error,
)
from titiler_otsu.io.datasets import OpenDataset, dataset_cache
from titiler_otsu.io.masking import QualityMask, with_quality_mask
from titiler_otsu.io.remote_vsi import gdal_path
from titiler_otsu.io.sampling import source_coords, source_pixel_size, transformer_for
from titiler_otsu.security.limits import BoundedPartMixin
from titiler_otsu.security.source_checks import check_servable

#: An overview is used when its decimation is at most this much coarser than the grid level.
OVERVIEW_TOLERANCE = 1.0

_SUPPORTED_RESAMPLING = {None, "nearest"}


def _nodata_mask_only(src: DatasetReader, indexes: tuple[int, ...] | list[int]) -> bool:
    """Whether the masks of `indexes` are GDAL's nodata masks of an integer band (value != nodata).

    Then `values != nodata` is exactly `read_masks() > 0`, one read of the window fewer. Float
    bands (NaN, GDAL's float comparison) and other masks (internal, alpha, per-dataset) keep
    `read_masks`.
    """
    nodata = src.nodata
    if nodata is None or not np.isfinite(nodata) or nodata != int(nodata):
        return False
    dtype = np.dtype(src.dtypes[indexes[0] - 1])
    if dtype.kind not in "iu" or not np.iinfo(dtype).min <= nodata <= np.iinfo(dtype).max:
        return False
    flags, nodatavals = src.mask_flag_enums, src.nodatavals
    return all(
        src.dtypes[i - 1] == dtype.name and nodatavals[i - 1] == nodata and flags[i - 1] == [MaskFlags.nodata]
        for i in indexes
    )


@attr.s
class GridExactReader(BoundedPartMixin, Reader):
    """rio-tiler `Reader` with grid-exact, halo-consistent `tile()` reads.

    Attributes:
        quality_mask: pixels this raster (band 1) flags become nodata in every read
            (`mask_url` on `/cog`; see `titiler_otsu.io.masking`).

    """

    quality_mask: QualityMask | None = attr.ib(default=None)
    _overviews: dict[int, DatasetReader] = attr.ib(init=False, factory=dict)
    _src_pixel_size: float | None = attr.ib(init=False, default=None)
    _handles: OpenDataset | None = attr.ib(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        """Open the dataset (lent by the process's dataset cache), turning GDAL's open errors into user-facing ones."""
        try:
            if self.dataset is None and self.input:
                self._handles = self._ctx_stack.enter_context(dataset_cache().lease(self.input))
                self.dataset = self._handles.dataset
            if self.dataset is not None:
                check_servable(self.dataset, os.path.basename((self.input or "").rstrip("/")) or "The source")
            super().__attrs_post_init__()
        except SourceNotReadableError:
            self.close()
            raise
        except RasterioIOError as e:
            self.close()
            if self.input and os.path.isfile(self.input):
                raise SourceNotReadableError(
                    f"{os.path.basename(self.input)} is not a raster GDAL can read (expected a GeoTIFF/COG)."
                ) from e
            if self.input and "://" in self.input:  # unreachable, 404, timeout: see translate_gdal_error
                raise translate_gdal_error(e, remote=True) from e
            raise SourceNotFoundError(f"No such source: {self.input}") from e

    @property
    def ds(self) -> DatasetReader:
        """The open full-resolution dataset."""
        assert self.dataset is not None
        return self.dataset

    def _overview_factor(self, grid_res: float) -> int:
        """Decimation of the overview used for a grid level (a per-source constant)."""
        if isinstance(self.dataset, WarpedVRT) or self.input is None:
            return 1
        if self._src_pixel_size is None:
            self._src_pixel_size = source_pixel_size(
                self.tms.rasterio_crs, self.crs, self.ds.transform, self.ds.width, self.ds.height
            )
        decimation = grid_res / self._src_pixel_size
        factors = [f for f in self.ds.overviews(1) if f <= decimation * OVERVIEW_TOLERANCE]
        return max(factors, default=1)

    def _level_dataset(self, factor: int) -> DatasetReader:
        """The dataset (full resolution or an overview) for a decimation factor."""
        if factor == 1:
            return self.dataset
        if factor not in self._overviews:
            level = self.ds.overviews(1).index(factor)
            if self._handles is not None:
                self._overviews[factor] = self._handles.overview(level)
            else:
                opened = rasterio.open(gdal_path(self.input or ""), overview_level=level)
                self._overviews[factor] = self._ctx_stack.enter_context(opened)
        return self._overviews[factor]

    def tile_exists(self, tile_x: int, tile_y: int, tile_z: int) -> bool:
        """rio-tiler's test (tile bounds, densified into the source CRS, meet the source bounds).

        With a cached pyproj transformer: GDAL builds a new transformation per call (~20 ms).
        """
        left, bottom, right, top = self.tms.xy_bounds(Tile(x=tile_x, y=tile_y, z=tile_z))
        if self.tms.rasterio_crs != self.crs:
            transformer = transformer_for(self.tms.rasterio_crs, self.crs)
            left, bottom, right, top = transformer.transform_bounds(left, bottom, right, top, densify_pts=21)
        if not all(np.isfinite((left, bottom, right, top))):
            return True
        left, bottom, right, top = normalize_bounds((left, bottom, right, top))
        src_left, src_bottom, src_right, src_top = normalize_bounds(self.bounds)
        return left < src_right and right > src_left and top > src_bottom and bottom < src_top

    def read_window(
        self,
        window: GridWindow,
        indexes: list[int] | tuple[int, ...],
        nodata: float | None = None,
        unscale: bool = False,
    ) -> ImageData:
        """Read a window of a global pixel grid (nearest neighbour, grid-exact).

        Args:
            window: the grid window (in the reader's TMS CRS).
            indexes: 1-based band indexes.
            nodata: overwrite the dataset nodata value.
            unscale: apply the dataset's scale/offset.

        Returns:
            ImageData: masked (bands, height, width) array in the TMS CRS.

        """
        factor = self._overview_factor(window.grid.res)
        src = self._level_dataset(factor)
        coords = source_coords(window, self.tms.rasterio_crs, self.crs, self.ds.transform)
        scale_x = self.ds.width / src.width
        scale_y = self.ds.height / src.height
        with np.errstate(invalid="ignore"):
            pc = np.floor(coords.cols / scale_x)
            pr = np.floor(coords.rows / scale_y)
            inside = (pc >= 0) & (pc < src.width) & (pr >= 0) & (pr < src.height)
        shape = (len(indexes), window.height, window.width)
        dtype = src.dtypes[indexes[0] - 1]
        fill = nodata if nodata is not None else (src.nodata if src.nodata is not None else 0)
        if inside.any():
            ic = pc[inside].astype(np.int64)
            ir = pr[inside].astype(np.int64)
            c0, r0 = int(ic.min()), int(ir.min())
            win = Window(c0, r0, int(ic.max()) - c0 + 1, int(ir.max()) - r0 + 1)
            source_window: tuple[int, int, int, int] | None = (c0, r0, int(win.width), int(win.height))
            block = src.read(indexes, window=win)
            dtype = block.dtype
            values = block[:, ir - r0, ic - c0]
            if nodata is not None:
                valid = ~np.isnan(values) if np.isnan(nodata) else values != nodata
            elif _nodata_mask_only(src, indexes):
                valid = values != src.nodata  # GDAL's nodata mask band, without a second read
            else:
                block_mask = src.read_masks(indexes, window=win)
                valid = block_mask[:, ir - r0, ic - c0] > 0
            if values.dtype.kind == "f":
                valid &= np.isfinite(values)
            data = np.full(shape, fill, dtype=dtype)
            mask = np.ones(shape, dtype=bool)
            data[:, inside] = values
            mask[:, inside] = ~valid
        else:
            data = np.full(shape, fill, dtype=dtype)
            mask = np.ones(shape, dtype=bool)
            source_window = None

        scales = [self.ds.scales[i - 1] for i in indexes]
        offsets = [self.ds.offsets[i - 1] for i in indexes]
        if unscale:
            data = (
                data.astype("float32") * np.array(scales, "float32")[:, None, None]
                + np.array(offsets, "float32")[:, None, None]
            )
            scales, offsets = [1.0] * len(indexes), [0.0] * len(indexes)

        return ImageData(
            np.ma.MaskedArray(data, mask=mask),
            bounds=window.bounds,
            crs=self.tms.rasterio_crs,
            band_names=[f"b{i}" for i in indexes],
            band_descriptions=[self.ds.descriptions[i - 1] or f"b{i}" for i in indexes],
            nodata=fill,
            scales=scales,
            offsets=offsets,
            assets=[self.input] if self.input else None,
            metadata={
                "grid_level": window.grid.level,
                # global column/row of pixel (0, 0): anchors localotsu's block grid exactly
                "grid_col": window.col,
                "grid_row": window.row,
                "overview_factor": factor,
                # the block of the level dataset this window read: (col_off, row_off, width, height)
                "source_window": source_window,
                "halo": 0,
            },
        )

    def tile(  # type: ignore[override]
        self,
        tile_x: int,
        tile_y: int,
        tile_z: int,
        tilesize: int | None = None,
        indexes: int | list[int] | tuple[int, ...] | None = None,
        expression: str | None = None,
        buffer: float | None = None,
        **kwargs: Any,
    ) -> ImageData:
        """Read a tile (plus `buffer` pixels on each side) on the global pixel grid.

        Args:
            tile_x: tile column.
            tile_y: tile row.
            tile_z: tile zoom.
            tilesize: output size (default: the TMS tile size).
            indexes: band indexes.
            expression: rio-tiler band-math expression (e.g. `(b4-b1)/(b4+b1)`).
            buffer: halo in pixels (a whole number) on each side.
            kwargs: `nodata`, `unscale`; `resampling_method`/`reproject_method` other than
                nearest are refused (they would break the seamless guarantee).

        Returns:
            ImageData: `tilesize + 2 * buffer` pixels square.

        """
        if not self.tile_exists(tile_x, tile_y, tile_z):
            raise TileOutsideBounds(f"Tile(x={tile_x}, y={tile_y}, z={tile_z}) is outside bounds")
        options = {**self.options, **kwargs}
        for key in ("resampling_method", "reproject_method"):
            method = options.get(key)
            method = getattr(method, "value", method)
            if method not in _SUPPORTED_RESAMPLING:
                raise BadRequestError(
                    f"{key.split('_')[0]}={method} is not supported: tiles are sampled with "
                    "'nearest' on a global pixel grid so that neighbouring tiles agree exactly. "
                    "Remove the parameter."
                )
        halo = int(buffer or 0)
        if halo != (buffer or 0):
            raise BadRequestError("buffer must be a whole number of pixels")
        matrix = self.tms.matrix(tile_z)
        size = tilesize or matrix.tileWidth
        window = tile_window(self.tms, tile_x, tile_y, tile_z, size, halo)

        if expression:
            indexes = parse_expression(expression)
        elif indexes is None:
            indexes = list(range(1, self.ds.count + 1))
        elif isinstance(indexes, int):
            indexes = [indexes]
        for idx in indexes:
            if not 1 <= idx <= self.ds.count:
                raise BadRequestError(
                    f"Band {idx} does not exist: this source has {self.ds.count} band(s) (bidx 1..{self.ds.count})."
                )
        bands = list(indexes)

        def read() -> ImageData:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                img = self.read_window(
                    window, bands, nodata=options.get("nodata"), unscale=bool(options.get("unscale"))
                )
            return img.apply_expression(expression) if expression else img

        def read_mask(mask: QualityMask, _: ImageData) -> ImageData:
            with GridExactReader(mask.source, tms=self.tms) as flags, warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return flags.read_window(window, [1])

        img = with_quality_mask(self.quality_mask, read, read_mask)
        img.metadata = {**(img.metadata or {}), "halo": halo}
        return img

    # ------------------------------------------------------------------ quality mask on other reads
    def _mask_on_grid_of(self, mask: QualityMask, img: ImageData) -> ImageData:
        """The quality-mask raster read on `img`'s output grid (nearest)."""
        with GridExactReader(mask.source, tms=self.tms) as flags, warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            assert img.bounds is not None
            return read_part(
                flags.dataset, img.bounds, height=img.height, width=img.width, dst_crs=img.crs,
                bounds_crs=img.crs, indexes=[1],
            )  # fmt: skip

    def part(self, bbox: tuple[float, float, float, float], *args: Any, **kwargs: Any) -> ImageData:
        """rio-tiler's `part` (extent-checked), quality-masked."""
        read = super().part
        return with_quality_mask(self.quality_mask, lambda: read(bbox, *args, **kwargs), self._mask_on_grid_of)

    def preview(self, *args: Any, **kwargs: Any) -> ImageData:
        """rio-tiler's `preview` (dataset histograms, statistics), quality-masked."""
        read = super().preview
        return with_quality_mask(self.quality_mask, lambda: read(*args, **kwargs), self._mask_on_grid_of)

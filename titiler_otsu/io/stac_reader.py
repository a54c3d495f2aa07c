"""Reading one STAC Item: multi-asset, grid-exact, asset hrefs checked by the allow-list.

`GridExactSTACReader` is rio-tiler's `STACReader` whose per-asset reader is our
`GridExactReader` (`GridExactAssetReader`): every asset (10 m, 20 m...) is sampled on the same
window of the TMS global pixel grid, so band math across assets (`(B03-B08)/(B03+B08)`) is
pixel-aligned and seamless. Whole-item and bbox reads (dataset histograms) use one grid window
for all assets too. Asset hrefs go through the same `SourcePolicy` as `url=`. `grid_metadata`
is the grid position a grid-exact tile carries in its metadata; `stac_reader` binds the reader
to an allow-list, a fetch timeout and asset threads.

May import: `core`, `security`, `io`, `errors`, `settings`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from typing import Any

import attr
import httpx2
import numpy as np
import pystac
from rasterio.crs import CRS
from rasterio.transform import Affine, array_bounds
from rasterio.warp import transform_bounds
from rio_tiler.constants import WGS84_CRS
from rio_tiler.errors import InvalidAssetName, MissingAssets, TileOutsideBounds
from rio_tiler.expression import parse_expression
from rio_tiler.io import BaseReader, STACReader
from rio_tiler.models import ImageData, Info
from rio_tiler.types import AssetInfo

from titiler_otsu.core.grid import GridWindow, tile_window
from titiler_otsu.errors import (
    BadRequestError,
    SourceNotFoundError,
    SourceNotReadableError,
    UpstreamError,
    UpstreamTimeoutError,
)
from titiler_otsu.io.masking import QualityMask, with_quality_mask
from titiler_otsu.io.reader import GridExactReader
from titiler_otsu.io.stac_expression import resolve_expression
from titiler_otsu.io.stac_windows import to_tms_bounds, window_for_bounds
from titiler_otsu.security.source_checks import check_item_grid, item_grid_too_small
from titiler_otsu.security.sources import SourcePolicy

__all__ = ["GridExactAssetReader", "GridExactSTACReader", "grid_metadata", "stac_reader"]


@attr.s
class GridExactAssetReader(GridExactReader):
    """Per-asset reader of a STAC item: grid-exact tiles and grid-window previews.

    The item reader decides whether a tile (with its halo) touches the item; an asset that
    does not cover the whole item just gives masked pixels there.
    """

    def tile_exists(self, tile_x: int, tile_y: int, tile_z: int) -> bool:
        """Always True: the item-level reader checks the (halo-grown) tile against the item."""
        return True

    def info(self, **band_options: Any) -> Info:
        """The asset's metadata; band options of `assets=B08|bidx=1` (for reads) do not change it."""
        return super().info()

    def preview(  # type: ignore[override]
        self,
        indexes: int | Sequence[int] | None = None,
        expression: str | None = None,
        grid_window: GridWindow | None = None,
        **kwargs: Any,
    ) -> ImageData:
        """Read `grid_window` of the global grid (or rio-tiler's preview without it)."""
        if grid_window is None:
            return super().preview(indexes=indexes, expression=expression, **kwargs)
        if expression:
            bands = list(parse_expression(expression))
        elif indexes is None:
            bands = list(range(1, self.ds.count + 1))
        else:
            bands = [indexes] if isinstance(indexes, int) else list(indexes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            img = self.read_window(grid_window, bands, nodata=kwargs.get("nodata"), unscale=bool(kwargs.get("unscale")))
        return img.apply_expression(expression) if expression else img


def grid_metadata(
    tms: Any, tile_x: int, tile_y: int, tile_z: int, tilesize: int | None, buffer: float | None
) -> dict[str, int]:
    """Top-level image metadata of a grid-exact tile: its grid level, origin and halo."""
    halo = int(buffer or 0)
    window = tile_window(tms, tile_x, tile_y, tile_z, tilesize or tms.matrix(tile_z).tileWidth, halo)
    return {"grid_level": window.grid.level, "grid_col": window.col, "grid_row": window.row, "halo": halo}


def _fetch_error(input: str | None, err: Exception) -> Exception:
    """A user-facing error for a STAC Item that cannot be fetched or parsed."""
    if isinstance(err, httpx2.HTTPStatusError):
        code = err.response.status_code
        if code == 404:
            return SourceNotFoundError(f"STAC Item not found: {input} (HTTP 404).")
        return UpstreamError(f"Fetching the STAC Item {input} failed with HTTP {code}.")
    if isinstance(err, httpx2.TimeoutException):
        return UpstreamTimeoutError(f"Fetching the STAC Item {input} timed out.")
    if isinstance(err, httpx2.TransportError):
        return UpstreamError(f"Could not reach the STAC Item {input} ({err.__class__.__name__}).")
    if isinstance(err, (json.JSONDecodeError, UnicodeDecodeError)):
        return SourceNotReadableError(f"{input} is not JSON: `url` must point to a STAC Item (GeoJSON Feature).")
    if isinstance(err, FileNotFoundError):
        return SourceNotFoundError(f"No such STAC Item: {input}")
    return SourceNotReadableError(
        f"{input} is not a STAC Item ({err.__class__.__name__}: {err}); `url` must point to a STAC Item JSON."
    )


@attr.s
class GridExactSTACReader(STACReader):
    """`STACReader` with grid-exact assets, asset-name expressions and an href allow-list.

    Attributes:
        policy: allow-list every asset href must pass (None: no check).
        threads: threads reading the assets (1: one after the other, fastest for local files).
        quality_mask: pixels its asset flags become nodata in every read (`mask_asset=`),
            the asset read on the same grid window as the data (its own resolution, nearest).

    """

    reader: type[BaseReader] = attr.ib(default=GridExactAssetReader)
    policy: SourcePolicy | None = attr.ib(default=None)
    threads: int = attr.ib(default=1)
    quality_mask: QualityMask | None = attr.ib(default=None)
    _tile_request: tuple[int | None, int] = attr.ib(init=False, default=(None, 0))

    def __attrs_post_init__(self) -> None:
        """Fetch and parse the item, turning failures into user-facing errors."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                super().__attrs_post_init__()
        except MissingAssets as e:
            raise BadRequestError(f"The STAC Item {self.input or ''} has no raster (GeoTIFF/COG) asset.") from e
        except ZeroDivisionError as e:  # rio-tiler's Item grid from the assets' bounds rounded to 0 px
            if not self._use_item_level_grid():
                raise SourceNotReadableError(item_grid_too_small(f"The STAC Item {self.input or ''}")) from e
        except (
            httpx2.HTTPError,
            OSError,
            ValueError,
            KeyError,
            TypeError,
            pystac.STACError,
            pystac.STACTypeError,
        ) as e:
            raise _fetch_error(self.input, e) from e
        check_item_grid(self.crs, getattr(self, "width", None), getattr(self, "height", None), "The STAC Item")

    def _use_item_level_grid(self) -> bool:
        """Take the Item's own `proj:shape` / `proj:transform` (a grid one pixel wide, say) as its grid.

        rio-tiler rebuilds the grid from the assets' bounds and floors its size, which can round
        a one-pixel side to 0. Returns False when the Item has no usable item-level grid.
        """
        proj = self.item.ext.proj if self.item is not None and self.item.ext.has("proj") else None
        if proj is None or not proj.shape or not proj.transform or not proj.crs_string:
            return False
        self.height, self.width = (int(n) for n in proj.shape)
        self.transform = Affine(*proj.transform[:6])
        self.bounds = array_bounds(self.height, self.width, self.transform)
        self.crs = CRS.from_string(proj.crs_string)
        self.minzoom = self.minzoom if self.minzoom is not None else self._minzoom
        self.maxzoom = self.maxzoom if self.maxzoom is not None else self._maxzoom
        return True

    # ------------------------------------------------------------------ assets
    def _get_asset_info(self, asset: Any) -> AssetInfo:
        """Asset info with a 400 listing the assets, and the href checked by the policy."""
        try:
            info = super()._get_asset_info(asset)
        except InvalidAssetName as e:
            name = asset["name"] if isinstance(asset, dict) else asset
            raise BadRequestError(f"Unknown asset '{name}'. Available assets: {', '.join(self.assets)}.") from e
        if self.policy is not None:
            info["url"] = self.policy.resolve(info["url"])
        return info

    def _layer(
        self, assets: Sequence[Any] | str | None, expression: str | None
    ) -> tuple[list[Any] | None, str | None, bool]:
        """Assets to read, band-name expression, and whether asset names were used."""
        if isinstance(assets, str):
            assets = [assets]
        assets = list(assets) if assets else None
        if expression:
            plain = [a["name"] if isinstance(a, dict) else a for a in assets] if assets else None
            read, rewritten = resolve_expression(expression, self.assets, plain)
            if read is not None:
                by_name = {(a["name"] if isinstance(a, dict) else a): a for a in assets or []}
                return [by_name.get(n, n) for n in read], rewritten, True
            return assets, expression, False
        if not assets:
            raise BadRequestError(
                "Pick assets with `assets=` (e.g. assets=B08) or build one band with `expression=` "
                f"(e.g. (B03-B08)/(B03+B08)). Available assets: {', '.join(self.assets)}."
            )
        return assets, None, False

    @staticmethod
    def _apply(img: ImageData, expression: str | None, by_asset_name: bool, assets: list[Any]) -> ImageData:
        if not expression:
            return img
        if by_asset_name and img.count != len(assets):
            raise BadRequestError(
                "An expression with asset names needs one band per asset: pick it with "
                "`assets=NAME|bidx=N`, or use b1, b2... in the order of the bands read."
            )
        return img.apply_expression(expression)

    # ------------------------------------------------------------------ tiles
    def tile_exists(self, tile_x: int, tile_y: int, tile_z: int) -> bool:
        """Whether the tile, grown by the halo of the current request, touches the item."""
        tilesize, halo = self._tile_request
        size = tilesize or self.tms.matrix(tile_z).tileWidth
        window = tile_window(self.tms, tile_x, tile_y, tile_z, size, halo)
        return self._touches(window.bounds)

    def _touches(self, tms_bounds: tuple[float, float, float, float]) -> bool:
        """Whether bounds (TMS CRS) intersect the item's bounds."""
        try:
            left, bottom, right, top = transform_bounds(self.tms.rasterio_crs, self.crs, *tms_bounds, densify_pts=21)
        except Exception:  # noqa: BLE001 - not transformable: let the read decide
            return True
        if not all(np.isfinite([left, bottom, right, top])):
            return True
        b = self.bounds
        return left < b[2] and right > b[0] and bottom < b[3] and top > b[1]

    def tile(  # type: ignore[override]
        self,
        tile_x: int,
        tile_y: int,
        tile_z: int,
        assets: Sequence[Any] | str | None = None,
        expression: str | None = None,
        asset_as_band: bool = False,
        tilesize: int | None = None,
        buffer: float | None = None,
        **kwargs: Any,
    ) -> ImageData:
        """Grid-exact multi-asset tile (plus `buffer` halo pixels), asset-name expressions allowed."""
        read, expr, by_name = self._layer(assets, expression)
        self._tile_request = (tilesize, int(buffer or 0))
        tile = super().tile

        def data() -> ImageData:
            img = tile(
                tile_x, tile_y, tile_z, assets=read, asset_as_band=asset_as_band, tilesize=tilesize,
                buffer=buffer, threads=self.threads, **kwargs,
            )  # fmt: skip
            return self._apply(img, expr, by_name, read or [])

        def flags(mask: QualityMask, _: ImageData) -> ImageData:
            return tile(tile_x, tile_y, tile_z, assets=[mask.source], tilesize=tilesize, buffer=buffer)

        img = with_quality_mask(self.quality_mask, data, flags)
        img.metadata = {**(img.metadata or {}), **grid_metadata(self.tms, tile_x, tile_y, tile_z, tilesize, buffer)}
        return img

    # ------------------------------------------------------------------ whole item / bbox
    @property
    def _max_zoom(self) -> int:
        return self.maxzoom if self.maxzoom is not None else self.tms.maxzoom

    def read_grid_window(
        self,
        window: GridWindow,
        assets: Sequence[Any] | str | None = None,
        expression: str | None = None,
        asset_as_band: bool = False,
        **kwargs: Any,
    ) -> ImageData:
        """All requested assets on one window of the TMS grid (expression applied)."""
        read, expr, by_name = self._layer(assets, expression)
        kwargs = {k: v for k, v in kwargs.items() if k not in ("max_size", "height", "width")}
        preview = super().preview

        def data() -> ImageData:
            img = preview(assets=read, asset_as_band=asset_as_band, grid_window=window, threads=self.threads, **kwargs)
            return self._apply(img, expr, by_name, read or [])

        def flags(mask: QualityMask, _: ImageData) -> ImageData:
            return preview(assets=[mask.source], grid_window=window)

        return with_quality_mask(self.quality_mask, data, flags)

    def preview(  # type: ignore[override]
        self,
        assets: Sequence[Any] | str | None = None,
        expression: str | None = None,
        max_size: int | None = 1024,
        grid_window: GridWindow | None = None,
        **kwargs: Any,
    ) -> ImageData:
        """The whole item on one grid window of at most `max_size` pixels a side."""
        if grid_window is None:
            bounds = to_tms_bounds(self.tms, self.bounds, self.crs)
            grid_window = window_for_bounds(self.tms, bounds, max_size, self._max_zoom)
        return self.read_grid_window(grid_window, assets=assets, expression=expression, **kwargs)

    def part(  # type: ignore[override]
        self,
        bbox: tuple[float, float, float, float],
        dst_crs: CRS | None = None,
        bounds_crs: CRS = WGS84_CRS,
        max_size: int | None = None,
        height: int | None = None,
        width: int | None = None,
        assets: Sequence[Any] | str | None = None,
        expression: str | None = None,
        **kwargs: Any,
    ) -> ImageData:
        """A bbox on one grid window (TMS CRS); other output grids use rio-tiler's part."""
        if (dst_crs is not None and dst_crs != self.tms.rasterio_crs) or height or width:
            if not self._touches(to_tms_bounds(self.tms, tuple(bbox), bounds_crs)):  # type: ignore[arg-type]
                raise TileOutsideBounds("The bbox does not intersect the STAC Item.")
            read, expr, by_name = self._layer(assets, expression)
            part = super().part

            def data() -> ImageData:
                img = part(
                    bbox, dst_crs=dst_crs, bounds_crs=bounds_crs, max_size=max_size, height=height, width=width,
                    assets=read, threads=self.threads, **kwargs,
                )  # fmt: skip
                return self._apply(img, expr, by_name, read or [])

            def flags(mask: QualityMask, img: ImageData) -> ImageData:
                # on the data's own output grid (bounds and size as read), whatever the asset's grid
                assert img.bounds is not None
                return part(
                    img.bounds, dst_crs=img.crs, bounds_crs=img.crs, height=img.height, width=img.width,
                    assets=[mask.source],
                )  # fmt: skip

            return with_quality_mask(self.quality_mask, data, flags)
        bounds = to_tms_bounds(self.tms, tuple(bbox), bounds_crs)  # type: ignore[arg-type]
        if not self._touches(bounds):
            raise TileOutsideBounds("The bbox does not intersect the STAC Item.")
        window = window_for_bounds(self.tms, bounds, max_size, self._max_zoom)
        return self.read_grid_window(window, assets=assets, expression=expression, **kwargs)


def stac_reader(policy: SourcePolicy, timeout: float, threads: int = 1) -> type[GridExactSTACReader]:
    """`GridExactSTACReader` bound to an allow-list, a fetch timeout and asset threads (for factories)."""
    allow_list, workers = policy, threads

    @attr.s
    class PolicySTACReader(GridExactSTACReader):
        policy: SourcePolicy | None = attr.ib(default=allow_list)
        fetch_options: dict = attr.ib(factory=lambda: {"timeout": timeout})
        threads: int = attr.ib(default=workers)

    return PolicySTACReader

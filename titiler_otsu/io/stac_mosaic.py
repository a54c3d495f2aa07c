"""STAC API searches mosaicked per tile: `StacApiSource` and the `STACAPIBackend` mosaic.

`STACAPIBackend` is a rio-tiler mosaic `BaseBackend`: `tile()` searches the collection for the
tile (grown by its halo) and mosaics the items with `mosaic_reader`, each item read
grid-exactly by `GridExactSTACReader` with the same tile and halo, so a pixel's value does
not depend on which tile (or which item boundary) it sits near. Searches are made for the
tile's ancestor `STAC_SEARCH_ZOOM_OFFSET` zooms up and cached, so the tiles of one view share
a few STAC API round trips. `StacApiSource` is the source (collection, search filters, mosaic
method) and its string key; `stacapi_backend` binds the backend to a searcher and settings.

May import: `core`, `security`, `io`, `errors`, `settings`.
"""

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qsl, quote, unquote, urlencode

import attr
import pystac
from morecantile import Tile
from rasterio.crs import CRS
from rasterio.warp import transform_bounds
from rio_tiler.constants import WGS84_CRS
from rio_tiler.errors import EmptyMosaicError, TileOutsideBounds
from rio_tiler.io import BaseReader, MultiBaseReader
from rio_tiler.models import ImageData
from rio_tiler.mosaic.backend import BaseBackend, MosaicInfo
from rio_tiler.mosaic.methods import PixelSelectionMethod
from rio_tiler.mosaic.reader import mosaic_reader

from titiler_otsu.core.grid import GridWindow, PixelGrid, tile_window
from titiler_otsu.errors import BadRequestError, SourceNotFoundError
from titiler_otsu.io.masking import QualityMask, mosaic_removed
from titiler_otsu.io.stac_reader import GridExactSTACReader, grid_metadata
from titiler_otsu.io.stac_search import SearchQuery, StacApiSearcher
from titiler_otsu.io.stac_windows import BBox, to_tms_bounds, window_for_bounds
from titiler_otsu.settings import Settings

__all__ = ["PIXEL_SELECTION", "STACAPIBackend", "StacApiSource", "stacapi_backend"]

PIXEL_SELECTION = ("first", "highest", "lowest", "mean", "median", "stdev", "count")


@dataclass(frozen=True)
class StacApiSource:
    """A `/stacapi` source: an API collection, the request's search filters and mosaic method.

    Its string form (`key`) is the source identity used by caches:
    `{api}/collections/{collection}#datetime=...&filter=...`.
    """

    api: str
    collection: str
    datetime: str | None = None
    filter: str | None = None
    sortby: str | None = None
    bbox: BBox | None = None
    pixel_selection: str = "first"
    #: Only these items of the search result (a time series pins each date's items).
    ids: tuple[str, ...] | None = None

    @property
    def key(self) -> str:
        """Canonical string form."""
        params = {
            "datetime": self.datetime,
            "filter": self.filter,
            "sortby": self.sortby,
            "bbox": ",".join(repr(v) for v in self.bbox) if self.bbox else None,
            "pixel_selection": self.pixel_selection,
            "ids": json.dumps(list(self.ids)) if self.ids is not None else None,
        }
        query = urlencode(sorted((k, v) for k, v in params.items() if v is not None))
        return f"{self.api.rstrip('/')}/collections/{quote(self.collection, safe='')}#{query}"

    @classmethod
    def from_key(cls, key: str) -> "StacApiSource":
        """Parse the string form."""
        head, _, query = key.partition("#")
        api, _, collection = head.rpartition("/collections/")
        params = dict(parse_qsl(query))
        bbox = tuple(float(v) for v in params["bbox"].split(",")) if "bbox" in params else None
        return cls(
            api=api,
            collection=unquote(collection),
            datetime=params.get("datetime"),
            filter=params.get("filter"),
            sortby=params.get("sortby"),
            bbox=bbox,  # type: ignore[arg-type]
            pixel_selection=params.get("pixel_selection", "first"),
            ids=tuple(json.loads(params["ids"])) if "ids" in params else None,
        )

    def search_query(self, bbox: BBox) -> SearchQuery:
        """The search of this source's collection with its filters and order, over `bbox` (lon/lat)."""
        return SearchQuery(self.api, self.collection, bbox, self.datetime, self.filter, self.sortby)


def _intersects(a: BBox, b: BBox) -> bool:
    return a[0] <= b[2] and a[2] >= b[0] and a[1] <= b[3] and a[3] >= b[1]


def _item_bbox(item: pystac.Item) -> BBox | None:
    bbox = item.bbox
    if not bbox:
        return None
    if len(bbox) == 6:
        return (bbox[0], bbox[1], bbox[3], bbox[4])
    return (bbox[0], bbox[1], bbox[2], bbox[3])


def _outward(bbox: BBox, digits: int = 6) -> BBox:
    """Round a lon/lat bbox outward (stable cache keys)."""
    f = 10**digits
    return (
        max(math.floor(bbox[0] * f) / f, -180.0),
        max(math.floor(bbox[1] * f) / f, -90.0),
        min(math.ceil(bbox[2] * f) / f, 180.0),
        min(math.ceil(bbox[3] * f) / f, 90.0),
    )


@attr.s
class STACAPIBackend(BaseBackend):
    """Mosaic of a STAC API collection search, grid-exact per item, for TiTiler factories.

    Attributes:
        input: the source key (`StacApiSource.key`).
        searcher: the shared, caching STAC API searcher.
        settings: server settings (zoom limits, search offset, AOI limit).

    """

    searcher: StacApiSearcher = attr.ib(default=None)
    settings: Settings = attr.ib(factory=Settings)
    reader: type[BaseReader] | type[MultiBaseReader] = attr.ib(default=GridExactSTACReader)
    quality_mask: QualityMask | None = attr.ib(default=None)
    source: StacApiSource = attr.ib(init=False)

    def __attrs_post_init__(self) -> None:
        """Parse the source; bounds from the collection extent (and `bbox`), zooms from settings/gsd."""
        self.source = StacApiSource.from_key(self.input)
        collection = self.searcher.collection(self.source.api, self.source.collection)
        self.crs = WGS84_CRS
        bounds: BBox = (-180.0, -90.0, 180.0, 90.0)
        extent = collection.extent.spatial.bboxes if collection.extent and collection.extent.spatial else None
        if extent:
            b = extent[0]
            bounds = (b[0], b[1], b[3], b[4]) if len(b) == 6 else (b[0], b[1], b[2], b[3])
        if self.source.bbox:
            s = self.source.bbox
            bounds = (max(bounds[0], s[0]), max(bounds[1], s[1]), min(bounds[2], s[2]), min(bounds[3], s[3]))
            if bounds[0] >= bounds[2] or bounds[1] >= bounds[3]:
                raise SourceNotFoundError(
                    f"bbox does not intersect the extent of collection '{self.source.collection}'."
                )
        self.bounds = bounds
        self.minzoom = max(self.settings.stac_min_zoom, self.tms.minzoom)
        self.maxzoom = max(self._gsd_maxzoom(collection), self.minzoom)

    def _gsd_maxzoom(self, collection: pystac.Collection) -> int:
        """Maxzoom from the collection's smallest `gsd` summary (metres), else the setting."""
        try:
            gsd = min(float(v) for v in collection.summaries.get_list("gsd") or [])
        except (ValueError, TypeError):
            return self.settings.stac_max_zoom
        if self.tms.rasterio_crs.is_geographic:
            gsd = gsd / 111_320.0
        return int(self.tms.zoom_for_res(gsd))

    # ------------------------------------------------------------------ searches
    def _query(self, bbox: BBox) -> SearchQuery:
        return self.source.search_query(_outward(bbox))

    def _search(self, search_bbox: BBox, target: BBox) -> list[pystac.Item]:
        """Items intersecting `target`, found with a (shared, cached) search of `search_bbox`."""
        result = self.searcher.search(self._query(search_bbox))
        if result.truncated and search_bbox != target:
            result = self.searcher.search(self._query(target))
        ids = self.source.ids
        return [
            it
            for it in result.items
            if (ids is None or it.id in ids) and ((b := _item_bbox(it)) is None or _intersects(b, target))
        ]

    def _to_lonlat(self, bounds: BBox) -> BBox:
        if self.tms.rasterio_crs == WGS84_CRS:
            return bounds
        left, bottom, right, top = transform_bounds(self.tms.rasterio_crs, WGS84_CRS, *bounds, densify_pts=21)
        return (left, bottom, right, top)

    def _ancestor_bounds(self, x: int, y: int, z: int, margin: float) -> BBox:
        """Bounds (TMS CRS) of the tile's ancestor used for the shared search, grown by `margin`."""
        zoom = max(self.tms.minzoom, z - self.settings.stac_search_zoom_offset)
        tile = Tile(x, y, z)
        ancestor = self.tms.parent(tile, zoom=zoom)[0] if zoom < z else tile
        left, bottom, right, top = self.tms.xy_bounds(ancestor)
        step = (right - left) / 8
        grow = math.ceil(margin / step) * step if margin > 0 else 0.0
        return (left - grow, bottom - grow, right + grow, top + grow)

    def assets_for_tile(
        self, x: int, y: int, z: int, tilesize: int | None = None, halo: int = 0, **kwargs: Any
    ) -> list[pystac.Item]:
        """Items touching the tile grown by `halo` pixels (searched via its ancestor tile)."""
        window = tile_window(self.tms, x, y, z, tilesize or self.tms.matrix(z).tileWidth, halo)
        target = self._to_lonlat(window.bounds)
        search = self._to_lonlat(self._ancestor_bounds(x, y, z, halo * window.grid.res))
        return self._search(search, target)

    def assets_for_bbox(
        self, xmin: float, ymin: float, xmax: float, ymax: float, coord_crs: CRS = WGS84_CRS, **kwargs: Any
    ) -> list[pystac.Item]:
        """Items touching a bbox."""
        bbox: BBox = (xmin, ymin, xmax, ymax)
        if coord_crs != WGS84_CRS:
            bbox = transform_bounds(coord_crs, WGS84_CRS, *bbox, densify_pts=21)
        return self._search(bbox, bbox)

    def assets_for_point(self, lng: float, lat: float, coord_crs: CRS = WGS84_CRS, **kwargs: Any) -> list[pystac.Item]:
        """Items touching a point."""
        return self.assets_for_bbox(lng, lat, lng, lat, coord_crs=coord_crs)

    def asset_name(self, asset: Any) -> str:
        """Item id."""
        return str(asset.id)

    # ------------------------------------------------------------------ reads
    def _pixel_selection(self) -> Any:
        return PixelSelectionMethod[self.source.pixel_selection].value()

    def _mosaic(
        self, items: list[pystac.Item], read: Callable[[GridExactSTACReader], ImageData], where: str
    ) -> ImageData:
        if not items:
            raise SourceNotFoundError(self._no_items(where))

        parts: list[ImageData] = []

        def _reader(item: pystac.Item) -> ImageData:
            reader = cast(type[GridExactSTACReader], self.reader)
            with reader(None, item=item, tms=self.tms, quality_mask=self.quality_mask, **self.reader_options) as src:
                img = read(src)
            parts.append(img)
            return img

        try:
            img, used = mosaic_reader(
                items,
                _reader,
                pixel_selection=self._pixel_selection(),
                allowed_exceptions=(TileOutsideBounds,),
                threads=self.settings.stac_read_threads,
            )
        except EmptyMosaicError as e:
            raise SourceNotFoundError(self._no_items(where)) from e
        img.metadata = {**(img.metadata or {}), "stac_items": [self.asset_name(it) for it in used]}
        return mosaic_removed(img, parts)

    def _no_items(self, where: str) -> str:
        s = self.source
        filters = ", ".join(f"{k}={v}" for k, v in (("datetime", s.datetime), ("filter", s.filter)) if v)
        return f"No item of collection '{s.collection}' has data for {where}" + (f" ({filters})." if filters else ".")

    def tile(  # type: ignore[override]
        self,
        tile_x: int,
        tile_y: int,
        tile_z: int,
        tilesize: int | None = None,
        buffer: float | None = None,
        **kwargs: Any,
    ) -> ImageData:
        """Mosaic tile (plus `buffer` halo pixels) of the items the search finds for it."""
        if tile_z < self.minzoom:
            raise BadRequestError(
                f"Zoom {tile_z} is below {self.minzoom}, the lowest zoom served for STAC API mosaics "
                "(setting STAC_MIN_ZOOM): zoom in, or use /stac for one item."
            )
        if not self.tile_exists(tile_x, tile_y, tile_z):
            raise TileOutsideBounds(f"Tile {tile_z}/{tile_x}/{tile_y} is outside the collection extent.")
        halo = int(buffer or 0)
        items = self.assets_for_tile(tile_x, tile_y, tile_z, tilesize=tilesize, halo=halo)
        img = self._mosaic(
            items,
            lambda src: src.tile(tile_x, tile_y, tile_z, tilesize=tilesize, buffer=buffer, **kwargs),
            f"tile {tile_z}/{tile_x}/{tile_y}",
        )
        img.metadata = {**(img.metadata or {}), **grid_metadata(self.tms, tile_x, tile_y, tile_z, tilesize, buffer)}
        return img

    def read_grid_window(self, window: GridWindow, **kwargs: Any) -> ImageData:
        """Mosaic of the search result on one grid window (bounded by MAX_AOI_PIXELS)."""
        if window.width * window.height > self.settings.max_aoi_pixels:
            raise BadRequestError("The area is too large to read: lower max_size or use a smaller bbox.")
        lonlat = self._to_lonlat(window.bounds)
        items = self._search(lonlat, lonlat)

        def read(src: GridExactSTACReader) -> ImageData:
            if not src._touches(window.bounds):
                raise TileOutsideBounds("item outside the window")
            return src.read_grid_window(window, **kwargs)

        return self._mosaic(items, read, "this area")

    def part(  # type: ignore[override]
        self,
        bbox: BBox,
        dst_crs: CRS | None = None,
        bounds_crs: CRS = WGS84_CRS,
        max_size: int | None = None,
        **kwargs: Any,
    ) -> ImageData:
        """Mosaic of a bbox on one grid window of at most `max_size` pixels a side (TMS CRS).

        With `width`/`height` or another `dst_crs` (e.g. /areas on a native grid), each item is
        read with rio-tiler's `part` on that output grid and the results are mosaicked.
        """
        height, width = kwargs.pop("height", None), kwargs.pop("width", None)
        on_tms_crs = dst_crs is None or dst_crs == self.tms.rasterio_crs
        if on_tms_crs and height and width and (bounds_crs == self.tms.rasterio_crs):
            # an exact output grid in the TMS CRS (/areas on `mosaic_grid`): sampled grid-exactly,
            # pixel centres, like tiles (rio-tiler's part would align it with each item's grid)
            kwargs.pop("align_bounds_with_dataset", None)
            left, bottom, right, top = bbox
            grid = PixelGrid(left, top, (right - left) / width, self.maxzoom)
            if math.isclose(grid.res, (top - bottom) / height, rel_tol=1e-9):
                return self.read_grid_window(GridWindow(grid, 0, 0, width, height), **kwargs)
        if height or width or not on_tms_crs:
            lonlat = transform_bounds(bounds_crs, WGS84_CRS, *bbox, densify_pts=21) if bounds_crs != WGS84_CRS else bbox
            return self._mosaic(
                self._search(tuple(lonlat), tuple(lonlat)),
                lambda src: src.part(
                    bbox, dst_crs=dst_crs, bounds_crs=bounds_crs, max_size=max_size, height=height, width=width,
                    **kwargs,
                ),
                "this area",
            )  # fmt: skip
        bounds = to_tms_bounds(self.tms, tuple(bbox), bounds_crs)  # type: ignore[arg-type]
        window = window_for_bounds(self.tms, bounds, max_size, self.maxzoom)
        return self.read_grid_window(window, **kwargs)

    def preview(self, max_size: int | None = 1024, **kwargs: Any) -> ImageData:  # type: ignore[override]
        """Bounded low-resolution mosaic inside the request's `bbox` (for scope 'dataset')."""
        if self.source.bbox is None:
            raise BadRequestError(
                "scope 'dataset' (and localotsu's value range) on /stacapi needs bbox=minx,miny,maxx,maxy "
                "(lon/lat): the dataset histogram comes from the search result inside it. Add bbox, or use "
                "scope 'tile' or 'fixed'."
            )
        kwargs = {k: v for k, v in kwargs.items() if k not in ("height", "width")}
        return self.part(self.source.bbox, bounds_crs=WGS84_CRS, max_size=max_size, **kwargs)

    def info(self) -> MosaicInfo:  # type: ignore[override]
        """Collection, search and zoom range of the mosaic."""
        s = self.source
        return MosaicInfo(
            bounds=self.bounds,
            crs="http://www.opengis.net/def/crs/EPSG/0/4326",
            api=s.api,
            collection=s.collection,
            datetime=s.datetime,
            filter=s.filter,
            sortby=s.sortby,
            pixel_selection=s.pixel_selection,
            minzoom=self.minzoom,
            maxzoom=self.maxzoom,
        )


def stacapi_backend(
    searcher: StacApiSearcher, settings: Settings, item_reader: type[GridExactSTACReader]
) -> type[STACAPIBackend]:
    """`STACAPIBackend` bound to a searcher, settings and the item reader (with its allow-list)."""
    shared, config, items = searcher, settings, item_reader

    @attr.s
    class Backend(STACAPIBackend):
        searcher: StacApiSearcher = attr.ib(default=shared)
        settings: Settings = attr.ib(default=config)
        reader: type[BaseReader] | type[MultiBaseReader] = attr.ib(default=items)

    return Backend

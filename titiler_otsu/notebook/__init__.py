"""Notebook maps: folium layers from a titiler-otsu server, and `TileClient` for local files.

```python
from titiler_otsu.notebook import TileClient

client = TileClient("scene.tif")            # our server, in a background thread
m = client.map(bidx=4, params={"invert": True})   # imagery + Otsu mask + layer control
client.areas(polygon)                        # true ground area per class
client.change_layer(before_url="march.tif")  # gained / lost between two files

lake = StacApiClient("http://127.0.0.1:8000", "sentinel-2-l2a")   # a running server's /stacapi
df = lake.timeseries(polygon, datetime="2020-01-01/2020-12-31", assets="B08", params={"invert": True})
df["class_1_area_m2"].plot()                 # water area over time (pandas DataFrame)
lake.change_layer(before="2020-03-01/2020-03-31", after="2020-08-01/2020-08-31", assets="B08")
```

For a server that already runs (``titiler-otsu serve``, a deployment), use `tile_layer`,
`mask_layer`, `change_layer`, `otsu_map` and `StacApiClient` with its URL. Needs the `notebook`
extra (folium, httpx, pandas).
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import folium
import httpx

if TYPE_CHECKING:
    import pandas as pd

ATTRIBUTION = "titiler-otsu"
TILE_SIZE = 512  # one 512-px tile == four 256-px tiles, pixel for pixel; 4x fewer requests

#: Query parameters as pairs (repeated keys allowed), as httpx takes them.
Query = list[tuple[str, str | int | float | bool | None]]

__all__ = [
    "OtsuClientError",
    "StacApiClient",
    "TileClient",
    "change_layer",
    "mask_layer",
    "otsu_map",
    "tile_layer",
    "timeseries_frame",
]


class OtsuClientError(RuntimeError):
    """The server refused a request; the message is the server's `detail`."""


# ---------------------------------------------------------------------------- helpers
def _family_prefix(family: str, collection: str | None = None) -> str:
    if family == "stacapi":
        if not collection:
            raise ValueError("family 'stacapi' needs `collection`")
        return f"/stacapi/collections/{collection}"
    if family not in ("cog", "stac"):
        raise ValueError(f"family must be 'cog', 'stac' or 'stacapi', not {family!r}")
    return f"/{family}"


def _query(
    source: str | None,
    *,
    bidx: int | list[int] | None = None,
    expression: str | None = None,
    assets: str | list[str] | None = None,
    algorithm: str | None = None,
    params: dict[str, Any] | None = None,
    rescale: str | list[str] | None = None,
    **extra: Any,
) -> Query:
    """Query parameters (TiTiler names) as a list of pairs, repeated keys allowed."""
    q: Query = []
    if source is not None:
        q.append(("url", str(source)))
    for key, value in (("bidx", bidx), ("assets", assets), ("rescale", rescale)):
        for v in value if isinstance(value, list | tuple) else [value]:
            if v is not None:
                q.append((key, str(v)))
    if expression:
        q.append(("expression", expression))
    if algorithm:
        q.append(("algorithm", algorithm))
        if params:
            q.append(("algorithm_params", json.dumps(params)))
    q.extend((k, str(v)) for k, v in extra.items() if v is not None)
    return q


def _check(response: httpx.Response) -> Any:
    """JSON of a response, or `OtsuClientError` with the server's message."""
    if response.is_success:
        return response.json()
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    raise OtsuClientError(f"{response.status_code} from {response.request.url.path}: {detail}")


def _tilejson(server_url: str, prefix: str, query: Query) -> dict[str, Any]:
    url = f"{server_url.rstrip('/')}{prefix}/WebMercatorQuad/tilejson.json"
    return _check(httpx.get(url, params=[*query, ("tilesize", str(TILE_SIZE))], timeout=60))


def _folium_layer(tilejson: dict[str, Any], name: str, opacity: float, attribution: str) -> folium.TileLayer:
    west, south, east, north = tilejson["bounds"]
    return folium.TileLayer(
        tiles=tilejson["tiles"][0],
        attr=attribution,
        name=name,
        overlay=True,
        control=True,
        opacity=opacity,
        min_zoom=1,
        max_zoom=24,
        max_native_zoom=int(tilejson["maxzoom"]) + 1,  # map zoom of a 512-px tile of zoom maxzoom
        tile_size=TILE_SIZE,
        zoom_offset=-1,
        bounds=[[south, west], [north, east]],
    )


def default_stretch(server_url: str, prefix: str, query: Query) -> list[str]:
    """`rescale` values (2nd-98th percentile per band) from the server's `/statistics`."""
    stats = _check(httpx.get(f"{server_url.rstrip('/')}{prefix}/statistics", params=query, timeout=120))
    return [f"{s['percentile_2']},{s['percentile_98']}" for s in stats.values()]


# ---------------------------------------------------------------------------- any server
def tile_layer(
    server_url: str,
    source: str | None = None,
    *,
    family: str = "cog",
    collection: str | None = None,
    bidx: int | list[int] | None = None,
    expression: str | None = None,
    assets: str | list[str] | None = None,
    rescale: str | list[str] | None = "auto",
    name: str = "Imagery",
    opacity: float = 1.0,
    attribution: str = ATTRIBUTION,
    **query: Any,
) -> folium.TileLayer:
    """An imagery layer of a titiler-otsu (or TiTiler) server.

    Args:
        server_url: e.g. `http://127.0.0.1:8000`.
        source: the COG / STAC Item path or URL (`url=`); None for `stacapi`.
        family: `cog`, `stac` or `stacapi` (then give `collection`, and `datetime=` in `query`).
        collection: STAC API collection id (family `stacapi`).
        bidx: band index/indexes (TiTiler meaning).
        expression: band math, e.g. `(b2-b4)/(b2+b4)` or `(B03-B08)/(B03+B08)` for STAC.
        assets: STAC asset name(s).
        rescale: `"min,max"` per band; `"auto"` = 2nd-98th percentiles from `/statistics`.
        name: layer name in the layer control.
        opacity: layer opacity (0-1).
        attribution: attribution text.
        **query: any other TiTiler query parameter (`colormap_name`, `nodata`, `datetime`...).

    Returns:
        folium.TileLayer: with the server's tile URL template, bounds and zoom range.

    """
    prefix = _family_prefix(family, collection)
    q = _query(source, bidx=bidx, expression=expression, assets=assets, **query)
    if rescale == "auto":
        rescale = default_stretch(server_url, prefix, q)
    if rescale:
        q += _query(None, rescale=rescale)
    return _folium_layer(_tilejson(server_url, prefix, q), name, opacity, attribution)


def mask_layer(
    server_url: str,
    source: str | None = None,
    *,
    algorithm: str = "otsu",
    params: dict[str, Any] | None = None,
    family: str = "cog",
    collection: str | None = None,
    bidx: int | None = None,
    expression: str | None = None,
    assets: str | list[str] | None = None,
    name: str | None = None,
    opacity: float = 0.8,
    attribution: str = ATTRIBUTION,
    **query: Any,
) -> folium.TileLayer:
    """The segmentation overlay (classes coloured, background transparent) of one band.

    Args:
        server_url: e.g. `http://127.0.0.1:8000`.
        source: the COG / STAC Item path or URL.
        algorithm: `otsu`, `multiotsu` or `localotsu`.
        params: `algorithm_params`, e.g. `{"invert": True, "sigma": 1}`.
        family: as for `tile_layer`.
        collection: as for `tile_layer`.
        bidx: the band to segment.
        expression: band math giving the one band to segment.
        assets: the STAC asset to segment.
        name: layer name (default `Mask (<algorithm>)`).
        opacity: layer opacity (0-1).
        attribution: attribution text.
        **query: any other query parameter, as for `tile_layer`.

    Returns:
        folium.TileLayer: the mask overlay.

    """
    prefix = _family_prefix(family, collection)
    q = _query(source, bidx=bidx, expression=expression, assets=assets, algorithm=algorithm, params=params, **query)
    return _folium_layer(_tilejson(server_url, prefix, q), name or f"Mask ({algorithm})", opacity, attribution)


def change_layer(
    server_url: str,
    source: str | None = None,
    *,
    before: str | None = None,
    after: str | None = None,
    before_url: str | None = None,
    algorithm: str = "otsu",
    params: dict[str, Any] | None = None,
    family: str = "stacapi",
    collection: str | None = None,
    bidx: int | None = None,
    expression: str | None = None,
    assets: str | list[str] | None = None,
    name: str | None = None,
    opacity: float = 0.9,
    attribution: str = ATTRIBUTION,
    **query: Any,
) -> folium.TileLayer:
    """The change overlay between two dates: gained and lost foreground, stable faint.

    Args:
        server_url: e.g. `http://127.0.0.1:8000`.
        source: `/cog`: the after file (`url=`); None for `stacapi`.
        before: `stacapi`: STAC datetime interval of the first period.
        after: `stacapi`: STAC datetime interval of the second period.
        before_url: `/cog`: the before file.
        algorithm: a binary algorithm (`otsu`, `localotsu`).
        params: `algorithm_params`.
        family: `stacapi` (give `collection`) or `cog`.
        collection: STAC API collection id.
        bidx: the band to segment (`/cog`).
        expression: band math giving the one band to segment.
        assets: the STAC asset to segment.
        name: layer name (default `Change (before → after)`).
        opacity: layer opacity (0-1).
        attribution: attribution text.
        **query: any other query parameter (`bbox`, `mask_asset`, `mask_values`...).

    Returns:
        folium.TileLayer: tiles of `{prefix}/change/tiles/...` (classes 0 background, 1 stable,
        2 gained, 3 lost).

    """
    prefix = _family_prefix(family, collection)
    q = _query(source, bidx=bidx, expression=expression, assets=assets, algorithm=algorithm, params=params, **query)
    q += [(k, v) for k, v in (("before", before), ("after", after), ("before_url", before_url)) if v is not None]
    label = name or f"Change ({before or before_url} → {after or source})"
    return _folium_layer(_tilejson(server_url, f"{prefix}/change", q), label, opacity, attribution)


def timeseries_frame(response: dict[str, Any]) -> pd.DataFrame:
    """A `/timeseries` answer as a DataFrame: one row per date, indexed by UTC datetime.

    Columns: `items` and `thresholds` (lists), `valid_fraction`, `pixels`, `nodata_pixels`,
    `area_m2`, `decimation`, `overview`, `notes`, `interval` (the `datetime=` showing that date
    on the tile endpoints) and `class_{k}_pixels` / `class_{k}_area_m2` per class. The
    response's `algorithm`, `scope`, `group`, `collection` and `polygon_area_m2` are in `.attrs`.
    """
    import pandas as pd

    records = []
    for row in response["rows"]:
        record = {k: v for k, v in row.items() if k != "classes"}
        for c in row["classes"]:
            record[f"class_{c['class']}_pixels"] = c["pixels"]
            record[f"class_{c['class']}_area_m2"] = c["area_m2"]
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    if not frame.empty:
        frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("datetime"), utc=True), name="datetime")
    frame.attrs = {k: v for k, v in response.items() if k != "rows"}
    return frame


def fit_map(bounds: tuple[float, float, float, float], **map_options: Any) -> folium.Map:
    """A folium map fitted to lon/lat `bounds` (west, south, east, north)."""
    west, south, east, north = bounds
    m = folium.Map(location=[(south + north) / 2, (west + east) / 2], **map_options)
    m.fit_bounds([[south, west], [north, east]])
    return m


def otsu_map(
    server_url: str,
    source: str | None = None,
    *,
    algorithm: str = "otsu",
    params: dict[str, Any] | None = None,
    imagery: dict[str, Any] | None = None,
    **band: Any,
) -> folium.Map:
    """Imagery and mask layers of one source on a fitted folium map with a layer control.

    `band` (bidx / expression / assets / family / collection / query) selects what is
    segmented; `imagery` overrides the imagery layer's band selection (default: the same).
    """
    mask = mask_layer(server_url, source, algorithm=algorithm, params=params, **band)
    layers = [tile_layer(server_url, source, **{**band, **(imagery or {})}), mask]
    m = fit_map(_layer_bounds(mask))
    for layer in layers:
        layer.add_to(m)
    folium.LayerControl().add_to(m)
    return m


def _layer_bounds(layer: folium.TileLayer) -> tuple[float, float, float, float]:
    bounds: Any = layer.options["bounds"]
    (south, west), (north, east) = bounds
    return west, south, east, north


# ---------------------------------------------------------------------------- local server
def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _stop(server: Any, thread: threading.Thread) -> None:
    server.should_exit = True
    thread.join(timeout=10)


class TileClient:
    """Serve one local file (COG, or STAC Item `.json`) from a background titiler-otsu server.

    Like localtileserver: the server runs in a thread of this process on a free loopback
    port, and stops with `shutdown()`, at the end of a `with` block, or when the client is
    garbage collected. Several clients can run at once.

    Args:
        source: path (or URL) of a COG/GeoTIFF, or of a STAC Item (`.json`).
        kind: `cog` or `stac` (default: `stac` for `.json`, else `cog`).
        allow: more path/URL prefixes the server may read (e.g. the folder of a STAC
            Item's assets when the item lives elsewhere).
        host, port: where to listen (default: 127.0.0.1, a free port).
        settings: server settings (default: this source and `allow` allowed, the rest from
            the environment).
        stac_api: a STAC API URL for the server's `/stacapi` (see `collection()`), e.g. a
            local `rustac serve`; only with the default settings.

    """

    def __init__(
        self,
        source: str | Path,
        *,
        kind: str | None = None,
        allow: list[str | Path] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        settings: Any = None,
        stac_api: str | None = None,
    ) -> None:
        import uvicorn

        from titiler_otsu.app import create_app
        from titiler_otsu.settings import Settings

        text = str(source)
        remote = "://" in text and not text.startswith("file://")
        self.source = text if remote else str(Path(text.removeprefix("file://")).expanduser().resolve())
        if not remote and not Path(self.source).is_file():
            raise FileNotFoundError(self.source)
        self.kind = kind or ("stac" if self.source.lower().endswith(".json") else "cog")
        if settings is None:
            allowed = [self.source if remote else str(Path(self.source).parent)]
            allowed += [str(a) if "://" in str(a) else str(Path(a).expanduser().resolve()) for a in allow or []]
            settings = Settings(
                sources=[self.source] if self.kind == "cog" else [], allowed_sources=allowed, stac_api_url=stac_api
            )
        self.port = port or _free_port(host)
        self.server_url = f"http://{host}:{self.port}"
        config = uvicorn.Config(create_app(settings), host=host, port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"titiler-otsu:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._server.should_exit = True
                raise RuntimeError(f"titiler-otsu server did not start on {self.server_url}")
            time.sleep(0.02)
        self._finalizer = weakref.finalize(self, _stop, self._server, self._thread)
        self._tilejson: dict[str, Any] | None = None

    # -- lifecycle
    def shutdown(self) -> None:
        """Stop the background server (idempotent)."""
        self._finalizer()

    @property
    def running(self) -> bool:
        """True while the background server runs."""
        return self._thread.is_alive()

    def __enter__(self) -> TileClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"TileClient({self.source!r}, server_url={self.server_url!r})"

    # -- geometry
    @property
    def prefix(self) -> str:
        """URL prefix of the source's family (`/cog` or `/stac`)."""
        return f"/{self.kind}"

    def _default_band(self) -> Query:
        if self.kind == "cog":
            return []
        info = _check(httpx.get(f"{self.server_url}/stac/assets", params={"url": self.source}, timeout=60))
        return [("assets", info[0])]

    def tilejson(self) -> dict[str, Any]:
        """The source's TileJSON (bounds, zoom range)."""
        if self._tilejson is None:
            q = [("url", self.source), *self._default_band()]
            self._tilejson = _tilejson(self.server_url, self.prefix, q)
        return self._tilejson

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Lon/lat bounds: (west, south, east, north)."""
        west, south, east, north = self.tilejson()["bounds"]
        return west, south, east, north

    @property
    def center(self) -> tuple[float, float]:
        """(lat, lon) of the bounds' centre (folium's order)."""
        west, south, east, north = self.bounds
        return (south + north) / 2, (west + east) / 2

    @property
    def max_zoom(self) -> int:
        """Zoom of the source's native resolution."""
        return int(self.tilejson()["maxzoom"])

    @property
    def default_zoom(self) -> int:
        """Largest zoom showing the whole source in about 1000 x 700 screen pixels."""
        west, south, east, north = self.bounds

        def merc_y(lat: float) -> float:
            return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) / (2 * math.pi)

        frac_x = max((east - west) / 360, 1e-12)
        frac_y = max(abs(merc_y(north) - merc_y(south)), 1e-12)
        z = math.floor(min(math.log2(1000 / 256 / frac_x), math.log2(700 / 256 / frac_y)))
        return max(0, min(z, self.max_zoom))

    # -- layers and analytics
    def _q(self, **kwargs: Any) -> Query:
        return _query(self.source, **kwargs)

    def layer(
        self,
        *,
        bidx: int | list[int] | None = None,
        expression: str | None = None,
        assets: str | list[str] | None = None,
        rescale: str | list[str] | None = "auto",
        name: str = "Imagery",
        opacity: float = 1.0,
        **query: Any,
    ) -> folium.TileLayer:
        """Imagery layer (default stretch: 2nd-98th percentiles from `/statistics`)."""
        return tile_layer(
            self.server_url, self.source, family=self.kind, bidx=bidx, expression=expression, assets=assets,
            rescale=rescale, name=name, opacity=opacity, **query,
        )  # fmt: skip

    def mask_layer(
        self,
        algorithm: str = "otsu",
        params: dict[str, Any] | None = None,
        *,
        bidx: int | None = None,
        expression: str | None = None,
        assets: str | list[str] | None = None,
        name: str | None = None,
        opacity: float = 0.8,
        **query: Any,
    ) -> folium.TileLayer:
        """Segmentation overlay of one band (`bidx`, `expression` or one asset)."""
        return mask_layer(
            self.server_url, self.source, algorithm=algorithm, params=params, family=self.kind, bidx=bidx,
            expression=expression, assets=assets, name=name, opacity=opacity, **query,
        )  # fmt: skip

    def threshold(
        self,
        algorithm: str = "otsu",
        params: dict[str, Any] | None = None,
        *,
        bidx: int | None = None,
        expression: str | None = None,
        assets: str | list[str] | None = None,
        bbox: tuple[float, float, float, float] | None = None,
    ) -> dict[str, Any]:
        """`GET /threshold`: thresholds and histogram of the source (or of a lon/lat bbox)."""
        q = self._q(bidx=bidx, expression=expression, assets=assets, algorithm=algorithm, params=params)
        if bbox:
            q.append(("bbox", ",".join(str(v) for v in bbox)))
        return _check(httpx.get(f"{self.server_url}{self.prefix}/threshold", params=q, timeout=120))

    def areas(
        self,
        geojson: dict[str, Any],
        algorithm: str = "otsu",
        params: dict[str, Any] | None = None,
        *,
        bidx: int | None = None,
        expression: str | None = None,
        assets: str | list[str] | None = None,
    ) -> dict[str, Any]:
        """`POST /areas`: a GeoJSON FeatureCollection; per feature, under `properties`, each class's area."""
        if geojson.get("type") not in ("Feature", "FeatureCollection"):
            geojson = {"type": "Feature", "properties": {}, "geometry": geojson}
        q = self._q(bidx=bidx, expression=expression, assets=assets, algorithm=algorithm, params=params)
        return _check(httpx.post(f"{self.server_url}{self.prefix}/areas", params=q, json=geojson, timeout=300))

    def map(
        self,
        algorithm: str = "otsu",
        params: dict[str, Any] | None = None,
        *,
        bidx: int | None = None,
        expression: str | None = None,
        assets: str | list[str] | None = None,
        imagery: dict[str, Any] | None = None,
        **map_options: Any,
    ) -> folium.Map:
        """A folium map with the imagery, the mask on top and a layer control.

        `imagery` selects the imagery bands (e.g. `{"bidx": [1, 2, 3]}`); default: the
        segmented band in grey.
        """
        band: dict[str, Any] = {"bidx": bidx, "expression": expression, "assets": assets}
        m = folium.Map(location=self.center, zoom_start=self.default_zoom, **map_options)
        self.layer(**(imagery or band)).add_to(m)
        self.mask_layer(algorithm, params, **band).add_to(m)
        folium.LayerControl().add_to(m)
        return m

    def change_layer(
        self,
        before_url: str | Path,
        algorithm: str = "otsu",
        params: dict[str, Any] | None = None,
        *,
        bidx: int | None = None,
        expression: str | None = None,
        name: str | None = None,
        opacity: float = 0.9,
        **query: Any,
    ) -> folium.TileLayer:
        """Change overlay from `before_url` (another COG on the same grid) to this COG (`/cog/change`)."""
        before = str(before_url) if "://" in str(before_url) else str(Path(before_url).expanduser().resolve())
        return change_layer(
            self.server_url, self.source, before_url=before, algorithm=algorithm, params=params, family=self.kind,
            bidx=bidx, expression=expression, name=name, opacity=opacity, **query,
        )  # fmt: skip

    def collection(self, collection_id: str) -> StacApiClient:
        """A `StacApiClient` for a collection of the STAC API this server was given (`stac_api=`)."""
        return StacApiClient(self.server_url, collection_id)


# ---------------------------------------------------------------------------- STAC API collection
class StacApiClient:
    """A collection of a running server's `/stacapi`: layers, change layers and time series.

    Args:
        server_url: e.g. `http://127.0.0.1:8000` (a server with `TITILER_OTSU_STAC_API_URL` set).
        collection: the STAC collection id.
        api: another STAC API URL (only if the server allows `api=`).
        timeout: seconds per request (time series of many dates take a while).

    """

    def __init__(self, server_url: str, collection: str, *, api: str | None = None, timeout: float = 600) -> None:
        self.server_url = server_url.rstrip("/")
        self.collection_id = collection
        self.api = api
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"StacApiClient({self.server_url!r}, {self.collection_id!r})"

    @property
    def prefix(self) -> str:
        """`/stacapi/collections/{collection}`."""
        return _family_prefix("stacapi", self.collection_id)

    def _extra(self, query: dict[str, Any]) -> dict[str, Any]:
        return {**({"api": self.api} if self.api else {}), **query}

    def layer(
        self,
        *,
        datetime: str | None = None,
        expression: str | None = None,
        assets: str | list[str] | None = None,
        rescale: str | list[str] | None = None,
        name: str = "Imagery",
        opacity: float = 1.0,
        **query: Any,
    ) -> folium.TileLayer:
        """Imagery mosaic of the search (`datetime`, `filter`, `sortby`... in `query`)."""
        return tile_layer(
            self.server_url, family="stacapi", collection=self.collection_id, expression=expression, assets=assets,
            rescale=rescale, name=name, opacity=opacity, **self._extra({"datetime": datetime, **query}),
        )  # fmt: skip

    def mask_layer(
        self,
        algorithm: str = "otsu",
        params: dict[str, Any] | None = None,
        *,
        datetime: str | None = None,
        expression: str | None = None,
        assets: str | list[str] | None = None,
        name: str | None = None,
        opacity: float = 0.8,
        **query: Any,
    ) -> folium.TileLayer:
        """Segmentation overlay of the search's mosaic."""
        return mask_layer(
            self.server_url, algorithm=algorithm, params=params, family="stacapi", collection=self.collection_id,
            expression=expression, assets=assets, name=name, opacity=opacity,
            **self._extra({"datetime": datetime, **query}),
        )  # fmt: skip

    def change_layer(
        self,
        before: str,
        after: str,
        algorithm: str = "otsu",
        params: dict[str, Any] | None = None,
        *,
        expression: str | None = None,
        assets: str | list[str] | None = None,
        name: str | None = None,
        opacity: float = 0.9,
        **query: Any,
    ) -> folium.TileLayer:
        """Change overlay between two periods (STAC datetime intervals): gained, lost, stable."""
        return change_layer(
            self.server_url, before=before, after=after, algorithm=algorithm, params=params, family="stacapi",
            collection=self.collection_id, expression=expression, assets=assets, name=name, opacity=opacity,
            **self._extra(query),
        )  # fmt: skip

    def _post(self, path: str, geojson: dict[str, Any], query: Query) -> Any:
        url = f"{self.server_url}{self.prefix}{path}"
        return _check(httpx.post(url, params=query, json=geojson, timeout=self.timeout))

    def timeseries_json(
        self,
        geojson: dict[str, Any],
        algorithm: str = "otsu",
        params: dict[str, Any] | None = None,
        *,
        datetime: str | None = None,
        group: str = "item",
        expression: str | None = None,
        assets: str | list[str] | None = None,
        **query: Any,
    ) -> dict[str, Any]:
        """`POST /timeseries` as the server answers it (JSON)."""
        q = _query(
            None, expression=expression, assets=assets, algorithm=algorithm, params=params,
            **self._extra({"datetime": datetime, "group": group, **query}),
        )  # fmt: skip
        return self._post("/timeseries", geojson, q)

    def timeseries(
        self,
        geojson: dict[str, Any],
        algorithm: str = "otsu",
        params: dict[str, Any] | None = None,
        *,
        datetime: str | None = None,
        group: str = "item",
        expression: str | None = None,
        assets: str | list[str] | None = None,
        **query: Any,
    ) -> pd.DataFrame:
        """Class areas inside a polygon at every date of the search, as a DataFrame (see `timeseries_frame`).

        Args:
            geojson: a Polygon / MultiPolygon (or a Feature of one), lon/lat.
            algorithm: `otsu`, `multiotsu` or `localotsu`.
            params: `algorithm_params`, e.g. `{"invert": True}` (water dark in NIR).
            datetime: STAC datetime interval of the series.
            group: `item` (one row per item) or `day` (a day's items mosaicked).
            expression: band math giving the one band to segment.
            assets: the STAC asset to segment.
            **query: `filter`, `sortby`, `bbox`, `pixel_selection`, mask parameters...

        """
        answer = self.timeseries_json(
            geojson, algorithm, params, datetime=datetime, group=group, expression=expression, assets=assets, **query
        )
        return timeseries_frame(answer)

    def areas(
        self,
        geojson: dict[str, Any],
        algorithm: str = "otsu",
        params: dict[str, Any] | None = None,
        *,
        datetime: str | None = None,
        expression: str | None = None,
        assets: str | list[str] | None = None,
        **query: Any,
    ) -> dict[str, Any]:
        """`POST /areas` on the search's mosaic."""
        if geojson.get("type") not in ("Feature", "FeatureCollection"):
            geojson = {"type": "Feature", "properties": {}, "geometry": geojson}
        q = _query(
            None, expression=expression, assets=assets, algorithm=algorithm, params=params,
            **self._extra({"datetime": datetime, **query}),
        )  # fmt: skip
        return self._post("/areas", geojson, q)

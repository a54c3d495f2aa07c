"""`TileClient`: one local file served by a titiler-otsu server in a background thread.

May import: anything in the package (top-level glue).
"""

from __future__ import annotations

import math
import socket
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import folium
import httpx

from titiler_otsu.notebook.layers import change_layer, mask_layer, tile_layer
from titiler_otsu.notebook.query import Query, _check, _query, _tilejson
from titiler_otsu.notebook.stac_api_client import StacApiClient


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

"""`StacApiClient`: a collection of a running server's `/stacapi` (layers, change, time series, areas).

May import: anything in the package (top-level glue).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import folium
import httpx

from titiler_otsu.notebook.layers import change_layer, mask_layer, tile_layer
from titiler_otsu.notebook.query import Query, _check, _family_prefix, _query
from titiler_otsu.notebook.timeseries import timeseries_frame

if TYPE_CHECKING:
    import pandas as pd


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

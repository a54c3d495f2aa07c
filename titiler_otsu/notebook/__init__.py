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

Modules: `query` (query parameters, prefixes, TileJSON, `OtsuClientError`), `layers` (folium
layers for any server), `tile_client` (`TileClient`), `stac_api_client` (`StacApiClient`) and
`timeseries` (`timeseries_frame`); this package re-exports their public names.

May import: anything in the package (top-level glue).
"""

from __future__ import annotations

from titiler_otsu.notebook.layers import change_layer, mask_layer, otsu_map, tile_layer
from titiler_otsu.notebook.layers import default_stretch as default_stretch
from titiler_otsu.notebook.layers import fit_map as fit_map
from titiler_otsu.notebook.query import ATTRIBUTION as ATTRIBUTION
from titiler_otsu.notebook.query import TILE_SIZE as TILE_SIZE
from titiler_otsu.notebook.query import OtsuClientError
from titiler_otsu.notebook.query import Query as Query
from titiler_otsu.notebook.stac_api_client import StacApiClient
from titiler_otsu.notebook.tile_client import TileClient
from titiler_otsu.notebook.timeseries import timeseries_frame

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

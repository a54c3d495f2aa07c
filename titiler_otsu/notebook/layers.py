"""Folium layers for any running titiler-otsu (or TiTiler) server: imagery, mask, change, map.

May import: anything in the package (top-level glue).
"""

from __future__ import annotations

from typing import Any

import folium
import httpx

from titiler_otsu.notebook.query import ATTRIBUTION, TILE_SIZE, Query, _check, _family_prefix, _query, _tilejson


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


def _algorithm_layer(
    server_url: str,
    source: str | None,
    query: dict[str, Any],
    *,
    family: str,
    collection: str | None,
    bidx: int | None,
    expression: str | None,
    assets: str | list[str] | None,
    algorithm: str,
    params: dict[str, Any] | None,
    label: str,
    opacity: float,
    attribution: str,
    endpoint: str = "",
    extra: Query | None = None,
) -> folium.TileLayer:
    """The layer of an algorithm's tiles at `{prefix}{endpoint}`: what `mask_layer` and `change_layer` share.

    The query is the band selection, the algorithm and `query` (as `_query` builds it), then the
    `extra` pairs (the change layer's dates or before file).
    """
    prefix = _family_prefix(family, collection)
    q = _query(source, bidx=bidx, expression=expression, assets=assets, algorithm=algorithm, params=params, **query)
    q += extra or []
    return _folium_layer(_tilejson(server_url, f"{prefix}{endpoint}", q), label, opacity, attribution)


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
    return _algorithm_layer(
        server_url, source, query, family=family, collection=collection, bidx=bidx, expression=expression,
        assets=assets, algorithm=algorithm, params=params, label=name or f"Mask ({algorithm})", opacity=opacity,
        attribution=attribution,
    )  # fmt: skip


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
    return _algorithm_layer(
        server_url, source, query, family=family, collection=collection, bidx=bidx, expression=expression,
        assets=assets, algorithm=algorithm, params=params,
        label=name or f"Change ({before or before_url} → {after or source})", opacity=opacity,
        attribution=attribution, endpoint="/change",
        extra=[(k, v) for k, v in (("before", before), ("after", after), ("before_url", before_url)) if v is not None],
    )  # fmt: skip


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

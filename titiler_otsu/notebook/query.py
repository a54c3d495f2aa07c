"""Talking to a titiler-otsu server: query parameters, URL prefixes, TileJSON, errors.

Shared by the layers and the two clients.

May import: anything in the package (top-level glue).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

ATTRIBUTION = "titiler-otsu"
TILE_SIZE = 512  # one 512-px tile == four 256-px tiles, pixel for pixel; 4x fewer requests

#: Query parameters as pairs (repeated keys allowed), as httpx takes them.
Query = list[tuple[str, str | int | float | bool | None]]


class OtsuClientError(RuntimeError):
    """The server refused a request; the message is the server's `detail`."""


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

"""Request limits: one guard for every endpoint, body size, request timeout, bounded reads.

* `request_guard(settings)`: an app-wide FastAPI dependency that checks, before any read,
  what TiTiler's own parameter models leave open: tile z/x/y (negative, beyond zoom 30),
  bbox and point coordinates (NaN/inf, min >= max), output sizes (`max_size`, `width`,
  `height`, `tilesize`, one of width/height alone), statistics (`histogram_bins`, `p`),
  `expression` (see `titiler_otsu.security.expressions`), `assets=NAME|opt=...` syntax, the length of
  every query value, and JSON bodies (NaN/Infinity, feature count). Every refusal names the
  limit (setting) to change.
* `BodySizeLimitMiddleware`: bodies over MAX_REQUEST_BYTES -> 413 (Content-Length or counted).
* `RequestTimeoutMiddleware`: no response started after REQUEST_TIMEOUT seconds -> 504.
* `BoundedPartParams`: TiTiler's bbox/feature size options with `max_size=1024` by default
  (TiTiler reads a bbox at native resolution otherwise: unbounded memory).
* `gdal_http_environment(settings)`: GDAL's HTTP timeouts (no hanging remote read), no retries,
  no `.netrc` credentials sent to remote hosts.

May import: `errors`, `settings` and `security`.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Request
from pydantic import Field
from rasterio.crs import CRS
from rasterio.warp import transform_bounds
from rio_tiler.constants import WGS84_CRS
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from titiler.core.dependencies import PartFeatureParams

from titiler_otsu.errors import BadRequestError, PayloadTooLargeError
from titiler_otsu.security.expressions import check_expression
from titiler_otsu.settings import Settings

#: Deepest zoom level a tile request may name (morecantile extrapolates matrices past a TMS).
MAX_ZOOM = 30
#: Default `max_size` of bbox/feature reads (TiTiler 0.x's default).
DEFAULT_PART_MAX_SIZE = 1024
_ASSET_OPTIONS = {"bidx", "expression", "bands"}
_LATITUDES = dict.fromkeys(("miny", "maxy", "lat"), (-90, 90))
_COLLECTION_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,256}$")


# ---------------------------------------------------------------------- parsing helpers
def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None  # FastAPI's validation answers 422 for non-integers


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _param(request: Request, name: str) -> str | None:
    """A path parameter, else the (last) query parameter of that name."""
    value = request.path_params.get(name)
    return str(value) if value is not None else request.query_params.get(name)


# ---------------------------------------------------------------------- checks
def check_tile_address(request: Request) -> None:
    """z/x/y: whole numbers >= 0, z at most MAX_ZOOM (beyond the matrix: 404 from the reader)."""
    for name in ("z", "x", "y"):
        value = _int(request.path_params.get(name))
        if value is not None and value < 0:
            raise BadRequestError(f"Tile {name} must be >= 0 (got {value}).")
    z = _int(request.path_params.get("z"))
    if z is not None and z > MAX_ZOOM:
        raise BadRequestError(f"Tile z must be at most {MAX_ZOOM} (got {z}).")
    for name in ("minzoom", "maxzoom"):
        value = _int(request.query_params.get(name))
        if value is not None and not 0 <= value <= MAX_ZOOM:
            raise BadRequestError(f"{name} must be between 0 and {MAX_ZOOM} (got {value}).")


def check_collection(request: Request) -> None:
    """A STAC collection id in the path: an id, not a path (`..`, `/`, `?`... refused)."""
    collection = request.path_params.get("collection_id")
    if collection is not None and (collection in (".", "..") or not _COLLECTION_ID.match(str(collection))):
        raise BadRequestError(
            f"collection_id '{collection}' is not a collection id: use letters, digits and . _ - : only."
        )


def check_coordinates(request: Request) -> None:
    """The bbox (`minx,miny,maxx,maxy` path) and point (`lon,lat` path) must be finite, min < max."""
    names = ("minx", "miny", "maxx", "maxy", "lon", "lat")
    values = {n: _float(request.path_params.get(n)) for n in names if n in request.path_params}
    for name, value in values.items():
        if value is not None and not math.isfinite(value):
            raise BadRequestError(f"{name} must be a finite number (got {request.path_params[name]}).")
    minx, miny, maxx, maxy = (values.get(n) for n in names[:4])
    if minx is not None and miny is not None and maxx is not None and maxy is not None:
        if not (minx < maxx and miny < maxy):
            raise BadRequestError("bbox must be minx,miny,maxx,maxy with minx < maxx and miny < maxy.")
    if request.query_params.get("coord_crs") is None:  # lon/lat (EPSG:4326)
        for name, (low, high) in {**dict.fromkeys(("minx", "maxx", "lon"), (-180, 180)), **_LATITUDES}.items():
            value = values.get(name)
            if value is not None and not low <= value <= high:
                raise BadRequestError(f"{name} must be between {low} and {high} (longitude/latitude); got {value}.")


def check_sizes(request: Request, settings: Settings) -> None:
    """Output sizes within MAX_IMAGE_SIZE / MAX_TILESIZE; width and height come together."""
    limit = settings.max_image_size
    for name in ("max_size", "width", "height"):
        value = _int(_param(request, name))
        if value is not None and not 1 <= value <= limit:
            raise BadRequestError(f"{name} must be between 1 and {limit} (setting MAX_IMAGE_SIZE); got {value}.")
    query = request.query_params
    if ("width" in query) != ("height" in query) and "width" not in request.path_params:
        raise BadRequestError(
            "Give both width and height (or max_size): one of them alone can make an image of any size."
        )
    tilesize = _int(query.get("tilesize"))
    if tilesize is not None and not 1 <= tilesize <= settings.max_tilesize:
        raise BadRequestError(
            f"tilesize must be between 1 and {settings.max_tilesize} (setting MAX_TILESIZE); got {tilesize}."
        )


def check_statistics(request: Request, settings: Settings) -> None:
    """`histogram_bins` (a count or edges) and `p` (percentiles) within range."""
    limit = settings.max_histogram_bins
    for bins in request.query_params.getlist("histogram_bins"):
        edges = [_float(v) for v in bins.split(",")]
        count = _int(bins) if len(edges) == 1 else len(edges) - 1
        if count is not None and not 1 <= count <= limit:
            raise BadRequestError(
                f"histogram_bins must be between 1 and {limit} (setting MAX_HISTOGRAM_BINS); got {count}."
            )
        if len(edges) > 1 and any(e is not None and not math.isfinite(e) for e in edges):
            raise BadRequestError("histogram_bins edges must be finite numbers.")
    for value_range in request.query_params.getlist("histogram_range"):
        bounds = [_float(v) for v in value_range.split(",")]
        if len(bounds) == 2 and bounds[0] is not None and bounds[1] is not None and not bounds[0] < bounds[1]:
            raise BadRequestError(f"histogram_range must be min,max with min < max (got {value_range}).")
    for p in request.query_params.getlist("p"):
        value = _float(p)
        if value is not None and not 0 <= value <= 100:
            raise BadRequestError(f"Percentile p must be between 0 and 100 (got {p}).")


def check_assets(request: Request, settings: Settings) -> None:
    """`assets=NAME` or `NAME|bidx=1,2|expression=...`: known options, integer bands."""
    for asset in request.query_params.getlist("assets"):
        name, *options = asset.split("|")
        if not name:
            raise BadRequestError(f"Invalid assets value '{asset}': it must start with an asset name.")
        for option in options:
            key, sep, value = option.partition("=")
            if not sep or key not in _ASSET_OPTIONS:
                raise BadRequestError(
                    f"Invalid asset option '{option}' in '{asset}': use NAME|bidx=1,2 or NAME|expression=b1*2."
                )
            if key == "bidx" and not all(v.strip().isdigit() and int(v) >= 1 for v in value.split(",")):
                raise BadRequestError(f"Invalid bidx in '{asset}': give band numbers >= 1, e.g. NAME|bidx=1,2.")
            if key == "expression":
                check_expression(value, settings.max_expression_length)


def check_colormap(request: Request) -> None:
    """`colormap` as a JSON object: keys are pixel values (integers)."""
    for colormap in request.query_params.getlist("colormap"):
        try:
            document = json.loads(colormap)
        except (json.JSONDecodeError, RecursionError):
            continue  # TiTiler answers 400 "Could not parse the colormap value."
        if isinstance(document, dict) and not all(re.fullmatch(r"-?\d+", str(k).strip()) for k in document):
            raise BadRequestError('colormap keys must be pixel values (integers), e.g. {"1": [0, 0, 255, 255]}.')


def _reject_constant(value: str) -> float:
    raise BadRequestError(f"{value} is not a valid JSON number: give finite coordinates and values.")


def _positions(coordinates: Any, depth: int = 0) -> Iterator[list[Any]]:
    """The positions ([x, y, ...] lists of numbers) of a GeoJSON `coordinates` member."""
    if depth > 8 or not isinstance(coordinates, list):
        return
    if coordinates and all(isinstance(c, int | float) for c in coordinates):
        yield coordinates
        return
    for item in coordinates:
        yield from _positions(item, depth + 1)


def check_lonlat_coordinates(document: Any, depth: int = 0) -> None:
    """GeoJSON in lon/lat (RFC 7946): every position within -180..180, -90..90 (else 400)."""
    if depth > 16:
        return
    if isinstance(document, list):
        for item in document:
            check_lonlat_coordinates(item, depth + 1)
    if not isinstance(document, dict):
        return
    for key, value in document.items():
        if key == "coordinates":
            for position in _positions(value):
                lon, lat = position[0], position[1] if len(position) > 1 else 0
                if not -180 <= lon <= 180:
                    raise BadRequestError(f"GeoJSON longitude {lon} is outside -180..180: give lon/lat coordinates.")
                if not -90 <= lat <= 90:
                    raise BadRequestError(f"GeoJSON latitude {lat} is outside -90..90: give lon/lat coordinates.")
        elif isinstance(value, dict | list):
            check_lonlat_coordinates(value, depth + 1)


def check_json_body(body: bytes, settings: Settings, lonlat: bool = True) -> None:
    """JSON bodies: no NaN/Infinity, lon/lat in range, at most MAX_AOI_FEATURES features (invalid JSON: FastAPI's).

    Args:
        body: the request body.
        settings: limits.
        lonlat: whether GeoJSON coordinates are lon/lat (no other `coord_crs` given).

    """
    if len(body) > settings.max_request_bytes:
        raise PayloadTooLargeError(
            f"The request body is larger than {settings.max_request_bytes} bytes (setting MAX_REQUEST_BYTES)."
        )
    if not body.strip():
        return
    try:
        document = json.loads(body, parse_constant=_reject_constant)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return
    except RecursionError as e:
        raise BadRequestError("The JSON body is nested too deeply.") from e
    if lonlat:
        check_lonlat_coordinates(document)
    features = document.get("features") if isinstance(document, dict) else None
    if isinstance(features, list) and len(features) > settings.max_aoi_features:
        raise BadRequestError(
            f"{len(features)} features given; at most {settings.max_aoi_features} per request "
            "(setting MAX_AOI_FEATURES). Split the FeatureCollection into several requests."
        )


def request_guard(settings: Settings) -> Callable[[Request], Awaitable[None]]:
    """App-wide dependency refusing (400/413) requests beyond the limits, before any read."""

    async def guard(request: Request) -> None:
        for key, value in request.query_params.multi_items():
            if len(value) > settings.max_param_length:
                raise BadRequestError(
                    f"Query parameter '{key}' is longer than {settings.max_param_length} characters "
                    "(setting MAX_PARAM_LENGTH)."
                )
        check_tile_address(request)
        check_collection(request)
        check_coordinates(request)
        check_sizes(request, settings)
        check_statistics(request, settings)
        check_assets(request, settings)
        check_colormap(request)
        for expression in request.query_params.getlist("expression"):
            check_expression(expression, settings.max_expression_length)
        if request.method in ("POST", "PUT", "PATCH"):
            coord_crs = (request.query_params.get("coord_crs") or "epsg:4326").strip().lower()
            check_json_body(await request.body(), settings, lonlat=coord_crs in ("epsg:4326", "wgs84", "crs84"))

    return guard


# ---------------------------------------------------------------------- dependencies
@dataclass
class BoundedPartParams(PartFeatureParams):
    """bbox/feature sizes: `max_size` 1024 unless `width`/`height` are given."""

    max_size: Annotated[
        int | None,
        Field(description="Longest side of the output image (default 1024; at most MAX_IMAGE_SIZE)."),
    ] = DEFAULT_PART_MAX_SIZE


# ---------------------------------------------------------------------- readers
#: A bbox/feature read may cover at most this many times the source's area (in its CRS).
MAX_PART_AREA_RATIO = 100.0


def check_part_extent(
    src_bounds: tuple[float, float, float, float],
    src_crs: CRS,
    bbox: tuple[float, float, float, float],
    bounds_crs: CRS,
) -> None:
    """Refuse a bbox far larger than the source (GDAL would warp all of it at native resolution).

    Raises:
        BadRequestError: the bbox covers more than MAX_PART_AREA_RATIO times the source's area.

    """
    try:
        left, bottom, right, top = (
            transform_bounds(bounds_crs, src_crs, *bbox, densify_pts=21) if bounds_crs != src_crs else bbox
        )
    except Exception:  # noqa: BLE001 - not transformable: the read itself decides
        return
    area = (right - left) * (top - bottom)
    src_area = (src_bounds[2] - src_bounds[0]) * (src_bounds[3] - src_bounds[1])
    if not math.isfinite(area) or (src_area > 0 and area > MAX_PART_AREA_RATIO * src_area):
        raise BadRequestError(
            f"The bbox is more than {MAX_PART_AREA_RATIO:g} times larger than the source: ask for a bbox "
            "closer to the source's bounds (see /info)."
        )


class BoundedPartMixin:
    """Reader mixin: `part()` (bbox, feature, statistics) refuses a bbox far larger than the source."""

    bounds: tuple[float, float, float, float]
    crs: CRS

    def part(self, bbox: tuple[float, float, float, float], *args: Any, **kwargs: Any) -> Any:
        """Check the extent, then read like the reader's `part` (same arguments)."""
        bounds_crs = kwargs.get("bounds_crs", args[1] if len(args) > 1 else WGS84_CRS)
        check_part_extent(self.bounds, self.crs, bbox, bounds_crs)
        return super().part(bbox, *args, **kwargs)  # type: ignore[misc]


# ---------------------------------------------------------------------- middleware
def _error(status_code: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code)


class BodySizeLimitMiddleware:
    """413 for request bodies over `max_bytes` (by Content-Length, or counted while received)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        """Wrap `app`."""
        self.app = app
        self.max_bytes = max_bytes

    def _response(self) -> JSONResponse:
        return _error(413, f"The request body is larger than {self.max_bytes} bytes (setting MAX_REQUEST_BYTES).")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse early by header; else count the body and answer 413 when it grows too large."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = _int(headers.get(b"content-length", b"").decode("latin-1") or None)
        if length is not None and length > self.max_bytes:
            await self._response()(scope, receive, send)
            return
        received = 0
        exceeded = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise PayloadTooLargeError("request body too large")
            return message

        async def guarded_send(message: Message) -> None:
            if not exceeded:
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded:
            await self._response()(scope, receive, send)


class RequestTimeoutMiddleware:
    """504 when the app has not started its response after `timeout` seconds.

    The endpoint's worker thread cannot be interrupted: it finishes in the background and its
    response is dropped. GDAL's HTTP timeouts (`gdal_http_environment`) bound remote reads.
    """

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        """Wrap `app`."""
        self.app = app
        self.timeout = timeout
        self._abandoned: set[asyncio.Future[Any]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app; answer 504 if it is silent for longer than the timeout."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        timed_out = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if timed_out:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        done, _ = await asyncio.wait({task}, timeout=self.timeout)
        if task in done or started:
            await task
            return
        timed_out = True
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._forget)
        await _error(
            504,
            f"The request took longer than {self.timeout:g} s (setting REQUEST_TIMEOUT): ask for less "
            "(a smaller area, image or tile), or try again later.",
        )(scope, receive, send)

    def _forget(self, task: asyncio.Future[Any]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" warning


# ---------------------------------------------------------------------- GDAL
def gdal_http_environment(settings: Settings) -> dict[str, str]:
    """GDAL options for remote reads: timeouts, no retries, no .netrc credentials."""
    seconds = str(max(1, math.ceil(settings.remote_timeout)))
    return {
        "GDAL_HTTP_TIMEOUT": seconds,
        "GDAL_HTTP_CONNECTTIMEOUT": seconds,
        "GDAL_HTTP_MAX_RETRY": "0",
        "GDAL_HTTP_NETRC": "NO",
    }

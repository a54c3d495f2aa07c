"""Errors of titiler-otsu, the HTTP status of each, and the app's exception handlers.

Every failure answers JSON `{"detail": "..."}`. Our own errors carry messages written for
the user; GDAL/rasterio errors are translated into messages a user can act on (missing,
damaged, not a raster, remote failure or timeout); anything unexpected is a 500 with a
reference id and no internals. Local directories never reach a response: absolute paths in
messages are cut to their file name. Full details (tracebacks, paths) go to the server log.
`format_validation_error` words invalid algorithm parameters (for the API and the export).

May import: nothing of ours.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import re
import traceback
import uuid
from collections.abc import Callable

from fastapi import FastAPI
from morecantile.errors import InvalidZoomError, MorecantileError
from pydantic import ValidationError
from rasterio._err import CPLE_BaseError
from rasterio.errors import RasterioError, RasterioIOError
from rio_tiler.errors import (
    InvalidBufferSize,
    InvalidColorMapName,
    InvalidMosaicMethod,
    MaxArraySizeError,
    PointOutsideBounds,
    RioTilerError,
)
from shapely.errors import ShapelyError
from starlette import status
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from titiler.core.errors import DEFAULT_STATUS_CODES

logger = logging.getLogger("titiler_otsu.errors")


class OtsuError(Exception):
    """Base class of titiler-otsu errors (the message is shown to the user)."""


class BadRequestError(OtsuError):
    """The request's parameters cannot be served as given (400)."""


class MultiBandInputError(BadRequestError):
    """A segmentation algorithm received more than one band (400)."""


class SourceNotFoundError(OtsuError):
    """The source does not exist (404)."""


class SourceNotAllowedError(OtsuError):
    """The source is outside the configured allow-list (403)."""


class SourceNotReadableError(OtsuError):
    """The source exists but is not a raster we can read (400)."""


class SourceDamagedError(OtsuError):
    """The source opened but its data cannot be read: damaged or truncated (422)."""


class PayloadTooLargeError(OtsuError):
    """The request body or the image it asks for is larger than the server's limits (413)."""


class UpstreamError(OtsuError):
    """A remote source or API failed (502)."""


class UpstreamTimeoutError(OtsuError):
    """A remote source or API did not answer in time (504)."""


STATUS_CODES: dict[type[Exception], int] = {
    **DEFAULT_STATUS_CODES,
    RasterioIOError: status.HTTP_404_NOT_FOUND,
    RioTilerError: status.HTTP_400_BAD_REQUEST,
    PointOutsideBounds: status.HTTP_404_NOT_FOUND,
    InvalidBufferSize: status.HTTP_400_BAD_REQUEST,
    InvalidColorMapName: status.HTTP_400_BAD_REQUEST,
    InvalidMosaicMethod: status.HTTP_400_BAD_REQUEST,
    MaxArraySizeError: status.HTTP_413_CONTENT_TOO_LARGE,
    MorecantileError: status.HTTP_400_BAD_REQUEST,
    InvalidZoomError: status.HTTP_404_NOT_FOUND,  # a zoom level the TileMatrixSet does not have
    BadRequestError: status.HTTP_400_BAD_REQUEST,
    SourceNotFoundError: status.HTTP_404_NOT_FOUND,
    SourceNotAllowedError: status.HTTP_403_FORBIDDEN,
    SourceNotReadableError: status.HTTP_400_BAD_REQUEST,
    SourceDamagedError: status.HTTP_422_UNPROCESSABLE_CONTENT,
    PayloadTooLargeError: status.HTTP_413_CONTENT_TOO_LARGE,
    UpstreamError: status.HTTP_502_BAD_GATEWAY,
    UpstreamTimeoutError: status.HTTP_504_GATEWAY_TIMEOUT,
}

# ---------------------------------------------------------------------- messages
#: An absolute POSIX path (2+ components) not inside a URL, optionally as a file:// URI.
_PATH = re.compile(r"(?:file://|(?<![\w/.~-]))/(?:[^\s/'\"`,;()<>\[\]{}|]+/)+([^\s/'\"`,;()<>\[\]{}|]*)")


def public_message(message: str) -> str:
    """A message safe to return: absolute local paths cut to `…/file name`."""
    return _PATH.sub(lambda m: f"…/{m.group(1)}", message)


def format_validation_error(name: str, err: ValidationError) -> str:
    """The message of invalid algorithm parameters: each field's problem, `'key': message`."""
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "algorithm_params"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown parameter"
        parts.append(f"'{key}': {msg}" if e["loc"] else msg)
    return f"Invalid algorithm_params for '{name}': " + "; ".join(parts)


def _chain(exc: BaseException) -> str:
    """Messages of an exception and its causes (GDAL puts the useful one in the cause)."""
    parts, seen = [], 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        parts.append(str(current))
        current = current.__cause__ or current.__context__
        seen += 1
    return " | ".join(parts)


#: (pattern in GDAL's messages, error class, message for the user)
_GDAL_RULES: list[tuple[re.Pattern[str], type[OtsuError], str]] = [
    (
        re.compile(r"timed? ?out|timeout was reached", re.I),
        UpstreamTimeoutError,
        "The remote source did not answer in time: try again later.",
    ),
    (
        re.compile(r"HTTP (?:response )?code: ?(?:404|410)", re.I),
        SourceNotFoundError,
        "The remote source was not found (HTTP 404): check the URL.",
    ),
    (
        re.compile(
            r"HTTP (?:response )?code|could(?:n't| not) (?:connect|resolve)|connection refused|curl error", re.I
        ),
        UpstreamError,
        "The remote source could not be read (unreachable or it answered with an error).",
    ),
    (
        re.compile(r"no such file|does not exist", re.I),
        SourceNotFoundError,
        "The source no longer exists (it was moved or deleted while being read).",
    ),
    (
        re.compile(r"failed to transform|unable to compute (?:output bounds|a transformation)", re.I),
        BadRequestError,
        "The source cannot be projected to that CRS or area: choose another dst_crs, coord_crs or bbox.",
    ),
    (
        re.compile(r"not recogni[sz]ed as (?:being in )?a supported (?:file )?format", re.I),
        SourceNotReadableError,
        "The source is not a raster GDAL can read (expected a GeoTIFF/COG).",
    ),
]


def translate_gdal_error(exc: BaseException, remote: bool | None = None) -> OtsuError:
    """A user-facing error for a GDAL/rasterio failure (its messages often hold local paths).

    Args:
        exc: the rasterio/GDAL exception.
        remote: whether the source is remote (None: guessed from the message).

    """
    text = _chain(exc)
    if remote is None:
        remote = bool(re.search(r"/vsi\w+/|https?://", text))
    for pattern, cls, message in _GDAL_RULES:
        if pattern.search(text) and not (remote and cls is SourceNotReadableError):
            return cls(message)
    if remote:  # e.g. a read cut short: GDAL then only says "not recognized as a supported format"
        return UpstreamError("The remote source could not be read (it failed or is not a raster GDAL can read).")
    return SourceDamagedError(
        "The source could not be read completely: the file looks damaged or truncated "
        "(or it changed while being read). Repair or replace it."
    )


def reset_gdal_errors() -> None:
    """Clear this thread's GDAL "last error".

    A failed read leaves it set; rasterio checks it after some calls that succeed (e.g.
    `colorinterp`), so the next request served by the same thread on an already open
    dataset would fail with the previous request's error. Opening a dataset clears it;
    reusing an open one must do it explicitly.
    """
    gdal_library().CPLErrorReset()


@functools.cache
def gdal_library() -> ctypes.CDLL:
    """The GDAL library rasterio is linked with: its C functions, looked up through rasterio's extension.

    One handle per process, for every module that calls GDAL through ctypes (error state,
    `/vsicurl/` cache, the `/vsiotsu/` plugin).
    """
    import rasterio._err

    return ctypes.CDLL(rasterio._err.__file__)


# ---------------------------------------------------------------------- handlers
def _json(status_code: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code)


def _mapped_handler(status_code: int) -> Callable[[Request, Exception], Response]:
    def handle(request: Request, exc: Exception) -> Response:
        if status_code == status.HTTP_204_NO_CONTENT:
            return Response(status_code=204)
        if status_code >= 500:
            logger.error("%s %s -> %s", request.method, request.url.path, status_code, exc_info=exc)
        return _json(status_code, public_message(str(exc)) or exc.__class__.__name__)

    return handle


def _gdal_handler(request: Request, exc: Exception) -> Response:
    error = translate_gdal_error(exc)
    logger.warning("%s %s: GDAL error %r -> %s", request.method, request.url.path, _chain(exc), type(error).__name__)
    return _json(STATUS_CODES[type(error)], str(error))


def _memory_handler(request: Request, exc: Exception) -> Response:
    logger.warning("%s %s: out of memory", request.method, request.url.path, exc_info=exc)
    return _json(
        status.HTTP_413_CONTENT_TOO_LARGE,
        "The request needs more memory than the server can give: ask for a smaller image "
        "(max_size, width, height, tilesize) or a smaller area.",
    )


#: rasterio's message for a band that the dataset does not have.
_BAND_INDEX = re.compile(r"band index (\d+) out of range \(not in \(([\d, ]*)\)\)")


def _index_handler(request: Request, exc: Exception) -> Response:
    match = _BAND_INDEX.search(str(exc))
    if match is None:
        return _unexpected_handler(request, exc)
    count = len([b for b in match.group(2).split(",") if b.strip()])
    return _json(
        status.HTTP_400_BAD_REQUEST,
        f"Band {match.group(1)} does not exist: this source has {count} band(s) (bidx 1..{count}, b1..b{count}).",
    )


#: numpy's messages for a fill value (nodata) that the data type cannot hold.
_NODATA_RANGE = re.compile(
    r"Python integer (?P<value>-?\d+) out of bounds for (?P<dtype>\w+)"
    r"|Cannot convert fill_value (?P<fill>\S+) to dtype (?P<fdtype>\w+)"
)


#: Modules whose ValueErrors are about the request's parameters (raised where they parse or
#: apply them): TiTiler's query parsing, rio-tiler's readers, color-operations' formulas.
_INPUT_MODULES = ("titiler.core.dependencies", "rio_tiler", "color_operations")


def _raised_in(exc: BaseException) -> str:
    """Module of the innermost Python frame of a traceback."""
    frames = list(traceback.walk_tb(exc.__traceback__))
    return str(frames[-1][0].f_globals.get("__name__", "")) if frames else ""


#: numpy's message for a histogram whose range overflows (values near +-FLT_MAX, +-inf after an expression).
_HISTOGRAM_SPAN = re.compile(r"Too many bins for data range|autodetected range of \[.*\] is not finite")


def _value_range_handler(request: Request, exc: Exception) -> Response:
    if _HISTOGRAM_SPAN.search(str(exc)):
        return _json(
            status.HTTP_400_BAD_REQUEST,
            "The values span more than a histogram can bin (values near the data type's limits, such as "
            "-3.4e38 fill values, or infinities): set nodata to the fill value, or give histogram_range=min,max.",
        )
    match = _NODATA_RANGE.search(_chain(exc))
    if match is None:
        module = _raised_in(exc)
        if isinstance(exc, ValueError) and module.startswith(_INPUT_MODULES):
            logger.info("%s %s: invalid parameter (%s): %s", request.method, request.url.path, module, exc)
            return _json(status.HTTP_400_BAD_REQUEST, f"Invalid parameters: {public_message(str(exc))[:300]}")
        return _unexpected_handler(request, exc)
    value = match.group("value") or match.group("fill")
    dtype = match.group("dtype") or match.group("fdtype")
    return _json(
        status.HTTP_400_BAD_REQUEST,
        f"{value} does not fit this source's data type ({dtype}): give a nodata value in its range, or omit nodata.",
    )


def _recursion_handler(request: Request, exc: Exception) -> Response:
    return _json(
        status.HTTP_400_BAD_REQUEST,
        "A parameter is nested too deeply (JSON or expression): simplify it.",
    )


def _geometry_handler(request: Request, exc: Exception) -> Response:
    logger.info("%s %s: geometry error %s", request.method, request.url.path, exc)
    return _json(
        status.HTTP_400_BAD_REQUEST,
        f"Invalid geometry ({public_message(str(exc))[:200]}): give closed, finite lon/lat rings.",
    )


def _unexpected_handler(request: Request, exc: Exception) -> Response:
    reference = uuid.uuid4().hex[:12]
    logger.error("%s %s failed (reference %s)", request.method, request.url.path, reference, exc_info=exc)
    return _json(
        status.HTTP_500_INTERNAL_SERVER_ERROR,
        f"Internal server error (reference {reference}): the request failed unexpectedly; "
        "the details are in the server log.",
    )


def add_error_handlers(app: FastAPI, status_codes: dict[type[Exception], int] | None = None) -> None:
    """Register JSON handlers: mapped classes, GDAL translation, memory/recursion/geometry, the rest 500."""
    for cls, code in (status_codes or STATUS_CODES).items():
        if cls is not Exception:
            app.add_exception_handler(cls, _mapped_handler(code))
    for cls in (RasterioError, RasterioIOError, CPLE_BaseError):
        app.add_exception_handler(cls, _gdal_handler)
    app.add_exception_handler(MemoryError, _memory_handler)
    app.add_exception_handler(RecursionError, _recursion_handler)
    app.add_exception_handler(IndexError, _index_handler)
    for cls in (OverflowError, TypeError, ValueError):
        app.add_exception_handler(cls, _value_range_handler)
    app.add_exception_handler(ShapelyError, _geometry_handler)
    app.add_exception_handler(Exception, _unexpected_handler)

"""Errors of titiler-otsu, the HTTP status of each, and the app's exception handlers.

Every failure answers JSON `{"detail": "..."}`. Our own errors carry messages written for
the user; GDAL/rasterio errors are translated into messages a user can act on (missing,
damaged, not a raster, remote failure or timeout); anything unexpected is a 500 with a
reference id and no internals. Local directories never reach a response: absolute paths in
messages are cut to their file name. Full details (tracebacks, paths) go to the server log.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable

from fastapi import FastAPI
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
        re.compile(r"HTTP (?:response )?code|could(?:n't| not) (?:connect|resolve)|connection refused|curl", re.I),
        UpstreamError,
        "The remote source could not be read (unreachable or it answered with an error).",
    ),
    (
        re.compile(r"no such file|does not exist", re.I),
        SourceNotFoundError,
        "The source no longer exists (it was moved or deleted while being read).",
    ),
    (
        re.compile(r"not recogni[sz]ed as (?:being in )?a supported (?:file )?format", re.I),
        SourceNotReadableError,
        "The source is not a raster GDAL can read (expected a GeoTIFF/COG).",
    ),
]


def translate_gdal_error(exc: BaseException) -> OtsuError:
    """A user-facing error for a GDAL/rasterio failure (its messages often hold local paths)."""
    text = _chain(exc)
    for pattern, cls, message in _GDAL_RULES:
        if pattern.search(text):
            return cls(message)
    return SourceDamagedError(
        "The source could not be read completely: the file looks damaged or truncated "
        "(or it changed while being read). Repair or replace it."
    )


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
    app.add_exception_handler(ShapelyError, _geometry_handler)
    app.add_exception_handler(Exception, _unexpected_handler)

"""Errors of titiler-otsu and the HTTP status each one maps to."""

from __future__ import annotations

from rasterio.errors import RasterioIOError
from starlette import status
from titiler.core.errors import DEFAULT_STATUS_CODES


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


class UpstreamError(OtsuError):
    """A remote source or API failed (502)."""


class UpstreamTimeoutError(OtsuError):
    """A remote source or API did not answer in time (504)."""


STATUS_CODES: dict[type[Exception], int] = {
    **DEFAULT_STATUS_CODES,
    RasterioIOError: status.HTTP_404_NOT_FOUND,
    BadRequestError: status.HTTP_400_BAD_REQUEST,
    SourceNotFoundError: status.HTTP_404_NOT_FOUND,
    SourceNotAllowedError: status.HTTP_403_FORBIDDEN,
    SourceNotReadableError: status.HTTP_400_BAD_REQUEST,
    UpstreamError: status.HTTP_502_BAD_GATEWAY,
    UpstreamTimeoutError: status.HTTP_504_GATEWAY_TIMEOUT,
}

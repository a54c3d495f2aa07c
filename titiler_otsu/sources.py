"""Which sources a request may read: normalisation and the allow-list."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from titiler_otsu.errors import BadRequestError, SourceNotAllowedError, SourceNotFoundError

_REMOTE_SCHEMES = {"http", "https", "s3", "gs", "az", "ftp"}


def _is_under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip(os.sep) + os.sep)


@dataclass(frozen=True)
class SourcePolicy:
    """Allow-list of local directories/files and remote URL prefixes.

    Attributes:
        local_prefixes: real (symlink-resolved) absolute paths a request may read below.
        remote_prefixes: URL prefixes (e.g. `https://data.example.com/cogs/`).

    """

    local_prefixes: tuple[str, ...]
    remote_prefixes: tuple[str, ...]

    @classmethod
    def from_prefixes(cls, prefixes: list[str]) -> SourcePolicy:
        """Split prefixes into resolved local paths and remote URL prefixes."""
        local, remote = [], []
        for prefix in prefixes:
            scheme = urlparse(prefix).scheme.lower()
            if scheme in _REMOTE_SCHEMES:
                remote.append(prefix)
            else:
                local.append(os.path.realpath(prefix.removeprefix("file://")))
        return cls(tuple(local), tuple(remote))

    def resolve(self, url: str) -> str:
        """Return the path or URL to open for a user-given `url`, or raise.

        Raises:
            BadRequestError: empty or malformed source.
            SourceNotAllowedError: outside the allow-list (GDAL `/vsi*` paths included).
            SourceNotFoundError: a local file that does not exist.

        """
        url = url.strip()
        if not url:
            raise BadRequestError("url is empty: give the path or URL of a COG/GeoTIFF.")
        if url.startswith("/vsi"):
            if any(url.startswith(p) for p in self.remote_prefixes):
                return url
            raise SourceNotAllowedError("GDAL virtual file system paths (/vsi...) are not allowed.")
        scheme = urlparse(url).scheme.lower()
        if scheme in _REMOTE_SCHEMES:
            if any(url.startswith(p) for p in self.remote_prefixes):
                return url
            raise SourceNotAllowedError(
                f"Remote source not allowed: {url}. The server reads only sources below its "
                "allowed prefixes (setting TITILER_OTSU_ALLOWED_SOURCES)."
            )
        if scheme and scheme != "file" and len(scheme) > 1:
            raise SourceNotAllowedError(f"Unsupported source scheme '{scheme}://'.")
        path = os.path.realpath(os.path.abspath(url.removeprefix("file://")))
        if not any(_is_under(path, p) for p in self.local_prefixes):
            raise SourceNotAllowedError(
                f"Source not allowed: {url}. The server reads only files below its allowed "
                "directories (setting TITILER_OTSU_ALLOWED_SOURCES)."
            )
        if not Path(path).is_file():
            raise SourceNotFoundError(f"No such file: {url}")
        return path

"""What a source URL is: its scheme, canonical host, path segments, and whether it is internal.

Parsing and classification only (no network but the resolver given): `parse_remote` refuses
malformed URLs, control characters, over-long parts and `.`/`..` segments with a 400 naming the
problem; `canonical_host` folds the spellings of one host (case, trailing dot, IDNA, numeric
IPv4 forms); `is_internal` says whether an address is loopback, private, link-local or reserved.
`SourcePolicy` (`sources.py`) decides with these what a request may read.

May import: `errors`, `settings` and `security`.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from titiler_otsu.errors import (
    BadRequestError,
    SourceNotAllowedError,
    UpstreamError,
)

#: Schemes GDAL reads remotely (through /vsicurl/, /vsis3/...); each needs a configured prefix.
REMOTE_SCHEMES = frozenset({"http", "https", "s3", "gs", "az", "azure", "oss", "ftp"})
#: Schemes whose hosts are checked against internal addresses and probed for redirects.
HTTP_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21}
MAX_SOURCE_LENGTH = 2048
#: Longest file/folder name (or URL path segment): NAME_MAX of common file systems.
MAX_NAME_LENGTH = 255
MAX_REDIRECTS = 5

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HOST_NAME = re.compile(r"^[a-z0-9_\-.]+$")
_NUMERIC_HOST = re.compile(r"^[0-9a-fx.]+$")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: `(host, port) -> addresses`; default: the system resolver.
Resolver = Callable[[str, int | None], list[str]]


def url_scheme(url: str) -> str:
    """The lower-case scheme of `url` ('' for a path).

    Raises:
        BadRequestError: a URL `urllib` cannot split (e.g. `http://[127.0.0.1]/`, `http://[::1/`).

    """
    try:
        return urlsplit(url).scheme.lower()
    except ValueError as e:
        raise BadRequestError(f"Invalid URL ({e}): check the host part of {url}.") from e


def system_resolver(host: str, port: int | None) -> list[str]:
    """Every address `host` resolves to (the system resolver, as GDAL/curl would use)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise UpstreamError(f"Could not resolve the host name '{host}'.") from e
    return [str(info[4][0]) for info in infos]


def is_internal(ip: IPAddress) -> bool:
    """Whether an address is not a public unicast one (loopback, private, link-local...).

    IPv6 forms that embed an IPv4 address (mapped, compatible, 6to4, Teredo, NAT64) are judged by it.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        if int(ip) >> 32 == 0:  # ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d
            return True
        embedded = [ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None]
        if ip in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if any(e is not None and is_internal(e) for e in embedded):
            return True
    return not ip.is_global or ip.is_multicast


def canonical_host(host: str) -> str:
    """The host as the network stack will see it: IP literals in canonical form, names in IDNA.

    `2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1` -> `127.0.0.1`; `::ffff:127.0.0.1` ->
    `127.0.0.1`; `EXAMPLE.com.` -> `example.com`; full-width digits -> ASCII.

    Raises:
        SourceNotAllowedError: a host that cannot be a plain name or address.

    """
    if "%" in host or not host:
        raise SourceNotAllowedError("Remote source not allowed: the host is empty, percent-encoded or zone-scoped.")
    if ":" in host:
        try:
            ip6 = ipaddress.IPv6Address(host)
        except ValueError as e:
            raise SourceNotAllowedError(f"Remote source not allowed: '{host}' is not a valid IPv6 address.") from e
        return str(ip6.ipv4_mapped) if ip6.ipv4_mapped else ip6.compressed
    try:
        name = host.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError as e:
        raise SourceNotAllowedError(f"Remote source not allowed: '{host}' is not a valid host name.") from e
    if _NUMERIC_HOST.match(name):
        try:  # the forms inet_aton (and so getaddrinfo/curl) accept: decimal, octal, hex, short
            return socket.inet_ntoa(socket.inet_aton(name))
        except OSError:
            pass
    if not _HOST_NAME.match(name):
        raise SourceNotAllowedError(f"Remote source not allowed: '{host}' is not a valid host name.")
    return name


def ip_literal(host: str) -> IPAddress | None:
    """The address of a canonical host that is an IP literal, else None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


@dataclass(frozen=True)
class RemoteURL:
    """A remote URL, canonicalised.

    Attributes:
        scheme: lower-case scheme.
        host: canonical host (see `canonical_host`).
        port: explicit or default port (None for object stores).
        path: percent-decoded path (what prefixes are matched against).
        url: the URL to open (canonical host, original encoded path and query, no fragment).

    """

    scheme: str
    host: str
    port: int | None
    path: str
    url: str


def parse_remote(url: str) -> RemoteURL:
    """Canonicalise a remote URL, refusing credentials, odd hosts and dot segments.

    Raises:
        SourceNotAllowedError: credentials, an invalid host, `.`/`..` segments, backslashes.
        BadRequestError: an invalid port.

    """
    try:
        parts = urlsplit(url)
        parts.hostname  # noqa: B018 - raises ValueError on a malformed netloc ("[127.0.0.1]", "[::1")
    except ValueError as e:
        raise BadRequestError(f"Invalid URL ({e}): check the host part of {url}.") from e
    scheme = parts.scheme.lower()
    if "@" in parts.netloc:
        raise SourceNotAllowedError(
            "Remote source not allowed: credentials in URLs (user:password@host) are refused; "
            "configure authentication on the server instead."
        )
    try:
        port = parts.port
    except ValueError as e:
        raise BadRequestError(f"Invalid port in URL: {url}") from e
    host = canonical_host(parts.hostname or "")
    path = unquote(parts.path or "/")
    if "\\" in path or any(segment in (".", "..") for segment in path.split("/")):
        raise SourceNotAllowedError("Remote source not allowed: '.', '..' and backslashes are refused in URL paths.")
    port = port if port is not None else DEFAULT_PORTS.get(scheme)
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        netloc += f":{port}"
    opened = f"{scheme}://{netloc}{parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")
    return RemoteURL(scheme, host, port, path, opened)


@dataclass(frozen=True)
class UrlPrefix:
    """An allowed remote prefix: scheme, host (None: any public host), port, path prefix."""

    scheme: str
    host: str | None
    port: int | None
    path: str

    @classmethod
    def parse(cls, prefix: str) -> UrlPrefix:
        """`https://host[:port]/path` (or `https://` for any public host)."""
        parts = urlsplit(prefix)
        scheme = parts.scheme.lower()
        if not parts.netloc:
            return cls(scheme, None, None, "/")
        remote = parse_remote(prefix)
        return cls(scheme, remote.host, remote.port, remote.path)

    def matches(self, url: RemoteURL) -> bool:
        """Whether `url` is below this prefix (whole path segments)."""
        if url.scheme != self.scheme:
            return False
        if self.host is not None and (url.host != self.host or url.port != self.port):
            return False
        if self.path.endswith("/"):
            return url.path.startswith(self.path)
        return url.path == self.path or url.path.startswith(self.path + "/")

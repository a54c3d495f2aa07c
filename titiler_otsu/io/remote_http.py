"""Ranged GETs for the direct remote reader (`remote_vsi.py`): keep-alive, no redirect ever followed.

`fetch_range` is the only request the reader sends: one `GET` with a `Range`, on a keep-alive
connection of the calling thread (per origin; dropped after a fork), through the environment's
proxy for that origin, TLS with the probes' settings (`remote_get.tls_context`), timeout
`GDAL_HTTP_TIMEOUT` (set from `REMOTE_TIMEOUT`). Anything but `206` with the bytes asked for is
a `RemoteReadError` whose message `errors.translate_gdal_error` maps to a status (a `3xx`
names its target, which is not contacted).

May import: `core`, `security`, `io`, `errors`, `settings`.
"""

from __future__ import annotations

import http.client
import os
import threading
import urllib.request
from urllib.parse import urlsplit

from titiler_otsu.security.remote_get import tls_context


class RemoteReadError(OSError):
    """A range request that failed (its message names the URL and the HTTP status)."""


def timeout() -> float:
    """Seconds a range request may take (`GDAL_HTTP_TIMEOUT`, set from `REMOTE_TIMEOUT`; 30 by default)."""
    try:
        return max(1.0, float(os.environ.get("GDAL_HTTP_TIMEOUT", "30")))
    except ValueError:
        return 30.0


class _Connections(threading.local):
    """Keep-alive connections of one thread, per (scheme, host, port); dropped after a fork."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.by_origin: dict[tuple[str, str, int], http.client.HTTPConnection] = {}

    def get(self, scheme: str, host: str, port: int) -> http.client.HTTPConnection:
        if self.pid != os.getpid():
            self.pid, self.by_origin = os.getpid(), {}
        key = (scheme, host, port)
        conn = self.by_origin.get(key)
        if conn is None:
            conn = self.by_origin[key] = _connect(scheme, host, port)
        return conn

    def drop(self, scheme: str, host: str, port: int) -> None:
        conn = self.by_origin.pop((scheme, host, port), None)
        if conn is not None:
            conn.close()


def _connect(scheme: str, host: str, port: int) -> http.client.HTTPConnection:
    """A connection to an origin, through the environment's proxy for it (if any)."""
    proxy = None if urllib.request.proxy_bypass(host) else urllib.request.getproxies().get(scheme)
    seconds = timeout()
    target = (host, port)
    if proxy:
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        target = (parts.hostname or "", parts.port or 80)
    if scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(*target, timeout=seconds, context=tls_context())
        if proxy:
            conn.set_tunnel(host, port)
        return conn
    conn = http.client.HTTPConnection(*target, timeout=seconds)
    conn._absolute_url = bool(proxy)  # type: ignore[attr-defined]
    return conn


_connections = _Connections()


def fetch_range(url: str, start: int, size: int) -> tuple[bytes, dict[str, str]]:
    """`size` bytes of `url` from `start` (one ranged GET, no redirect followed), and the answer's headers.

    Raises:
        RemoteReadError: a redirect, an error status, an answer that is not the range, or no answer.

    """
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    port = parts.port or (443 if scheme == "https" else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    headers = {"Range": f"bytes={start}-{start + size - 1}", "Accept-Encoding": "identity"}
    for attempt in (0, 1):
        conn = _connections.get(scheme, host, port)
        fresh = conn.sock is None
        try:
            conn.request("GET", url if getattr(conn, "_absolute_url", False) else target, headers=headers)
            response = conn.getresponse()
            status = response.status
            if status != 206:
                response.close()
                _connections.drop(scheme, host, port)
                raise RemoteReadError(_status_message(url, status, response.getheader("location")))
            data = response.read()
        except (http.client.HTTPException, ConnectionError, TimeoutError, OSError) as e:
            _connections.drop(scheme, host, port)
            if isinstance(e, RemoteReadError):
                raise
            if attempt == 0 and not fresh and not isinstance(e, TimeoutError):
                continue  # a kept-alive connection the server had closed: once more on a new one
            timed_out = isinstance(e, TimeoutError)
            kind = "Timeout was reached" if timed_out else f"could not connect ({e.__class__.__name__})"
            raise RemoteReadError(f"{url}: {kind}") from e
        if len(data) != size:
            raise RemoteReadError(f"{url}: the server sent {len(data)} of {size} bytes asked for")
        return data, {k.lower(): v for k, v in response.getheaders()}
    raise AssertionError("unreachable")


def _status_message(url: str, status: int, location: str | None) -> str:
    if 300 <= status < 400:
        return f"{url}: HTTP response code: {status} (a redirect to {location!r}; redirects are not followed)"
    if status == 200:
        return f"{url}: HTTP response code: 200 to a Range request (the server does not serve byte ranges)"
    return f"{url}: HTTP response code: {status}"

"""Identity of remote sources (ETag / Last-Modified / size) and revalidation of what is cached.

A remote COG is opened once per process and its handles, GDAL's block cache and
`/vsicurl/`'s byte cache are reused by every later request: no HEAD and no re-open per
request. What tells us the object changed is the allow-list probe of `SourcePolicy` (one
`HEAD` per URL per probe TTL, the redirect check): each probe's validators are recorded here.

* `identity(url)` is part of the key of open datasets (`datasets.source_key`) and of dataset
  histograms: a changed `ETag`, `Last-Modified` or `Content-Length` makes the next lease
  close the stale handles and open the new object, and the histogram be read again.
* When a URL's validators change, GDAL's cached bytes and file properties of that URL are
  dropped (`VSICurlPartialClearCache`), so the reopen does not mix old blocks with a new header.

So a changed object is served at most one probe TTL late (60 s by default), at the cost of
one HEAD per URL per TTL and worker.

May import: `errors`, `settings` and `security`.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Mapping

logger = logging.getLogger(__name__)

#: A source's validators: (ETag, Last-Modified, Content-Length), "" when absent.
Identity = tuple[str, str, str]

_identities: dict[str, Identity] = {}
_lock = threading.Lock()
_MAX_URLS = 65536


def validators(headers: Mapping[str, str]) -> Identity:
    """The validators of an HTTP response (lower-case header access is case-insensitive in httpx)."""
    return (headers.get("etag", ""), headers.get("last-modified", ""), headers.get("content-length", ""))


def record(url: str, headers: Mapping[str, str]) -> bool:
    """Record the validators a probe of `url` returned; True when they changed since the last probe.

    On a change, GDAL's cached content of `url` is cleared.
    """
    new = validators(headers)
    with _lock:
        old = _identities.get(url)
        if old is None and len(_identities) >= _MAX_URLS:
            _identities.clear()  # bounded: forgetting only costs a re-check, never a stale read
        _identities[url] = new
    changed = old is not None and old != new
    if changed:
        clear_gdal_cache(url)
    return changed


def identity(url: str) -> Identity | None:
    """The last validators recorded for `url` (None: never probed)."""
    with _lock:
        return _identities.get(url)


def forget() -> None:
    """Forget every recorded identity (tests)."""
    with _lock:
        _identities.clear()


def _libgdal() -> ctypes.CDLL | None:
    """The GDAL library rasterio loaded into this process (found in /proc/self/maps)."""
    import rasterio  # noqa: F401  (loads libgdal)

    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libgdal" in line and "/" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def clear_gdal_cache(url: str) -> bool:
    """Drop GDAL's `/vsicurl/` cache (bytes and file properties) of `url`; False if GDAL is not reachable."""
    lib = _libgdal()
    if lib is None or not hasattr(lib, "VSICurlPartialClearCache"):
        logger.warning("cannot clear GDAL's /vsicurl/ cache of %s: libgdal not found", url)
        return False
    func = lib.VSICurlPartialClearCache
    func.argtypes = [ctypes.c_char_p]
    func.restype = None
    func(f"/vsicurl/{url}".encode())
    return True

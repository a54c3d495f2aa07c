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

The redirect guard's ranged `GET` probe reads the object's first `HEADER_BYTES` (the COG
header): `record_header` keeps them, and `header` hands them to the reader of remote bytes
(`io/remote_vsi.py`) while they match the recorded identity, so the open costs no request.

May import: `errors`, `settings` and `security`.
"""

from __future__ import annotations

import ctypes
import logging
import re
import threading
from collections.abc import Mapping

from titiler_otsu.errors import gdal_library

logger = logging.getLogger(__name__)

#: A source's validators: (ETag, Last-Modified, Content-Length), "" when absent.
Identity = tuple[str, str, str]

_identities: dict[str, Identity] = {}
_lock = threading.Lock()
_MAX_URLS = 65536

#: Bytes of an object's start read by the `GET` probe: the header of a COG (and GDAL's
#: `GDAL_INGESTED_BYTES_AT_OPEN` here).
HEADER_BYTES = 65536

#: url -> (ETag, Last-Modified, object size, first bytes) of the last `GET` probe.
_headers: dict[str, tuple[str, str, int, bytes]] = {}
_MAX_HEADERS = 1024
_TOTAL = re.compile(r"^bytes\s+\d+-\d+/(\d+)\s*$", re.I)


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
    """Forget every recorded identity and header (tests)."""
    with _lock:
        _identities.clear()
        _headers.clear()


def object_size(headers: Mapping[str, str]) -> int | None:
    """The whole object's size from a `206` answer's `Content-Range: bytes a-b/size` (None: absent)."""
    match = _TOTAL.match(headers.get("content-range", ""))
    return int(match.group(1)) if match else None


def record_header(url: str, headers: Mapping[str, str], data: bytes) -> None:
    """Keep the first bytes of `url` that a ranged `GET` answered (`206`, with the object's size)."""
    size = object_size(headers)
    if size is None or not data:
        return
    with _lock:
        if url not in _headers and len(_headers) >= _MAX_HEADERS:
            _headers.pop(next(iter(_headers)))
        _headers[url] = (headers.get("etag", ""), headers.get("last-modified", ""), size, bytes(data))


def header(url: str) -> tuple[int, bytes] | None:
    """(object size, first bytes) of `url` from its last `GET` probe, if they match its identity.

    None when there is none, or when the last `HEAD` probe saw another ETag, Last-Modified or
    size (the object changed between the two probes: the reader fetches the header itself).
    """
    with _lock:
        kept, known = _headers.get(url), _identities.get(url)
    if kept is None:
        return None
    etag, modified, size, data = kept
    if known is not None and (known[0], known[1]) != (etag, modified):
        return None
    if known is not None and known[2] and known[2] != str(size):
        return None
    return size, data


def clear_gdal_cache(url: str) -> bool:
    """Drop GDAL's `/vsicurl/` cache (bytes and file properties) of `url`; False if this GDAL cannot."""
    lib = gdal_library()
    if not hasattr(lib, "VSICurlPartialClearCache"):
        logger.warning("cannot clear GDAL's /vsicurl/ cache of %s: this GDAL has no VSICurlPartialClearCache", url)
        return False
    func = lib.VSICurlPartialClearCache
    func.argtypes = [ctypes.c_char_p]
    func.restype = None
    func(f"/vsicurl/{url}".encode())
    return True

"""Bytes of remote objects for the direct reader: exact ranges, cached, each fetched once.

`RemoteObject(url)` is one object as GDAL's `/vsiotsu/` file system (`remote_vsi.py`) sees
it: its size and its bytes, fetched on demand with `remote_http.fetch_range`:

* **open**: the size and the first 64 KB come from the redirect guard's `GET` probe
  (`remote_identity.header`), so opening a probed source sends no request; an unprobed one
  (an export worker) costs one ranged `GET`;
* **reads**: exactly the bytes asked for (16 KB at least, for the small reads of a TIFF
  directory), kept in a process-wide cache (`CACHE_BYTES`, keyed by URL and identity, so a
  changed object never mixes old bytes in); the ranges of one multi-range read are fetched
  in parallel;
* **each byte once**: a fetch under way is registered, and a read of bytes it will bring
  waits for it instead of asking again (the tiles of a pan that a browser asks for at once
  share their blocks' requests); a read partly cached or partly under way fetches only its
  gaps (GDAL asks for adjacent blocks as one range, and a handle whose block cache lacks one
  of them must not fetch the other again).

May import: `core`, `security`, `io`, `errors`, `settings`.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from titiler_otsu.io.remote_http import RemoteReadError, fetch_range, timeout
from titiler_otsu.security import remote_identity

#: Most bytes of fetched ranges kept per process (as GDAL's CPL_VSIL_CURL_CACHE_SIZE here).
CACHE_BYTES = 256 * 2**20
#: Smallest range fetched for a read (a TIFF directory is read in small pieces).
MIN_FETCH = 16384
#: Ranges of one multi-range read closer than this are fetched as one.
MERGE_GAP = 4096
#: Parallel range requests of one multi-range read.
PARALLEL = 8


class ByteCache:
    """Fetched ranges of remote objects, bounded in bytes, least recently used evicted first."""

    def __init__(self, limit: int) -> None:
        """An empty cache of at most `limit` bytes."""
        self.limit = limit
        self.size = 0
        self._lock = threading.Lock()
        self._ranges: OrderedDict[tuple[Any, int], bytes] = OrderedDict()
        self._by_object: dict[Any, set[int]] = {}

    def get(self, key: Any, start: int, size: int) -> bytes | None:
        """The bytes [start, start + size) of an object when one kept range holds them."""
        with self._lock:
            for begin in self._by_object.get(key, ()):
                data = self._ranges[(key, begin)]
                if begin <= start and start + size <= begin + len(data):
                    self._ranges.move_to_end((key, begin))
                    return data[start - begin : start - begin + size]
        return None

    def overlapping(self, key: Any, start: int, end: int) -> list[tuple[int, bytes]]:
        """The kept ranges (start, bytes) of an object that overlap [start, end), in order."""
        with self._lock:
            found = []
            for begin in self._by_object.get(key, ()):
                data = self._ranges[(key, begin)]
                if begin < end and begin + len(data) > start:
                    self._ranges.move_to_end((key, begin))
                    found.append((begin, data))
        return sorted(found, key=lambda piece: piece[0])

    def put(self, key: Any, start: int, data: bytes) -> None:
        """Keep a fetched range (evicting the least recently used beyond `limit`)."""
        if len(data) > self.limit:
            return
        with self._lock:
            old = self._ranges.pop((key, start), None)
            self.size += len(data) - (len(old) if old is not None else 0)
            self._ranges[(key, start)] = data
            self._by_object.setdefault(key, set()).add(start)
            while self.size > self.limit:
                (k, begin), dropped = self._ranges.popitem(last=False)
                self.size -= len(dropped)
                self._by_object[k].discard(begin)
                if not self._by_object[k]:
                    del self._by_object[k]

    def clear(self) -> None:
        """Forget every range."""
        with self._lock:
            self._ranges.clear()
            self._by_object.clear()
            self.size = 0


def _gaps(spans: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    """The parts (start, end) of [start, end) that no span (start, end) covers."""
    gaps, pos = [], start
    for begin, stop in sorted(spans):
        if begin > pos:
            gaps.append((pos, min(begin, end)))
        pos = max(pos, stop)
        if pos >= end:
            break
    if pos < end:
        gaps.append((pos, end))
    return gaps


def _assemble(pieces: list[tuple[int, bytes]], start: int, end: int) -> bytes | None:
    """[start, end) joined from pieces, or None when they leave a gap."""
    out, pos = bytearray(), start
    for begin, data in pieces:
        if begin > pos:
            return None
        stop = min(begin + len(data), end)
        if stop > pos:
            out += data[pos - begin : stop - begin]
            pos = stop
        if pos >= end:
            return bytes(out)
    return None


_cache = ByteCache(CACHE_BYTES)
#: object key -> fetches under way: (start, end, done)
_in_flight: dict[Any, list[tuple[int, int, threading.Event]]] = {}
_in_flight_lock = threading.Lock()


def _claim(key: Any, start: int, size: int, want: int) -> bytes | tuple[bool, threading.Event]:
    """Cached bytes [start, start + size), else a fetch under way that brings them, else claim a fetch.

    Returns the bytes, or `(False, done)`: wait for `done`, a fetch under way, or `(True, done)`:
    [start, start + want) is now registered as the caller's to fetch (`_release(key, done)` after).
    """
    with _in_flight_lock:
        for begin, end, done in _in_flight.get(key, ()):
            if begin <= start and start + size <= end:
                return False, done
        data = _cache.get(key, start, size)  # a fetch puts its bytes before it is released
        if data is not None:
            return data
        mine = threading.Event()
        _in_flight.setdefault(key, []).append((start, start + want, mine))
    return True, mine


def _release(key: Any, done: threading.Event) -> None:
    """A claimed fetch has ended (its bytes cached, or failed): wake its waiters."""
    with _in_flight_lock:
        entries = [entry for entry in _in_flight.get(key, []) if entry[2] is not done]
        if entries:
            _in_flight[key] = entries
        else:
            _in_flight.pop(key, None)
    done.set()


class RemoteObject:
    """One remote object as GDAL sees it: its size, and its bytes fetched on demand."""

    def __init__(self, url: str) -> None:
        """Size and header from the `GET` probe (no request), else one ranged `GET` now."""
        self.url = url
        self.key = (url, remote_identity.identity(url))
        known = remote_identity.header(url)
        if known is not None:
            self.size, head = known
        else:
            head, headers = fetch_range(url, 0, remote_identity.HEADER_BYTES)
            size = remote_identity.object_size(headers)
            if size is None:
                raise RemoteReadError(f"{url}: the answer to a Range request has no Content-Range")
            self.size = size
        _cache.put(self.key, 0, head)

    def _fetch(self, start: int, want: int, done: threading.Event) -> bytes:
        """One claimed range, fetched and cached (released in any case)."""
        try:
            data, _ = fetch_range(self.url, start, want)
            _cache.put(self.key, start, data)
            return data
        finally:
            _release(self.key, done)

    def read(self, start: int, size: int) -> bytes:
        """Bytes [start, start + size), clipped to the object (cached, awaited, else fetched)."""
        size = min(size, self.size - start)
        if size <= 0:
            return b""
        data = _cache.get(self.key, start, size)
        if data is not None:
            return data
        partly = self._read_around_cached(start, size)
        if partly is not None:
            return partly
        want = min(max(size, MIN_FETCH), self.size - start)
        while True:
            found = _claim(self.key, start, size, want)
            if isinstance(found, bytes):
                return found
            ours, done = found
            if ours:
                return self._fetch(start, want, done)[:size]
            done.wait(timeout() + 5)  # a fetch under way; then its bytes (or, if it failed, our own)

    def _read_around_cached(self, start: int, size: int) -> bytes | None:
        """A range partly cached or under way: only its gaps fetched (in parallel), then joined.

        None when nothing of it is cached or being fetched. GDAL asks for adjacent blocks as one
        range: a handle lacking one of them in its block cache must not fetch the other again.
        """
        end = start + size
        with _in_flight_lock:
            coming = [entry for entry in _in_flight.get(self.key, ()) if entry[0] < end and entry[1] > start]
        pieces = _cache.overlapping(self.key, start, end)
        if not pieces and not coming:
            return None
        spans = [(b, b + len(d)) for b, d in pieces] + [(b, e) for b, e, _ in coming]
        self._fetch_spans(_gaps(spans, start, end))
        for _, _, done in coming:
            done.wait(timeout() + 5)
        joined = _assemble(_cache.overlapping(self.key, start, end), start, end)
        if joined is None:  # a fetch it waited for failed, or a piece was evicted meanwhile
            joined, _ = fetch_range(self.url, start, size)
        return joined

    def _groups(self, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """The (start, end) ranges to fetch for `ranges`: those not cached, near ones merged."""
        missing = sorted({(s, n) for s, n in ranges if n > 0 and _cache.get(self.key, s, n) is None})
        groups: list[list[int]] = []
        for start, size in missing:
            end = min(start + size, self.size)
            if groups and start - groups[-1][1] <= MERGE_GAP:
                groups[-1][1] = max(groups[-1][1], end)
            elif start < self.size:
                groups.append([start, end])
        return [(s, e) for s, e in groups]

    def _fetch_spans(self, spans: list[tuple[int, int]]) -> None:
        """Read (start, end) spans into the cache: in parallel when there are several."""
        if len(spans) > 1:
            for _ in _pool().map(lambda g: self.read(g[0], g[1] - g[0]), spans):
                pass
        elif spans:
            self.read(spans[0][0], spans[0][1] - spans[0][0])

    def read_ranges(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        """Several ranges; those not cached are fetched in parallel, near ones merged."""
        self._fetch_spans(self._groups(ranges))
        return [self.read(s, n) for s, n in ranges]


_pool_lock = threading.Lock()
_pool_state: dict[str, Any] = {}


def _pool() -> ThreadPoolExecutor:
    """Threads for parallel range requests (made on first use, and again after a fork)."""
    with _pool_lock:
        if _pool_state.get("pid") != os.getpid():
            _pool_state.update(pid=os.getpid(), pool=ThreadPoolExecutor(PARALLEL, thread_name_prefix="vsiotsu"))
        return _pool_state["pool"]


_objects: dict[str, RemoteObject] = {}
_objects_lock = threading.Lock()
_opening: dict[str, threading.Lock] = {}  # url -> held while its object is made (one header GET)


def remote_object(url: str) -> RemoteObject:
    """The object of `url` at its current identity (made on first use, by one thread: see `RemoteObject`)."""
    obj = _current(url)
    if obj is not None:
        return obj
    with _objects_lock:
        opening = _opening.setdefault(url, threading.Lock())
    try:
        with opening:
            obj = _current(url)  # made by the thread that held the lock
            if obj is None:
                obj = RemoteObject(url)
                with _objects_lock:
                    if len(_objects) >= 4096:
                        _objects.clear()
                    _objects[url] = obj
    finally:
        with _objects_lock:
            if _opening.get(url) is opening and not opening.locked():
                del _opening[url]
    return obj


def _current(url: str) -> RemoteObject | None:
    """The object of `url` if this process has opened it at its current identity (no request)."""
    with _objects_lock:
        obj = _objects.get(url)
    if obj is not None and obj.key == (url, remote_identity.identity(url)):
        return obj
    return None


def clear() -> None:
    """Forget every fetched range and object (tests; a changed object needs no call: keys hold its identity)."""
    _cache.clear()
    with _objects_lock:
        _objects.clear()

"""Open rasterio datasets kept per process and lent to one reader at a time.

Opening a COG per request costs a file open, a header parse and, worse, GDAL's block cache
for that handle: every request decompresses its blocks again. `DatasetCache` keeps open
handles (the full-resolution dataset and the overview datasets a reader asked for) between
requests. GDAL handles must not be used by two threads at once, so a handle is *leased*:
a reader takes it out of the cache, uses it alone, and gives it back when it closes; a
request that finds no idle handle opens a new one (so there are at most as many handles
per source as concurrent requests, and at most `maxsize` idle ones).

A local file's handles are keyed by its identity (device, inode, size, mtime, ctime): when
the file changes, the next lease opens it afresh and the old handles are closed. Remote
sources have no cheap identity; their idle handles are closed after `ttl` seconds, as are
idle local ones. The cache is per process (each server worker has its own) and forgets,
without closing, handles inherited through `fork`.

May import: `core`, `security`, `io`, `errors`, `settings`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import rasterio
from rasterio.io import DatasetReader

from titiler_otsu.errors import reset_gdal_errors
from titiler_otsu.io.remote_vsi import gdal_path
from titiler_otsu.security import remote_identity

#: Identity of a source: (path, (dev, ino, size, mtime_ns, ctime_ns)), (url, (etag, last-modified,
#: length)) or (path, None).
SourceKey = tuple[str, tuple[int, ...] | tuple[str, ...] | None]


def source_key(path: str) -> SourceKey:
    """The identity of a source: a local file's stat fields, a URL's last probed validators, else the name."""
    if "://" in path:
        return (path, remote_identity.identity(path))
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return (path, None)
    return (path, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))


@dataclass(eq=False)
class OpenDataset:
    """The open handles of one source: the dataset and the overviews asked for so far."""

    key: SourceKey
    dataset: DatasetReader
    overviews: dict[int, DatasetReader] = field(default_factory=dict)
    released_at: float = 0.0

    def overview(self, level: int) -> DatasetReader:
        """The dataset of overview `level` (0 = first overview), opened on first use."""
        if level not in self.overviews:
            self.overviews[level] = rasterio.open(gdal_path(self.key[0]), overview_level=level)
        return self.overviews[level]

    def close(self) -> None:
        """Close every handle."""
        for ds in [*self.overviews.values(), self.dataset]:
            ds.close()
        self.overviews.clear()


class DatasetCache:
    """Bounded, thread-safe cache of open datasets, lent out one reader at a time.

    Attributes:
        maxsize: most idle handle sets kept (0: open and close per lease, no caching).
        ttl: seconds an idle handle set is kept.
        opens: handle sets opened so far; `reuses`: leases served from the cache;
            `closes`: handle sets closed (evicted, expired or stale).

    """

    def __init__(self, maxsize: int = 32, ttl: float = 300.0) -> None:
        """Create an empty cache."""
        self.maxsize = maxsize
        self.ttl = ttl
        self.opens = 0
        self.reuses = 0
        self.closes = 0
        self._idle: list[OpenDataset] = []  # least recently released first
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _forget_if_forked(self) -> None:
        """After a fork, the parent's handles are not ours to use or close: drop them."""
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            self._idle = []

    def _take(self, key: SourceKey) -> tuple[OpenDataset | None, list[OpenDataset]]:
        """Under the lock: an idle handle set for `key`, and the idle ones to close."""
        now = time.monotonic()
        keep: list[OpenDataset] = []
        drop: list[OpenDataset] = []
        for entry in self._idle:
            stale = entry.key[0] == key[0] and entry.key != key
            if stale or now - entry.released_at > self.ttl:
                drop.append(entry)
            else:
                keep.append(entry)
        found = None
        for i in range(len(keep) - 1, -1, -1):
            if keep[i].key == key:
                found = keep.pop(i)
                break
        self._idle = keep
        return found, drop

    def _close(self, entries: list[OpenDataset]) -> None:
        for entry in entries:
            entry.close()
        with self._lock:
            self.closes += len(entries)

    @contextmanager
    def lease(self, path: str) -> Iterator[OpenDataset]:
        """Borrow the open handles of `path` (opened now when none is idle).

        Raises:
            rasterio.errors.RasterioIOError: the source cannot be opened.

        """
        key = source_key(path)
        with self._lock:
            self._forget_if_forked()
            entry, drop = self._take(key) if self.maxsize > 0 else (None, [])
            if entry is not None:
                self.reuses += 1
        self._close(drop)
        if entry is not None:
            reset_gdal_errors()  # as a fresh open would: no stale error from this thread's last request
        if entry is None:
            entry = OpenDataset(key, rasterio.open(gdal_path(path)))
            with self._lock:
                self.opens += 1
        try:
            yield entry
        finally:
            self._release(entry)

    def _release(self, entry: OpenDataset) -> None:
        """Give a handle set back: kept when still current and there is room, else closed."""
        drop: list[OpenDataset] = []
        current = source_key(entry.key[0]) == entry.key
        with self._lock:
            self._forget_if_forked()
            if self.maxsize > 0 and current:
                entry.released_at = time.monotonic()
                self._idle.append(entry)
                while len(self._idle) > self.maxsize:
                    drop.append(self._idle.pop(0))
            else:
                drop.append(entry)
        self._close(drop)

    def idle(self) -> int:
        """Number of idle handle sets."""
        with self._lock:
            return len(self._idle)

    def clear(self) -> None:
        """Close every idle handle set (leased ones are closed when given back)."""
        with self._lock:
            self._forget_if_forked()
            drop, self._idle = self._idle, []
        self._close(drop)


_cache: DatasetCache | None = None
_cache_lock = threading.Lock()


def dataset_cache() -> DatasetCache:
    """The process-wide dataset cache (created with defaults on first use)."""
    global _cache
    with _cache_lock:
        if _cache is None:
            _cache = DatasetCache()
        return _cache


def configure_dataset_cache(maxsize: int, ttl: float) -> DatasetCache:
    """Resize the process-wide cache (the server does this from its settings)."""
    cache = dataset_cache()
    with cache._lock:
        cache.maxsize, cache.ttl = maxsize, ttl
        cut = max(len(cache._idle) - maxsize, 0)
        drop, cache._idle = cache._idle[:cut], cache._idle[cut:]
    cache._close(drop)
    return cache


def apply_gdal_config(config: dict[str, str]) -> dict[str, str]:
    """Set GDAL configuration options for this process, unless already in the environment.

    GDAL falls back to environment variables for options not set otherwise, so options set
    here apply to every open and read (all threads), and an operator's own environment wins.

    Returns:
        dict: the options this call set.

    """
    applied = {k: str(v) for k, v in config.items() if k not in os.environ}
    os.environ.update(applied)
    return applied

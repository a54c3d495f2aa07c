"""Dataset histograms: the source's histogram read once from an overview, then cached.

`scope: "dataset"` thresholds come from here, so every tile of a source uses the same
thresholds. The histogram is read with the reader's `preview` (a decimated read that GDAL
serves from the best overview), bounded by `max_size` pixels on the longest side.

With `disk_dir`, histograms are also kept as small JSON files keyed by the same key (source
identity: a local file's mtime/size, a remote URL's ETag/Last-Modified; read options; bins;
`max_size`), so the worker processes of a server (and its restarts) read each source's
overview once between them, not once each. Files older than `ttl` are ignored.

May import: `core`, `security`, `io`, `errors`, `settings`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from cachetools import TTLCache
from rio_tiler.io.base import BaseReader

from titiler_otsu.core.histogram import Histogram, valid_histogram
from titiler_otsu.errors import MultiBandInputError
from titiler_otsu.io.masking import masked_pixels
from titiler_otsu.security import remote_identity
from titiler_otsu.settings import Settings, default_cache_dir


def _source_version(src_path: str) -> tuple[float, int] | tuple[str, ...] | None:
    """Modification time and size of a local file, the last probed validators of a URL."""
    if "://" in src_path:
        return remote_identity.identity(src_path)
    try:
        st = os.stat(src_path)
    except (OSError, ValueError):
        return None
    return (st.st_mtime, st.st_size)


class DatasetHistograms:
    """Cache of dataset histograms, keyed by source (and its version) and read options."""

    def __init__(self, maxsize: int, ttl: float, max_size: int, disk_dir: Path | None = None) -> None:
        """Create an empty cache.

        Args:
            maxsize: number of histograms kept.
            ttl: seconds a histogram is kept.
            max_size: longest side, in pixels, of the overview read.
            disk_dir: folder shared by worker processes (None: memory only).

        """
        self.max_size = max_size
        self.ttl = ttl
        self.disk_dir = disk_dir
        self._cache: TTLCache[str, Histogram] = TTLCache(maxsize=max(maxsize, 1), ttl=max(ttl, 1e-3))
        self._masked: TTLCache[str, int] = TTLCache(maxsize=max(maxsize, 1), ttl=max(ttl, 1e-3))
        self._lock = threading.Lock()
        self.reads = 0

    def _key(self, src_path: str, read_options: dict[str, Any], nbins: int) -> str:
        return json.dumps(
            [src_path, _source_version(src_path), read_options, nbins, self.max_size],
            sort_keys=True,
            default=str,
        )

    def cached(self, src_path: str, read_options: dict[str, Any], nbins: int) -> Histogram | None:
        """The cached histogram for these arguments of `get`, or None (never reads)."""
        with self._lock:
            return self._cache.get(self._key(src_path, read_options, nbins))

    def get(
        self,
        open_reader: Callable[[], BaseReader],
        src_path: str,
        read_options: dict[str, Any],
        nbins: int,
    ) -> Histogram:
        """Histogram of the (one-band) source, from the cache or read from an overview.

        Args:
            open_reader: opens the source (a context manager reader).
            src_path: the source identity (path or URL).
            read_options: band selection and dataset options passed to `preview`
                (`indexes`, `expression`, `assets`, `nodata`, `unscale`...).
            nbins: histogram bins for non-8-bit data.

        Returns:
            Histogram: of the valid pixels.

        """
        key = self._key(src_path, read_options, nbins)
        with self._lock:
            hist = self._cache.get(key)
        if hist is None:
            stored = self._load(key)
            if stored is not None:
                hist, masked = stored
                with self._lock:
                    self._cache[key] = hist
                    self._masked[key] = masked
        if hist is not None:
            return hist
        options = {k: v for k, v in read_options.items() if k != "reader"}  # reader options: in the key only
        with open_reader() as src:
            img = src.preview(max_size=self.max_size, **options)
        self.reads += 1
        if img.count != 1:
            raise MultiBandInputError(
                f"Segmentation needs one band but the source gives {img.count} "
                f"({', '.join(img.band_names)}). Pick a band with `bidx` (e.g. bidx=1) or "
                "build one with `expression`."
            )
        band = img.array[0]
        values = np.ma.getdata(band)
        valid = ~np.ma.getmaskarray(band)
        hist = valid_histogram(values, valid, nbins=nbins)
        masked = masked_pixels(img)
        with self._lock:
            self._cache[key] = hist
            self._masked[key] = masked
        self._store(key, hist, masked)
        return hist

    def masked_pixels(self, src_path: str, read_options: dict[str, Any], nbins: int) -> int:
        """Pixels the quality mask removed from the read behind a cached histogram (0: none or not cached)."""
        with self._lock:
            return self._masked.get(self._key(src_path, read_options, nbins), 0)

    # ------------------------------------------------------------------ shared between processes
    def _file(self, key: str) -> Path | None:
        if self.disk_dir is None:
            return None
        return self.disk_dir / f"{hashlib.sha256(key.encode()).hexdigest()}.json"

    def _load(self, key: str) -> tuple[Histogram, int] | None:
        path = self._file(key)
        try:
            if path is None or time.time() - path.stat().st_mtime > self.ttl:
                return None
            data = json.loads(path.read_text())
            if data.get("key") != key:
                return None
            edges = np.array([np.nan if e is None else e for e in data["edges"]], dtype=np.float64)
            hist = Histogram(np.array(data["counts"], dtype=np.int64), edges, bool(data["integer_bins"]))
            return hist, int(data.get("masked", 0))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing, expired, half-written elsewhere or corrupt: read the overview again

    def _store(self, key: str, hist: Histogram, masked: int) -> None:
        path = self._file(key)
        if path is None:
            return
        edges = [None if not np.isfinite(e) else float(e) for e in hist.edges]
        text = json.dumps(
            {
                "key": key,
                "counts": hist.counts.tolist(),
                "edges": edges,
                "integer_bins": hist.integer_bins,
                "masked": masked,
            }
        )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".hist-", suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only or full disk only costs other workers one overview read


def histogram_disk_dir(settings: Settings) -> Path | None:
    """Where the server's processes share dataset histograms (None when `HISTOGRAM_DISK_CACHE` is off)."""
    if not settings.histogram_disk_cache or settings.histogram_cache_size == 0:
        return None
    return (settings.cache_dir or default_cache_dir()) / "histograms"

"""Dataset histograms: the source's histogram read once from an overview, then cached.

`scope: "dataset"` thresholds come from here, so every tile of a source uses the same
thresholds. The histogram is read with the reader's `preview` (a decimated read that GDAL
serves from the best overview), bounded by `max_size` pixels on the longest side.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from cachetools import TTLCache
from rio_tiler.io.base import BaseReader

from titiler_otsu.errors import MultiBandInputError
from titiler_otsu.masking import masked_pixels
from titiler_otsu.thresholds import Histogram, valid_histogram


def _source_version(src_path: str) -> tuple[float, int] | None:
    """Modification time and size of a local file (None for remote sources)."""
    try:
        st = os.stat(src_path)
    except (OSError, ValueError):
        return None
    return (st.st_mtime, st.st_size)


class DatasetHistograms:
    """Cache of dataset histograms, keyed by source (and its version) and read options."""

    def __init__(self, maxsize: int, ttl: float, max_size: int) -> None:
        """Create an empty cache.

        Args:
            maxsize: number of histograms kept.
            ttl: seconds a histogram is kept.
            max_size: longest side, in pixels, of the overview read.

        """
        self.max_size = max_size
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
        with self._lock:
            self._cache[key] = hist
            self._masked[key] = masked_pixels(img)
        return hist

    def masked_pixels(self, src_path: str, read_options: dict[str, Any], nbins: int) -> int:
        """Pixels the quality mask removed from the read behind a cached histogram (0: none or not cached)."""
        with self._lock:
            return self._masked.get(self._key(src_path, read_options, nbins), 0)

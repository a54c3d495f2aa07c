"""The full-resolution histogram of an export's output grid, by map-reduce over its windows.

With `exact_histogram`, `scope: "dataset"` thresholds come from this histogram rather than the
overview one the tile server uses.

May import: `core`, `security`, `io`, `algorithms`, `export`, `errors`, `settings` (never `web`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from titiler_otsu.core.histogram import Histogram, valid_histogram
from titiler_otsu.export.grid import Window
from titiler_otsu.export.tasks import ExportJob, window_histogram, window_range
from titiler_otsu.export.windows import ProgressCallback, map_windows

__all__ = ["exact_histogram"]


def exact_histogram(
    client: Any, job: ExportJob, nbins: int, worker_timeout: float, progress: ProgressCallback | None = None
) -> Histogram:
    """Full-resolution histogram of the output grid's valid values, by map-reduce.

    Map 1: min/max per window; reduce: global range. Map 2: counts per window on the
    common bins of that range; reduce: sum. Equals `valid_histogram` of the whole image.
    """
    windows = list(job.grid.windows(2048))
    report = progress or (lambda phase, done, total: None)
    lo, hi = math.inf, -math.inf
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        report("histogram", done, 2 * len(windows))

    def take_range(r: tuple[float, float] | None) -> None:
        nonlocal lo, hi
        step()
        if r is not None:
            lo, hi = min(lo, r[0]), max(hi, r[1])

    map_windows(client, window_range, job, windows, take_range, worker_timeout=worker_timeout)
    if lo > hi:
        return valid_histogram(np.zeros(0, np.float32), nbins=nbins)
    # the bins of the whole image (edges depend on the dtype and the range only)
    first = job.source.read_window(job.grid, Window(0, 0, 1, 1)).array[0]
    template = valid_histogram(np.zeros(0, first.dtype), nbins=nbins, value_range=(lo, hi))
    total = np.zeros_like(template.counts)

    def add(counts: np.ndarray) -> None:
        nonlocal total
        step()
        total = total + counts

    map_windows(client, window_histogram, job, windows, add, (lo, hi), nbins, worker_timeout=worker_timeout)
    return Histogram(total, template.edges, template.integer_bins)

"""glibc heap tuning for processes that allocate and free window-sized arrays in a loop.

An export worker allocates a dozen 4-17 MB arrays per window and frees them at the end of the
task. With glibc's defaults, blocks that large are `mmap`ed and handed back to the kernel when
freed (or the heap top is trimmed), so every window faults its pages in again and the kernel
zeroes them: about a third of the worker's CPU time on the export benchmark. Keeping large
blocks in the heap makes the next window reuse the same pages (measured: worker CPU per
100 Mpix 2.9 s → 2.1 s).

May import: `core`, `security`, `io`, `algorithms`, `export`, `errors`, `settings` (never `web`).
"""

from __future__ import annotations

import ctypes
import ctypes.util

#: `mallopt` parameters (glibc `malloc.h`).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

#: Blocks below this size come from the heap: the largest value glibc accepts on 64-bit
#: systems (32 MiB), above one 2048-px float32 window with its halo (16.1 MiB).
MMAP_THRESHOLD_BYTES = 32 * 2**20

#: Free memory at the top of the heap is returned to the kernel only beyond this size, so a
#: worker keeps about one window's working set between tasks (its peak RSS does not change).
TRIM_THRESHOLD_BYTES = 512 * 2**20


def keep_large_blocks_in_heap() -> bool:
    """Make glibc keep freed window-sized blocks for reuse in this process.

    Returns:
        bool: True when the allocator was tuned; False on a C library without `mallopt`
        (e.g. macOS) or when `mallopt` refuses.

    Notes:
        Dask's nanny starts workers with `MALLOC_TRIM_THRESHOLD_=65536`
        (`distributed.nanny.pre-spawn-environ`, against fragmentation in long-lived workers
        holding many small results): the opposite of what an export task needs. This call,
        made in the worker once it runs, takes precedence.

    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )

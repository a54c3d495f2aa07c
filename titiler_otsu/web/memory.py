"""Server memory at rest: few glibc arenas, and freed heap handed back to the kernel when idle.

Measured under a varied load (bench/bench_hostile_memory.py): the Python heap stays small
(~7 MB traced after 1,000 requests) and GDAL's block cache is bounded by bytes
(`GDAL_CACHEMAX`). What held the RSS was native memory already freed: tiles, halos,
histograms and GDAL buffers are allocated by up to `WORKER_THREADS` threads, glibc gives
each thread its own arena (up to 8 per core), and freed blocks stay in those arenas
(`malloc_trim` after a run returned 144 of 680 MB). So the server

* caps the number of arenas (`MALLOC_ARENA_MAX`, setting `MALLOC_ARENA_MAX`), and
* calls `malloc_trim(0)` once no request has been in flight for `TRIM_IDLE_SECONDS`
  (in a thread, off the event loop; a trim of a 600 MB heap takes a few ms).

On C libraries without these calls (musl, macOS) both are no-ops.

May import: `core`, `security`, `io`, `algorithms`, `web`, `errors`, `settings` (never `export`).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

#: `mallopt` parameter (glibc `malloc.h`).
M_ARENA_MAX = -8


@functools.cache
def _libc() -> Any:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"))
    except OSError:
        return None


def limit_arenas(arena_max: int) -> bool:
    """Cap glibc's malloc arenas for this process (0: leave glibc's default).

    Returns:
        bool: whether the cap was set.

    """
    libc = _libc()
    if arena_max <= 0 or libc is None or not hasattr(libc, "mallopt"):
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return bool(libc.mallopt(M_ARENA_MAX, arena_max))


def trim_heap() -> bool:
    """Return the free memory of every arena to the kernel (`malloc_trim(0)`).

    Returns:
        bool: whether memory was released (False also without glibc).

    """
    libc = _libc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return False
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.malloc_trim.restype = ctypes.c_int
    return bool(libc.malloc_trim(0))


class IdleTrimMiddleware:
    """ASGI middleware: once no request has been in flight for `delay` seconds, trim the heap.

    Attributes:
        trims: heap trims started so far.

    """

    def __init__(self, app: ASGIApp, delay: float) -> None:
        """Wrap `app`; trim `delay` seconds after the server became idle (0: never)."""
        self.app = app
        self.delay = delay
        self.trims = 0
        self._in_flight = 0
        self._timer: asyncio.TimerHandle | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request; when it was the last one in flight, arm the idle timer."""
        if scope["type"] != "http" or self.delay <= 0:
            await self.app(scope, receive, send)
            return
        self._in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0 and self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(self.delay, self._when_idle)

    def _when_idle(self) -> None:
        """Timer callback on the event loop: trim (in a thread) if still idle, else wait for the next lull."""
        self._timer = None
        if self._in_flight == 0:
            self.trims += 1
            asyncio.get_running_loop().run_in_executor(None, trim_heap)

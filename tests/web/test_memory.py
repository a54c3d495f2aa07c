"""Memory at rest: glibc arenas capped, freed heap returned to the kernel once the server is idle."""

from __future__ import annotations

import asyncio
import platform

import psutil
import pytest

from titiler_otsu.web.memory import IdleTrimMiddleware, limit_arenas, trim_heap

GLIBC = platform.libc_ver()[0] == "glibc"


async def _ok_app(scope, receive, send) -> None:
    await asyncio.sleep(0.01)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _request(app: IdleTrimMiddleware) -> None:
    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    async def send(message: dict) -> None:
        pass

    await app({"type": "http", "method": "GET", "path": "/"}, receive, send)


def test_the_heap_is_trimmed_once_after_the_server_becomes_idle() -> None:
    async def scenario() -> tuple[int, int, int]:
        app = IdleTrimMiddleware(_ok_app, delay=0.2)
        await asyncio.gather(*(_request(app) for _ in range(5)))
        busy = app.trims  # the timer has not fired yet
        await asyncio.sleep(0.1)
        await _request(app)  # a request before the delay: still one pending timer
        await asyncio.sleep(0.4)
        after_idle = app.trims
        await asyncio.sleep(0.4)
        return busy, after_idle, app.trims

    busy, after_idle, later = asyncio.run(scenario())
    assert busy == 0
    assert after_idle == 1
    assert later == 1  # no request since: nothing more to trim


def test_a_zero_delay_never_trims() -> None:
    async def scenario() -> int:
        app = IdleTrimMiddleware(_ok_app, delay=0)
        await _request(app)
        await asyncio.sleep(0.1)
        return app.trims

    assert asyncio.run(scenario()) == 0


@pytest.mark.skipif(not GLIBC, reason="glibc allocator calls")
def test_trim_returns_freed_heap_to_the_kernel() -> None:
    assert limit_arenas(2)
    assert not limit_arenas(0)
    process = psutil.Process()
    blocks = [bytearray(b"x" * 64 * 1024) for _ in range(4000)]  # 250 MB in the heap (below the mmap threshold)
    pinned = blocks[::50]  # live blocks between the freed ones: glibc cannot shrink the heap top by itself
    held = process.memory_info().rss
    del blocks
    untrimmed = process.memory_info().rss
    trim_heap()
    trimmed = process.memory_info().rss
    assert untrimmed > held - 50 * 2**20  # free() alone kept the pages
    assert trimmed < untrimmed - 150 * 2**20
    assert len(pinned) == 80

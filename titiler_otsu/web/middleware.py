"""ASGI middleware adding the `X-Otsu-Thresholds` header to segmented responses.

May import: `core`, `security`, `io`, `algorithms`, `web`, `errors`, `settings` (never `export`).
"""

from __future__ import annotations

import math
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

THRESHOLDS_HEADER = "X-Otsu-Thresholds"


def format_thresholds(thresholds: list[float]) -> str:
    """Comma-separated thresholds (`nan` when there was no valid pixel)."""
    return ",".join("nan" if not math.isfinite(t) else f"{t:.10g}" for t in thresholds)


class ThresholdsHeaderMiddleware:
    """Copy the thresholds the request's algorithm used into a response header.

    The algorithm instance is stored in the request state by the factory's algorithm
    dependency; by the time the response starts, the endpoint has run it.
    """

    def __init__(self, app: ASGIApp, state_key: str) -> None:
        """Wrap `app`; `state_key` names the request-state attribute holding the algorithm."""
        self.app = app
        self.state_key = state_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass through; on `http.response.start`, add the header if thresholds exist."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                algorithm = scope.get("state", {}).get(self.state_key)
                thresholds = getattr(algorithm, "last_thresholds", None)
                if thresholds is not None:
                    headers = list(message.get("headers", []))
                    headers.append((THRESHOLDS_HEADER.lower().encode(), format_thresholds(thresholds).encode()))
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_header)


_SCALE_PATH = re.compile(r"^(?P<tile>.*/tiles/[^/]+/\d+/\d+/\d+)@(?P<scale>[1-4])x(?P<ext>\.\w+)?$")


class TileScaleMiddleware:
    """Accept TiTiler 0.x style `.../{z}/{x}/{y}@{scale}x[.{format}]` tile paths.

    `@2x` means `tilesize = 2 * 256`; the path is rewritten before routing (an explicit
    `tilesize` query parameter wins).
    """

    def __init__(self, app: ASGIApp, base_tilesize: int = 256) -> None:
        """Wrap `app`."""
        self.app = app
        self.base_tilesize = base_tilesize

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Rewrite `@{scale}x` tile paths, pass everything else through."""
        if scope["type"] == "http" and "@" in scope["path"]:
            match = _SCALE_PATH.match(scope["path"])
            if match:
                path = match["tile"] + (match["ext"] or "")
                query = scope.get("query_string", b"").decode("latin-1")
                if not re.search(r"(^|&)tilesize=", query):
                    size = f"tilesize={int(match['scale']) * self.base_tilesize}"
                    query = f"{query}&{size}" if query else size
                scope = {**scope, "path": path, "raw_path": path.encode(), "query_string": query.encode("latin-1")}
        await self.app(scope, receive, send)

"""ASGI middleware adding the `X-Otsu-Thresholds` header to segmented responses."""

from __future__ import annotations

import math

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

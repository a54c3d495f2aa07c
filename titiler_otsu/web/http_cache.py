"""HTTP caching of tiles and TileJSON: `Cache-Control`, `ETag` and `304 Not Modified`.

A tile is a pure function of its source file and its URL, so a browser or a CDN may keep
it. `HTTPCacheMiddleware` adds `Cache-Control` to successful tile and TileJSON responses
(values from settings; errors are never marked cacheable) and, when the source identity is
known, a strong `ETag` computed *before* the endpoint runs, from:

* the source: a local file's size and modification time (so replacing the file changes
  every tag), for families whose `url` names the whole source (`/cog` by default);
* the request: path and full query (and, for TileJSON, whose links are absolute, the scheme,
  host and root path);
* the server: the versions of this package, rio-tiler, TiTiler and GDAL, and the settings.

A request whose `If-None-Match` holds the current tag gets a bodiless `304` without reading
anything. Tags do not depend on the process, so every worker and replica agrees on them.
Remote sources and STAC families (whose assets can change without their `url`) get
`Cache-Control` but no `ETag`.

May import: `core`, `security`, `io`, `algorithms`, `web`, `errors`, `settings` (never `export`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl

import rasterio
import rio_tiler
import titiler.core
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from titiler_otsu.errors import OtsuError
from titiler_otsu.security.sources import SourcePolicy
from titiler_otsu.settings import Settings
from titiler_otsu.version import __version__

#: `.../tiles/{tileMatrixSetId}/{z}/{x}/{y}[.{format}]`
TILE_PATH = re.compile(r"/tiles/[^/]+/\d+/\d+/\d+(\.\w+)?$")
#: Query parameters naming files a response is read from (source, quality mask, change's before date).
SOURCE_PARAMS = ("url", "mask_url", "before_url", "before_mask_url")
#: `.../{tileMatrixSetId}/tilejson.json`
TILEJSON_PATH = re.compile(r"/[^/]+/tilejson\.json$")


@dataclass(frozen=True)
class CacheRule:
    """Paths matching `pattern` get `cache_control` (None: none); `absolute_links`: the body names the host."""

    pattern: re.Pattern[str]
    cache_control: str | None
    absolute_links: bool = False


def file_identity(path: str) -> tuple[int, int] | None:
    """Size and modification time (ns) of a local file; None when it is not one."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_size, st.st_mtime_ns)


def if_none_match(header: str, etag: str) -> bool:
    """Whether an `If-None-Match` header matches `etag` (weak comparison, RFC 9110 13.1.2)."""
    if header.strip() == "*":
        return True
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return etag.removeprefix("W/") in tags


class HTTPCacheMiddleware:
    """Add `Cache-Control`/`ETag` to tile and TileJSON responses; answer `304` when unchanged."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        rules: Sequence[CacheRule],
        policy: SourcePolicy | None,
        salt: str,
        etag_prefixes: Sequence[str] = ("/cog/",),
    ) -> None:
        """Wrap `app`.

        Args:
            app: the ASGI app.
            rules: which paths get which `Cache-Control`.
            policy: source allow-list (no tag for sources it refuses); None: no `ETag` at all.
            salt: what else the responses depend on (versions, settings).
            etag_prefixes: path prefixes whose `url=` names the whole source.

        """
        self.app = app
        self.rules = tuple(rules)
        self.policy = policy
        self.salt = salt
        self.etag_prefixes = tuple(etag_prefixes)

    def _rule(self, path: str) -> CacheRule | None:
        return next((r for r in self.rules if r.pattern.search(path)), None)

    def etag(self, scope: Scope, rule: CacheRule) -> str | None:
        """The request's tag, or None when its source has no known identity."""
        path: str = scope["path"]
        if self.policy is None or not path.startswith(self.etag_prefixes):
            return None
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        if sum(1 for k, _ in query if k == "url") != 1:
            return None
        urls = [v for k, v in query if k in SOURCE_PARAMS]  # every file the response is read from
        if any("://" in u and not u.startswith("file://") for u in urls):
            return None  # no cheap identity for remote sources (and no network on the event loop)
        try:
            identities = [file_identity(self.policy.resolve(u)) for u in urls]
        except OtsuError:
            return None  # the endpoint answers with the error, uncached
        if any(i is None for i in identities):
            return None
        identity = identities if len(identities) > 1 else identities[0]
        where: list[str] = []
        if rule.absolute_links:
            host = Headers(scope=scope).get("host", "")
            where = [scope.get("scheme", "http"), host, scope.get("root_path", "")]
        key = json.dumps([self.salt, where, path, sorted(query), identity])
        return '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer `304` for a current `If-None-Match`, else pass through adding the headers."""
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        rule = self._rule(scope["path"])
        if rule is None:
            await self.app(scope, receive, send)
            return
        etag = self.etag(scope, rule)
        if etag is not None:
            condition = Headers(scope=scope).get("if-none-match")
            if condition is not None and if_none_match(condition, etag):
                headers = [(b"etag", etag.encode())]
                if rule.cache_control:
                    headers.append((b"cache-control", rule.cache_control.encode()))
                await send({"type": "http.response.start", "status": 304, "headers": headers})
                await send({"type": "http.response.body", "body": b""})
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                headers = MutableHeaders(scope=message)
                if rule.cache_control and "cache-control" not in headers:
                    headers["Cache-Control"] = rule.cache_control
                if etag is not None and "etag" not in headers:
                    headers["ETag"] = etag
            await send(message)

        await self.app(scope, receive, send_with_headers)


def cache_rules(settings: Settings) -> list[CacheRule]:
    """Tile and TileJSON rules from settings (an empty value means no `Cache-Control`)."""
    return [
        CacheRule(TILE_PATH, settings.cache_control_tiles or None),
        CacheRule(TILEJSON_PATH, settings.cache_control_tilejson or None, absolute_links=True),
    ]


def server_salt(settings: Settings) -> str:
    """What responses depend on besides source and URL: library versions and settings."""
    versions = [__version__, rio_tiler.__version__, titiler.core.__version__, rasterio.__gdal_version__]
    return json.dumps([versions, settings.model_dump(mode="json")], sort_keys=True)

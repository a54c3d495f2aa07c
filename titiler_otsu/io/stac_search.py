"""STAC API searches (pystac-client) with caches, request counting and error mapping.

`StacApiSearcher` holds one pystac-client `Client` per API, caches collections and item
searches (TTL + size), lets concurrent requests for the same search wait for one round trip,
counts the HTTP requests it sends, and turns API failures into our errors: unreachable or
5xx -> 502, too slow -> 504, 404 -> 404, 400 -> 400 with the API's message.

May import: `core`, `security`, `io`, `errors`, `settings`.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

import pystac
import requests
from cachetools import TTLCache
from pystac_client import Client
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from urllib3 import Retry
from urllib3.exceptions import MaxRetryError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from titiler_otsu.errors import (
    BadRequestError,
    SourceNotFoundError,
    UpstreamError,
    UpstreamTimeoutError,
)

T = TypeVar("T")

BBox = tuple[float, float, float, float]

#: Sort used when the request gives none: newest first (then by id, always).
DEFAULT_SORTBY = "-properties.datetime"


@dataclass(frozen=True)
class SearchQuery:
    """What is searched: one collection, a bbox, and the request's filters."""

    api: str
    collection: str
    bbox: BBox
    datetime: str | None = None
    filter: str | None = None
    sortby: str | None = None


@dataclass(frozen=True)
class SearchResult:
    """Items of a search, sorted, and whether the API had more than were fetched."""

    items: tuple[pystac.Item, ...]
    truncated: bool


def _sort_keys(sortby: str | None) -> list[tuple[str, bool]]:
    """`-properties.datetime,+id` -> [("datetime", True), ("id", False)]."""
    keys = []
    for part in (sortby or DEFAULT_SORTBY).split(","):
        part = part.strip()
        if not part:
            continue
        desc = part.startswith("-")
        name = part.lstrip("+-").removeprefix("properties.")
        keys.append((name, desc))
    return keys


def _item_value(item: pystac.Item, name: str) -> Any:
    if name == "id":
        return item.id
    if name == "collection":
        return item.collection_id
    return item.properties.get(name)


def sort_items(items: list[pystac.Item], sortby: str | None) -> list[pystac.Item]:
    """Sort items by `sortby` (default newest first), ties by id: the mosaic order.

    Done locally, so the order of two items never depends on which search (tile) found them,
    even when the API ignores `sortby` or breaks ties arbitrarily.
    """
    ordered = sorted(items, key=lambda it: it.id)
    for name, desc in reversed(_sort_keys(sortby)):
        present = [it for it in ordered if _item_value(it, name) is not None]
        absent = [it for it in ordered if _item_value(it, name) is None]
        present.sort(key=lambda it: _item_value(it, name), reverse=desc)
        ordered = present + absent
    return ordered


def _filter_args(cql2: str | None) -> dict[str, Any]:
    """pystac-client filter arguments for a CQL2 filter given as JSON or text."""
    if not cql2:
        return {}
    text = cql2.strip()
    if text.startswith("{"):
        try:
            return {"filter": json.loads(text), "filter_lang": "cql2-json"}
        except json.JSONDecodeError as e:
            raise BadRequestError(f"filter looks like CQL2-JSON but is not valid JSON ({e.msg}).") from e
    return {"filter": text, "filter_lang": "cql2-text"}


#: Retries of one request: connection errors and 502/503/504 once or twice; never a read
#: timeout (a silent API costs one `timeout`, not six).
RETRY = Retry(
    total=2, connect=1, read=0, status=2, backoff_factor=0.1, status_forcelist=(502, 503, 504), allowed_methods=None
)


def _is_timeout(err: BaseException | None) -> bool:
    """Whether a failure (or what caused it) is a timeout, through requests/urllib3 wrapping."""
    seen = 0
    while err is not None and seen < 8:
        if isinstance(err, NewConnectionError):  # urllib3 files "refused" under timeouts
            return False
        if isinstance(err, (requests.exceptions.Timeout, Urllib3Timeout)):
            return True
        if isinstance(err, MaxRetryError) and err.reason is not None:
            return _is_timeout(err.reason)
        inner = err.args[0] if err.args and isinstance(err.args[0], BaseException) else None
        err = inner or err.__cause__ or err.__context__
        seen += 1
    return False


def _api_error(err: Exception, what: str) -> Exception:
    """Map a pystac-client/requests failure to our error classes."""
    if _is_timeout(err):
        return UpstreamTimeoutError(f"The STAC API did not answer in time ({what}).")
    status = getattr(err, "status_code", None)
    if status == 404:
        return SourceNotFoundError(f"Not found on the STAC API: {what}.")
    if status is not None and 400 <= status < 500:
        return BadRequestError(f"The STAC API refused {what} (HTTP {status}): {str(err)[:300]}")
    if status is not None:
        return UpstreamError(f"The STAC API failed on {what} (HTTP {status}).")
    return UpstreamError(f"Could not reach the STAC API ({what}): {str(err)[:200]}")


class StacApiSearcher:
    """pystac-client searches with TTL caches, single-flight misses and a request counter."""

    def __init__(self, timeout: float, cache_size: int, cache_ttl: float, max_items: int) -> None:
        """Create the searcher.

        Args:
            timeout: seconds per HTTP request (connect and read).
            cache_size: searches kept.
            cache_ttl: seconds a search (or collection, or client) is kept.
            max_items: most items fetched per search.

        """
        self.timeout = timeout
        self.max_items = max_items
        ttl = max(cache_ttl, 1e-3)
        size = max(cache_size, 1)
        self._clients: TTLCache[Hashable, Client] = TTLCache(maxsize=64, ttl=ttl)
        self._collections: TTLCache[Hashable, pystac.Collection] = TTLCache(maxsize=256, ttl=ttl)
        self._searches: TTLCache[Hashable, SearchResult] = TTLCache(maxsize=size, ttl=ttl)
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self.requests = 0
        self.searches = 0

    # ------------------------------------------------------------------ cache plumbing
    def _cached(self, cache: TTLCache, key: Hashable, compute: Callable[[], T]) -> T:
        """Value from `cache`, computed once however many threads miss it together."""
        with self._lock:
            if key in cache:
                return cache[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in cache:
                    return cache[key]
            try:
                value = compute()
            finally:
                with self._lock:
                    self._key_locks.pop(key, None)
            with self._lock:
                cache[key] = value
            return value

    def _count(self, request: requests.Request) -> None:
        with self._lock:
            self.requests += 1

    def clear(self) -> None:
        """Forget every cached client, collection and search."""
        with self._lock:
            self._clients.clear()
            self._collections.clear()
            self._searches.clear()

    # ------------------------------------------------------------------ API
    def client(self, api: str) -> Client:
        """The pystac-client `Client` of an API (landing page fetched once per TTL)."""

        def open_client() -> Client:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    io = StacApiIO(timeout=self.timeout, request_modifier=self._count, max_retries=RETRY)
                    return Client.open(api, stac_io=io, timeout=self.timeout, request_modifier=self._count)
            except (APIError, requests.RequestException) as e:
                raise _api_error(e, f"landing page of {api}") from e
            except (pystac.STACError, pystac.STACTypeError, ValueError, KeyError) as e:
                raise UpstreamError(f"{api} did not answer like a STAC API ({e.__class__.__name__}).") from e

        return self._cached(self._clients, api, open_client)

    def collection(self, api: str, collection_id: str) -> pystac.Collection:
        """A collection of the API (cached)."""

        def get() -> pystac.Collection:
            client = self.client(api)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    found = client.get_collection(collection_id)
            except (APIError, requests.RequestException) as e:
                raise _api_error(e, f"collection '{collection_id}'") from e
            except (pystac.STACError, pystac.STACTypeError, ValueError, KeyError) as e:
                raise UpstreamError(f"Collection '{collection_id}' is not valid STAC ({e.__class__.__name__}).") from e
            if found is None:
                raise SourceNotFoundError(f"The STAC API {api} has no collection '{collection_id}'.")
            return found

        return self._cached(self._collections, (api, collection_id), get)

    def search(self, query: SearchQuery) -> SearchResult:
        """Items of one collection in a bbox, sorted for mosaicking (cached)."""
        return self._cached(self._searches, query, lambda: self._search(query))

    def _search(self, query: SearchQuery) -> SearchResult:
        client = self.client(query.api)
        params: dict[str, Any] = {
            "collections": [query.collection],
            "bbox": list(query.bbox),
            "max_items": self.max_items + 1,
            "limit": min(self.max_items + 1, 250),
            **_filter_args(query.filter),
        }
        if query.datetime:
            params["datetime"] = query.datetime
        if query.sortby:
            params["sortby"] = query.sortby
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    search = client.search(**params)
                except (APIError, requests.RequestException, NotImplementedError):
                    raise
                except Exception as e:  # noqa: BLE001 - pystac-client raises a bare Exception for a bad datetime
                    raise BadRequestError(f"Invalid search parameters: {e}") from e
                items = list(search.items())
        except (APIError, requests.RequestException) as e:
            raise _api_error(e, f"search of '{query.collection}'") from e
        except NotImplementedError as e:
            raise UpstreamError(f"{query.api} does not offer STAC API item search.") from e
        except (ValueError, TypeError, pystac.STACError, pystac.STACTypeError) as e:
            raise BadRequestError(f"Invalid search parameters: {e}") from e
        with self._lock:
            self.searches += 1
        truncated = len(items) > self.max_items
        return SearchResult(tuple(sort_items(items[: self.max_items], query.sortby)), truncated)

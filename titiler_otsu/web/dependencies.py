"""FastAPI dependencies: source paths, algorithm parsing and the algorithm-driven halo.

May import: `core`, `security`, `io`, `algorithms`, `web`, `errors`, `settings` (never `export`).
"""

import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from titiler.core.algorithm import Algorithms
from titiler.core.algorithm.base import BaseAlgorithm
from titiler.core.dependencies import DefaultDependency

from titiler_otsu.errors import BadRequestError, format_validation_error
from titiler_otsu.security.sources import SourcePolicy
from titiler_otsu.security.urls import REMOTE_SCHEMES, url_scheme
from titiler_otsu.settings import Settings


def on_event_loop(dependency: Callable[..., Any]) -> Callable[..., Any]:
    """The same dependency, declared `async` so that FastAPI calls it on the event loop.

    FastAPI runs every sync dependency in the thread pool, a hand-over of ~0.25 ms each,
    and a tile request has ten of them. Pure parameter parsing (TiTiler's parameter
    classes, ours) never blocks, so it runs inline instead. Never wrap a dependency that
    does I/O (opening a dataset, fetching a STAC item, resolving a host name): one that
    declares `performs_io = True` is returned as it is.

    Args:
        dependency: a sync function or `DefaultDependency` class.

    Returns:
        An async function with the same parameters (and so the same OpenAPI schema).

    """
    if inspect.iscoroutinefunction(dependency) or getattr(dependency, "performs_io", False):
        return dependency

    async def dependency_on_event_loop(**kwargs: Any) -> Any:
        return dependency(**kwargs)

    dependency_on_event_loop.__signature__ = inspect.signature(dependency, eval_str=True)  # type: ignore[attr-defined]
    dependency_on_event_loop.__name__ = getattr(dependency, "__name__", "dependency")
    dependency_on_event_loop.__qualname__ = getattr(dependency, "__qualname__", "dependency")
    dependency_on_event_loop.__doc__ = dependency.__doc__
    return dependency_on_event_loop


def path_dependency(policy: SourcePolicy) -> Callable[..., Awaitable[str]]:
    """`url=` query parameter, checked against the source allow-list."""

    async def source_path(
        url: Annotated[str, Query(description="Path or URL of a COG/GeoTIFF.")],
    ) -> str:
        # local paths: string checks and a realpath, inline; URLs resolve host names and may
        # probe the server (network): in the thread pool
        if url_scheme(url.strip()) in REMOTE_SCHEMES:
            return await run_in_threadpool(policy.resolve, url)
        return policy.resolve(url)

    return source_path


def algorithm_dependency(registry: Algorithms, settings: Settings) -> Callable[..., Awaitable[BaseAlgorithm | None]]:
    """Parse `algorithm` and `algorithm_params` into an algorithm instance (400 on errors)."""
    names = tuple(registry.list())

    async def algorithm(
        algorithm: Annotated[
            Literal[names] | None,  # type: ignore[valid-type]
            Query(description="Algorithm name (see /algorithms)."),
        ] = None,
        algorithm_params: Annotated[
            str | None,
            Query(description='Algorithm parameters as JSON, e.g. {"scope": "tile"}.'),
        ] = None,
    ) -> BaseAlgorithm | None:
        params: dict = {}
        if algorithm_params:
            try:
                loaded = json.loads(algorithm_params)
            except json.JSONDecodeError as e:
                raise BadRequestError(
                    f"algorithm_params is not valid JSON ({e.msg} at character {e.pos}); "
                    'give an object such as {"scope": "tile", "sigma": 1}.'
                ) from e
            if not isinstance(loaded, dict):
                raise BadRequestError('algorithm_params must be a JSON object, e.g. {"scope": "tile"}.')
            params = loaded
        if not algorithm:
            if params:
                raise BadRequestError("algorithm_params was given without `algorithm`.")
            return None
        try:
            instance = registry.get(algorithm)(**params)
        except ValidationError as e:
            raise BadRequestError(format_validation_error(algorithm, e)) from e
        classes = getattr(instance, "classes", None)
        if isinstance(classes, int) and classes > settings.max_classes:
            raise BadRequestError(f"'classes' must be at most {settings.max_classes} (setting MAX_CLASSES).")
        return instance

    return algorithm


@dataclass
class HaloParams(DefaultDependency):
    """Tile read options derived from the algorithm (users never pass `buffer`)."""

    buffer: int | None = None

"""Property-based fuzzing of every operation in /openapi.json (schemathesis, through ASGI).

For each operation, schemathesis generates requests that fit the schema (positive mode) and
requests that break it (negative mode). Many `url` values are swapped for real sources (a
COG for /cog, a STAC Item for /stac) so that generated parameters reach the readers and the
algorithms, not only the allow-list; /stacapi runs against a real STAC API (rustac). No
answer may be a 5xx, and every error must carry a `detail`. `TITILER_OTSU_FUZZ_EXAMPLES`
bounds the examples per operation and mode (default 8).
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode

from tests.conftest import DEM, NAIP
from tests.stac_fixtures import StacItems, stac_settings
from titiler_otsu import create_app
from titiler_otsu.settings import Settings

FUZZ_EXAMPLES = int(os.environ.get("TITILER_OTSU_FUZZ_EXAMPLES", "8"))
#: status -> count over the whole run (printed at the end, pytest -s).
STATS: collections.Counter[str] = collections.Counter()
REAL_SOURCES: dict[str, list[str]] = {"cog": [str(NAIP), str(DEM)], "stac": []}


def _operations() -> list[tuple[str, str, GenerationMode]]:
    """(method, path, mode) to fuzz: every operation, negative mode when it has inputs to break."""
    spec = create_app(Settings(allowed_sources=[])).openapi()
    runs = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            runs.append((method.upper(), path, GenerationMode.POSITIVE))
            if op.get("parameters") or op.get("requestBody"):
                runs.append((method.upper(), path, GenerationMode.NEGATIVE))
    return runs


OPERATIONS = _operations()


@pytest.fixture(scope="module")
def api_schema(stac_items: StacItems, rustac_api: str) -> Iterator[schemathesis.BaseSchema]:
    """The app's own OpenAPI document, its operations called in-process (ASGI)."""
    REAL_SOURCES["stac"] = [str(stac_items.item1)]
    app = create_app(stac_settings(stac_items, rustac_api))
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    print(f"\nfuzz: {sum(STATS.values())} requests in {len(OPERATIONS)} operation/mode runs, by status: {dict(STATS)}")


def _with_real_source(case: schemathesis.Case, choice: int) -> schemathesis.Case:
    """`case` with its `url` swapped for a real source of its family (choice 0: as generated)."""
    family = case.path.split("/")[1]
    sources = REAL_SOURCES.get(family) or []
    if choice and sources and isinstance(case.query, dict) and "url" in case.query:
        case.query = {**case.query, "url": sources[(choice - 1) % len(sources)]}
    return case


@pytest.mark.parametrize(("method", "path", "mode"), OPERATIONS, ids=[f"{m} {p} {g.value}" for m, p, g in OPERATIONS])
def test_no_generated_request_gets_a_server_error(
    api_schema: schemathesis.BaseSchema, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]
    strategy = st.tuples(operation.as_strategy(generation_mode=mode), st.integers(0, 2))

    @given(strategy)
    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def call(drawn: tuple[schemathesis.Case, int]) -> None:
        case = _with_real_source(*drawn)
        response = case.call()
        status = response.status_code
        STATS[str(status)] += 1
        where = f"{case.method} {case.formatted_path} query={case.query} body={str(case.body)[:200]}"
        assert status < 500, f"{where} -> {status} {response.text[:500]}"
        if status >= 400:
            assert response.json()["detail"], where

    call()

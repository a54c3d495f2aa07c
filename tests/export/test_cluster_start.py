"""The export's local cluster: forked from a preloaded fork server for the command line, spawned otherwise."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from typing import Any

from distributed import Client

from titiler_otsu.export.cluster import ClusterStarter, new_local_cluster


def _worker_facts() -> dict[str, Any]:
    return {
        "ppid": os.getppid(),
        "frozen": gc.get_freeze_count(),
        "tasks_imported": "titiler_otsu.export.tasks" in sys.modules,
        "omp_threads": os.environ.get("OMP_NUM_THREADS"),
    }


def test_command_line_workers_are_forked_from_a_server_with_the_code_imported_and_frozen() -> None:
    starter = ClusterStarter(2, 1)
    cluster = starter.take()
    try:
        with Client(cluster) as client:
            facts = list(client.run(_worker_facts).values())
        assert len(facts) == 2
        for f in facts:
            assert f["ppid"] != os.getpid()  # a child of the fork server, not of this process
            assert f["frozen"] > 0  # the preload's objects, frozen before the fork
            assert f["tasks_imported"]
            assert f["omp_threads"] == "1"  # Dask's pre-spawn environment reached the fork server
        assert len({f["ppid"] for f in facts}) == 1  # one server forks them all
    finally:
        cluster.close()


def test_default_local_cluster_spawns_its_workers() -> None:
    cluster = new_local_cluster(1, 1)
    try:
        with Client(cluster) as client:
            (facts,) = client.run(_worker_facts).values()
        assert facts["ppid"] == os.getpid()  # spawned by this process's nanny
        assert facts["tasks_imported"]  # preloaded by the worker itself
    finally:
        cluster.close()


def test_an_unused_starter_closes_its_cluster() -> None:
    starter = ClusterStarter(1, 1)
    starter.close()
    cluster = starter.take()  # the start had finished; close() closed it
    assert cluster.status.name == "closed"


_FRESH_PROCESS_SCRIPT = """
import json, os, sys
from titiler_otsu.export.cluster import ClusterStarter
assert "distributed" not in sys.modules and "numpy" not in sys.modules
starter = ClusterStarter(1, 1)
cluster = starter.take()
from distributed import Client
keys = ("OMP_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_", "PYTHONHASHSEED")
with Client(cluster) as client:
    (env,) = client.run(lambda: {k: os.environ.get(k) for k in keys}).values()
cluster.close()
print(json.dumps(env))
"""


def test_forked_workers_get_dasks_pre_spawn_environment_in_a_fresh_process() -> None:
    """As the command line runs it: `distributed` not imported yet when the fork server starts."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_", "PYTHONHASHSEED")
    }
    done = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS_SCRIPT], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    worker_env = json.loads(done.stdout.strip().splitlines()[-1])
    assert worker_env == {"OMP_NUM_THREADS": "1", "MALLOC_TRIM_THRESHOLD_": "65536", "PYTHONHASHSEED": "6640"}


def test_command_line_module_imports_nothing_heavy() -> None:
    """`titiler_otsu.cli` loads Typer only, so `export` starts its fork server at once."""
    probe = "import sys, titiler_otsu.cli; print(' '.join(m for m in HEAVY if m in sys.modules))"
    heavy = ("numpy", "rasterio", "distributed", "dask", "fastapi", "pydantic_settings", "titiler")
    done = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {heavy!r}\n{probe}"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_without_a_fork_server_the_workers_are_spawned(monkeypatch: Any) -> None:
    """Windows has no fork server (cannot be caused here: the platform's start methods are patched)."""
    import multiprocessing

    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    cluster = ClusterStarter(1, 1).take()
    try:
        with Client(cluster) as client:
            (facts,) = client.run(_worker_facts).values()
        assert facts["ppid"] == os.getpid()
    finally:
        cluster.close()

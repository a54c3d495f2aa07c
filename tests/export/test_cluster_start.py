"""The export's local cluster: forked from a preloaded fork server for the command line, spawned otherwise."""

from __future__ import annotations

import gc
import os
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

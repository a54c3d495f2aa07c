"""The command line's local cluster: started in the background, its workers seen before the driver imports."""

from __future__ import annotations

import multiprocessing
import time

from titiler_otsu.export.cluster import ClusterStarter


def test_wait_spawned_returns_once_the_worker_processes_exist() -> None:
    before = len(multiprocessing.active_children())
    starter = ClusterStarter(2, 1)
    cluster = None
    try:
        assert starter.wait_spawned(timeout=30.0)
        assert len(multiprocessing.active_children()) >= before + 2
        cluster = starter.take()  # the started cluster: both workers register
        assert len(cluster.scheduler_info["workers"]) == 2
    finally:
        if cluster is not None:
            cluster.close()
        else:
            starter.close()


def test_wait_spawned_returns_at_once_when_the_start_has_finished() -> None:
    starter = ClusterStarter(1, 1)
    cluster = starter.take()  # the start is over: nothing more to wait for
    try:
        t0 = time.monotonic()
        assert starter.wait_spawned(timeout=5.0) is False
        assert time.monotonic() - t0 < 1.0
    finally:
        cluster.close()

"""Export workers keep window-sized blocks in their heap (no page faults per window)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from titiler_otsu.export.heap import keep_large_blocks_in_heap

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")


def _window_fault_probe() -> Callable[[], int]:
    """A function (pickled by value) counting page faults while allocating export-window arrays."""

    def faults_per_windows() -> int:
        import resource

        import numpy as np

        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):  # five 2048-px windows with a 4-px halo: float32 data and result
            data = np.ones((2056, 2056), np.float32)
            result = data * 2
            del data, result
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    return faults_per_windows


_SCRIPT = """
import json, resource, sys
import numpy as np
from titiler_otsu.export.heap import keep_large_blocks_in_heap

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        data = np.ones((2056, 2056), np.float32); result = data * 2; del data, result
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults()
untuned = faults()
tuned_ok = keep_large_blocks_in_heap()
faults()
print(json.dumps({"untuned": untuned, "tuned": faults(), "ok": tuned_ok}))
"""


def test_tuned_process_reuses_freed_window_blocks():
    out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, check=True)
    figures = json.loads(out.stdout)
    assert figures["ok"] is True
    # glibc's defaults hand 16 MB blocks back to the kernel: every window faults them in again
    assert figures["untuned"] > 1000
    assert figures["tuned"] < figures["untuned"] / 20


def test_tuning_reports_success_on_glibc():
    assert keep_large_blocks_in_heap() is True


def _warm_faults(cluster: object) -> int:
    from distributed import Client

    probe = _window_fault_probe()
    with Client(cluster) as client:
        client.submit(probe, pure=False).result()  # the worker's first windows fault their pages in
        return min(client.submit(probe, pure=False).result() for _ in range(3))


def test_local_export_workers_keep_window_blocks():
    from distributed import LocalCluster

    from titiler_otsu.export.cluster import new_local_cluster

    with new_local_cluster(1, 1) as cluster:
        ours = _warm_faults(cluster)
    # the same worker without our preload: Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as plain:
        dask_default = _warm_faults(plain)
    assert dask_default > 1000
    assert ours < dask_default / 10, (ours, dask_default)


def test_a_closed_worker_stream_at_shutdown_prints_no_traceback():
    """The scheduler's INFO "Batched Comm Closed" (with traceback) is dropped; warnings pass."""
    import logging

    from titiler_otsu.export.cluster import ClosedCommNoise, quiet_closed_comms

    quiet_closed_comms()
    quiet_closed_comms()
    logger = logging.getLogger("distributed.batched")
    assert sum(isinstance(f, ClosedCommNoise) for f in logger.filters) == 1

    def record(level: int, msg: str) -> logging.LogRecord:
        return logging.LogRecord("distributed.batched", level, __file__, 1, msg, None, None)

    assert not logger.filter(record(logging.INFO, "Batched Comm Closed <TCP (closed) local=a remote=b>"))
    assert logger.filter(record(logging.WARNING, "Batched Comm Closed <TCP (closed) local=a remote=b>"))
    assert logger.filter(record(logging.INFO, "something else"))

"""The export's local Dask cluster, started in the background as early as possible.

Starting worker processes costs about a second (each imports Dask, rasterio and the
segmentation code). The command line starts them before it imports the export driver and
opens the source, so both happen at once on different cores instead of one after the other.
Only Dask is imported here: this module must stay cheap to import.

May import: `core`, `security`, `io`, `algorithms`, `export`, `errors`, `settings` (never `web`).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from typing import Any


class ClosedCommNoise(logging.Filter):
    """Drops `distributed.batched`'s INFO "Batched Comm Closed" record (with its traceback).

    The scheduler of our local cluster logs it, now and then, for a worker stream closed while
    the cluster shuts down after the export has finished: a traceback on the terminal after a
    successful export, which reads like a failure. Warnings and errors pass.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record but the INFO "Batched Comm Closed" one."""
        return not (record.levelno <= logging.INFO and record.getMessage().startswith("Batched Comm Closed"))


def quiet_closed_comms() -> None:
    """Install `ClosedCommNoise` on the `distributed.batched` logger (once)."""
    logger = logging.getLogger("distributed.batched")
    if not any(isinstance(f, ClosedCommNoise) for f in logger.filters):
        logger.addFilter(ClosedCommNoise())


def local_worker_count(workers: int | None) -> int:
    """Worker processes of the local cluster: `workers`, by default one per CPU."""
    return workers or os.cpu_count() or 1


def new_local_cluster(workers: int | None, threads_per_worker: int) -> Any:
    """A `distributed.LocalCluster` of worker processes with the segmentation code preloaded.

    Args:
        workers: worker processes (default: the CPU count).
        threads_per_worker: threads per worker process.

    Returns:
        distributed.LocalCluster: started; the caller closes it.

    """
    import dask
    from distributed import LocalCluster

    quiet_closed_comms()

    # no work stealing: the export gives each worker a band of rows (`export.striped`) so that
    # it reads each source block once; a stolen window re-reads its blocks in another process
    with dask.config.set({"distributed.scheduler.work-stealing": False}):
        return LocalCluster(
            n_workers=local_worker_count(workers),
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=":0",  # a free port: several exports may run at once
            silence_logs=logging.CRITICAL,
            preload=["titiler_otsu.export.tasks"],  # imported by each worker while it starts
        )


def close_fast(cluster: Any) -> None:
    """Close a local cluster whose work is over: worker processes terminated, then the cluster.

    Only once nothing on the workers is needed any more (the export's output is committed, or
    the export failed): a graceful close lets each worker process wind down its threads,
    caches and interpreter, ~1 s on 2 cores; terminated, the close takes ~0.1 s. Falls back
    to the graceful close where `distributed`'s process handles are not where expected. A
    terminated worker leaves its (small) scratch directory, which `distributed` purges when
    a later cluster starts.
    """
    for nanny in list(getattr(cluster, "workers", {}).values()):
        pid = getattr(getattr(getattr(nanny, "process", None), "process", None), "pid", None)
        if isinstance(pid, int) and pid > 0:
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass  # already gone
    cluster.close()


class ClusterStarter:
    """Starts `new_local_cluster` in a background thread; `take()` waits for it.

    Whoever takes the cluster closes it; `close()` closes it if nobody took it (e.g. the
    request turned out to be invalid), also when it is still starting.
    """

    def __init__(self, workers: int | None, threads_per_worker: int) -> None:
        """Start the cluster now, in the background."""
        self.workers = workers
        self.threads_per_worker = threads_per_worker
        self._cluster: Any = None
        self._error: BaseException | None = None
        self._taken = False
        self._thread = threading.Thread(target=self._start, name="export-cluster-start", daemon=True)
        self._thread.start()

    def _start(self) -> None:
        try:
            self._cluster = new_local_cluster(self.workers, self.threads_per_worker)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread by take()
            self._error = e

    def wait_spawned(self, timeout: float) -> bool:
        """Wait until the worker processes exist (or the start ended, or `timeout` s passed).

        The cluster starts in a thread of this process: until it has imported Dask and
        spawned the workers, it shares one interpreter lock with the caller. A caller that
        imports the export driver meanwhile (~1 s of imports) delays the spawn by ~0.3 s and
        so every worker's start; waiting here first lets both proceed at once, the workers
        in their own processes.

        Returns:
            bool: True when the workers were seen (False: timeout, or the start finished or failed).
        """
        want = local_worker_count(self.workers)
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            if len(multiprocessing.active_children()) >= want:
                return True
            time.sleep(0.005)
        return False

    def take(self) -> Any:
        """The started cluster (waits for it); raises what starting it raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        self._taken = True
        return self._cluster

    def close(self) -> None:
        """Close the cluster unless it was taken."""
        if self._taken:
            return
        self._thread.join()
        if self._cluster is not None:
            self._cluster.close()

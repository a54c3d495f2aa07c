"""The export's local Dask cluster, started in the background as early as possible.

Starting a spawned worker process costs ~2 s of CPU (it imports Dask, rasterio and the
segmentation code), and on 2 cores two workers and the driver all importing at once delay
each other. The command line instead starts a fork server that imports all that once, on
another core, while this process imports the export driver; its workers are forked from it
with nothing left to import. Only Dask is imported here: this module must stay cheap to import.

May import: `core`, `security`, `io`, `algorithms`, `export`, `errors`, `settings` (never `web`).
"""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import threading
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


#: What the fork server imports before it forks workers (`export.prefork` freezes the result).
FORKSERVER_PRELOAD = ["distributed", "titiler_otsu.export.tasks", "titiler_otsu.export.prefork"]


def pre_spawn_environ() -> dict[str, str]:
    """Dask's `distributed.nanny.pre-spawn-environ`, as its nanny applies it, `distributed` not imported.

    The setting (one BLAS thread, malloc trimming) is a default of `distributed`'s own
    configuration file, which Dask learns only when `distributed` is imported: ~0.8 s, NumPy
    included, too late for variables that NumPy and the C library read when they start. The
    file is read here instead. As in the nanny, the user's Dask configuration and variables
    already in the environment win, and a missing `PYTHONHASHSEED` gets a fixed value (every
    worker hashes alike).
    """
    import dask.config

    key = "distributed.nanny.pre-spawn-environ"
    if dask.config.get(key, None) is None:
        import yaml

        spec = importlib.util.find_spec("distributed")
        folders = list(spec.submodule_search_locations or []) if spec is not None else []
        if folders:
            with open(os.path.join(folders[0], "distributed.yaml"), encoding="utf-8") as f:
                dask.config.update_defaults(yaml.safe_load(f))
    config = dask.config.get(key, None) or {}
    environ = {k: os.environ.get(k, str(v)) for k, v in config.items() if v is not None}
    if environ.get("PYTHONHASHSEED", os.environ.get("PYTHONHASHSEED")) in (None, "0"):
        environ["PYTHONHASHSEED"] = "6640"
    return environ


def can_fork_workers() -> bool:
    """Whether this platform has multiprocessing's fork server (not on Windows)."""
    return "forkserver" in multiprocessing.get_all_start_methods()


def start_forkserver() -> bool:
    """Start this process's multiprocessing fork server, the workers' imports preloaded.

    The server is a fresh single-threaded interpreter (not a fork of this multi-threaded
    process); it imports `FORKSERVER_PRELOAD` in the background and forks each worker from
    there. A forked worker has the server's environment, as it was when the server started:
    `pre_spawn_environ()` is set first, as the nanny sets it before it spawns. Once per
    process; a later call does nothing. For one-shot processes (the command line): a
    long-lived caller that changes its environment between exports wants spawned workers.

    Returns:
        bool: False where there is no fork server (`can_fork_workers`): workers are spawned.
    """
    if not can_fork_workers():
        return False
    os.environ.update(pre_spawn_environ())
    multiprocessing.get_context("forkserver").set_forkserver_preload(FORKSERVER_PRELOAD)
    multiprocessing.forkserver.ensure_running()
    return True


def new_local_cluster(workers: int | None, threads_per_worker: int, forked: bool = False) -> Any:
    """A `distributed.LocalCluster` of worker processes with the segmentation code preloaded.

    Args:
        workers: worker processes (default: the CPU count).
        threads_per_worker: threads per worker process.
        forked: fork the workers from this process's fork server instead of spawning
            fresh interpreters; start it first with `start_forkserver` (which says whether
            the platform has one), or Dask starts one without our preload.

    Returns:
        distributed.LocalCluster: started; the caller closes it.

    """
    import dask
    from distributed import LocalCluster

    quiet_closed_comms()

    # no work stealing: the export gives each worker a band of rows (`export.striped`) so that
    # it reads each source block once; a stolen window re-reads its blocks in another process
    config = {
        "distributed.scheduler.work-stealing": False,
        "distributed.worker.multiprocessing-method": "forkserver" if forked else "spawn",
    }
    with dask.config.set(config):
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
    """Starts a forked `new_local_cluster` in a background thread; `take()` waits for it.

    The fork server is started at once, in the caller's thread (it then imports on its own
    core while the caller goes on). Whoever takes the cluster closes it; `close()` closes it
    if nobody took it (e.g. the request turned out to be invalid), also when it is still starting.
    """

    def __init__(self, workers: int | None, threads_per_worker: int) -> None:
        """Start the fork server and, in the background, the cluster."""
        self.workers = workers
        self.threads_per_worker = threads_per_worker
        self._cluster: Any = None
        self._error: BaseException | None = None
        self._taken = False
        # here, not in the thread: it sets os.environ, which must not change under the caller's imports
        self._forked = start_forkserver()
        self._thread = threading.Thread(target=self._start, name="export-cluster-start", daemon=True)
        self._thread.start()

    def _start(self) -> None:
        try:
            self._cluster = new_local_cluster(self.workers, self.threads_per_worker, forked=self._forked)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread by take()
            self._error = e

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

"""Work on the Dask cluster: the client, and a map over the output grid's windows.

`dask_client` connects to an existing scheduler or starts a local cluster; `map_windows` runs
a task per window with a bounded number in flight, in `striped` order (one band of rows per
worker), and a watchdog that aborts with `ExportError` when the workers are gone.

May import: `core`, `security`, `io`, `algorithms`, `export`, `errors`, `settings` (never `web`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from titiler_otsu.errors import OtsuError
from titiler_otsu.export.cluster import ClusterStarter, close_fast, new_local_cluster
from titiler_otsu.export.grid import Window
from titiler_otsu.export.tasks import ExportJob

__all__ = ["ExportError", "ProgressCallback", "dask_client", "map_windows", "striped"]

#: Called with (phase, windows done, windows total).
ProgressCallback = Callable[[str, int, int], None]

_POLL_SECONDS = 1.0


class ExportError(OtsuError):
    """The export could not complete (cluster lost, task failed); nothing was written at OUT."""


@contextmanager
def dask_client(
    scheduler: str | None,
    workers: int | None,
    threads_per_worker: int,
    worker_timeout: float,
    starter: ClusterStarter | None = None,
) -> Iterator[Any]:
    """A `distributed.Client`: on an existing scheduler, or on a new local cluster.

    `starter`: a local cluster already starting in the background (see `export.cluster`).
    """
    from distributed import Client

    if scheduler:
        try:
            client = Client(scheduler, timeout=min(worker_timeout, 30))
        except OSError as e:
            raise ExportError(
                f"Cannot reach the Dask scheduler at {scheduler} ({e}). Start one (`dask scheduler`, "
                "then `dask worker ADDRESS`) or leave out --scheduler to use a local cluster."
            ) from e
        try:
            try:
                client.wait_for_workers(1, timeout=worker_timeout)
            except TimeoutError as e:
                raise ExportError(
                    f"The Dask scheduler at {scheduler} has no workers (waited {worker_timeout:g} s): "
                    f"start some with `dask worker {scheduler}`."
                ) from e
            yield client
        finally:
            client.close()
        return
    cluster = starter.take() if starter is not None else new_local_cluster(workers, threads_per_worker)
    try:
        with Client(cluster) as client:
            yield client
    finally:
        close_fast(cluster)  # our own cluster, its work over (output committed or export failed)


def striped(windows: list[Window], n: int) -> list[tuple[int, Window]]:
    """(stripe, window) for `n` contiguous stripes of row-major `windows`, interleaved.

    Stripe k holds windows `k * len / n ... (k + 1) * len / n` (whole bands of rows for
    whole rows of windows), and the list takes one window of each stripe in turn, so that
    a bounded number of tasks in flight keeps every stripe's worker busy. Giving each worker
    one stripe means the source blocks (and the halo rows) shared by vertically adjacent
    windows are fetched by one worker, once: a remote source is read about once in all.
    """
    n = max(1, min(n, len(windows)))
    bounds = [len(windows) * k // n for k in range(n + 1)]
    stripes = [windows[bounds[k] : bounds[k + 1]] for k in range(n)]
    out: list[tuple[int, Window]] = []
    for i in range(max((len(s) for s in stripes), default=0)):
        out.extend((k, s[i]) for k, s in enumerate(stripes) if i < len(s))
    return out


def map_windows(
    client: Any,
    fn: Callable[..., Any],
    job: ExportJob,
    windows: Iterable[Window],
    on_result: Callable[[Any], None],
    *args: Any,
    worker_timeout: float,
) -> None:
    """Run `fn(job, window, *args)` on the cluster for every window, a bounded number in flight.

    Results are handed to `on_result` as tasks complete (in any order) and released.
    Dask reschedules the tasks of a worker that dies; if every worker is gone for
    `worker_timeout` seconds, or a task keeps killing its workers, `ExportError` is raised.
    """
    from distributed import wait
    from distributed.scheduler import KilledWorker

    workers = sorted(client.nthreads())
    todo = iter(striped(list(windows), len(workers)))
    pending: set[Any] = set()
    no_worker_since: float | None = None
    cap = 2
    cap_checked = 0.0

    def refill() -> None:
        nonlocal cap, cap_checked
        now = time.monotonic()
        if now - cap_checked > 2.0:
            cap = 2 * max(1, sum(client.nthreads().values())) + 2
            cap_checked = now
        while len(pending) < cap:
            item = next(todo, None)
            if item is None:
                return
            stripe, window = item
            # loose restriction: each worker reads one band of rows (its blocks, and the halo
            # rows it shares with the next window, stay in its caches), others may still take it
            where = {"workers": [workers[stripe]], "allow_other_workers": True} if len(workers) > 1 else {}
            pending.add(client.submit(fn, job, window, *args, pure=False, **where))

    try:
        refill()
        while pending:
            try:
                done, not_done = wait(pending, timeout=_POLL_SECONDS, return_when="FIRST_COMPLETED")
            except TimeoutError:
                if client.nthreads():
                    no_worker_since = None
                elif no_worker_since is None:
                    no_worker_since = time.monotonic()
                elif time.monotonic() - no_worker_since > worker_timeout:
                    raise ExportError(
                        f"No Dask worker left for {worker_timeout:g} s (workers died or were stopped); "
                        "the export was aborted. Restart the workers and run the export again."
                    ) from None
                continue
            no_worker_since = None
            pending = set(not_done)
            for future in done:
                try:
                    result = future.result(timeout=_POLL_SECONDS)
                except TimeoutError:
                    # finished, but its result died with its worker before we fetched it:
                    # the scheduler recomputes it; keep waiting (the watchdog above applies)
                    pending.add(future)
                    continue
                except KilledWorker as e:
                    raise ExportError(
                        "Dask gave up on a window: the workers running it died (KilledWorker; out of "
                        "memory?) and the export was aborted. Try a smaller --window-size or workers "
                        "with more memory."
                    ) from e
                future.release()
                on_result(result)
            refill()
    finally:
        if pending:
            client.cancel(list(pending))

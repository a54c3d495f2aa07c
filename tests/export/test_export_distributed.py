"""Export on a real distributed Dask cluster: `dask scheduler` + `dask worker` processes on loopback.

Every test here runs `titiler-otsu export` as a separate process, like a user would, and
the cluster as separate `dask` processes. Workers are started with `--no-nanny`, so a
killed worker stays dead (no nanny restarts it): the scheduler must reschedule its tasks.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rio_tiler.models import ImageData

from tests.conftest import NAIP
from titiler_otsu.algorithms import otsu_algorithms

BIN = Path(sys.executable).parent
NODATA = 255


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LoopbackCluster:
    """A scheduler address and its worker processes."""

    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen]


def _start_cluster(n_workers: int) -> LoopbackCluster:
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen(
        [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], **quiet
    )
    workers = [
        subprocess.Popen(
            [
                str(BIN / "dask"),
                "worker",
                address,
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
                "--name",
                f"worker-{i}",
                "--preload",
                # worker-1 by the pre-#16 name: old worker command lines keep working
                "titiler_otsu.export.tasks" if i == 0 else "titiler_otsu.export_tasks",
            ],
            **quiet,
        )  # fmt: skip
        for i in range(n_workers)
    ]
    cluster = LoopbackCluster(address, scheduler, workers)
    try:
        with Client(address, timeout=60) as client:
            client.wait_for_workers(n_workers, timeout=90)
    except Exception:
        _stop(cluster)
        raise
    return cluster


def _stop(cluster: LoopbackCluster) -> None:
    for proc in [*cluster.workers, cluster.scheduler]:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in [*cluster.workers, cluster.scheduler]:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def loopback_cluster() -> Iterator[LoopbackCluster]:
    """A fresh `dask scheduler` and two `dask worker --no-nanny` processes on 127.0.0.1."""
    cluster = _start_cluster(2)
    try:
        yield cluster
    finally:
        _stop(cluster)


def _export_cmd(source: Path, out: Path, *args: str) -> list[str]:
    return [str(BIN / "titiler-otsu"), "export", str(source), str(out), "--json", *args]


def _run(cmd: list[str], timeout: float = 300) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _read(path: Path) -> tuple[np.ndarray, dict]:
    with rasterio.open(path) as ds:
        return ds.read(1), {"transform": ds.transform, "crs": ds.crs, "overviews": ds.overviews(1), "tags": ds.tags()}


def _leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if "partial" in p.name]


def test_export_through_real_scheduler_and_workers_equals_the_local_run(loopback_cluster, tmp_path) -> None:
    params = ["--bidx", "4", "--params", '{"invert": true, "sigma": 1, "opening": 1}', "--window-size", "128"]
    remote = _run(_export_cmd(NAIP, tmp_path / "remote.tif", *params, "--scheduler", loopback_cluster.address))
    local = _run(_export_cmd(NAIP, tmp_path / "local.tif", *params, "--workers", "2"))

    assert remote["scheduler"] == loopback_cluster.address and remote["workers"] == 2
    assert local["scheduler"] == "local" and local["workers"] == 2
    from distributed import Client

    with Client(loopback_cluster.address) as client:  # both remote workers ran tasks
        transitions = client.run(lambda dask_worker: dask_worker.state.transition_counter)
    assert len(transitions) == 2 and min(transitions.values()) > 20
    remote_classes, remote_meta = _read(tmp_path / "remote.tif")
    local_classes, local_meta = _read(tmp_path / "local.tif")
    assert np.array_equal(remote_classes, local_classes)
    assert remote_meta == local_meta
    assert remote["classes"] == local["classes"] and remote["thresholds"] == local["thresholds"]


def _scene(size: int) -> np.ndarray:
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    field = np.sin(cols / 37.0) * np.cos(rows / 53.0) + 0.5 * np.sin((cols + rows) / 211.0)
    noise = np.random.default_rng(1).normal(0, 0.3, (size, size)).astype(np.float32)
    return (3000 + 1500 * (field + noise)).clip(1, 65535).astype(np.uint16)


@pytest.fixture(scope="module")
def scene_3072(synthetic_dir: Path) -> tuple[Path, np.ndarray]:
    """A 3072 x 3072 uint16 COG (and its array) for the worker-kill tests."""
    from tests.synthetic import write_cog

    data = _scene(3072)
    return write_cog(synthetic_dir / "scene_3072.tif", data), data


@pytest.fixture(scope="module")
def scene_4096(synthetic_dir: Path) -> Path:
    """A 4096 x 4096 uint16 COG for the memory tests."""
    from tests.synthetic import write_cog

    return write_cog(synthetic_dir / "scene_4096.tif", _scene(4096))


def _whole_image_classes(data: np.ndarray, params: dict, thresholds: list[float]) -> np.ndarray:
    algo = otsu_algorithms().get("otsu")(**params, scope="fixed", threshold=thresholds[0])
    out = algo(ImageData(np.ma.MaskedArray(data[None], mask=False), metadata={"halo": 0}))
    band = out.array[0]
    return np.where(np.ma.getmaskarray(band), NODATA, np.ma.getdata(band)).astype(np.uint8)


def _start_export_and_wait_for_progress(cmd: list[str], fraction: float) -> tuple[subprocess.Popen, list[str]]:
    """Start an export process; return once it reports `fraction` of its windows done."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines: list[str] = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("segmenting windows:"):
            done, total = (int(v) for v in line.split(":")[1].split("/"))
            if total and 0 < done < total and done >= fraction * total:
                return proc, lines
    raise AssertionError(f"the export ended before {fraction:.0%} progress was seen: {''.join(lines)[-2000:]}")


def test_worker_killed_mid_run_export_still_completes_identically(loopback_cluster, scene_3072, tmp_path) -> None:
    source, data = scene_3072
    params = {"sigma": 2, "opening": 2}
    out = tmp_path / "classes.tif"
    cmd = _export_cmd(source, out, "--params", json.dumps(params), "--window-size", "256",
                      "--scheduler", loopback_cluster.address)  # fmt: skip
    proc, _ = _start_export_and_wait_for_progress(cmd, 0.1)
    victim = loopback_cluster.workers[0]
    victim.kill()  # SIGKILL: no goodbye to the scheduler
    victim.wait(10)
    assert proc.poll() is None, "the export finished before the worker was killed"
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout)
    assert summary["workers"] == 1  # the run ended on the surviving worker
    assert summary["windows"] == 12 * 12
    classes, _ = _read(out)
    assert int((classes != _whole_image_classes(data, params, summary["thresholds"])).sum()) == 0
    assert _leftovers(tmp_path) == []


def test_all_workers_killed_fails_clearly_and_leaves_out_untouched(loopback_cluster, scene_3072, tmp_path) -> None:
    source, _ = scene_3072
    out = tmp_path / "classes.tif"
    out.write_bytes(b"the previous export")
    cmd = _export_cmd(source, out, "--params", '{"sigma": 2, "opening": 2}', "--window-size", "256",
                      "--scheduler", loopback_cluster.address, "--worker-timeout", "3")  # fmt: skip
    proc, _ = _start_export_and_wait_for_progress(cmd, 0.1)
    for worker in loopback_cluster.workers:
        worker.kill()
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2, (stdout, stderr[-3000:])
    assert "No Dask worker left" in stderr and "nothing written at" in stderr
    assert out.read_bytes() == b"the previous export"  # never a partial file at OUT
    assert _leftovers(tmp_path) == []


def test_window_that_kills_its_worker_fails_clearly(scene_4096, tmp_path) -> None:
    """A window too big for the worker's memory limit: its nanny kills it, Dask gives up (KilledWorker)."""
    import os

    from distributed import Client

    source = scene_4096
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}  # give up at the first death
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen(
        [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], env=env, **quiet
    )
    worker = subprocess.Popen(
        [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--memory-limit", "350MB", "--no-dashboard",
         "--host", "127.0.0.1", "--preload", "titiler_otsu.export.tasks"],
        **quiet,
    )  # fmt: skip
    cluster = LoopbackCluster(address, scheduler, [worker])
    try:
        with Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=90)
        out = tmp_path / "classes.tif"
        cmd = _export_cmd(source, out, "--params", '{"sigma": 3}', "--window-size", "4096", "--scheduler", address)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 2, (proc.stdout, proc.stderr[-3000:])
        assert "KilledWorker" in proc.stderr and "smaller --window-size" in proc.stderr
        assert list(tmp_path.iterdir()) == []
    finally:
        _stop(cluster)


def test_unreachable_scheduler_is_a_clear_error(tmp_path) -> None:
    out = tmp_path / "classes.tif"
    nobody = f"tcp://127.0.0.1:{_free_port()}"
    cmd = _export_cmd(NAIP, out, "--bidx", "4", "--scheduler", nobody, "--worker-timeout", "5")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and "Cannot reach the Dask scheduler" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_worker_memory_is_bounded_by_the_window_not_the_scene(scene_4096, tmp_path) -> None:
    """4096 x 4096 uint16 (32 MiB raw): one worker segmenting it whole would need > 350 MiB more."""
    source = scene_4096
    t0 = time.perf_counter()
    summary = _run(_export_cmd(source, tmp_path / "classes.tif", "--params", '{"sigma": 1}', "--window-size", "512",
                               "--workers", "1"))  # fmt: skip
    (peak,) = summary["peak_worker_rss_mb"].values()
    print(f"4096 x 4096 export: worker peak RSS {peak:.0f} MiB, {time.perf_counter() - t0:.1f} s")
    assert summary["windows"] == 8 * 8 and summary["pixels"] == 4096 * 4096
    assert peak < 400


def test_the_pre_layout_preload_name_loads_the_same_setup():
    import titiler_otsu.export.tasks as tasks
    import titiler_otsu.export_tasks as alias

    assert alias.dask_setup is tasks.dask_setup

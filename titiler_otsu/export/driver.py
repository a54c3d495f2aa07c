"""Full-resolution export: the whole scene's classes as a COG, computed on Dask.

`export(request)` is the driver:

1. thresholds: `scope: "dataset"` binds the *same* overview histogram the tile server uses
   (`DatasetHistograms`, same `preview` read), so the export and the map agree; with
   `exact_histogram` the full-resolution histogram is a map over windows (min/max, then
   counts on common bins) and a reduce (sum), and Otsu runs on that (`export.exact_histogram`);
2. segmentation: one Dask task per window (read with the algorithm's halo, segment,
   crop; see `export.tasks`), a bounded number in flight (`export.windows`), blocks written as
   they complete (see `export.writer`);
3. a COG with overviews replaces the output path atomically; a summary is returned.

The cluster is a `distributed.LocalCluster` of worker processes by default, or an
existing scheduler (`scheduler="tcp://host:port"`).

May import: `core`, `security`, `io`, `algorithms`, `export`, `errors`, `settings` (never `web`).
"""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rasterio.crs import CRS
from rasterio.errors import CRSError

from titiler_otsu.algorithms import halo_of, otsu_algorithms
from titiler_otsu.algorithms.otsu import SegmentationAlgorithm
from titiler_otsu.core.histogram import Histogram
from titiler_otsu.errors import BadRequestError, format_validation_error
from titiler_otsu.export.cluster import ClusterStarter
from titiler_otsu.export.exact_histogram import exact_histogram
from titiler_otsu.export.grid import OutputGrid, native_grid, reprojected_grid
from titiler_otsu.export.source import ExportSource
from titiler_otsu.export.tasks import ExportJob, WindowResult, peak_rss_bytes, segment_window
from titiler_otsu.export.windows import ExportError, ProgressCallback, dask_client, map_windows
from titiler_otsu.export.writer import NODATA, ClassRasterWriter
from titiler_otsu.io.histograms import DatasetHistograms
from titiler_otsu.settings import Settings

__all__ = ["ExportError", "ExportRequest", "ExportSummary", "ClassArea", "export"]


class ExportRequest(BaseModel):
    """What to export, and how to compute it."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="COG/GeoTIFF path or URL, or a STAC Item (JSON path or URL).")
    out: Path = Field(description="Output COG path.")
    bidx: int | None = Field(None, ge=1, description="Band index (COG).")
    expression: str | None = Field(None, description="Band math over b1..bn (bands, or STAC assets in order).")
    assets: list[str] = Field(default_factory=list, description="STAC asset names, stacked as b1..bn.")
    algorithm: str = "otsu"
    params: dict[str, Any] = Field(default_factory=dict, description="Algorithm parameters (as the tiles').")
    bbox: tuple[float, float, float, float] | None = Field(None, description="lon/lat minx, miny, maxx, maxy.")
    crs: str | None = Field(None, description="Output CRS (default: the source's grid).")
    resolution: float | None = Field(None, gt=0, description="Output pixel size, output CRS units.")
    exact_histogram: bool = Field(False, description="Dataset thresholds from the full-resolution histogram.")
    window_size: int = Field(
        2048, ge=64, le=8192, multiple_of=16, description="Window side, pixels (task memory grows with its square)."
    )
    workers: int | None = Field(None, ge=1, description="Local cluster worker processes (default: CPU count).")
    threads_per_worker: int = Field(1, ge=1)
    scheduler: str | None = Field(None, description="Existing Dask scheduler address (tcp://host:port).")
    overview_resampling: Literal["nearest", "mode"] = Field(
        "nearest", description="Overviews: nearest (real pixels, like the tiles' sampling) or mode (majority)."
    )
    worker_timeout: float = Field(60.0, gt=0, description="Give up after this long without any worker, s.")


class ClassArea(BaseModel):
    """Pixels and true ground area of one class."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    class_: int = Field(alias="class")
    pixels: int
    fraction: float = Field(description="Of the valid pixels.")
    area_m2: float | None


class ExportSummary(BaseModel):
    """What an export did (printed by the CLI; `--json` prints it as is)."""

    model_config = ConfigDict(extra="forbid")

    source: str
    output: str
    algorithm: str
    params: dict[str, Any]
    scope: str | None
    histogram: Literal["overview", "exact"] | None
    thresholds: list[float]
    thresholds_overview: list[float] | None
    thresholds_exact: list[float] | None
    crs: str
    transform: list[float]
    width: int
    height: int
    pixels: int
    valid_pixels: int
    nodata_pixels: int
    nodata_value: int
    classes: list[ClassArea]
    halo: int
    window_size: int
    windows: int
    scheduler: str
    workers: int
    threads: int
    seconds: float = Field(description="Whole export, from the call (cluster start-up included).")
    seconds_cluster: float = Field(description="Starting/connecting the cluster.")
    seconds_histogram: float
    seconds_segment: float
    seconds_cog: float
    mpix_per_s: float = Field(description="Output pixels per second of the whole export.")
    segment_mpix_per_s: float = Field(description="Output pixels per second while segmenting.")
    worker_cpu_seconds: float = Field(description="CPU time of the segmentation tasks, all workers.")
    driver_cpu_seconds: float = Field(description="CPU time of this process while segmenting (writes, client).")
    peak_worker_rss_mb: dict[str, float]


# ---------------------------------------------------------------------------- set-up


def _algorithm(request: ExportRequest, settings: Settings) -> SegmentationAlgorithm:
    registry = otsu_algorithms()
    try:
        cls = registry.get(request.algorithm)
    except KeyError as e:
        raise BadRequestError(
            f"Unknown algorithm {request.algorithm!r}; the segmentation algorithms are "
            f"{', '.join(n for n in registry.list() if 'otsu' in n)}."
        ) from e
    try:
        algo = cls(**request.params)
    except ValidationError as e:
        raise BadRequestError(format_validation_error(request.algorithm, e)) from e
    except TypeError as e:
        raise BadRequestError(f"Invalid --params for {request.algorithm!r}: {e}") from e
    if not isinstance(algo, SegmentationAlgorithm):
        raise BadRequestError(
            f"'{request.algorithm}' does not make classes; export writes class rasters: use otsu or multiotsu."
        )
    if getattr(algo, "scope", None) == "tile":
        raise BadRequestError(
            "scope 'tile' thresholds each tile on its own pixels, which a whole-scene export has no "
            "tiles for: use scope 'dataset' (default: the map's thresholds; add --exact-histogram for "
            "full-resolution ones) or 'fixed'."
        )
    classes = getattr(algo, "classes", None)
    if isinstance(classes, int) and classes > settings.max_classes:
        raise BadRequestError(f"'classes' must be at most {settings.max_classes} (setting MAX_CLASSES).")
    return algo


def _output_grid(request: ExportRequest, source: ExportSource) -> OutputGrid:
    crs, transform, width, height = source.native_grid_info()
    if request.crs is None and request.resolution is None:
        if crs is None:
            raise BadRequestError(f"{source.files[0]} has no CRS: it cannot be exported as a georeferenced COG.")
        return native_grid(crs, transform, width, height, request.bbox)
    dst = None
    if request.crs:
        try:
            dst = CRS.from_user_input(request.crs)
        except CRSError as e:
            raise BadRequestError(f"--crs {request.crs!r} is not a CRS (try EPSG:3857 or EPSG:32633).") from e
    return reprojected_grid(crs, transform, width, height, dst, request.resolution, request.bbox)


# ---------------------------------------------------------------------------- the export


def export(
    request: ExportRequest,
    client: Any | None = None,
    progress: ProgressCallback | None = None,
    settings: Settings | None = None,
    starter: ClusterStarter | None = None,
) -> ExportSummary:
    """Export the classes of a whole source as a COG (see the module docstring).

    Args:
        request: what to export.
        client: a `distributed.Client` to use (default: from `request.scheduler`, or a new
            local cluster for the duration of the export).
        progress: called with (phase, done, total) as windows complete.
        settings: limits and histogram settings (default: from the environment).
        starter: the local cluster, already starting in the background (used when neither
            `client` nor `request.scheduler` is given; closed by the caller if unused).

    Returns:
        ExportSummary: pixels, classes with areas, thresholds, timings.

    Raises:
        BadRequestError: bad source, band selection, parameters or grid.
        ExportError: the cluster failed; nothing was written at `request.out`.

    """
    settings = settings or Settings()
    start = time.perf_counter()
    algo = _algorithm(request, settings)
    source = ExportSource.open(request.source, request.bidx, request.expression, request.assets)
    grid = _output_grid(request, source)
    out = request.out.expanduser().resolve()
    if not out.parent.is_dir():
        raise BadRequestError(f"The output folder {out.parent} does not exist.")
    if out.is_dir():
        raise BadRequestError(f"{out} is a folder: give a file name such as {out / 'classes.tif'}.")

    # the overview histogram needs no cluster: read it while the local cluster is still starting
    t0 = time.perf_counter()
    overview = None
    if algo.needs_dataset_histogram:
        overview = source.overview_histogram(DatasetHistograms(1, 60, settings.histogram_max_size), algo.nbins)
    seconds_overview = time.perf_counter() - t0
    if client is None:
        with dask_client(
            request.scheduler, request.workers, request.threads_per_worker, request.worker_timeout, starter
        ) as c:
            return _run(request, settings, algo, source, grid, out, c, progress, start, overview, seconds_overview)
    return _run(request, settings, algo, source, grid, out, client, progress, start, overview, seconds_overview)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run(
    request: ExportRequest,
    settings: Settings,
    algo: SegmentationAlgorithm,
    source: ExportSource,
    grid: OutputGrid,
    out: Path,
    client: Any,
    progress: ProgressCallback | None,
    start: float,
    overview: Histogram | None,
    seconds_overview: float,
) -> ExportSummary:
    """Thresholds, segmentation and COG on `client`; `overview`: the overview histogram, read before."""
    report = progress or (lambda phase, done, total: None)
    # the wait for the cluster (what overlapping it with the open and the overview read left)
    seconds_cluster = time.perf_counter() - start - seconds_overview

    # 1. thresholds
    t0 = time.perf_counter()
    job = ExportJob(source=source, grid=grid, algorithm=request.algorithm, params=request.params)
    histogram: Histogram | None = None
    thresholds_overview = thresholds_exact = None
    if algo.needs_dataset_histogram:
        histogram = overview  # read by `export` before it took the cluster
        assert histogram is not None
        thresholds_overview = algo.thresholds_from_histogram(histogram)
        if request.exact_histogram:
            histogram = exact_histogram(client, job, algo.nbins, request.worker_timeout, report)
            thresholds_exact = algo.thresholds_from_histogram(histogram)
        job = ExportJob(source, grid, request.algorithm, request.params, histogram)
    seconds_histogram = time.perf_counter() - t0 + seconds_overview
    if histogram is not None:
        algo.bind_dataset_histogram(histogram)
    thresholds = algo.fixed_thresholds() if algo.scope == "fixed" else algo.dataset_thresholds()

    # 2. segmentation, written block by block
    t1 = time.perf_counter()
    windows = list(grid.windows(request.window_size))
    n_classes = algo.n_classes
    counts = np.zeros(n_classes, np.int64)
    window_areas: dict[tuple[int, int], np.ndarray] = {}  # summed in window order: deterministic
    has_area = True
    done = 0
    worker_cpu = 0.0
    driver_cpu = _cpu_seconds()
    tags = {
        "OTSU_SOURCE": request.source,
        "OTSU_ALGORITHM": request.algorithm,
        "OTSU_PARAMS": _json(request.params),
        "OTSU_THRESHOLDS": ",".join(f"{t:g}" for t in thresholds or []),
        "OTSU_HISTOGRAM": "exact" if request.exact_histogram and histogram is not None else "overview",
        "OTSU_CLASSES": str(n_classes),
    }
    report("segment", 0, len(windows))
    with ClassRasterWriter(out, grid, request.window_size, tags) as writer:

        def take(result: WindowResult) -> None:
            nonlocal done, has_area, worker_cpu
            worker_cpu += result.cpu_seconds
            writer.write(result.window, result.classes)
            counts[: len(result.counts)] += result.counts[:n_classes]
            if result.pixel_area_m2 is None:
                has_area = False
            else:
                window_areas[(result.window.row, result.window.col)] = result.counts[:n_classes] * result.pixel_area_m2
            done += 1
            report("segment", done, len(windows))

        map_windows(client, segment_window, job, windows, take, worker_timeout=request.worker_timeout)
        seconds_segment = time.perf_counter() - t1
        driver_cpu = _cpu_seconds() - driver_cpu
        t2 = time.perf_counter()
        report("cog", 0, 1)
        writer.commit(request.overview_resampling)
        report("cog", 1, 1)
    seconds_cog = time.perf_counter() - t2

    rss = client.run(peak_rss_bytes)
    seconds = time.perf_counter() - start
    valid = int(counts.sum())
    areas = np.zeros(n_classes, np.float64)
    for key in sorted(window_areas):
        areas += window_areas[key]
    nthreads = client.nthreads()
    return ExportSummary(
        source=request.source,
        output=str(out),
        algorithm=request.algorithm,
        params=request.params,
        scope=algo.scope,
        histogram=("exact" if request.exact_histogram else "overview") if histogram is not None else None,
        thresholds=[float(t) for t in thresholds or []],
        thresholds_overview=thresholds_overview,
        thresholds_exact=thresholds_exact,
        crs=_crs_name(grid.crs),
        transform=list(grid.transform),
        width=grid.width,
        height=grid.height,
        pixels=grid.pixels,
        valid_pixels=valid,
        nodata_pixels=grid.pixels - valid,
        nodata_value=NODATA,
        classes=[
            ClassArea(
                class_=k,
                pixels=int(counts[k]),
                fraction=float(counts[k] / valid) if valid else 0.0,
                area_m2=float(areas[k]) if has_area else None,
            )
            for k in range(n_classes)
        ],
        halo=halo_of(algo),
        window_size=request.window_size,
        windows=len(windows),
        scheduler=request.scheduler or "local",
        workers=len(nthreads),
        threads=int(sum(nthreads.values())),
        seconds=seconds,
        seconds_cluster=seconds_cluster,
        seconds_histogram=seconds_histogram,
        seconds_segment=seconds_segment,
        seconds_cog=seconds_cog,
        mpix_per_s=grid.pixels / 1e6 / seconds if seconds > 0 else 0.0,
        segment_mpix_per_s=grid.pixels / 1e6 / seconds_segment if seconds_segment > 0 else 0.0,
        worker_cpu_seconds=worker_cpu,
        driver_cpu_seconds=driver_cpu,
        peak_worker_rss_mb={addr: b / 2**20 for addr, b in rss.items()},
    )


def _crs_name(crs: CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()


def _json(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True)

"""`titiler-otsu export`: the command line of the full-resolution export.

May import: `core`, `security`, `io`, `algorithms`, `export`, `errors`, `settings` (never `web`).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer


class _Progress:
    """A rich progress bar on a terminal; a line every 10 % otherwise (logs, CI)."""

    _LABELS = {"histogram": "full-resolution histogram", "segment": "segmenting windows", "cog": "writing COG"}

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        self._last: dict[str, int] = {}

    def __enter__(self) -> _Progress:
        if self.tty:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._bar.__enter__()
        return self

    def __call__(self, phase: str, done: int, total: int) -> None:
        label = self._LABELS.get(phase, phase)
        if self._bar is not None:
            if phase not in self._tasks:
                self._tasks[phase] = self._bar.add_task(label, total=total)
            self._bar.update(self._tasks[phase], completed=done, total=total)
            return
        step = 0 if total == 0 else (10 * done) // total
        if done in (0, total) or step != self._last.get(phase):
            self._last[phase] = step
            typer.echo(f"{label}: {done}/{total}", err=True)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


def _parse_bbox(bbox: str) -> tuple[float, float, float, float]:
    try:
        minx, miny, maxx, maxy = (float(v) for v in bbox.split(","))
    except ValueError as e:
        raise typer.BadParameter("give minx,miny,maxx,maxy in longitude/latitude", param_hint="--bbox") from e
    if not (-180 <= minx < maxx <= 180 and -90 <= miny < maxy <= 90):
        raise typer.BadParameter("give minx,miny,maxx,maxy in lon/lat with min < max", param_hint="--bbox")
    return minx, miny, maxx, maxy


def _print_summary(summary: Any) -> None:
    s = summary
    typer.echo(f"Wrote {s.output}")
    typer.echo(
        f"  grid        {s.width} x {s.height} px, {s.crs}, pixel {abs(s.transform[0]):g} x {abs(s.transform[4]):g}"
    )
    typer.echo(f"  pixels      {s.pixels:,} ({s.valid_pixels:,} valid, {s.nodata_pixels:,} nodata = {s.nodata_value})")
    line = ", ".join(f"{t:g}" for t in s.thresholds) or "per neighbourhood"
    source = f", {s.histogram} histogram" if s.histogram and s.thresholds else ""
    typer.echo(f"  thresholds  {line}  ({s.algorithm}, scope {s.scope}{source})")
    if s.thresholds_exact is not None and s.thresholds_exact != s.thresholds_overview:
        over = ", ".join(f"{t:g}" for t in s.thresholds_overview or [])
        typer.echo(f"              the tiles' overview histogram gives {over} (differs from the exact ones)")
    elif s.thresholds_exact is not None:
        typer.echo("              same as the tiles' overview-histogram thresholds")
    for c in s.classes:
        area = f"{c.area_m2 / 1e6:,.3f} km²" if c.area_m2 is not None else "area n/a"
        typer.echo(f"  class {c.class_:<5} {c.pixels:>14,} px  {100 * c.fraction:6.2f} %  {area}")
    typer.echo(
        f"  time        {s.seconds:.1f} s (cluster {s.seconds_cluster:.1f}, histogram {s.seconds_histogram:.1f}, "
        f"segment {s.seconds_segment:.1f}, COG {s.seconds_cog:.1f}) = {s.mpix_per_s:.1f} Mpix/s "
        f"({s.segment_mpix_per_s:.1f} while segmenting)"
    )
    typer.echo(
        f"  cpu         tasks {s.worker_cpu_seconds:.1f} s, this process {s.driver_cpu_seconds:.1f} s (segmenting)"
    )
    peak = max(s.peak_worker_rss_mb.values(), default=0.0)
    typer.echo(f"  cluster     {s.scheduler}: {s.workers} workers, {s.threads} threads, peak worker RSS {peak:.0f} MiB")


def _run_export(fields: dict[str, Any], starter: Any) -> Any:
    """Validate the request and run the export; errors become messages and exit codes."""
    from pydantic import ValidationError

    from titiler_otsu.errors import OtsuError
    from titiler_otsu.export.driver import ExportRequest, export

    try:
        request = ExportRequest(**fields)
    except ValidationError as e:
        msgs = "; ".join(
            f"--{'-'.join(str(p) for p in err['loc']).replace('_', '-')}: {err['msg']}" for err in e.errors()
        )
        typer.echo(f"Error: {msgs}", err=True)
        raise typer.Exit(2) from e
    out = fields["out"]
    started = time.perf_counter()
    try:
        with _Progress() as progress:
            return export(request, progress=progress, starter=starter)
    except OtsuError as e:
        typer.echo(f"Error: {e} (after {time.perf_counter() - started:.1f} s; nothing written at {out})", err=True)
        raise typer.Exit(2) from e
    except Exception as e:  # noqa: BLE001 - GDAL/Dask failures: say what failed, not a traceback
        typer.echo(f"Error: export failed ({type(e).__name__}: {e}); nothing written at {out}", err=True)
        raise typer.Exit(1) from e


def export_command(
    source: Annotated[str, typer.Argument(help="COG/GeoTIFF path or URL, or a STAC Item (JSON).")],
    out: Annotated[Path, typer.Argument(help="Output COG (replaced atomically when complete).")],
    bidx: Annotated[int | None, typer.Option(help="Band index (1-based).")] = None,
    expression: Annotated[str | None, typer.Option(help="Band math over b1..bn, e.g. (b4-b1)/(b4+b1).")] = None,
    assets: Annotated[
        list[str] | None, typer.Option("--assets", help="STAC asset (repeat; stacked as b1..bn).")
    ] = None,
    algorithm: Annotated[str, typer.Option(help="otsu or multiotsu.")] = "otsu",
    params: Annotated[str, typer.Option(help="Algorithm parameters as JSON (as the tiles').")] = "{}",
    scheduler: Annotated[
        str | None, typer.Option(help="Existing Dask scheduler, tcp://host:port (default: a local cluster).")
    ] = None,
    bbox: Annotated[str | None, typer.Option(help="Cut to minx,miny,maxx,maxy (lon/lat).")] = None,
    crs: Annotated[str | None, typer.Option(help="Output CRS, e.g. EPSG:3857 (default: the source's grid).")] = None,
    resolution: Annotated[float | None, typer.Option(help="Output pixel size in output-CRS units.")] = None,
    exact_histogram: Annotated[
        bool, typer.Option(help="Dataset thresholds from the full-resolution histogram (map-reduce).")
    ] = False,
    window_size: Annotated[int, typer.Option(help="Window side in pixels (multiple of 16).")] = 2048,
    workers: Annotated[int | None, typer.Option(min=1, help="Local cluster worker processes (default: CPUs).")] = None,
    threads_per_worker: Annotated[int, typer.Option(min=1, help="Threads per local worker.")] = 1,
    overview_resampling: Annotated[str, typer.Option(help="Overviews: nearest or mode (majority class).")] = "nearest",
    worker_timeout: Annotated[float, typer.Option(help="Abort after this many seconds without workers.")] = 60.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Export the full-resolution classes of a scene as a COG, computed with Dask."""
    try:
        loaded = json.loads(params)
    except json.JSONDecodeError as e:
        raise typer.BadParameter(f"not valid JSON ({e.msg}); e.g. '{{\"sigma\": 1}}'", param_hint="--params") from e
    if not isinstance(loaded, dict):
        raise typer.BadParameter('give a JSON object, e.g. {"sigma": 1}', param_hint="--params")
    bbox_value = _parse_bbox(bbox) if bbox else None
    starter = None
    if scheduler is None:
        from titiler_otsu.export.cluster import ClusterStarter

        # the fork server imports the workers' code while this process imports the driver
        starter = ClusterStarter(workers, threads_per_worker)
    try:
        summary = _run_export(
            dict(
                source=source if "://" in source else str(Path(source).expanduser()),
                out=out,
                bidx=bidx,
                expression=expression,
                assets=assets or [],
                algorithm=algorithm,
                params=loaded,
                bbox=bbox_value,
                crs=crs,
                resolution=resolution,
                exact_histogram=exact_histogram,
                window_size=window_size,
                workers=workers,
                threads_per_worker=threads_per_worker,
                scheduler=scheduler,
                overview_resampling=overview_resampling,
                worker_timeout=worker_timeout,
            ),
            starter,
        )
    finally:
        if starter is not None:
            starter.close()
    if as_json:
        typer.echo(summary.model_dump_json(by_alias=True))
    else:
        _print_summary(summary)

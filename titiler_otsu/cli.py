"""Command line: `titiler-otsu serve`, `threshold` and `export`.

Cheap to import (Typer only): each command imports what it needs, so that `export` starts its
workers' fork server before anything heavy is imported.

May import: anything in the package (top-level glue).
"""

import gc
import json
import os
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlencode

import typer

app = typer.Typer(help="Seamless on-the-fly Otsu segmentation tiles.", no_args_is_help=True)


def _mask_query(source: str, bidx: int | None, params: dict) -> str:
    query: dict[str, str] = {"url": source, "algorithm": "otsu", "algorithm_params": json.dumps(params)}
    if bidx is not None:
        query["bidx"] = str(bidx)
    return urlencode(query, quote_via=quote, safe="/:")


def _band_count(source: str) -> int:
    import rasterio

    from titiler_otsu.io.remote_vsi import gdal_path

    with rasterio.open(gdal_path(source)) as src:
        return src.count


@app.command()
def serve(
    sources: Annotated[
        list[str] | None, typer.Argument(help="COG/GeoTIFF paths or URLs (default: the demo scene).")
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    allow: Annotated[list[str] | None, typer.Option(help="Extra directory or URL prefix requests may read.")] = None,
) -> None:
    """Serve tiles; prints the viewer URL and an XYZ template for QGIS."""
    import uvicorn

    from titiler_otsu.settings import Settings, default_cache_dir

    settings = Settings()
    paths = [s if "://" in s else str(Path(s).resolve()) for s in (sources or [])]
    demo_bidx = None
    if not paths:
        from titiler_otsu.demo import ensure_demo_scene

        typer.echo("No source given: serving the demo scene (generated on first run).")
        paths = [str(ensure_demo_scene(settings.cache_dir))]
        demo_bidx = 4
    for p in paths:
        if "://" not in p and not Path(p).is_file():
            raise typer.BadParameter(f"no such file: {p}", param_hint="SOURCE")
    os.environ["TITILER_OTSU_SOURCES"] = json.dumps(paths)
    if allow:
        prefixes = [a if "://" in a else str(Path(a).resolve()) for a in allow]
        prefixes += [*paths, *(settings.allowed_sources or [])]  # the sources themselves, not their folders
        prefixes.append(str(settings.cache_dir or default_cache_dir()))
        os.environ["TITILER_OTSU_ALLOWED_SOURCES"] = json.dumps(prefixes)

    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    first = paths[0]
    bidx = demo_bidx if demo_bidx else (None if "://" in first or _band_count(first) == 1 else 1)
    params = {"invert": True} if demo_bidx else {}
    typer.echo(f"Viewer:            {base}/")
    typer.echo(f"API docs:          {base}/docs")
    typer.echo(
        f"XYZ (QGIS), mask:  {base}/cog/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png?{_mask_query(first, bidx, params)}"
    )
    typer.echo(f"WMTS:              {base}/cog/WebMercatorQuad/WMTSCapabilities.xml?{_mask_query(first, bidx, params)}")
    uvicorn.run("titiler_otsu.app:create_app", factory=True, host=host, port=port, workers=workers, log_level="info")


@app.command()
def threshold(
    source: Annotated[str, typer.Argument(help="COG/GeoTIFF path or URL.")],
    bidx: Annotated[int | None, typer.Option(help="Band index (1-based).")] = None,
    expression: Annotated[str | None, typer.Option(help="Band math, e.g. (b4-b1)/(b4+b1).")] = None,
    algorithm: Annotated[str, typer.Option(help="otsu or multiotsu.")] = "otsu",
    params: Annotated[str, typer.Option(help="Algorithm parameters as JSON.")] = "{}",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Print the dataset thresholds (the ones every tile uses with scope 'dataset')."""
    from pydantic import ValidationError

    from titiler_otsu.algorithms import otsu_algorithms
    from titiler_otsu.algorithms.otsu import SegmentationAlgorithm
    from titiler_otsu.errors import OtsuError
    from titiler_otsu.io.histograms import DatasetHistograms
    from titiler_otsu.io.reader import GridExactReader
    from titiler_otsu.settings import Settings

    settings = Settings()
    registry = otsu_algorithms()
    try:
        algo = registry.get(algorithm)(**json.loads(params))
    except KeyError as e:
        raise typer.BadParameter(f"unknown algorithm {algorithm!r}", param_hint="--algorithm") from e
    except (json.JSONDecodeError, ValidationError, TypeError) as e:
        raise typer.BadParameter(str(e), param_hint="--params") from e
    if not isinstance(algo, SegmentationAlgorithm):
        raise typer.BadParameter("use otsu or multiotsu", param_hint="--algorithm")
    options: dict = {"expression": expression} if expression else {"indexes": bidx} if bidx else {}
    histograms = DatasetHistograms(1, 60, settings.histogram_max_size)
    try:
        hist = histograms.get(lambda: GridExactReader(source), source, options, algo.nbins)
    except OtsuError as e:
        typer.echo(f"Error: {e}", err=True)
        raise typer.Exit(2) from e
    except Exception as e:  # noqa: BLE001 - rasterio/GDAL open errors
        typer.echo(f"Error: cannot read {source}: {e}", err=True)
        raise typer.Exit(2) from e
    thresholds = algo.fixed_thresholds() if algo.scope == "fixed" else algo.thresholds_from_histogram(hist)
    if as_json:
        typer.echo(
            json.dumps({"algorithm": algorithm, "thresholds": thresholds, "pixels": hist.pixels, "nbins": hist.nbins})
        )
    else:
        values = ", ".join(f"{t:g}" for t in thresholds or [])
        typer.echo(f"{algorithm} thresholds: {values} ({hist.pixels} valid pixels in the overview histogram)")


from titiler_otsu.export.cli import export_command  # noqa: E402 - light module, heavy imports inside

app.command("export")(export_command)


def main() -> None:
    """The `titiler-otsu` program: the commands, then an exit without a final collection.

    At exit the interpreter collects every object the imports built (~0.3 s after an export,
    while the user waits for the prompt); frozen first (`gc.freeze`), they are left to the
    operating system. Output files are closed and standard streams flushed as usual.
    """
    try:
        app()
    finally:
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    main()

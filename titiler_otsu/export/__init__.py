"""Full-resolution export on Dask.

The driver, its map over windows on the cluster, the exact histogram, its output grid,
sources, tasks, writer, cluster, heap tuning and the `titiler-otsu export` command.

May import: `core`, `io`, `algorithms`, `security`, `errors`, `settings`; Dask. Not `web`.
The driver's names are imported lazily (`from titiler_otsu.export import export` works) so that
workers importing `titiler_otsu.export.tasks` and the CLI starting a cluster do not pay for it.
"""

from typing import Any

__all__ = ["ExportError", "ExportRequest", "ExportSummary", "export"]


def __getattr__(name: str) -> Any:
    """Lazily import the driver's public names."""
    if name in __all__:
        from titiler_otsu.export import driver

        return getattr(driver, name)
    raise AttributeError(name)

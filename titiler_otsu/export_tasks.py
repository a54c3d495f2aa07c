"""Compatibility alias: `dask worker --preload titiler_otsu.export_tasks` keeps working.

The export's worker-side code lives in `titiler_otsu.export.tasks` since the package layout
(issue #16); worker command lines written for the earlier name load the same `dask_setup`.

May import: anything in the package (top-level glue).
"""

from titiler_otsu.export.tasks import dask_setup

__all__ = ["dask_setup"]

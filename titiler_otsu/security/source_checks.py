"""What a source must have to be served: checked once, when a reader opens it.

Every reader of the tile path (`GridExactReader`, also per STAC asset) calls
`check_servable(dataset, name)` right after opening, so every endpoint (info, TileJSON,
tiles, analytics, statistics, point...) refuses the same sources with the same 400:

* a data type we cannot segment or render (complex values: GDAL's CInt16..CFloat64);
* no georeferencing a web map can place: no CRS (and no GCPs), an engineering (local) CRS,
  a CRS of another celestial body (its ellipsoid is not the Earth's), or a CRS PROJ cannot
  relate to WGS 84 longitude/latitude.

STAC Items are checked the same way before any asset is opened (`check_item_grid`): the grid
their `proj:` fields describe must be in an Earth CRS and at least one pixel a side.

GCP-georeferenced sources are served (rio-tiler warps them with the GCPs' CRS).

May import: `errors`, `settings` and `security`.
"""

from __future__ import annotations

import functools

import numpy as np
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError, ProjError
from rasterio.io import DatasetReader

from titiler_otsu.errors import SourceNotReadableError

#: Semi-major axes (m) that are the Earth's (GRS80/WGS84 6378137, Clarke, Bessel... 6377-6379 km).
EARTH_SEMI_MAJOR_M = (6_370_000.0, 6_390_000.0)

_ASSIGN_CRS = "assign an Earth CRS (e.g. `gdal_edit.py -a_srs EPSG:32633 file.tif`) or reproject it with gdalwarp"


def check_servable(dataset: DatasetReader, name: str) -> None:
    """Raise a 400 naming the problem unless `dataset` can be served as map tiles.

    Args:
        dataset: the open source.
        name: what to call the source in messages (a file name, an asset name).

    Raises:
        SourceNotReadableError: unsupported data type or no usable Earth georeferencing.

    """
    complex_bands = sorted({d for d in dataset.dtypes if np.dtype(d).kind == "c"})
    if complex_bands:
        raise SourceNotReadableError(
            f"{name} holds complex values ({', '.join(complex_bands)}), which cannot be segmented or "
            "rendered: convert it to real bands first (e.g. amplitude with "
            "`gdal_translate -ot Float32` or gdal_calc.py `abs(A)`)."
        )
    crs = dataset.crs
    if crs is None and dataset.gcps[0]:
        crs = dataset.gcps[1]
    if crs is None:
        kind = "a geotransform but no CRS" if not dataset.transform.is_identity else "no CRS and no geotransform"
        raise SourceNotReadableError(f"{name} is not georeferenced ({kind}): {_ASSIGN_CRS}.")
    problem = _earth_crs_problem(crs.to_wkt())
    if problem:
        raise SourceNotReadableError(f"{name} has {problem}, which cannot be placed on a web map: {_ASSIGN_CRS}.")


def check_item_grid(crs: object, width: int | None, height: int | None, name: str) -> None:
    """Raise a 400 unless a STAC Item's `proj:` grid (CRS, size) can be placed on a web map.

    Args:
        crs: the Item's CRS (rasterio/pyproj CRS, or None when the Item has no `proj:` CRS).
        width: grid width from the `proj:` fields (None: no `proj:` grid).
        height: grid height.
        name: what to call the Item in messages.

    Raises:
        SourceNotReadableError: a non-Earth CRS or an empty grid.

    """
    if width is not None and height is not None and (width < 1 or height < 1):
        raise SourceNotReadableError(item_grid_too_small(name))
    if crs is None:
        return
    to_wkt = getattr(crs, "to_wkt", None)
    problem = _earth_crs_problem(to_wkt() if to_wkt else str(crs))
    if problem:
        raise SourceNotReadableError(
            f"{name} has {problem} in its proj: fields, which cannot be placed on a web map: give its "
            "assets an Earth CRS (proj:code / proj:epsg) or reproject them."
        )


def item_grid_too_small(name: str) -> str:
    """The message for an Item whose `proj:` grid rounds to less than one pixel a side."""
    return (
        f"{name}: its proj:shape / proj:transform describe a grid narrower than one pixel once rounded "
        "(rio-tiler derives the Item grid from the assets' bounds): serve the asset itself with "
        "/cog?url=<asset href>, or give the assets consistent proj:shape and proj:transform."
    )


@functools.lru_cache(maxsize=256)
def _earth_crs_problem(wkt: str) -> str | None:
    """Why a CRS is not usable Earth georeferencing (None: it is). Cached per CRS."""
    try:
        crs = CRS.from_wkt(wkt)
    except CRSError:
        return "a CRS PROJ cannot read"
    if crs.is_engineering:
        return "an engineering (local) CRS, not tied to the Earth"
    ellipsoid = crs.ellipsoid
    if ellipsoid is None:
        return f"a CRS without an ellipsoid ({crs.name})"
    lo, hi = EARTH_SEMI_MAJOR_M
    if not lo <= ellipsoid.semi_major_metre <= hi:
        return f"a CRS of another body than the Earth ({crs.name}, ellipsoid {ellipsoid.name})"
    try:
        Transformer.from_crs(crs, CRS.from_epsg(4326), always_xy=True)
    except (CRSError, ProjError):
        return f"a CRS PROJ cannot relate to WGS 84 longitude/latitude ({crs.name})"
    return None

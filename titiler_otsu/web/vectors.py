"""`GET {prefix}/vectors/{tileMatrixSetId}/{z}/{x}/{y}`: class polygons of a tile as GeoJSON.

The class tile is the one the tile endpoint renders (same reader `tile()` call with the
algorithm's halo, same algorithm). `rasterio.features.shapes` traces it in *global pixel
node* coordinates of the tile's grid level, and those integer nodes are mapped to the TMS
CRS with the grid's own formula (`PixelGrid.node_x/node_y`) and then to lon/lat. A node
shared by two tiles therefore gets bit-identical coordinates from both, so polygons of
adjacent tiles meet exactly, and a 512-px tile's polygons equal the union of its four
256-px children's.

`simplify` (pixels) runs GEOS coverage simplification on all class polygons of the tile at
once with the coverage boundary fixed: edges between classes are simplified consistently
(no gaps, no overlaps), while the tile border and nodata edges keep their shape and every
corner, so the seams between tiles stay exact. Vertices are only removed, never moved:
what remains is on the pixel grid.

May import: `core`, `security`, `io`, `algorithms`, `web`, `errors`, `settings` (never `export`).
"""

from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import rasterio
import shapely
from affine import Affine
from attrs import define
from fastapi import Depends, Path, Query
from pyproj import Transformer
from rasterio.features import shapes
from shapely.geometry import mapping
from titiler.core.algorithm.base import BaseAlgorithm
from titiler.core.dependencies import DefaultDependency
from titiler.core.factory import FactoryExtension
from titiler.core.resources.responses import GeoJSONResponse

from titiler_otsu.core.grid import PixelGrid, tile_window
from titiler_otsu.errors import BadRequestError
from titiler_otsu.io.aoi import cached_transformer
from titiler_otsu.web.areas import segmentation_algorithm

if TYPE_CHECKING:
    from titiler_otsu.web.mixin import OtsuAnalyticsMixin

__all__ = ["VectorsExtension", "class_polygons", "parse_classes"]


def parse_classes(value: str | None, n_classes: int) -> set[int] | None:
    """`classes=1,2` → {1, 2} (None: all classes)."""
    if value is None or value.strip() == "":
        return None
    try:
        wanted = {int(v) for v in value.split(",") if v.strip()}
    except ValueError as e:
        raise BadRequestError(f"classes must be comma-separated class values, e.g. classes=1 (got '{value}').") from e
    bad = sorted(v for v in wanted if not 0 <= v < n_classes)
    if bad:
        raise BadRequestError(f"classes {bad} do not exist: this algorithm makes classes 0..{n_classes - 1}.")
    return wanted


def class_polygons(
    classes: np.ndarray, valid: np.ndarray, col: int, row: int, simplify: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Polygons of each class region, in global pixel-node coordinates.

    Args:
        classes: (H, W) class values.
        valid: (H, W) True where the pixel has data (nodata is not traced).
        col: global column of the window's first pixel.
        row: global row of the window's first pixel.
        simplify: coverage-simplification tolerance in pixels (0: none); the outer
            boundary (window border, nodata edges) is kept.

    Returns:
        (polygons, values): shapely Polygons (vertices on integer pixel nodes) and their class.

    """
    traced = list(shapes(classes, mask=valid, connectivity=4, transform=Affine(1.0, 0.0, col, 0.0, 1.0, row)))
    geoms = np.array([shapely.geometry.shape(g) for g, _ in traced], dtype=object)
    values = np.array([int(v) for _, v in traced], dtype=np.int64)
    if simplify > 0 and len(geoms):
        # vertices on every node of every edge make the coverage edge-matched (GEOS needs it);
        # after simplification the leftover collinear boundary vertices are dropped again.
        matched = shapely.segmentize(geoms, 1.0)
        simplified = shapely.coverage_simplify(matched, simplify, simplify_boundary=False)
        # normalize starts each ring at its lowest-left vertex, a true corner, so that
        # simplify(0) can drop every collinear vertex (it always keeps a ring's start)
        geoms = shapely.simplify(shapely.normalize(simplified), 0.0, preserve_topology=False)
    return geoms, values


def _to_lonlat(grid: PixelGrid, transformer: Transformer):  # noqa: ANN202 - shapely callback
    def project(nodes: np.ndarray) -> np.ndarray:
        x = grid.node_x(np.rint(nodes[:, 0]).astype(np.int64))
        y = grid.node_y(np.rint(nodes[:, 1]).astype(np.int64))
        lon, lat = transformer.transform(x, y)
        return np.column_stack([lon, lat])

    return project


@define
class VectorsExtension(FactoryExtension):
    """Adds `GET /vectors/{tileMatrixSetId}/{z}/{x}/{y}` to an Otsu factory (any family)."""

    def register(self, factory: "OtsuAnalyticsMixin") -> None:  # type: ignore[override]
        """Register the vectors endpoint on the factory's router."""

        @factory.router.get(
            "/vectors/{tileMatrixSetId}/{z}/{x}/{y}",
            response_class=GeoJSONResponse,
            operation_id=f"{factory.operation_prefix}getVectors",
            summary="Class polygons of a tile as a GeoJSON FeatureCollection (lon/lat).",
        )
        def vectors(
            z: Annotated[int, Path(description="Zoom (TileMatrix identifier).")],
            x: Annotated[int, Path(description="Tile column.")],
            y: Annotated[int, Path(description="Tile row.")],
            tileMatrixSetId: Annotated[
                Literal[tuple(factory.supported_tms.list())],  # type: ignore[valid-type]
                Path(description="TileMatrixSet identifier."),
            ],
            src_path: Annotated[str, Depends(factory.path_dependency)],
            reader_params: Annotated[DefaultDependency, Depends(factory.reader_dependency)],
            tile_params: Annotated[DefaultDependency, Depends(factory.tile_dependency)],
            layer_params: Annotated[DefaultDependency, Depends(factory.layer_dependency)],
            dataset_params: Annotated[DefaultDependency, Depends(factory.dataset_dependency)],
            algorithm: Annotated[BaseAlgorithm | None, Depends(factory.process_dependency)],
            env: Annotated[dict, Depends(factory.environment_dependency)],
            tilesize: Annotated[int | None, Query(gt=0, description="Tile size in pixels.")] = None,
            classes: Annotated[
                str | None, Query(description="Only these classes, comma-separated (e.g. 1,2). Default: all.")
            ] = None,
            simplify: Annotated[
                float,
                Query(
                    ge=0,
                    le=64,
                    description="Simplification tolerance in pixels (0: exact pixel outlines). Tile borders "
                    "are kept, so adjacent tiles still meet exactly.",
                ),
            ] = 0.0,
        ) -> GeoJSONResponse:
            segmentation = segmentation_algorithm(
                factory, algorithm, src_path, reader_params, layer_params, dataset_params
            )
            wanted = parse_classes(classes, segmentation.n_classes)
            tms = factory.supported_tms.get(tileMatrixSetId)
            with rasterio.Env(**env):
                with factory.reader(src_path, tms=tms, **reader_params.as_dict()) as src:
                    image = src.tile(
                        x,
                        y,
                        z,
                        tilesize=tilesize,
                        **tile_params.as_dict(),
                        **layer_params.as_dict(),
                        **dataset_params.as_dict(),
                    )
            out = segmentation(image)
            size = tilesize or tms.matrix(z).tileWidth
            window = tile_window(tms, x, y, z, size)
            geoms, values = class_polygons(
                np.ma.getdata(out.array[0]).astype(np.uint8),
                ~np.ma.getmaskarray(out.array[0]),
                window.col,
                window.row,
                simplify,
            )
            if wanted is not None:
                keep = np.isin(values, sorted(wanted))
                geoms, values = geoms[keep], values[keep]
            limit = factory.settings.max_vector_features
            if len(geoms) > limit:
                raise BadRequestError(
                    f"This tile has {len(geoms)} polygons, more than {limit} (setting MAX_VECTOR_FEATURES): "
                    "add opening/closing, filter with classes=, or use a lower zoom."
                )
            transformer = cached_transformer(tms.rasterio_crs.to_wkt(), "EPSG:4326")
            if len(geoms):
                geoms = shapely.transform(geoms, _to_lonlat(window.grid, transformer))
                geoms = shapely.orient_polygons(geoms)
            features: list[dict[str, Any]] = [
                {"type": "Feature", "geometry": mapping(g), "properties": {"class": int(v)}}
                for g, v in zip(geoms, values, strict=True)
            ]
            thresholds = list((out.metadata or {}).get("thresholds", []))
            return GeoJSONResponse(
                {
                    "type": "FeatureCollection",
                    "features": features,
                    "thresholds": [t if np.isfinite(t) else None for t in thresholds],
                }
            )

"""`POST /stacapi/collections/{collection_id}/timeseries`: class areas of a polygon, date by date.

The collection is searched once for the polygon (with the request's `datetime`, `filter`,
`sortby`); the items that touch the polygon are grouped per item or per UTC day, and each
group is one row: its mosaic (the request's `pixel_selection`) measured exactly as
`POST /areas` measures it (`areas.measure_feature`: native grid, algorithm halo, decimation
beyond `MAX_AOI_PIXELS` flagged, true ground areas). A date's source is the request's source
pinned to the group's items (`StacApiSource.ids`), with `bbox` defaulting to the polygon's
bounding box, so scope `dataset` thresholds are computed per date over that bbox, and the
row is the one `/areas` gives for that date's mosaic. Dates run concurrently in a bounded
thread pool (setting `TIMESERIES_THREADS`); more than `TIMESERIES_MAX_ITEMS` items is a 400.

May import: `core`, `security`, `io`, `algorithms`, `web`, `errors`, `settings` (never `export`).
"""

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pystac
import rasterio
import shapely
from attrs import define
from fastapi import Body, Depends, Query
from fastapi.responses import Response
from geojson_pydantic import Feature, FeatureCollection, MultiPolygon, Polygon
from pydantic import BaseModel, ConfigDict, Field
from titiler.core.algorithm.base import BaseAlgorithm
from titiler.core.dependencies import DefaultDependency
from titiler.core.factory import FactoryExtension

from titiler_otsu.algorithms import SegmentationAlgorithm
from titiler_otsu.errors import BadRequestError, SourceNotFoundError
from titiler_otsu.io.aoi import lonlat_area, repair
from titiler_otsu.io.stac_mosaic import STACAPIBackend, StacApiSource
from titiler_otsu.web.areas import (
    AreaFeature,
    AreaJob,
    ClassArea,
    FeatureAreas,
    measure_feature,
    segmentation_algorithm,
)
from titiler_otsu.web.dependencies import algorithm_dependency
from titiler_otsu.web.stacapi import mosaic_grid

if TYPE_CHECKING:
    from titiler_otsu.web.stacapi import OtsuSTACAPITilerFactory

__all__ = ["DateGroup", "TimeSeriesExtension", "TimeSeriesResponse", "TimeSeriesRow", "date_groups", "rows_to_csv"]

Grouping = Literal["item", "day"]

TimeSeriesBody = Annotated[
    AreaFeature | Polygon | MultiPolygon | FeatureCollection[AreaFeature], Field(discriminator="type")
]


# ---------------------------------------------------------------------- models
class TimeSeriesRow(BaseModel):
    """One date of the series."""

    model_config = ConfigDict(extra="forbid")

    datetime: str = Field(description="The item's datetime (group=item) or the UTC day YYYY-MM-DD (group=day).")
    interval: str = Field(
        description="A STAC `datetime=` that shows this date on the tile endpoints (the instant, or the day)."
    )
    items: list[str] = Field(description="Ids of the items mosaicked for this date (mosaic order).")
    thresholds: list[float | None] = Field(description="Thresholds used for this date (null: no valid pixel).")
    classes: list[ClassArea]
    valid_fraction: float = Field(
        description="Share of the polygon with valid data at this date (not masked, not nodata, inside the items)."
    )
    pixels: int = Field(description="Valid pixels in the polygon (sum over classes).")
    nodata_pixels: int = Field(description="Pixels in the polygon without data (nodata or masked).")
    masked_pixels: int = Field(0, description="Pixels with data that the quality mask removed (part of nodata_pixels).")
    masked_area_m2: float = Field(0.0, description="True ground area of the masked pixels.")
    area_m2: float = Field(description="True ground area of the valid pixels.")
    decimation: int = Field(description="Source pixels per pixel read, per axis (1 = native resolution).")
    overview: bool = Field(description="True when the polygon was read decimated (MAX_AOI_PIXELS).")
    notes: list[str] = Field(default_factory=list)


class TimeSeriesResponse(BaseModel):
    """Response of `POST .../timeseries`: rows in date order."""

    model_config = ConfigDict(extra="forbid")

    collection: str
    algorithm: str
    scope: str
    group: Grouping
    polygon_area_m2: float = Field(description="Ellipsoidal area of the (repaired) polygon.")
    rows: list[TimeSeriesRow]
    notes: list[str] = Field(default_factory=list)


# ---------------------------------------------------------------------- dates
@dataclass(frozen=True)
class DateGroup:
    """Items measured together as one row."""

    label: str
    interval: str
    items: tuple[pystac.Item, ...]


def item_datetime(item: pystac.Item) -> dt.datetime | None:
    """The item's datetime (or start_datetime), timezone-aware UTC."""
    when = item.datetime
    if when is None:
        start = item.properties.get("start_datetime")
        if not start:
            return None
        when = pystac.utils.str_to_datetime(start)
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def _iso(when: dt.datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def date_groups(items: Iterable[pystac.Item], group: Grouping) -> list[DateGroup]:
    """Rows of a series: one per item, or one per UTC day; oldest first (ties by id).

    Within a group the items keep their order in `items` (the mosaic order). Items without a
    datetime are left out.
    """
    dated = [(when, it) for it in items if (when := item_datetime(it)) is not None]
    if group == "item":
        dated.sort(key=lambda p: (p[0], p[1].id))
        return [DateGroup(_iso(when), it.properties.get("datetime") or _iso(when), (it,)) for when, it in dated]
    days: dict[dt.date, list[pystac.Item]] = {}
    for when, it in dated:
        days.setdefault(when.date(), []).append(it)
    return [
        DateGroup(day.isoformat(), f"{day.isoformat()}T00:00:00Z/{day.isoformat()}T23:59:59.999999Z", tuple(its))
        for day, its in sorted(days.items())
    ]


# ---------------------------------------------------------------------- csv
def rows_to_csv(rows: list[TimeSeriesRow]) -> str:
    """The rows as CSV: one line per date, `class_{k}_pixels` / `class_{k}_area_m2` columns.

    `items` and `thresholds` are space-separated (an unknown threshold is empty); floats are
    written with Python's shortest round-trip form, so the CSV holds the JSON's values.
    """
    n_classes = max((len(r.classes) for r in rows), default=0)
    header = ["datetime", "interval", "items", "thresholds", "valid_fraction", "pixels", "nodata_pixels"]
    header += ["masked_pixels", "masked_area_m2", "area_m2", "decimation", "overview"]
    for k in range(n_classes):
        header += [f"class_{k}_pixels", f"class_{k}_area_m2"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for r in rows:
        line: list[Any] = [
            r.datetime,
            r.interval,
            " ".join(r.items),
            " ".join("" if t is None else repr(t) for t in r.thresholds),
            repr(r.valid_fraction),
            r.pixels,
            r.nodata_pixels,
            r.masked_pixels,
            repr(r.masked_area_m2),
            repr(r.area_m2),
            r.decimation,
            str(r.overview).lower(),
        ]
        for c in r.classes:
            line += [c.pixels, repr(c.area_m2)]
        writer.writerow(line)
    return out.getvalue()


# ---------------------------------------------------------------------- computation
def _single_feature(body: Any) -> AreaFeature:
    """The request's polygon as a Feature (a Feature, a bare geometry or a one-feature collection)."""
    if isinstance(body, FeatureCollection):
        if len(body.features) != 1:
            raise BadRequestError(
                f"A time series is measured over one polygon; the FeatureCollection has {len(body.features)} "
                "features. Send one Feature (a MultiPolygon for several parts)."
            )
        return body.features[0]
    if isinstance(body, Feature):
        return body
    return AreaFeature(type="Feature", geometry=body, properties={})


def row_from_areas(group: DateGroup, areas: FeatureAreas) -> TimeSeriesRow:
    """A series row from the `/areas` result of the date's mosaic."""
    seen = areas.pixels + areas.nodata_pixels
    valid = areas.coverage * areas.pixels / seen if seen else 0.0
    return TimeSeriesRow(
        datetime=group.label,
        interval=group.interval,
        items=[it.id for it in group.items],
        thresholds=areas.thresholds,
        classes=areas.classes,
        valid_fraction=min(1.0, valid),
        pixels=areas.pixels,
        nodata_pixels=areas.nodata_pixels,
        masked_pixels=areas.masked_pixels,
        masked_area_m2=areas.masked_area_m2,
        area_m2=areas.area_m2,
        decimation=areas.decimation,
        overview=areas.overview,
        notes=areas.notes,
    )


@dataclass(frozen=True)
class SeriesRequest:
    """What every date of one time-series request shares."""

    factory: "OtsuSTACAPITilerFactory"
    source: StacApiSource
    feature: AreaFeature
    algorithm: BaseAlgorithm | None
    reader_params: DefaultDependency
    layer_params: DefaultDependency
    dataset_params: DefaultDependency
    env: dict

    def algorithm_for(self, key: str) -> SegmentationAlgorithm:
        """A fresh copy of the request's algorithm, bound to the date's dataset histogram."""
        alg = self.algorithm.model_copy(deep=True) if self.algorithm is not None else None
        segmentation = segmentation_algorithm(
            self.factory, alg, key, self.reader_params, self.layer_params, self.dataset_params
        )
        if alg is not None and segmentation.needs_dataset_histogram:
            segmentation.bind_dataset_histogram(
                self.factory.dataset_histogram(
                    key, self.reader_params, self.layer_params, self.dataset_params, segmentation.nbins
                )
            )
        return segmentation

    def row(self, group: DateGroup) -> TimeSeriesRow:
        """Measure the polygon on one date's mosaic (the source pinned to the group's items).

        Items whose footprint touches the polygon but whose rasters hold nothing there (an
        imprecise STAC geometry) give a row without valid pixels and a note, not a failed series.
        """
        try:
            return self._measure(group)
        except SourceNotFoundError as e:
            n_classes = self.algorithm.n_classes if isinstance(self.algorithm, SegmentationAlgorithm) else 2
            return TimeSeriesRow(
                datetime=group.label,
                interval=group.interval,
                items=[it.id for it in group.items],
                thresholds=[None] * (n_classes - 1),
                classes=[ClassArea(class_=k, pixels=0, fraction=0.0, area_m2=0.0) for k in range(n_classes)],
                valid_fraction=0.0,
                pixels=0,
                nodata_pixels=0,
                area_m2=0.0,
                decimation=1,
                overview=False,
                notes=[f"No data of these items over the polygon ({e})."],
            )

    def _measure(self, group: DateGroup) -> TimeSeriesRow:
        key = replace(self.source, ids=tuple(it.id for it in group.items)).key
        with rasterio.Env(**self.env):
            segmentation = self.algorithm_for(key)
            with self.factory.reader(key, **self.reader_params.as_dict()) as src:
                job = AreaJob(
                    src=src,
                    grid=mosaic_grid(src),
                    algorithm=segmentation,
                    read_options={**self.layer_params.as_dict(), **self.dataset_params.as_dict()},
                    max_pixels=self.factory.settings.max_aoi_pixels,
                )
                return row_from_areas(group, measure_feature(job, 0, self.feature))


@define
class TimeSeriesExtension(FactoryExtension):
    """Adds `POST /timeseries` to the `/stacapi` factory."""

    def register(self, factory: "OtsuSTACAPITilerFactory") -> None:  # type: ignore[override]
        """Register `POST /timeseries` on the factory's router."""
        parse_algorithm = algorithm_dependency(factory.algorithm_registry, factory.settings)
        settings = factory.settings

        @factory.router.post(
            "/timeseries",
            response_model=TimeSeriesResponse,
            operation_id=f"{factory.operation_prefix}postTimeSeries",
            summary="Class pixels and true areas inside a polygon for every date of a search.",
            responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
        )
        def timeseries(
            geojson: Annotated[
                TimeSeriesBody,
                Body(description="One GeoJSON Polygon or MultiPolygon (or a Feature of one) in lon/lat."),
            ],
            algorithm: Annotated[BaseAlgorithm | None, Depends(parse_algorithm)],
            src_path: Annotated[str, Depends(factory.path_dependency)],
            reader_params: Annotated[DefaultDependency, Depends(factory.reader_dependency)],
            layer_params: Annotated[DefaultDependency, Depends(factory.layer_dependency)],
            dataset_params: Annotated[DefaultDependency, Depends(factory.dataset_dependency)],
            env: Annotated[dict, Depends(factory.environment_dependency)],
            group: Annotated[
                Grouping, Query(description="One row per item, or per UTC day (a day's items mosaicked).")
            ] = "item",
            format: Annotated[Literal["json", "csv"], Query(description="Response format.")] = "json",
        ) -> Any:
            feature = _single_feature(geojson)
            if feature.geometry is None:
                raise BadRequestError("The Feature has no geometry: give a Polygon or MultiPolygon in lon/lat.")
            polygon = repair(shapely.geometry.shape(feature.geometry.model_dump(exclude_none=True)))[0]
            requested = StacApiSource.from_key(src_path)
            groups, notes = self._groups(factory, requested, polygon, group)
            source = replace(requested, bbox=requested.bbox or tuple(polygon.bounds))
            series = SeriesRequest(
                factory, source, feature, algorithm, reader_params, layer_params, dataset_params, env
            )
            rows = _run_bounded(series.row, groups, settings.timeseries_threads)
            name, scope = _algorithm_label(algorithm)
            response = TimeSeriesResponse(
                collection=source.collection,
                algorithm=name,
                scope=scope,
                group=group,
                polygon_area_m2=lonlat_area(polygon),
                rows=rows,
                notes=notes,
            )
            if format == "csv":
                return Response(rows_to_csv(rows), media_type="text/csv")
            return response

    @staticmethod
    def _groups(
        factory: "OtsuSTACAPITilerFactory", source: StacApiSource, polygon: Any, group: Grouping
    ) -> tuple[list[DateGroup], list[str]]:
        """Items of the search touching the polygon, grouped into dates (limits enforced), and notes."""
        settings = factory.settings
        with factory.reader(source.key) as mosaic:
            assert isinstance(mosaic, STACAPIBackend)
            if not polygon.intersects(shapely.box(*mosaic.bounds)):
                raise SourceNotFoundError(
                    f"The polygon does not overlap the extent of collection '{source.collection}' "
                    f"{tuple(round(v, 4) for v in mosaic.bounds)} (lon/lat)."
                )
            bbox = tuple(polygon.bounds)
            result = mosaic.searcher.search(source.search_query(bbox))
        if result.truncated:
            raise BadRequestError(
                f"The search finds more than {settings.stac_max_items} items over this polygon (setting "
                "STAC_MAX_ITEMS): narrow datetime= (or add a filter)."
            )
        items = [
            it for it in result.items if it.geometry is None or shapely.geometry.shape(it.geometry).intersects(polygon)
        ]
        limit = settings.timeseries_max_items
        if len(items) > limit:
            raise BadRequestError(
                f"The search finds {len(items)} items over this polygon; a time series measures at most {limit} "
                "(setting TIMESERIES_MAX_ITEMS): narrow datetime= (or add a filter)."
            )
        if not items:
            raise SourceNotFoundError(
                f"No item of collection '{source.collection}' touches the polygon"
                + (f" for datetime={source.datetime}." if source.datetime else ".")
            )
        groups = date_groups(items, group)
        undated = len(items) - sum(len(g.items) for g in groups)
        notes = [f"{undated} item(s) without datetime or start_datetime were left out."] if undated else []
        return groups, notes


def _algorithm_label(algorithm: BaseAlgorithm | None) -> tuple[str, str]:
    if algorithm is None:
        return "otsu", "dataset"
    name = getattr(type(algorithm), "algorithm_name", None)
    return (name() if callable(name) else type(algorithm).__name__.lower()), str(getattr(algorithm, "scope", ""))


def _run_bounded(
    work: Callable[[DateGroup], TimeSeriesRow], groups: list[DateGroup], threads: int
) -> list[TimeSeriesRow]:
    """`work` on every group, at most `threads` at a time; results in the groups' order."""
    if len(groups) <= 1 or threads <= 1:
        return [work(g) for g in groups]
    with ThreadPoolExecutor(max_workers=min(threads, len(groups)), thread_name_prefix="timeseries") as pool:
        return list(pool.map(work, groups))

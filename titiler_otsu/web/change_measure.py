"""What `POST change/areas` measures: change classes, the transition matrix and their areas.

`change_classes` combines two binary class images of the same grid into

    0 background at both dates, 1 foreground at both, 2 gained, 3 lost

(nodata where either date has no valid pixel); `measure_change` reads both dates of a polygon
on the *after* source's grid (as `/areas` reads one) and measures the class transitions and,
for binary algorithms, the change classes, in pixels and true ground area.

May import: `core`, `security`, `io`, `algorithms`, `web`, `errors`, `settings` (never `export`).
"""

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from rio_tiler.models import ImageData

from titiler_otsu.algorithms import SegmentationAlgorithm
from titiler_otsu.web.areas import AreaFeature, AreaJob, ClassArea, _finite_or_none, plan_feature, read_classes

__all__ = [
    "BACKGROUND",
    "GAINED",
    "LOST",
    "STABLE",
    "ChangeAreasResponse",
    "ChangeFeature",
    "FeatureChange",
    "change_classes",
    "measure_change",
    "transition_counts",
]

#: Change classes.
BACKGROUND, STABLE, GAINED, LOST = 0, 1, 2, 3
CHANGE_NAMES = {BACKGROUND: "background at both dates", STABLE: "foreground at both", GAINED: "gained", LOST: "lost"}


def change_classes(before: ImageData, after: ImageData) -> ImageData:
    """Change classes of two binary class images on the same grid (nodata where either has none)."""
    b = np.ma.getdata(before.array[0])
    a = np.ma.getdata(after.array[0])
    valid = ~np.ma.getmaskarray(before.array[0]) & ~np.ma.getmaskarray(after.array[0])
    code = np.zeros(b.shape, dtype=np.uint8)
    code[(b == 1) & (a == 1)] = STABLE
    code[(b == 0) & (a == 1)] = GAINED
    code[(b == 1) & (a == 0)] = LOST
    return ImageData(
        np.ma.MaskedArray(code[np.newaxis], mask=~valid[np.newaxis]),
        bounds=after.bounds,
        crs=after.crs,
        band_names=["change"],
        metadata={"otsu_classes": 4},
    )


def transition_counts(before: np.ndarray, after: np.ndarray, valid: np.ndarray, n_classes: int) -> np.ndarray:
    """(n, n) matrix: pixels of class i before and class j after, among `valid`."""
    index = before[valid].astype(np.int64) * n_classes + after[valid].astype(np.int64)
    return np.bincount(index, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


# ---------------------------------------------------------------------- response models
class Transition(BaseModel):
    """Pixels and true ground area that were class `before` at the first date and `after` at the second."""

    before: int
    after: int
    pixels: int
    area_m2: float


class ChangeThresholds(BaseModel):
    """Thresholds used at each date (null: no valid pixel)."""

    before: list[float | None]
    after: list[float | None]


class FeatureChange(BaseModel):
    """Change results of one input feature (under `properties`)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    index: int
    id: int | float | str | None = None
    classes: list[ClassArea] = Field(
        description="Change classes (binary algorithms): 0 background at both dates, 1 foreground at both, "
        "2 gained, 3 lost. Empty for multi-class algorithms: see transitions."
    )
    transitions: list[Transition] = Field(description="Class transition matrix, row by row (before, after).")
    gained_area_m2: float | None = Field(None, description="Area of class 2 (binary algorithms).")
    lost_area_m2: float | None = Field(None, description="Area of class 3 (binary algorithms).")
    thresholds: ChangeThresholds
    pixels: int = Field(description="Pixels valid at both dates in the polygon.")
    nodata_pixels: int = Field(description="Pixels in the polygon without data at one date or both.")
    masked_pixels: int = Field(0, description="Pixels with data that the quality mask removed at one date or both.")
    masked_area_m2: float = 0.0
    area_m2: float
    polygon_area_m2: float
    coverage: float
    outside_source: bool
    resolution_m: float | None
    pixel_area_m2: float | None
    decimation: int
    overview: bool
    repaired: bool
    notes: list[str] = Field(default_factory=list)


class ChangeFeature(BaseModel):
    """An input feature with its change results under `properties`."""

    type: Literal["Feature"] = "Feature"
    id: int | float | str | None = None
    geometry: dict[str, Any] | None
    properties: FeatureChange


class ChangeAreasResponse(BaseModel):
    """`POST change/areas`: a GeoJSON FeatureCollection of the input features (with foreign members)."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    algorithm: str
    scope: str
    before: str = Field(description="The first date's source (search or file).")
    after: str = Field(description="The second date's source.")
    features: list[ChangeFeature]


def measure_change(
    job: AreaJob, before_src: Any, before_alg: SegmentationAlgorithm, index: int, feature: AreaFeature
) -> FeatureChange:
    """Change classes and transitions of one feature: both dates read on the job's (after) grid."""
    n = job.algorithm.n_classes
    fp = plan_feature(job, index, feature, n)
    r = fp.result
    result: dict[str, Any] = {
        k: r[k]
        for k in (
            "index", "id", "polygon_area_m2", "coverage", "outside_source", "resolution_m", "pixel_area_m2",
            "decimation", "overview", "repaired", "notes",
        )
    }  # fmt: skip
    binary = n == 2
    empty = [Transition(before=i, after=j, pixels=0, area_m2=0.0) for i in range(n) for j in range(n)]
    result.update(
        classes=[ClassArea(class_=k, pixels=0, fraction=0.0, area_m2=0.0) for k in range(4)] if binary else [],
        transitions=empty,
        thresholds=ChangeThresholds(before=[], after=[]),
        pixels=0,
        nodata_pixels=0,
        area_m2=0.0,
        gained_area_m2=0.0 if binary else None,
        lost_area_m2=0.0 if binary else None,
    )
    if fp.plan is None or fp.in_polygon is None:
        return FeatureChange(**result)
    after_out, after_removed = read_classes(job.src, job.algorithm, fp.plan, job.grid, job.read_options)
    before_out, before_removed = read_classes(before_src, before_alg, fp.plan, job.grid, job.read_options)
    b = np.ma.getdata(before_out.array[0])
    a = np.ma.getdata(after_out.array[0])
    valid = ~np.ma.getmaskarray(before_out.array[0]) & ~np.ma.getmaskarray(after_out.array[0])
    inside = fp.in_polygon & valid
    transitions = []
    for i in range(n):
        for j in range(n):
            pixels, area = fp.measure(inside & (b == i) & (a == j))
            transitions.append(Transition(before=i, after=j, pixels=pixels, area_m2=area))
    total = sum(t.pixels for t in transitions)
    result["transitions"] = transitions
    result["pixels"] = total
    result["area_m2"] = float(sum(t.area_m2 for t in transitions))
    result["nodata_pixels"] = int((fp.in_polygon & ~valid).sum())
    result["thresholds"] = ChangeThresholds(
        before=_finite_or_none(list((before_out.metadata or {}).get("thresholds", []))),
        after=_finite_or_none(list((after_out.metadata or {}).get("thresholds", []))),
    )
    removed = [m for m in (before_removed, after_removed) if m is not None]
    if removed:
        result["masked_pixels"], result["masked_area_m2"] = fp.measure(fp.in_polygon & np.logical_or.reduce(removed))
    if binary:
        code = np.ma.getdata(change_classes(before_out, after_out).array[0])
        classes = []
        for k in range(4):
            pixels, area = fp.measure(inside & (code == k))
            classes.append(ClassArea(class_=k, pixels=pixels, fraction=pixels / total if total else 0.0, area_m2=area))
        result["classes"] = classes
        result["gained_area_m2"] = classes[GAINED].area_m2
        result["lost_area_m2"] = classes[LOST].area_m2
    return FeatureChange(**result)

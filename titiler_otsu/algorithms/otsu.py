"""Global Otsu segmentation algorithms: `otsu` (binary) and `multiotsu` (2-5 classes).

May import: `core`, `algorithms`, `errors`, `settings`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import ConfigDict, Field, PrivateAttr, model_validator
from rio_tiler.models import ImageData
from titiler.core.algorithm.base import BaseAlgorithm

from titiler_otsu.core.classify import classify
from titiler_otsu.core.filters import (
    clean_classes,
    gaussian_support,
    masked_gaussian,
    morphology_support,
)
from titiler_otsu.core.histogram import Histogram, valid_histogram
from titiler_otsu.core.multiotsu import threshold_multiotsu_from_histogram
from titiler_otsu.core.otsu import threshold_otsu_from_histogram
from titiler_otsu.errors import BadRequestError, MultiBandInputError

__all__ = ["SegmentationAlgorithm", "Otsu", "MultiOtsu"]

Scope = Literal["dataset", "tile", "fixed"]


class SegmentationAlgorithm(BaseAlgorithm):
    """Base of the threshold segmentation algorithms.

    Subclasses say how many classes they make and how thresholds are found; this base
    handles the single-band check, pre-smoothing, clean-up, halo cropping and metadata.
    """

    model_config = ConfigDict(extra="forbid")

    # metadata
    title: ClassVar[str] = "Segmentation"
    description: ClassVar[str] = ""
    input_nbands: ClassVar[int] = 1  # type: ignore[misc]
    output_nbands: ClassVar[int] = 1  # type: ignore[misc]
    output_dtype: ClassVar[str] = "uint8"  # type: ignore[misc]
    output_min: ClassVar[list[int]] = [0]  # type: ignore[misc]
    output_max: ClassVar[list[int]] = [1]  # type: ignore[misc]

    # parameters
    scope: Scope = Field(
        "dataset",
        description="Where thresholds come from: 'dataset' (the whole source's histogram, "
        "the same for every tile), 'tile' (the tile's own pixels) or 'fixed' (given values).",
    )
    nbins: int = Field(256, ge=2, le=4096, description="Histogram bins for non-8-bit data.")
    sigma: float = Field(0.0, ge=0.0, le=16.0, description="Gaussian pre-smoothing, pixels.")
    opening: int = Field(0, ge=0, le=16, description="Opening radius (removes specks), pixels.")
    closing: int = Field(0, ge=0, le=16, description="Closing radius (fills holes), pixels.")
    invert: bool = Field(False, description="Foreground is the dark side (e.g. water in NIR).")

    _dataset_histogram: Histogram | None = PrivateAttr(default=None)
    _last_thresholds: list[float] | None = PrivateAttr(default=None)

    @property
    def halo(self) -> int:
        """Pixels of context needed on each side of a tile for seamless results."""
        return gaussian_support(self.sigma) + morphology_support(self.opening, self.closing)

    @property
    def n_classes(self) -> int:
        """Number of output classes."""
        return 2

    @property
    def needs_dataset_histogram(self) -> bool:
        """True when thresholds come from the dataset histogram."""
        return self.scope == "dataset"

    @property
    def last_thresholds(self) -> list[float] | None:
        """Thresholds used by the last call (for the `X-Otsu-Thresholds` header)."""
        return self._last_thresholds

    def bind_dataset_histogram(self, histogram: Histogram) -> None:
        """Attach the dataset histogram that `scope='dataset'` thresholds come from."""
        self._dataset_histogram = histogram

    def fixed_thresholds(self) -> list[float] | None:
        """Thresholds given by the user (scope 'fixed')."""
        raise NotImplementedError

    def thresholds_from_histogram(self, histogram: Histogram) -> list[float]:
        """Thresholds of a histogram (Otsu or multi-Otsu)."""
        raise NotImplementedError

    def dataset_thresholds(self) -> list[float]:
        """Thresholds for scope 'dataset' (from the bound dataset histogram)."""
        if self._dataset_histogram is None:
            raise BadRequestError(
                "scope 'dataset' needs the source's histogram, which this endpoint cannot "
                "compute; use scope 'tile' or 'fixed'."
            )
        return self.thresholds_from_histogram(self._dataset_histogram)

    def __call__(self, img: ImageData) -> ImageData:
        """Segment a one-band image into classes (uint8), cropping the halo."""
        if img.count != 1:
            raise MultiBandInputError(
                f"'{self.algorithm_name()}' segments one band but the input has {img.count} "
                f"bands ({', '.join(img.band_names)}). Pick a band with `bidx` (e.g. bidx=1) "
                "or build one with `expression` (e.g. expression=(b4-b1)/(b4+b1))."
            )
        halo = int(img.metadata.get("halo", 0)) if img.metadata else 0
        band = img.array[0]
        valid = ~np.ma.getmaskarray(band)
        values = np.ma.getdata(band)
        if values.dtype.kind == "f":
            valid &= np.isfinite(values)
        if self.sigma > 0:
            values = masked_gaussian(values, valid, self.sigma)
            valid &= np.isfinite(values)

        thresholds = self._thresholds_for(values, valid, halo)
        classes = classify(values, thresholds, invert=self.invert)
        if self.opening or self.closing:
            classes = clean_classes(classes, valid, self.opening, self.closing)
        classes = np.where(valid, classes, 0).astype(np.uint8)

        bounds = img.bounds
        if halo:
            classes = classes[halo:-halo, halo:-halo]
            valid = valid[halo:-halo, halo:-halo]
            left, bottom, right, top = img.bounds  # type: ignore[misc]
            rx = (right - left) / img.width
            ry = (top - bottom) / img.height
            bounds = (left + halo * rx, bottom + halo * ry, right - halo * rx, top - halo * ry)

        self._last_thresholds = thresholds
        return ImageData(
            np.ma.MaskedArray(classes[None], mask=~valid[None]),
            assets=img.assets,
            crs=img.crs,
            bounds=bounds,
            band_names=["class"],
            metadata={
                **(img.metadata or {}),
                "halo": 0,
                "otsu_classes": self.n_classes,
                "thresholds": thresholds,
            },
            nodata=0,
        )

    def _thresholds_for(self, values: np.ndarray, valid: np.ndarray, halo: int) -> list[float]:
        if self.scope == "fixed":
            return list(self.fixed_thresholds() or [])
        if self.scope == "dataset":
            return self.dataset_thresholds()
        inner = (slice(halo, -halo), slice(halo, -halo)) if halo else (slice(None), slice(None))
        histogram = valid_histogram(values[inner], valid[inner], nbins=self.nbins)
        return self.thresholds_from_histogram(histogram)

    @classmethod
    def algorithm_name(cls) -> str:
        """Registry name of the algorithm."""
        return cls.__name__.lower()


class Otsu(SegmentationAlgorithm):
    """Binary Otsu: class 1 above the threshold (below it with `invert`)."""

    title: ClassVar[str] = "Otsu threshold"
    description: ClassVar[str] = (
        "Binary segmentation by Otsu's threshold: 1 = foreground (above the threshold, or "
        "at/below it with invert), 0 = background."
    )

    threshold: float | None = Field(None, description="Threshold for scope 'fixed'.")

    @model_validator(mode="after")
    def _check_scope(self) -> Otsu:
        if self.scope == "fixed" and self.threshold is None:
            raise ValueError('scope \'fixed\' needs \'threshold\' (e.g. {"scope": "fixed", "threshold": 92})')
        if self.scope != "fixed" and self.threshold is not None:
            raise ValueError("'threshold' is only used with scope 'fixed': add \"scope\": \"fixed\"")
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise ValueError("'threshold' must be a finite number")
        return self

    def fixed_thresholds(self) -> list[float] | None:
        """The user's threshold."""
        return None if self.threshold is None else [float(self.threshold)]

    def thresholds_from_histogram(self, histogram: Histogram) -> list[float]:
        """Otsu's threshold of a histogram."""
        return [float(threshold_otsu_from_histogram(histogram))]


class MultiOtsu(SegmentationAlgorithm):
    """Multi-class Otsu: class k has exactly k thresholds below its value."""

    title: ClassVar[str] = "Multi-Otsu thresholds"
    description: ClassVar[str] = (
        "Segmentation into `classes` (2-5) brightness classes by multi-level Otsu; class k "
        "holds values above k thresholds (reversed with invert)."
    )
    output_max: ClassVar[list[int]] = [4]  # type: ignore[misc]

    classes: int = Field(3, ge=2, le=5, description="Number of classes (2-5).")
    thresholds: list[float] | None = Field(
        None, description="Ascending thresholds for scope 'fixed' (classes - 1 values)."
    )

    @model_validator(mode="after")
    def _check_scope(self) -> MultiOtsu:
        if self.scope == "fixed":
            if self.thresholds is None:
                raise ValueError(
                    "scope 'fixed' needs 'thresholds' (classes - 1 ascending values, "
                    'e.g. {"scope": "fixed", "classes": 3, "thresholds": [60, 120]})'
                )
            if len(self.thresholds) != self.classes - 1:
                raise ValueError(
                    f"'thresholds' needs classes - 1 = {self.classes - 1} values, got {len(self.thresholds)}"
                )
            if not all(math.isfinite(t) for t in self.thresholds):
                raise ValueError("'thresholds' must be finite numbers")
            if any(b < a for a, b in zip(self.thresholds, self.thresholds[1:], strict=False)):
                raise ValueError("'thresholds' must be in ascending order")
        elif self.thresholds is not None:
            raise ValueError("'thresholds' is only used with scope 'fixed': add \"scope\": \"fixed\"")
        return self

    @property
    def n_classes(self) -> int:
        """Number of output classes."""
        return self.classes

    def fixed_thresholds(self) -> list[float] | None:
        """The user's thresholds."""
        return None if self.thresholds is None else [float(t) for t in self.thresholds]

    def thresholds_from_histogram(self, histogram: Histogram) -> list[float]:
        """Multi-Otsu thresholds of a histogram."""
        return [float(t) for t in threshold_multiotsu_from_histogram(histogram, self.classes)]


def describe(algorithm: type[BaseAlgorithm]) -> dict[str, Any]:
    """Metadata of an algorithm class (title, description, inputs, outputs)."""
    keys = ("nbands", "dtype", "min", "max")
    return {
        "title": getattr(algorithm, "title", None),
        "description": getattr(algorithm, "description", None),
        "inputs": {"nbands": getattr(algorithm, "input_nbands", None)},
        "outputs": {k: getattr(algorithm, f"output_{k}", None) for k in keys},
    }

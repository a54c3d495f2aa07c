"""`/stac`: one STAC Item, multi-asset, grid-exact, with Otsu analytics.

`OtsuMultiBaseTilerFactory` is TiTiler's `MultiBaseTilerFactory` over `GridExactSTACReader`
(`titiler_otsu.io.stac_reader`: every asset sampled on the same window of the TMS global
pixel grid) with our analytics mixin; `StacLayerParams` takes `assets=` and asset-name
expressions, `stac_path_dependency` checks `url=` against the allow-list.

May import: `core`, `security`, `io`, `algorithms`, `web`, `errors`, `settings` (never `export`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from attrs import define, field
from fastapi import Query
from rio_tiler.io import MultiBaseReader
from titiler.core.algorithm import Algorithms
from titiler.core.dependencies import AssetsParams, DefaultDependency, ExpressionParams, _parse_asset
from titiler.core.factory import FactoryExtension, MultiBaseTilerFactory

from titiler_otsu.algorithms import otsu_algorithms
from titiler_otsu.io.histograms import DatasetHistograms
from titiler_otsu.io.stac_reader import GridExactSTACReader
from titiler_otsu.security.sources import SourcePolicy
from titiler_otsu.settings import Settings
from titiler_otsu.web.areas import AreasExtension
from titiler_otsu.web.mask_params import QualityMaskParams
from titiler_otsu.web.mixin import OtsuAnalyticsMixin
from titiler_otsu.web.render import render_tile
from titiler_otsu.web.vectors import VectorsExtension

__all__ = ["OtsuMultiBaseTilerFactory", "StacLayerParams", "stac_path_dependency"]


def stac_path_dependency(policy: SourcePolicy) -> Callable[..., str]:
    """`url=` of a STAC Item, checked against the allow-list."""

    def item_path(
        url: Annotated[str, Query(description="Path or URL of a STAC Item (JSON).")],
    ) -> str:
        return policy.resolve(url)

    return item_path


@dataclass
class StacLayerParams(ExpressionParams):
    """`assets` (optional when `expression` names them) and `expression` (asset names or b1, b2...)."""

    assets: Annotated[
        list[str] | None,
        Query(
            title="Asset names",
            description="Assets to read (`NAME` or `NAME|bidx=1`); optional when `expression` names them.",
        ),
    ] = None
    asset_as_band: Annotated[bool | None, Query(description="Name bands after their asset.")] = None

    def __post_init__(self) -> None:
        """Parse `NAME|bidx=...` asset options like TiTiler."""
        if self.assets:
            self.assets = _parse_asset(self.assets)  # type: ignore[assignment]


@define(kw_only=True)
class OtsuMultiBaseTilerFactory(OtsuAnalyticsMixin, MultiBaseTilerFactory):
    """TiTiler's multi-asset factory (STAC Items) with grid-exact tiles and Otsu analytics."""

    reader: type[MultiBaseReader] = GridExactSTACReader
    layer_dependency: type[DefaultDependency] = StacLayerParams
    assets_dependency: type[DefaultDependency] = AssetsParams
    settings: Settings = field(factory=Settings)
    histograms: DatasetHistograms | None = field(default=None)
    algorithm_registry: Algorithms = field(factory=otsu_algorithms)
    render_func: Any = render_tile
    reader_dependency: type[DefaultDependency] = QualityMaskParams
    add_ogc_maps: bool = False
    extensions: list[FactoryExtension] = field(factory=lambda: [AreasExtension(), VectorsExtension()])

"""`/cog`: TiTiler's `TilerFactory` for one COG/GeoTIFF with the Otsu mixin and its extensions.

May import: `web.mixin` and the extensions, `io`, `algorithms`, `settings`.
"""

from typing import Any

from attrs import define, field
from rio_tiler.io import BaseReader
from titiler.core.algorithm import Algorithms
from titiler.core.factory import FactoryExtension, TilerFactory

from titiler_otsu.algorithms import otsu_algorithms
from titiler_otsu.io.histograms import DatasetHistograms
from titiler_otsu.io.reader import GridExactReader
from titiler_otsu.settings import Settings
from titiler_otsu.web.areas import AreasExtension
from titiler_otsu.web.mixin import OtsuAnalyticsMixin
from titiler_otsu.web.render import render_tile
from titiler_otsu.web.vectors import VectorsExtension


@define(kw_only=True)
class OtsuTilerFactory(OtsuAnalyticsMixin, TilerFactory):
    """`TilerFactory` for one COG/GeoTIFF, with grid-exact tiles and Otsu analytics."""

    reader: type[BaseReader] = GridExactReader
    settings: Settings = field(factory=Settings)
    histograms: DatasetHistograms | None = field(default=None)
    algorithm_registry: Algorithms = field(factory=otsu_algorithms)
    render_func: Any = render_tile
    add_ogc_maps: bool = False
    extensions: list[FactoryExtension] = field(factory=lambda: [AreasExtension(), VectorsExtension()])

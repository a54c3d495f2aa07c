"""Tile matrix sets shared between requests.

morecantile's `TileMatrixSets.get` returns a deep copy of the TMS on every call, and
TiTiler calls it on every tile request: ~0.8 ms of copying a pydantic model, plus its
`rasterio_crs` rebuilt from scratch on each copy (together ~14 % of a served 256-px tile,
profiled with py-spy). Nothing on the tile path modifies a TMS, so one instance per
identifier is handed out instead; its cached properties (CRS objects, transformers) then
stay warm across requests.

May import: `core`, `security`, `io`, `algorithms`, `web`, `errors`, `settings` (never `export`).
"""

from __future__ import annotations

import threading

import attr
import morecantile
from morecantile import TileMatrixSet
from morecantile.defaults import TileMatrixSets


@attr.s(frozen=True)
class SharedTileMatrixSets(TileMatrixSets):
    """`TileMatrixSets` whose `get` returns the same instance for an identifier every time."""

    _shared: dict[str, TileMatrixSet] = attr.ib(factory=dict, init=False, repr=False)
    _lock: threading.Lock = attr.ib(factory=threading.Lock, init=False, repr=False)

    def get(self, identifier: str) -> TileMatrixSet:
        """The TMS `identifier` (one shared instance; do not modify it)."""
        tms = self._shared.get(identifier)
        if tms is None:
            with self._lock:
                tms = self._shared.get(identifier)
                if tms is None:
                    tms = super().get(identifier)  # raises InvalidIdentifier for unknown ones
                    self._shared[identifier] = tms
        return tms

    def register(self, custom_tms: dict[str, TileMatrixSet], overwrite: bool = False) -> SharedTileMatrixSets:
        """A new holder with `custom_tms` added (see `TileMatrixSets.register`)."""
        return SharedTileMatrixSets(super().register(custom_tms, overwrite).tilematrixsets)


def shared_tms(base: TileMatrixSets | None = None) -> SharedTileMatrixSets:
    """The TMS of `base` (default: morecantile's), handed out without copies."""
    return SharedTileMatrixSets(dict((base or morecantile.tms).tilematrixsets))

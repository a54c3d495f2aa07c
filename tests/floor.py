"""The request floor of a read: the internal blocks of a COG level that a pixel window overlaps.

`BlockIndex(path)` reads the TIFF's tile offsets and byte counts of every level (full
resolution and each internal overview) with tifffile, once. `floor(factor, window)` gives
the blocks (offset, size) a read of `window` (col_off, row_off, width, height, in pixels of
the level with that decimation factor) must fetch, with the header cached: the fewest range
requests (one per block, or fewer when consecutive blocks are merged) and bytes possible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tifffile


@dataclass(frozen=True)
class Level:
    """One TIFF level: size, block size, and per-block (offset, byte count)."""

    width: int
    height: int
    block_width: int
    block_height: int
    offsets: tuple[int, ...]
    sizes: tuple[int, ...]

    @property
    def blocks_across(self) -> int:
        """Blocks per row."""
        return -(-self.width // self.block_width)


class BlockIndex:
    """Tile offsets and byte counts of every level of a tiled (COG) GeoTIFF."""

    def __init__(self, path: Path) -> None:
        """Read the index of `path` (only the TIFF directories)."""
        self.levels: dict[int, Level] = {}
        with tifffile.TiffFile(path) as tif:
            pages = [p for p in tif.pages if not (getattr(p, "subfiletype", 0) & 4)]  # skip masks
            full = pages[0]
            for page in pages:
                factor = round(full.imagewidth / page.imagewidth)
                self.levels[factor] = Level(
                    page.imagewidth,
                    page.imagelength,
                    page.tilewidth,
                    page.tilelength,
                    tuple(int(o) for o in page.dataoffsets),
                    tuple(int(b) for b in page.databytecounts),
                )
        self.file_size = Path(path).stat().st_size
        self.header_size = min(min(lv.offsets) for lv in self.levels.values() if lv.offsets)

    def blocks(self, factor: int, window: tuple[int, int, int, int]) -> list[tuple[int, int]]:
        """(offset, size) of the non-empty blocks of level `factor` that `window` overlaps."""
        level = self.levels[factor]
        c0, r0, w, h = window
        bx0, by0 = c0 // level.block_width, r0 // level.block_height
        bx1, by1 = (c0 + w - 1) // level.block_width, (r0 + h - 1) // level.block_height
        out = []
        for by in range(by0, by1 + 1):
            for bx in range(bx0, bx1 + 1):
                i = by * level.blocks_across + bx
                if level.sizes[i] > 0:
                    out.append((level.offsets[i], level.sizes[i]))
        return out

    def floor(self, factor: int, window: tuple[int, int, int, int] | None) -> tuple[int, int]:
        """(blocks, bytes) a read of `window` at level `factor` needs (header cached)."""
        if window is None:
            return 0, 0
        blocks = self.blocks(factor, window)
        return len(blocks), sum(size for _, size in blocks)

    def bytes_by_level(self, start: int, end: int) -> dict[int, int]:
        """Bytes of the range `start..end` (inclusive) that fall in each level's blocks."""
        out: dict[int, int] = {}
        for factor, level in self.levels.items():
            for offset, size in zip(level.offsets, level.sizes, strict=True):
                overlap = min(end + 1, offset + size) - max(start, offset)
                if size and overlap > 0:
                    out[factor] = out.get(factor, 0) + overlap
        return out

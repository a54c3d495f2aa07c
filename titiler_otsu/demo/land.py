"""The demo scene's land: field parcels, forest, reed belts, villages, roads and relief.

May import: anything in the package (top-level glue).
"""

from __future__ import annotations

import math

import numpy as np
from rasterio.features import rasterize
from scipy import ndimage

from titiler_otsu.demo.bands import _CROPS, _FOREST, _GARDEN, _MARGIN, _REED, _ROAD, _ROOF
from titiler_otsu.demo.draw import _blend, _blur, _coords, _draw_line, _noise, _spline, _window

_ROADS: tuple[tuple[tuple[float, float], ...], ...] = (
    ((-0.02, 0.64), (0.15, 0.61), (0.31, 0.67), (0.50, 0.84), (0.69, 1.03)),
    ((0.47, -0.02), (0.55, 0.24), (0.60, 0.45), (0.84, 0.56), (1.03, 0.55)),
    ((-0.02, 0.30), (0.08, 0.43), (0.15, 0.61)),
)
#: Villages ``(cx, cy, radius)``, each on a road.
_VILLAGES: tuple[tuple[float, float, float], ...] = (
    (0.15, 0.61, 0.020),
    (0.50, 0.84, 0.016),
    (0.59, 0.42, 0.014),
)


def _clip_polygon(poly: np.ndarray, normal: np.ndarray, offset: float) -> np.ndarray:
    """Clip a convex polygon to the half-plane ``normal . p <= offset``.

    Args:
        poly: ``(n, 2)`` vertices.
        normal: Unit normal of the cutting line.
        offset: Line offset along the normal.

    Returns:
        The clipped polygon's ``(m, 2)`` vertices.
    """
    side = poly @ normal - offset
    out = []
    for i in range(len(poly)):
        j = (i + 1) % len(poly)
        if side[i] <= 0:
            out.append(poly[i])
        if side[i] * side[j] < 0:
            out.append(poly[i] + side[i] / (side[i] - side[j]) * (poly[j] - poly[i]))
    return np.asarray(out)


def _parcel_polygons(rng: np.random.Generator, mean_area: float) -> list[np.ndarray]:
    """Split the scene into convex, field-like polygons by recursive straight cuts.

    Each polygon is cut at right angles to one of its longest edges, which gives the
    straight edges, right angles and T-junctions of a real cadastre (unlike a Voronoi
    tessellation, whose Y-junctions look like crazy paving).

    Args:
        rng: Random generator.
        mean_area: Typical parcel area (normalised units, scene = 1).

    Returns:
        Parcel vertex arrays in normalised coordinates.
    """
    corners = [[-0.02, -0.02], [1.02, -0.02], [1.02, 1.02], [-0.02, 1.02]]
    angle = math.radians(14.0)  # the cadastre is slightly rotated from north
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    todo = [(np.asarray(corners) - 0.5) @ rot.T * 1.3 + 0.5]
    parcels = []
    while todo:
        poly = todo.pop()
        following = poly[np.arange(1, len(poly) + 1) % len(poly)]
        area = 0.5 * abs(np.dot(poly[:, 0], following[:, 1]) - np.dot(poly[:, 1], following[:, 0]))
        if area < mean_area * math.exp(rng.normal(0.0, 0.55)):
            parcels.append(poly)
            continue
        edges = following - poly
        lengths = np.hypot(edges[:, 0], edges[:, 1])
        pick = np.argsort(lengths)[-1 if rng.random() < 0.75 else -2]
        theta = math.atan2(edges[pick, 1], edges[pick, 0]) + rng.normal(0.0, math.radians(9.0))
        normal = np.array([math.cos(theta), math.sin(theta)])
        along = poly @ normal
        offset = along.min() + rng.uniform(0.3, 0.7) * np.ptp(along)
        todo += [_clip_polygon(poly, normal, offset), _clip_polygon(poly, -normal, -offset)]
    return parcels


def _fields(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Paint the agricultural parcels with per-parcel crops, vigour and texture.

    Args:
        rng: Random generator.
        size: Side length in pixels.

    Returns:
        ``(land, labels)``: ``(4, size, size)`` float32 reflectance and parcel ids.
    """
    polygons = _parcel_polygons(rng, mean_area=0.042**2)
    n = len(polygons)
    shapes = (
        ({"type": "Polygon", "coordinates": [(p * size).tolist() + [(p[0] * size).tolist()]]}, i)
        for i, p in enumerate(polygons)
    )
    labels = rasterize(shapes, out_shape=(size, size), fill=0, dtype="int32")

    names = list(_CROPS)
    probs = np.array([_CROPS[k][1] for k in names])
    crop = rng.choice(len(names), size=n, p=probs / probs.sum())
    spectra = np.array([_CROPS[k][0] for k in names], dtype=np.float32)[crop]
    # Vigour: greener parcels are brighter in NIR and darker in the visible.
    vigour = rng.normal(0.0, 1.0, n).astype(np.float32)
    spectra *= 1.0 + np.outer(vigour, [-0.05, -0.03, -0.08, 0.07]).astype(np.float32)
    spectra *= rng.normal(1.0, 0.04, (n, 1)).astype(np.float32)
    # Within-parcel gradient (soil moisture, sowing date) plus fine texture.
    centre = np.array([p.mean(axis=0) for p in polygons], dtype=np.float32)
    slope = rng.normal(0.0, 1.2, (n, 2)).astype(np.float32)
    soil = np.isin(crop, [names.index("bare_soil"), names.index("stubble")])
    texture_amp = np.where(soil, 0.07, 0.035).astype(np.float32)
    x, y = _coords(size)
    plane = slope[labels, 0] * (x - centre[labels, 0]) + slope[labels, 1] * (y - centre[labels, 1])
    gain = 1.0 + plane + texture_amp[labels] * _noise(rng, size, 2.4, kmax=size // 3)
    land = np.stack([spectra[labels, b] for b in range(4)]) * gain

    # Field margins (tracks, grass strips) and some hedgerows on parcel boundaries.
    edge = np.zeros((size, size), dtype=bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    _blend(land, _MARGIN, edge * np.float32(0.35))
    hedge = edge & (rng.random(n) < 0.25)[labels]
    _blend(land, _FOREST, hedge * np.float32(0.5))
    return land, labels


def _land(rng: np.random.Generator, size: int, water_alpha: np.ndarray) -> np.ndarray:
    """Paint the land: fields, forest, reed belts, villages, roads and gentle relief.

    Args:
        rng: Random generator.
        size: Side length in pixels.
        water_alpha: Water coverage (reed belts and woods gather along the shores).

    Returns:
        A ``(4, size, size)`` float32 reflectance array (x 10000).
    """
    land, labels = _fields(rng, size)
    x, y = _coords(size)
    near_water = _blur(water_alpha, 10.0 * size / 2048 + 1.0)
    heath = np.exp(-(((x - 0.05) / 0.12) ** 2 + ((y - 0.3) / 0.25) ** 2))  # a large forest
    woods = _noise(rng, size, 3.4, kmax=60) + 2.0 * near_water + 1.2 * heath
    patchy = _noise(rng, size, 2.5, kmax=size // 8)
    woods += 0.15 * patchy
    level = float(np.quantile(woods[::4, ::4], 0.8))  # ~20 % of the scene is forest
    forest = np.clip((woods - level) * 4.0, 0.0, 1.0)
    plantation = rng.random(int(labels.max()) + 1) < 0.05  # some parcels are forestry
    forest = np.maximum(forest, plantation[labels])
    canopy = 1.0 + 0.08 * _noise(rng, size, 1.0)
    _blend(land, _FOREST, forest, canopy)
    reed = np.clip((near_water - 0.04) * 6.0, 0.0, 0.8) * (1.0 - forest)
    _blend(land, _REED, reed)
    # Alder and willow lining the banks, with gaps.
    bank = np.clip(3.0 * ndimage.gaussian_filter(water_alpha, 2.0), 0.0, 1.0) * (1.0 - water_alpha)
    _blend(land, _FOREST, 0.85 * bank * np.clip(patchy + 0.4, 0.0, 1.0), canopy)

    _villages(rng, size, land)
    for road in _ROADS:
        _blend(land, _ROAD, 0.75 * _draw_line(size, _spline(road, 0.4 / size), 0.45))

    dem = _noise(rng, size, 4.0, kmax=40)
    gy, gx = np.gradient(dem)
    relief = -(0.42 * gx + 0.91 * gy)  # lit from the sun's azimuth (~155 deg, SSE)
    return land * (1.0 + 0.035 * np.clip(relief / relief.std(), -2.5, 2.5))


def _villages(rng: np.random.Generator, size: int, land: np.ndarray) -> None:
    """Paint small villages as a speckle of roofs, gardens and trees (in place).

    Args:
        rng: Random generator.
        size: Side length in pixels.
        land: ``(4, size, size)`` reflectance, modified in place.
    """
    for cx, cy, r in _VILLAGES:
        win = _window(size, cx, cy, 2.0 * r)
        if win is None:
            continue
        (rows, cols), x, y = win
        blob = np.zeros((len(y), x.shape[1]), dtype=np.float32)
        for _ in range(6):
            px, py = cx + rng.normal(0, 0.45 * r), cy + rng.normal(0, 0.45 * r)
            blob += np.exp(-((x - px) ** 2 + (y - py) ** 2) / (0.5 * r) ** 2)
        inside = np.clip((blob - 0.5) * 3.0, 0.0, 1.0)
        h, w = inside.shape
        speckle = rng.random(((h + 1) // 2, (w + 1) // 2), dtype=np.float32)
        speckle = ndimage.gaussian_filter(speckle.repeat(2, 0).repeat(2, 1)[:h, :w], 0.8)
        patch = land[:, rows, cols]  # a view: blending into it paints the scene
        _blend(patch, _GARDEN, inside * np.float32(0.8))
        _blend(patch, _ROOF, inside * np.clip((speckle - 0.45) * 4.0, 0.0, 0.75))
        _blend(patch, _FOREST, inside * np.clip((0.3 - speckle) * 4.0, 0.0, 0.5))

"""The demo scene's band model: Sentinel-2 bands, nodata and the spectra of every surface.

Reflectances are L2A surface reflectance x 10000 for (B02, B03, B04, B08).

May import: anything in the package (top-level glue).
"""

from __future__ import annotations

NODATA = 0
BAND_DESCRIPTIONS = ("B02 (blue)", "B03 (green)", "B04 (red)", "B08 (NIR)")
_WAVELENGTHS_NM = (490, 560, 665, 842)

Spectrum = tuple[float, float, float, float]

#: Typical late-spring L2A surface reflectance x 10000 (B02, B03, B04, B08).
_CROPS: dict[str, tuple[Spectrum, float]] = {
    # name: (spectrum, probability of a parcel)
    "winter_cereal": ((300.0, 590.0, 330.0, 3900.0), 0.34),
    "rapeseed": ((440.0, 840.0, 700.0, 3500.0), 0.16),
    "grassland": ((370.0, 680.0, 460.0, 3200.0), 0.16),
    "young_maize": ((700.0, 960.0, 1080.0, 2750.0), 0.10),
    "bare_soil": ((900.0, 1200.0, 1520.0, 2450.0), 0.14),
    "stubble": ((700.0, 970.0, 1160.0, 2600.0), 0.10),
}
_FOREST: Spectrum = (230.0, 420.0, 240.0, 2750.0)
_REED: Spectrum = (330.0, 560.0, 380.0, 2650.0)
_MARGIN: Spectrum = (520.0, 780.0, 700.0, 2700.0)
_ROAD: Spectrum = (1050.0, 1120.0, 1200.0, 1650.0)
_ROOF: Spectrum = (1050.0, 1080.0, 1250.0, 2000.0)
_GARDEN: Spectrum = (330.0, 620.0, 390.0, 3150.0)
_DEEP_WATER: Spectrum = (380.0, 480.0, 270.0, 220.0)
_SHALLOW_WATER: Spectrum = (470.0, 640.0, 420.0, 560.0)
#: Fraction of the direct light left in a cloud shadow, per band (blue keeps more sky light).
_SHADOW_FACTOR: Spectrum = (0.62, 0.56, 0.52, 0.48)
_NOISE_SIGMA: Spectrum = (9.0, 9.0, 10.0, 14.0)

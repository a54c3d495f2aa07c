"""Pure math on NumPy arrays: the tile grid, sampling, thresholds, filters, local Otsu.

May import: NumPy, SciPy, scikit-image and the standard library; nothing of titiler_otsu,
no web framework, no GDAL/rasterio.
"""

"""Reading pixels.

The grid-exact reader, the dataset-handle cache, dataset histograms, quality masks, STAC
assets, asset expressions and STAC API searches.

May import: `titiler_otsu.core`, `titiler_otsu.security`, `errors`, `settings`; rio-tiler,
rasterio, pystac-client. Not `algorithms`, `web` or `export`.
"""

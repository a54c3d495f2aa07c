"""What a request may ask for.

Source policy (allow-list, redirects, remote identity), request limits, expression
validation, and the checks that an opened raster can be served.

May import: `titiler_otsu.errors`, `titiler_otsu.settings`; GDAL/rasterio and HTTP clients.
Not `core`, `io`, `algorithms`, `web` or `export`.
"""

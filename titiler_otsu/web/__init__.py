"""The HTTP surface.

The analytics mixin and the three factory families (`/cog`, `/stac`, `/stacapi`), their
extensions (areas, vectors, change, time series), rendering, middlewares, HTTP caching, the
TMS registry and request dependencies.

May import: every subpackage but `export`; TiTiler, FastAPI, Starlette.
"""

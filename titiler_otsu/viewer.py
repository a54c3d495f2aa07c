"""The web viewer: `GET /` (static/index.html with its configuration), `/static`, `/vendor`.

The viewer's own code lives in `static/` and needs no build step. Its third-party map
libraries (Leaflet, Leaflet-Geoman; versions in `static/vendor.json`) are never committed:
they come from an npm CDN (setting `viewer_vendor_url`) or, for offline deployments, from a
local `node_modules` folder (setting `viewer_vendor_dir`, mounted at `/vendor`).

May import: anything in the package (top-level glue).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from titiler_otsu.settings import Settings
from titiler_otsu.version import __version__
from titiler_otsu.web.render import CLASS_PALETTES

VENDOR_MOUNT = "/vendor"


def static_dir() -> Path:
    """The viewer's files: installed inside the package, or `static/` of a source checkout."""
    packaged = Path(__file__).resolve().parent / "static"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "static"


@cache
def vendor_packages() -> dict[str, dict[str, Any]]:
    """The npm packages the viewer loads: `{name: {"version", "files": {key: path}}}`."""
    return json.loads((static_dir() / "vendor.json").read_text())


def node_modules_dir(vendor_dir: Path) -> Path:
    """The `node_modules` folder of `vendor_dir` (which may be that folder itself)."""
    inner = vendor_dir / "node_modules"
    return inner if inner.is_dir() else vendor_dir


def vendor_urls(settings: Settings) -> dict[str, str]:
    """URL of every third-party file the viewer loads, keyed like `leaflet_js`."""
    urls: dict[str, str] = {}
    base = settings.viewer_vendor_url.rstrip("/")
    for name, package in vendor_packages().items():
        for key, path in package["files"].items():
            if settings.viewer_vendor_dir is not None:
                urls[key] = f"{VENDOR_MOUNT}/{name}/{path}"
            else:
                urls[key] = f"{base}/{name}@{package['version']}/{path}"
    return urls


def _families(app: FastAPI) -> list[str]:
    """Source families mounted on the app: those with an `app.state.<family>_factory`."""
    return [f for f in ("cog", "stac", "stacapi") if getattr(app.state, f"{f}_factory", None) is not None]


def viewer_config(request: Request, settings: Settings) -> dict[str, Any]:
    """What the page needs to know about this server."""
    return {
        "version": __version__,
        "families": _families(request.app),
        "palettes": {str(k): v for k, v in CLASS_PALETTES.items()},
        "stacApiUrl": settings.stac_api_url,
    }


def render_index(request: Request, settings: Settings) -> str:
    """static/index.html with the library URLs and the configuration filled in."""
    html = (static_dir() / "index.html").read_text()
    for key, url in vendor_urls(settings).items():
        html = html.replace("{{" + key + "}}", url)
    config = json.dumps(viewer_config(request, settings)).replace("</", "<\\/")
    return html.replace("{{config}}", config)


def mount_viewer(app: FastAPI, settings: Settings) -> None:
    """Add `GET /`, `/static` and (when `viewer_vendor_dir` is set) `/vendor` to `app`."""

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    def viewer(request: Request) -> HTMLResponse:
        return HTMLResponse(render_index(request, settings))

    app.mount("/static", StaticFiles(directory=static_dir()), name="static")
    if settings.viewer_vendor_dir is not None:
        app.mount(
            VENDOR_MOUNT,
            StaticFiles(directory=node_modules_dir(settings.viewer_vendor_dir), check_dir=True),
            name="vendor",
        )

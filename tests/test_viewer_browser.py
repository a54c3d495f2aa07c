"""The web viewer in a real browser: headless Debian Chromium driven by Playwright, against a
real server (uvicorn subprocess on loopback) serving the NAIP scene.

The map libraries come from the npm registry (installed into a cache by
scripts/install_browser_deps.sh, which also installs Chromium when missing) and are served to
the page in place of the CDN; every other outside request is refused, so the page is proven to
work without internet access. Screenshots go to test-output/; with
TITILER_OTSU_UPDATE_SCREENSHOT=1 the README's docs/viewer.png is regenerated too.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest
import rasterio
from PIL import Image
from playwright.sync_api import Browser, Page, Route, sync_playwright
from pyproj import Transformer
from scipy import ndimage

from tests.conftest import NAIP, S2_DIR, SHARED_DATA
from tests.live_server import live_server

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "test-output"
README_SCREENSHOT = REPO / "docs" / "viewer.png"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CDN = "https://unpkg.com/"
VIEWPORT = {"width": 1280, "height": 800}
NIR_WATER = 'band=nir&algorithm=otsu&params={"invert":true}&imagery=rgb'
TIMEOUT_MS = 90_000


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def npm_modules() -> Path:
    """Chromium and the viewer's npm libraries, installed by our script when missing."""
    script = REPO / "scripts" / "install_browser_deps.sh"
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{script} failed:\n{done.stderr}"
    modules = Path(done.stdout.strip().splitlines()[-1])
    assert (modules / "leaflet" / "dist" / "leaflet.js").is_file()
    assert shutil.which("chromium") or Path(CHROMIUM).is_file()
    return modules


@pytest.fixture(scope="module")
def stac_item(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared Sentinel-2 item with its band assets pointing at the local GeoTIFFs."""
    item = json.loads((S2_DIR / "item.json").read_text())
    item["assets"] = {n: {**item["assets"][n], "href": str(S2_DIR / f"{n}.tif")} for n in ("B02", "B03", "B04", "B08")}
    path = tmp_path_factory.mktemp("stac") / "item.json"
    path.write_text(json.dumps(item))
    return path


@pytest.fixture(scope="module")
def server(npm_modules: Path, stac_item: Path) -> Iterator[str]:
    with live_server([NAIP], [SHARED_DATA, stac_item.parent]) as base:
        yield base


@pytest.fixture(scope="module")
def browser(npm_modules: Path) -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _cdn_file(url: str, modules: Path) -> Path:
    """`https://unpkg.com/name@version/path` -> node_modules/name/path."""
    parts = url[len(CDN) :].split("?")[0].split("/")
    n = 2 if parts[0].startswith("@") else 1  # scoped packages: @scope/name@version
    name = "/".join(parts[:n]).rsplit("@", 1)[0]
    return modules / name / "/".join(parts[n:])


class Viewer:
    """A page on the viewer that records every response it gets from our server."""

    def __init__(self, browser: Browser, base: str, modules: Path | None, fragment: str = "") -> None:
        self.base = base
        self.page: Page = browser.new_page(viewport=VIEWPORT)
        self.responses: list[tuple[int, str]] = []
        self.page_errors: list[str] = []
        self.modules = modules
        self.page.route("**/*", self._route)
        self.page.on("response", lambda r: self.responses.append((r.status, r.url)) if r.url.startswith(base) else None)
        self.page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        self.page.goto(f"{base}/#{fragment}")

    def _route(self, route: Route) -> None:
        url = route.request.url
        if url.startswith(self.base):
            route.continue_()
        elif url.startswith(CDN) and self.modules is not None:
            path = _cdn_file(url, self.modules)
            kind = "text/css" if path.suffix == ".css" else "application/javascript"
            route.fulfill(status=200, body=path.read_bytes(), content_type=kind)
        else:
            route.abort()  # no internet: basemap tiles and anything else outside fail

    # -- waiting
    def wait_loaded(self, previous: dict[str, str] | None = None) -> dict[str, str]:
        """Wait until imagery and mask layers report all tiles loaded (newer than `previous`)."""
        prev = previous or {}
        self.page.wait_for_function(
            """(prev) => {
                const d = document.body.dataset;
                return d.maskLoaded && d.imageryLoaded && d.maskLoaded !== prev.mask
                    && d.imageryLoaded !== prev.imagery;
            }""",
            arg={"mask": prev.get("mask"), "imagery": prev.get("imagery")},
            timeout=TIMEOUT_MS,
        )
        self.page.wait_for_timeout(600)  # Leaflet's tile fade-in
        return self.page.evaluate(
            "() => ({mask: document.body.dataset.maskLoaded, imagery: document.body.dataset.imageryLoaded})"
        )

    def wait_mask_reload(self, previous: dict[str, str]) -> None:
        self.page.wait_for_function(
            "(prev) => document.body.dataset.maskLoaded && document.body.dataset.maskLoaded !== prev",
            arg=previous["mask"],
            timeout=TIMEOUT_MS,
        )
        self.page.wait_for_timeout(600)

    # -- reading
    def tile_responses(self, *, mask: bool) -> list[tuple[int, str]]:
        return [(s, u) for s, u in self.responses if "/tiles/WebMercatorQuad/" in u and (("algorithm=" in u) == mask)]

    def screenshot(self, name: str | None = None) -> np.ndarray:
        png = self.page.screenshot()
        if name:
            OUTPUT.mkdir(exist_ok=True)
            (OUTPUT / name).write_bytes(png)
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)

    def container_points(self, lonlat: np.ndarray) -> np.ndarray:
        """Screenshot pixel (x, y) of lon/lat points."""
        xy = self.page.evaluate(
            """(pts) => {
                const map = otsuViewer.map, box = map.getContainer().getBoundingClientRect();
                return pts.map(([lon, lat]) => {
                    const p = map.latLngToContainerPoint([lat, lon]);
                    return [p.x + box.left, p.y + box.top];
                });
            }""",
            lonlat.tolist(),
        )
        return np.round(np.array(xy)).astype(int)

    def map_box(self) -> tuple[int, int, int, int]:
        b = self.page.evaluate(
            "() => { const r = otsuViewer.map.getContainer().getBoundingClientRect(); "
            "return [r.left, r.top, r.right, r.bottom]; }"
        )
        return tuple(int(v) for v in b)  # type: ignore[return-value]

    def errors_text(self) -> str:
        return self.page.inner_text("#errors") if self.page.is_visible("#errors") else ""

    def close(self) -> None:
        self.page.close()


@pytest.fixture
def open_viewer(browser: Browser, server: str, npm_modules: Path) -> Iterator:
    pages: list[Viewer] = []

    def _open(fragment: str = "", base: str | None = None, modules: Path | None = npm_modules) -> Viewer:
        v = Viewer(browser, base or server, modules, fragment)
        pages.append(v)
        return v

    yield _open
    for v in pages:
        v.close()


@pytest.fixture(scope="module")
def naip_points() -> dict[str, np.ndarray]:
    """Lon/lat of pixels deep inside water and deep inside land in NAIP's NIR band."""
    with rasterio.open(NAIP) as src:
        nir = src.read(4)
        transform, crs = src.transform, src.crs
    water = ndimage.binary_erosion(nir <= 60, iterations=8)
    land = ndimage.binary_erosion(nir >= 130, iterations=8)
    to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    rng = np.random.default_rng(0)
    out = {}
    for name, mask in (("water", water), ("land", land)):
        rows, cols = np.nonzero(mask)
        pick = rng.choice(len(rows), size=40, replace=False)
        xs, ys = rasterio.transform.xy(transform, rows[pick], cols[pick])
        lon, lat = to_lonlat.transform(np.asarray(xs), np.asarray(ys))
        out[name] = np.column_stack([lon, lat])
    return out


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def _pixels(img: np.ndarray, pts: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    inside = (pts[:, 0] > box[0]) & (pts[:, 0] < box[2] - 1) & (pts[:, 1] > box[1]) & (pts[:, 1] < box[3] - 1)
    assert inside.mean() > 0.9, "the scene should be in view"
    p = pts[inside]
    return img[p[:, 1], p[:, 0]]


# ---------------------------------------------------------------------------- tests
def test_viewer_loads_imagery_and_mask_tiles_and_draws_water_where_the_data_has_water(open_viewer, naip_points) -> None:
    v = open_viewer(NIR_WATER)
    v.wait_loaded()
    imagery, mask = v.tile_responses(mask=False), v.tile_responses(mask=True)
    assert len(imagery) >= 4 and all(s == 200 for s, _ in imagery), imagery
    assert len(mask) >= 4 and all(s == 200 for s, _ in mask), mask
    q = _query(mask[0][1])
    assert q["bidx"] == ["4"] and q["algorithm"] == ["otsu"] and json.loads(q["algorithm_params"][0])["invert"]
    with_mask = v.screenshot("viewer.png")

    # Same view without the mask: only water pixels change, towards the mask's blue.
    v.page.eval_on_selector("#mask-opacity", "el => { el.value = 0; el.dispatchEvent(new Event('input')); }")
    v.page.wait_for_timeout(300)
    without = v.screenshot("viewer_no_mask.png")
    box = v.map_box()
    water_on = _pixels(with_mask, v.container_points(naip_points["water"]), box)
    water_off = _pixels(without, v.container_points(naip_points["water"]), box)
    land_on = _pixels(with_mask, v.container_points(naip_points["land"]), box)
    land_off = _pixels(without, v.container_points(naip_points["land"]), box)
    changed = np.abs(water_on - water_off).sum(axis=1) > 40
    bluer = (water_on[:, 2] - water_off[:, 2]) > 15
    assert (changed & bluer).mean() >= 0.95, (water_on[:5], water_off[:5])
    assert (np.abs(land_on - land_off).sum(axis=1) <= 6).mean() >= 0.95
    assert not v.page_errors and not v.errors_text()


def test_histogram_draws_bars_and_the_otsu_cut_of_the_server(open_viewer, server) -> None:
    v = open_viewer(NIR_WATER)
    v.wait_loaded()
    thr = httpx.get(
        f"{server}/cog/threshold",
        params={"url": str(NAIP), "bidx": 4, "algorithm": "otsu", "algorithm_params": '{"invert":true}'},
    ).json()
    (t,) = thr["thresholds"]
    assert re.search(rf"threshold: {t:g}\b", v.page.inner_text("#threshold-info"))
    canvas = v.page.evaluate(
        """(t) => {
            const c = document.getElementById('histogram'), ctx = c.getContext('2d');
            const d = ctx.getImageData(0, 0, c.width, c.height).data;
            let painted = 0;
            for (let i = 3; i < d.length; i += 4) if (d[i] > 0) painted++;
            return {painted, width: c.width, height: c.height, cssWidth: c.clientWidth};
        }""",
        t,
    )
    assert canvas["painted"] > 0.05 * canvas["width"] * canvas["height"]
    # The cut is a red line at the threshold's position on the value axis.
    lo, hi = thr["histogram"]["edges"][0], thr["histogram"]["edges"][-1]
    x = round((4 + (t - lo) / (hi - lo) * (canvas["cssWidth"] - 8)) * canvas["width"] / canvas["cssWidth"])
    column = v.page.evaluate(
        """(x) => {
            const c = document.getElementById('histogram');
            return Array.from(c.getContext('2d').getImageData(x - 1, 0, 3, c.height).data);
        }""",
        x,
    )
    px = np.array(column).reshape(-1, 4)
    red = (px[:, 0] > 150) & (px[:, 1] < 90) & (px[:, 2] < 90) & (px[:, 3] > 200)
    assert red.sum() > canvas["height"] // 2
    legend = v.page.inner_text("#legend")
    assert "foreground" in legend and f"≤ {t:g}" in legend


def test_changing_the_algorithm_requests_new_mask_tiles_and_changes_the_map(open_viewer) -> None:
    v = open_viewer(NIR_WATER)
    loaded = v.wait_loaded()
    before = v.screenshot()
    n_before = len(v.tile_responses(mask=True))
    v.page.select_option("#algorithm-select", "multiotsu")
    v.wait_mask_reload(loaded)
    after = v.screenshot("viewer_multiotsu.png")
    new = v.tile_responses(mask=True)[n_before:]
    assert new and all(s == 200 for s, _ in new)
    assert all(_query(u)["algorithm"] == ["multiotsu"] for _, u in new)
    x0, y0, x1, y1 = v.map_box()
    diff = np.abs(after[y0:y1, x0:x1] - before[y0:y1, x0:x1]).sum(axis=2) > 30
    assert diff.sum() > 10_000  # the intermediate class (green) appears along shores and fields
    assert v.page.locator("#legend li").count() == 3  # multiotsu's default: 3 classes
    assert "algorithm=multiotsu" in v.page.evaluate("location.hash")


def test_state_is_kept_in_the_url_and_restored_from_it(open_viewer) -> None:
    fragment = (
        f"kind=cog&url={NAIP}&band=b4&algorithm=multiotsu&params="
        + json.dumps({"classes": 4, "sigma": 1})
        + "&imagery=band&opacity=0.5&map=15/47.02/-99.15"
    )
    v = open_viewer(fragment)
    v.wait_loaded()
    assert v.page.input_value("#band-select") == "b4"
    assert v.page.input_value("#algorithm-select") == "multiotsu"
    assert v.page.input_value("#param-classes") == "4" and v.page.input_value("#param-sigma") == "1"
    assert v.page.input_value("#imagery-select") == "band"
    assert v.page.input_value("#mask-opacity") == "0.5"
    assert v.page.evaluate("otsuViewer.map.getZoom()") == 15
    assert v.page.locator("#legend li").count() == 4
    (_, url) = v.tile_responses(mask=True)[-1]
    assert json.loads(_query(url)["algorithm_params"][0]) == {"classes": 4, "sigma": 1}
    imagery_q = _query(v.tile_responses(mask=False)[-1][1])
    assert imagery_q["bidx"] == ["4"] and "rescale" in imagery_q  # grey stretch from the statistics
    share = v.page.input_value("#share-url")
    assert "algorithm=multiotsu" in share and "classes" in share


def test_lock_threshold_fixes_the_threshold_of_the_current_view(open_viewer, server) -> None:
    v = open_viewer(NIR_WATER + "&map=16/47.0300/-99.1700")
    loaded = v.wait_loaded()
    v.page.click("#lock-threshold")
    v.wait_mask_reload(loaded)
    bbox_requests = [u for s, u in v.responses if "/threshold" in u and "bbox=" in u]
    assert bbox_requests
    view = httpx.get(bbox_requests[-1]).json()
    assert v.page.input_value("#param-scope") == "fixed"
    assert float(v.page.input_value("#param-threshold")) == pytest.approx(view["thresholds"][0])
    params = json.loads(_query(v.tile_responses(mask=True)[-1][1])["algorithm_params"][0])
    assert params["scope"] == "fixed" and params["threshold"] == pytest.approx(view["thresholds"][0])
    dataset = httpx.get(f"{server}/cog/threshold", params={"url": str(NAIP), "bidx": 4, "algorithm": "otsu"}).json()
    assert view["pixels"] < dataset["pixels"]  # a region, not the whole scene


def test_drawn_rectangle_shows_the_class_areas_of_the_areas_endpoint(open_viewer, server) -> None:
    v = open_viewer(NIR_WATER)
    v.wait_loaded()
    x0, y0, x1, y1 = v.map_box()
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    v.page.click(".leaflet-pm-icon-rectangle")
    v.page.mouse.click(cx - 150, cy - 100)
    v.page.mouse.move(cx + 20, cy + 10)
    v.page.mouse.click(cx + 150, cy + 100)
    v.page.wait_for_selector("#areas table.areas", timeout=TIMEOUT_MS)
    # A tall window shows the whole panel: this is the README's screenshot.
    v.page.set_viewport_size({"width": 1280, "height": 1280})
    v.page.evaluate("otsuViewer.map.invalidateSize()")
    v.page.wait_for_load_state("networkidle")
    v.page.wait_for_timeout(800)
    v.screenshot("viewer_areas.png")
    if os.environ.get("TITILER_OTSU_UPDATE_SCREENSHOT"):
        README_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copy(OUTPUT / "viewer_areas.png", README_SCREENSHOT)
    shown = {
        int(row.get_attribute("data-class")): float(row.get_attribute("data-area-m2"))
        for row in v.page.locator("#areas tr[data-class]").all()
    }
    geometry = v.page.evaluate("otsuViewer.app.aois.getLayers()[0].toGeoJSON().geometry")
    api = httpx.post(
        f"{server}/cog/areas",
        params={"url": str(NAIP), "bidx": 4, "algorithm": "otsu", "algorithm_params": '{"invert":true}'},
        json={"type": "Feature", "properties": {}, "geometry": geometry},
        timeout=60,
    )
    assert api.status_code == 200, api.text
    expected = {c["class"]: c["area_m2"] for c in api.json()["features"][0]["properties"]["classes"]}
    assert shown.keys() == expected.keys()
    for k, area in expected.items():
        assert shown[k] == pytest.approx(area)
    assert shown[1] > 1e4  # the rectangle holds water
    assert "aoi=" in v.page.evaluate("location.hash")


def test_class_outlines_come_from_the_vectors_endpoint(open_viewer) -> None:
    v = open_viewer(NIR_WATER)
    v.wait_loaded()
    v.page.check("#outlines")
    v.page.wait_for_function(
        "() => performance.getEntriesByType('resource').some(e => e.name.includes('/vectors/'))",
        timeout=TIMEOUT_MS,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not [u for s, u in v.responses if "/vectors/" in u]:
        v.page.wait_for_timeout(200)
    v.page.wait_for_timeout(1500)
    vectors = [(s, u) for s, u in v.responses if "/vectors/" in u]
    assert vectors and all(s == 200 for s, _ in vectors), vectors
    drawn = v.page.evaluate(
        "() => otsuViewer.app.layers.vectors.getLayers()[1].getLayers().reduce((n, l) => n + l.getLayers().length, 0)"
    )
    assert drawn > 0
    assert not v.errors_text()


def test_pasted_stac_item_opens_with_asset_presets_and_ndwi_water(open_viewer, stac_item, server) -> None:
    v = open_viewer(NIR_WATER)
    loaded = v.wait_loaded()
    v.page.select_option("#source-select", "stac")
    v.page.fill("#stac-url", str(stac_item))
    v.page.click("#open-source")
    loaded = v.wait_loaded(loaded)
    assert v.page.evaluate("otsuViewer.map.getCenter().lat") == pytest.approx(32.0, abs=0.1)
    assert v.page.input_value("#band-select") == "nir"  # B08 recognised as NIR
    v.page.select_option("#band-select", "ndwi")
    v.wait_loaded(loaded)
    mask = [u for s, u in v.tile_responses(mask=True) if "/stac/tiles/" in u and "expression" in u]
    assert mask and all(s == 200 for s, u in v.tile_responses(mask=True) if "/stac/" in u)
    assert _query(mask[-1])["expression"] == ["(B03-B08)/(B03+B08)"]
    assert not v.page.is_checked("#param-invert")  # NDWI: water is bright
    imagery = [u for s, u in v.tile_responses(mask=False) if "/stac/tiles/" in u]
    assert imagery and _query(imagery[-1])["assets"] == ["B04", "B03", "B02"]
    thr = httpx.get(
        f"{server}/stac/threshold",
        params={"url": str(stac_item), "expression": "(B03-B08)/(B03+B08)", "algorithm": "otsu"},
        timeout=60,
    ).json()
    assert thr["thresholds"][0] == pytest.approx(-0.09, abs=0.03)  # shared data README: ~-0.09
    assert f"{thr['thresholds'][0]:.3f}" in v.page.inner_text("#threshold-info")
    v.screenshot("viewer_stac_ndwi.png")


def test_bad_source_url_shows_the_servers_message(open_viewer) -> None:
    v = open_viewer(NIR_WATER)
    v.wait_loaded()
    v.page.select_option("#source-select", "cog")
    v.page.fill("#cog-url", str(SHARED_DATA / "no_such_scene.tif"))
    v.page.click("#open-source")
    v.page.wait_for_selector("#errors:not([hidden])", timeout=TIMEOUT_MS)
    text = v.errors_text()
    assert "no_such_scene.tif cannot be opened" in text and "404" in text and "No such file" in text


def test_failing_tiles_show_the_servers_message(open_viewer) -> None:
    v = open_viewer(NIR_WATER)
    v.wait_loaded()
    v.page.fill("#param-sigma", "99")
    v.page.dispatch_event("#param-sigma", "change")
    v.page.wait_for_function(
        "() => document.getElementById('errors').textContent.includes('Mask tiles')", timeout=TIMEOUT_MS
    )
    text = v.errors_text()
    assert "400" in text and "sigma" in text and "less than or equal to 16" in text


def test_qgis_urls_in_the_page_serve_tiles_and_capabilities(open_viewer, server) -> None:
    v = open_viewer(NIR_WATER)
    v.wait_loaded()
    xyz = v.page.input_value("#xyz-url")
    assert xyz.startswith(f"{server}/cog/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png?")
    z, x, y = urlsplit(v.tile_responses(mask=True)[0][1]).path.split("/")[-3:]

    def fill(template: str) -> str:
        return template.replace("{z}", z).replace("{x}", x).replace("{y}", y.split(".")[0])

    png = httpx.get(fill(xyz))
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    tif = httpx.get(fill(v.page.input_value("#xyz-tif-url")))
    assert tif.status_code == 200 and tif.headers["content-type"].startswith("image/tiff")
    wmts = httpx.get(v.page.input_value("#wmts-url"))
    assert wmts.status_code == 200 and "<Capabilities" in wmts.text


def test_map_library_is_served_from_a_local_folder_without_internet(open_viewer, npm_modules) -> None:
    with live_server([NAIP], [SHARED_DATA], viewer_vendor_dir=str(npm_modules.parent)) as base:
        html = httpx.get(f"{base}/").text
        assert "/vendor/leaflet/dist/leaflet.js" in html and CDN not in html
        v = open_viewer(NIR_WATER, base=base, modules=None)  # every non-loopback request refused
        v.wait_loaded()
        assert v.page.evaluate("typeof L.map === 'function' && typeof otsuViewer.map.pm === 'object'")
        assert len(v.tile_responses(mask=True)) >= 4
        assert not v.errors_text()


def test_viewer_says_so_when_the_map_library_cannot_load(open_viewer) -> None:
    v = open_viewer(NIR_WATER, modules=None)  # CDN unreachable, no local folder configured
    v.page.wait_for_selector("#errors:not([hidden])", timeout=TIMEOUT_MS)
    assert "Leaflet could not be loaded" in v.errors_text()
    assert "TITILER_OTSU_VIEWER_VENDOR_DIR" in v.errors_text()

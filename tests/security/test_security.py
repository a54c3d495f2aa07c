"""A corpus of bad and hostile requests: each gets its 4xx and a message, none a 5xx or a leak.

Families /cog, /stac, /stacapi and their /threshold, /areas and /vectors endpoints; bad
parameters, malformed JSON/GeoJSON, traversal, symlinks, GDAL /vsi and driver prefixes, SSRF
forms (credentials, decimal/octal/hex/IPv6 loopback, link-local metadata address, redirects
to internal hosts), huge values, NaN/inf, wrong types, unknown TMS, z/x/y out of range and
expression injection. SSRF cases never send traffic beyond loopback: internal targets are
refused before any connection.
"""
# ruff: noqa: E501 - the corpus is a table, one request per line

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import morecantile
import pytest
from fastapi.testclient import TestClient

from tests.conftest import NAIP, SHARED_DATA, load_npy
from tests.remote import send_range
from tests.stac_fixtures import COLLECTION, NDWI, StacItems, free_port, stac_settings, start_rustac
from titiler_otsu import create_app
from titiler_otsu.security.sources import SourcePolicy
from titiler_otsu.settings import Settings

TMS = morecantile.tms.get("WebMercatorQuad")
NAIP_TILE = TMS.tile(-99.15, 47.02, 14)
COG_TILE = f"/cog/tiles/WebMercatorQuad/14/{NAIP_TILE.x}/{NAIP_TILE.y}.png"
COG_VECTORS = f"/cog/vectors/WebMercatorQuad/14/{NAIP_TILE.x}/{NAIP_TILE.y}"
STAC_T = TMS.tile(23.75, 32.0, 10)
STAC_TILE = f"/stac/tiles/WebMercatorQuad/10/{STAC_T.x}/{STAC_T.y}.png"
STACAPI = f"/stacapi/collections/{COLLECTION}"
STACAPI_T = TMS.tile(24.279, 32.0, 10)
STACAPI_TILE = f"{STACAPI}/tiles/WebMercatorQuad/10/{STACAPI_T.x}/{STACAPI_T.y}.png"
LAKE = [[-99.150, 47.020], [-99.140, 47.015], [-99.128, 47.022], [-99.132, 47.035], [-99.150, 47.020]]


def _feature(ring: list, kind: str = "Polygon") -> dict:
    return {"type": "Feature", "properties": {}, "geometry": {"type": kind, "coordinates": [ring]}}


def _body(document: object) -> str:
    return json.dumps(document)


@dataclass(frozen=True)
class Hostile:
    """One hostile request: which app, what, and the status and words the answer must have."""

    name: str
    status: int
    path: str
    params: dict = field(default_factory=dict)
    says: str = ""
    app: str = "cog"
    body: str | None = None


# fmt: off
NAIP_Q = {"url": "{naip}", "bidx": 4}
OTSU_Q = {**NAIP_Q, "algorithm": "otsu"}

CORPUS: list[Hostile] = [
    # ------------------------------------------------------------------ sources: traversal, prefixes
    Hostile("traversal-dotdot", 403, COG_TILE, {"url": "{data}/../../../etc/passwd"}, "not allowed"),
    Hostile("traversal-file-uri-encoded", 403, COG_TILE, {"url": "file://{data}/%2e%2e/%2e%2e/etc/passwd"}, "not allowed"),
    Hostile("file-uri-outside", 403, COG_TILE, {"url": "file:///etc/passwd"}, "not allowed"),
    Hostile("file-uri-remote-host", 403, COG_TILE, {"url": "file://evil.example/etc/passwd"}, "local path"),
    Hostile("symlink-escaping-allow-list", 403, COG_TILE, {"url": "{escape_link}"}, "not allowed"),
    Hostile("vsicurl-prefix", 403, COG_TILE, {"url": "/vsicurl/http://169.254.169.254/latest"}, "/vsi"),
    Hostile("vsizip-prefix", 403, COG_TILE, {"url": "/vsizip/{data}/x.zip/a.tif"}, "/vsi"),
    Hostile("vsimem-uppercase", 403, COG_TILE, {"url": "/VSIMEM/x.tif"}, "/vsi"),
    Hostile("vsi-inside-file-uri", 403, COG_TILE, {"url": "file:///vsistdin/"}, "/vsi"),
    Hostile("zip-scheme", 403, COG_TILE, {"url": "zip:///etc/x.zip!a.tif"}, "scheme"),
    Hostile("vrt-connection-string", 403, COG_TILE, {"url": "vrt:///etc/passwd?bands=1"}, "scheme"),
    Hostile("gdal-driver-prefix", 400, COG_TILE, {"url": "GTIFF_DIR:1:{naip}"}, "absolute path"),
    Hostile("nul-byte", 400, COG_TILE, {"url": "{naip}\x00.png"}, "control characters"),
    Hostile("relative-path", 400, COG_TILE, {"url": "data/image.tif"}, "absolute path"),
    Hostile("empty-url", 400, COG_TILE, {"url": " "}, "empty"),
    Hostile("missing-url", 422, COG_TILE, {"bidx": 4}, ""),
    Hostile("missing-file", 404, COG_TILE, {"url": "{data}/nope.tif"}, "No such file"),
    Hostile("directory-not-file", 404, COG_TILE, {"url": "{data}"}, "No such file"),
    # ------------------------------------------------------------------ SSRF with remote reads not configured
    Hostile("metadata-address", 403, COG_TILE, {"url": "http://169.254.169.254/latest/meta-data/"}, "not allowed"),
    Hostile("s3-not-configured", 403, COG_TILE, {"url": "s3://bucket/key.tif"}, "not allowed"),
    Hostile("decimal-loopback", 403, "/cog/info", {"url": "http://2130706433/x.tif"}, "not allowed"),
    # ------------------------------------------------------------------ SSRF with any public host allowed
    Hostile("any-host-loopback", 403, "/cog/info", {"url": "http://127.0.0.1:9/x.tif"}, "internal", "remote"),
    Hostile("any-host-decimal", 403, "/cog/info", {"url": "http://2130706433/x.tif"}, "internal", "remote"),
    Hostile("any-host-hex", 403, "/cog/info", {"url": "http://0x7f.0x0.0x0.0x1/x.tif"}, "internal", "remote"),
    Hostile("any-host-octal", 403, "/cog/info", {"url": "http://0177.0.0.1/x.tif"}, "internal", "remote"),
    Hostile("any-host-short", 403, "/cog/info", {"url": "http://127.1/x.tif"}, "internal", "remote"),
    Hostile("any-host-ipv6-loopback", 403, "/cog/info", {"url": "http://[::1]/x.tif"}, "internal", "remote"),
    Hostile("any-host-ipv4-mapped", 403, "/cog/info", {"url": "http://[::ffff:127.0.0.1]/x.tif"}, "internal", "remote"),
    Hostile("any-host-ipv4-mapped-hex", 403, "/cog/info", {"url": "https://[::ffff:a9fe:a9fe]/"}, "internal", "remote"),
    Hostile("any-host-localhost", 403, "/cog/info", {"url": "http://localhost./x.tif"}, "internal", "remote"),
    Hostile("any-host-fullwidth-digits", 403, "/cog/info", {"url": "http://１２７.0.0.1/x.tif"}, "internal", "remote"),
    Hostile("any-host-private", 403, "/cog/info", {"url": "http://10.0.0.1/x.tif"}, "internal", "remote"),
    Hostile("any-host-metadata", 403, "/cog/info", {"url": "http://169.254.169.254/latest/"}, "internal", "remote"),
    Hostile("any-host-zero", 403, "/cog/info", {"url": "http://0/x.tif"}, "internal", "remote"),
    Hostile("any-host-link-local-v6", 403, "/cog/info", {"url": "http://[fe80::1]/x.tif"}, "internal", "remote"),
    Hostile("credentials-in-url", 403, "/cog/info", {"url": "http://user:pw@data.example.com/x.tif"}, "credentials", "remote"),
    Hostile("at-sign-host-confusion", 403, "/cog/info", {"url": "http://data.example.com@127.0.0.1/x.tif"}, "credentials", "remote"),
    Hostile("percent-encoded-host", 403, "/cog/info", {"url": "http://%31%32%37.0.0.1/x.tif"}, "host", "remote"),
    Hostile("url-dot-segments", 403, "/cog/info", {"url": "https://data.example.com/a/%2e%2e/b.tif"}, "'..'", "remote"),
    Hostile("ftp-not-configured", 403, "/cog/info", {"url": "ftp://127.0.0.1/x.tif"}, "not allowed", "remote"),
    # ------------------------------------------------------------------ redirects from an allowed host
    Hostile("redirect-to-metadata", 403, "/cog/info", {"url": "{redirect}/to-metadata.tif"}, "redirects", "redirect"),
    Hostile("redirect-to-other-port", 403, "/cog/info", {"url": "{redirect}/to-other-port.tif"}, "redirects", "redirect"),
    Hostile("redirect-to-file", 403, "/cog/info", {"url": "{redirect}/to-file.tif"}, "redirects", "redirect"),
    Hostile("redirect-to-credentials", 403, "/cog/info", {"url": "{redirect}/to-credentials.tif"}, "credentials", "redirect"),
    Hostile("remote-404", 404, "/cog/info", {"url": "{redirect}/missing.tif"}, "not found", "redirect"),
    # ------------------------------------------------------------------ expression injection
    Hostile("expr-attribute", 400, COG_TILE, {"url": "{naip}", "expression": "b1.__class__"}, "Attribute"),
    Hostile("expr-import", 400, COG_TILE, {"url": "{naip}", "expression": "__import__('os').system('id')"}, ""),
    Hostile("expr-lambda", 400, COG_TILE, {"url": "{naip}", "expression": "(lambda: b1)()"}, "Invalid expression"),
    Hostile("expr-subscript", 400, COG_TILE, {"url": "{naip}", "expression": "b1[0]"}, "Invalid expression"),
    Hostile("expr-string-constant", 400, COG_TILE, {"url": "{naip}", "expression": "b1*'x'"}, "numbers"),
    Hostile("expr-power-tower", 400, COG_TILE, {"url": "{naip}", "expression": "b1*9**9**9"}, "constant power"),
    Hostile("expr-dunder-name", 400, COG_TILE, {"url": "{naip}", "expression": "b1+__builtins__"}, "band"),
    Hostile("expr-too-long", 400, COG_TILE, {"url": "{naip}", "expression": "+".join(["b1"] * 300)}, "MAX_EXPRESSION"),
    Hostile("expr-deep-nesting", 400, COG_TILE, {"url": "{naip}", "expression": "-(" * 150 + "b1" + ")" * 150}, "nested"),
    Hostile("expr-syntax", 400, COG_TILE, {"url": "{naip}", "expression": "b1 +* b2"}, "Invalid expression"),
    Hostile("expr-unknown-band", 400, COG_TILE, {"url": "{naip}", "expression": "b9*2"}, "Band 9"),
    # ------------------------------------------------------------------ algorithm parameters
    Hostile("params-not-json", 400, COG_TILE, {**OTSU_Q, "algorithm_params": "{bad"}, "not valid JSON"),
    Hostile("params-deep-json", 400, COG_TILE, {**OTSU_Q, "algorithm_params": "[" * 3000}, "nested too deeply"),
    Hostile("params-nan", 400, COG_TILE, {**OTSU_Q, "algorithm_params": '{"sigma": NaN}'}, "sigma"),
    Hostile("params-infinity-threshold", 400, COG_TILE, {**OTSU_Q, "algorithm_params": '{"scope": "fixed", "threshold": Infinity}'}, "threshold"),
    Hostile("params-huge-nbins", 400, COG_TILE, {**OTSU_Q, "algorithm_params": '{"nbins": 1e12}'}, "nbins"),
    Hostile("params-wrong-type", 400, COG_TILE, {**OTSU_Q, "algorithm_params": '{"invert": [1]}'}, "invert"),
    Hostile("params-radius-huge", 400, COG_TILE, {**NAIP_Q, "algorithm": "localotsu", "algorithm_params": '{"radius": 100000}'}, "radius"),
    Hostile("params-classes-huge", 400, COG_TILE, {**NAIP_Q, "algorithm": "multiotsu", "algorithm_params": '{"classes": 99}'}, "classes"),
    Hostile("unknown-algorithm", 422, COG_TILE, {**NAIP_Q, "algorithm": "os.system"}, ""),
    # ------------------------------------------------------------------ tile address, sizes, types
    Hostile("unknown-tms", 422, "/cog/tiles/NoSuchTMS/14/0/0.png", NAIP_Q, ""),
    Hostile("z-negative", 400, "/cog/tiles/WebMercatorQuad/-1/0/0.png", NAIP_Q, "z must be >= 0"),
    Hostile("z-huge", 400, "/cog/tiles/WebMercatorQuad/99999/0/0.png", NAIP_Q, "z must be at most"),
    Hostile("x-negative", 400, "/cog/tiles/WebMercatorQuad/14/-5/0.png", NAIP_Q, "x must be >= 0"),
    Hostile("z-beyond-tms-levels", 404, "/cog/tiles/CanadianNAD83_LCC/30/0/0.png", NAIP_Q, "TileMatrix not found"),
    Hostile("y-beyond-matrix", 404, "/cog/tiles/WebMercatorQuad/14/0/999999.png", NAIP_Q, "outside bounds"),
    Hostile("z-not-integer", 422, "/cog/tiles/WebMercatorQuad/1.5/0/0.png", NAIP_Q, ""),
    Hostile("tilesize-huge", 400, COG_TILE, {**NAIP_Q, "tilesize": 10**9}, "MAX_TILESIZE"),
    Hostile("tilesize-zero", 400, COG_TILE, {**NAIP_Q, "tilesize": 0}, "MAX_TILESIZE"),
    Hostile("bidx-wrong-type", 422, COG_TILE, {"url": "{naip}", "bidx": "abc"}, ""),
    Hostile("bidx-zero", 400, COG_TILE, {"url": "{naip}", "bidx": 0}, "does not exist"),
    Hostile("nodata-wrong-type", 422, COG_TILE, {**NAIP_Q, "nodata": "lots"}, ""),
    Hostile("rescale-not-numbers", 422, COG_TILE, {**NAIP_Q, "rescale": "a,b"}, ""),
    Hostile("colormap-not-json", 400, COG_TILE, {**NAIP_Q, "colormap": "{bad"}, "colormap"),
    Hostile("colormap-text-keys", 400, COG_TILE, {**NAIP_Q, "colormap": '{"a": 1}'}, "integers"),
    Hostile("color-formula-needs-rgb", 400, COG_TILE, {**NAIP_Q, "color_formula": "saturation 2"}, "3-band"),
    Hostile("dst-crs-unreachable", 400, "/cog/preview.png", {**NAIP_Q, "dst_crs": "+proj=ortho +lat_0=-90"}, "cannot be projected"),
    Hostile("stats-range-inverted", 400, "/cog/statistics", {**NAIP_Q, "histogram_range": "10,1"}, "min < max"),
    Hostile("nodata-out-of-dtype", 400, "/cog/preview.png", {**NAIP_Q, "nodata": 300}, "data type"),
    Hostile("query-value-too-long", 400, COG_TILE, {**NAIP_Q, "color_formula": "x" * 9000}, "MAX_PARAM_LENGTH"),
    Hostile("preview-max-size-huge", 400, "/cog/preview.png", {**NAIP_Q, "max_size": 100000}, "MAX_IMAGE_SIZE"),
    Hostile("preview-width-only", 400, "/cog/preview.png", {**NAIP_Q, "width": 4000}, "both width and height"),
    Hostile("preview-path-size-huge", 400, "/cog/preview/100000x100000.png", NAIP_Q, "MAX_IMAGE_SIZE"),
    Hostile("bbox-nan", 400, "/cog/bbox/nan,nan,nan,nan.png", NAIP_Q, "finite"),
    Hostile("bbox-inf", 400, "/cog/bbox/-inf,0,inf,1.png", NAIP_Q, "finite"),
    Hostile("bbox-out-of-range", 400, "/cog/bbox/-1000,-1000,1000,1000.png", NAIP_Q, "between -180 and 180"),
    Hostile("bbox-inverted", 400, "/cog/bbox/-99.1,47.0,-99.2,47.1.png", NAIP_Q, "minx < maxx"),
    Hostile("bbox-whole-world", 400, "/cog/bbox/-180,-85,180,85.png", NAIP_Q, "times larger than the source"),
    Hostile("point-nan", 400, "/cog/point/nan,nan", {"url": "{naip}"}, "finite"),
    Hostile("point-outside-source", 404, "/cog/point/10,10", {"url": "{naip}"}, "outside"),
    Hostile("stats-huge-bins", 400, "/cog/statistics", {**NAIP_Q, "histogram_bins": 10**8}, "MAX_HISTOGRAM_BINS"),
    Hostile("stats-percentile-101", 400, "/cog/statistics", {**NAIP_Q, "p": 101}, "between 0 and 100"),
    Hostile("minzoom-negative", 400, "/cog/WebMercatorQuad/tilejson.json", {**NAIP_Q, "minzoom": -4}, "minzoom"),
    # ------------------------------------------------------------------ /threshold
    Hostile("threshold-bbox-nan", 400, "/cog/threshold", {**OTSU_Q, "bbox": "nan,nan,nan,nan"}, "bbox"),
    Hostile("threshold-bbox-words", 400, "/cog/threshold", {**OTSU_Q, "bbox": "west,south,east,north"}, "bbox"),
    Hostile("threshold-non-segmentation", 400, "/cog/threshold", {**NAIP_Q, "algorithm": "hillshade"}, "segmentation"),
    Hostile("threshold-traversal", 403, "/cog/threshold", {"url": "{data}/../../etc/shadow", "bidx": 1}, "not allowed"),
    # ------------------------------------------------------------------ /areas (JSON bodies)
    Hostile("areas-not-json", 422, "/cog/areas", OTSU_Q, "", body="{not json"),
    Hostile("areas-nan-coordinates", 400, "/cog/areas", OTSU_Q, "NaN", body=_body(_feature(LAKE)).replace("-99.15", "NaN", 1)),
    Hostile("areas-infinity", 400, "/cog/areas", OTSU_Q, "Infinity", body=_body(_feature(LAKE)).replace("47.02", "Infinity", 1)),
    Hostile("areas-point-geometry", 422, "/cog/areas", OTSU_Q, "", body=_body({"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [0, 0]}})),
    Hostile("areas-open-ring", 422, "/cog/areas", OTSU_Q, "", body=_body(_feature(LAKE[:2]))),
    Hostile("areas-wrong-type", 422, "/cog/areas", OTSU_Q, "", body=_body([1, 2, 3])),
    Hostile("areas-deep-json", 400, "/cog/areas", OTSU_Q, "", body="[" * 100_000),
    Hostile("areas-too-many-features", 400, "/cog/areas", OTSU_Q, "MAX_AOI_FEATURES", body=_body({"type": "FeatureCollection", "features": [_feature(LAKE)] * 101})),
    Hostile("areas-body-too-large", 413, "/cog/areas", OTSU_Q, "MAX_REQUEST_BYTES", body=" " * 10_000_001 + "{}"),
    Hostile("feature-too-many-features", 400, "/cog/statistics", NAIP_Q, "MAX_AOI_FEATURES", body=_body({"type": "FeatureCollection", "features": [_feature(LAKE)] * 101})),
    # ------------------------------------------------------------------ /vectors
    Hostile("vectors-classes-words", 400, COG_VECTORS, {**OTSU_Q, "classes": "one,two"}, "classes"),
    Hostile("vectors-classes-absent", 400, COG_VECTORS, {**OTSU_Q, "classes": "7"}, "do not exist"),
    Hostile("vectors-simplify-nan", 422, COG_VECTORS, {**OTSU_Q, "simplify": "nan"}, ""),
    Hostile("vectors-non-segmentation", 400, COG_VECTORS, {**NAIP_Q, "algorithm": "hillshade"}, "segmentation"),
    Hostile("vectors-tilesize-huge", 400, COG_VECTORS, {**OTSU_Q, "tilesize": 100000}, "MAX_TILESIZE"),
    # ------------------------------------------------------------------ /stac
    Hostile("stac-item-traversal", 403, "/stac/info", {"url": "{items}/../../etc/passwd"}, "not allowed", "stac"),
    Hostile("stac-href-metadata", 403, STAC_TILE, {"url": "{items}/hostile_metadata.json", "expression": NDWI}, "not allowed", "stac"),
    Hostile("stac-href-vsi", 403, STAC_TILE, {"url": "{items}/hostile_vsi.json", "expression": NDWI}, "/vsi", "stac"),
    Hostile("stac-href-file-outside", 403, STAC_TILE, {"url": "{items}/hostile_file.json", "expression": NDWI}, "not allowed", "stac"),
    Hostile("stac-item-not-json", 400, "/stac/info", {"url": "{items}/hostile_html.json", "assets": "B08"}, "not JSON", "stac"),
    Hostile("stac-expr-attribute", 400, STAC_TILE, {"url": "{item1}", "expression": "B03.__class__"}, "Attribute", "stac"),
    Hostile("stac-expr-unknown-asset", 400, STAC_TILE, {"url": "{item1}", "expression": "B03/B99"}, "Unknown asset", "stac"),
    Hostile("stac-asset-bad-option", 400, STAC_TILE, {"url": "{item1}", "assets": "B08|evil"}, "asset option", "stac"),
    Hostile("stac-asset-bands-without-metadata", 400, STAC_TILE, {"url": "{item1}", "assets": "B08|bands=b1"}, "bands", "stac"),
    Hostile("stac-asset-band-out-of-range", 400, "/stac/point/23.75,32", {"url": "{item1}", "assets": "B08|bidx=5"}, "Band 5", "stac"),
    Hostile("stac-asset-bad-bidx", 400, STAC_TILE, {"url": "{item1}", "assets": "B08|bidx=x"}, "bidx", "stac"),
    Hostile("stac-asset-expression-injection", 400, STAC_TILE, {"url": "{item1}", "assets": "B08|expression=b1.real"}, "Attribute", "stac"),
    Hostile("stac-areas-nan", 400, "/stac/areas", {"url": "{item1}", "expression": NDWI, "algorithm": "otsu"}, "NaN", "stac", body='{"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [[[NaN, 0], [1, 1], [1, 0], [NaN, 0]]]}}'),
    Hostile("stac-vectors-z-negative", 400, "/stac/vectors/WebMercatorQuad/-3/0/0", {"url": "{item1}", "expression": NDWI, "algorithm": "otsu"}, "z must be", "stac"),
    Hostile("stac-threshold-bad-bbox", 400, "/stac/threshold", {"url": "{item1}", "expression": NDWI, "bbox": "1,2,3"}, "bbox", "stac"),
    # ------------------------------------------------------------------ /stacapi
    Hostile("stacapi-user-api-ssrf", 403, STACAPI_TILE, {"expression": NDWI, "api": "http://169.254.169.254/"}, "api=", "stac"),
    Hostile("stacapi-collection-traversal", 400, "/stacapi/collections/%2e%2e/info", {}, "not a collection id", "stac"),
    Hostile("stacapi-datetime-garbage", 400, STACAPI_TILE, {"expression": NDWI, "datetime": "garbage"}, "datetime", "stac"),
    Hostile("stacapi-unknown-collection", 404, "/stacapi/collections/nope/info", {}, "nope", "stac"),
    Hostile("stacapi-bbox-nan", 400, f"{STACAPI}/threshold", {"expression": NDWI, "bbox": "nan,0,1,1"}, "bbox", "stac"),
    Hostile("stacapi-below-min-zoom", 400, f"{STACAPI}/tiles/WebMercatorQuad/2/2/1.png", {"expression": NDWI}, "zoom", "stac"),
    Hostile("stacapi-filter-bad-json", 400, STACAPI_TILE, {"expression": NDWI, "filter": "{not json"}, "filter", "stac"),
    Hostile("stacapi-expr-call", 400, STACAPI_TILE, {"expression": "exec('x')"}, "exec", "stac"),
    # ------------------------------------------------------------------ issue 13: parse failures, coordinates, /stac
    Hostile("ipv4-in-brackets", 400, "/cog/info", {"url": "http://[127.0.0.1]/x.tif"}, "URL", "remote"),
    Hostile("ipv6-unclosed-bracket", 400, "/cog/info", {"url": "http://[::1/x.tif"}, "URL", "remote"),
    Hostile("port-out-of-range", 400, "/cog/info", {"url": "http://data.example.com:99999/x.tif"}, "port", "remote"),
    Hostile("long-path-component", 400, COG_TILE, {"url": "{data}/" + "a" * 300 + ".tif"}, "too long"),
    Hostile("long-path-component-remote", 400, "/cog/info", {"url": "http://data.example.com/" + "a" * 300 + ".tif"}, "too long", "remote"),
    Hostile("areas-lon-200", 400, "/cog/areas", OTSU_Q, "longitude", body=_body(_feature([[200, 47], [201, 47], [201, 48], [200, 47]]))),
    Hostile("areas-lat-91", 400, "/cog/areas", OTSU_Q, "latitude", body=_body(_feature([[-99.15, 91], [-99.14, 91], [-99.14, 92], [-99.15, 91]]))),
    Hostile("statistics-lon-200", 400, "/cog/statistics", NAIP_Q, "longitude", body=_body(_feature([[200, 47], [201, 47], [201, 48], [200, 47]]))),
    Hostile("stac-info-asset-bidx-out-of-range", 400, "/stac/point/23.75,32", {"url": "{item1}", "assets": "B08|bidx=3"}, "Band 3", "stac"),
    Hostile("stacapi-pixel-selection", 422, STACAPI_TILE, {"expression": NDWI, "pixel_selection": "evil"}, "", "stac"),
    Hostile("stacapi-areas-too-many", 400, f"{STACAPI}/areas", {"expression": NDWI, "algorithm": "otsu", "bbox": "23.6,31.6,24.5,32.4"}, "MAX_AOI_FEATURES", "stac", body=_body({"type": "FeatureCollection", "features": [_feature(LAKE)] * 101})),
]
# fmt: on


# ---------------------------------------------------------------------- fixtures
class _Redirects(BaseHTTPRequestHandler):
    """Serves NAIP at /naip.tif and redirects elsewhere (Location from the path)."""

    other_port = 0

    def _target(self) -> str | None:
        return {
            "/to-metadata.tif": "http://169.254.169.254/latest/meta-data/",
            "/to-other-port.tif": f"http://127.0.0.1:{self.other_port}/naip.tif",
            "/to-file.tif": "file:///etc/passwd",
            "/to-credentials.tif": "http://user:pw@127.0.0.1/naip.tif",
            "/to-naip.tif": "/naip.tif",
            "/loop.tif": "/loop.tif",
        }.get(self.path)

    def _answer(self) -> None:
        target = self._target()
        if target:
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path != "/naip.tif":
            self.send_error(404)
            return
        send_range(self, NAIP.read_bytes())

    do_GET = do_HEAD = _answer  # noqa: N815 - http.server API

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def redirect_server() -> Iterator[str]:
    """A loopback HTTP server with hostile redirects (and NAIP itself)."""
    _Redirects.other_port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirects)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def hostile_items(stac_items: StacItems) -> StacItems:
    """Items in the allowed directory whose asset hrefs point at forbidden places."""
    item = json.loads(stac_items.item1.read_text())
    hrefs = {
        "hostile_metadata.json": "http://169.254.169.254/latest/meta-data/B08.tif",
        "hostile_vsi.json": "/vsicurl/http://169.254.169.254/B08.tif",
        "hostile_file.json": "file:///etc/passwd",
    }
    for name, href in hrefs.items():
        hostile = json.loads(json.dumps(item))
        hostile["assets"]["B08"]["href"] = href
        (stac_items.directory / name).write_text(json.dumps(hostile))
    (stac_items.directory / "hostile_html.json").write_text("<html>not an item</html>")
    return stac_items


@pytest.fixture(scope="module")
def escape_link(synthetic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A symlink inside the allowed directory to a real COG outside it."""
    outside = tmp_path_factory.mktemp("outside") / "secret.tif"
    outside.write_bytes(NAIP.read_bytes())
    link = synthetic_dir / "escape.tif"
    if not link.is_symlink():
        link.symlink_to(outside)
    return link


@pytest.fixture(scope="module")
def clients(client, stac_client, settings, redirect_server) -> dict[str, TestClient]:
    """One app per kind of allow-list used by the corpus."""
    remote = settings.model_copy(update={"allowed_sources": [*settings.allowed_sources, "http://", "https://"]})
    redirect = settings.model_copy(
        update={"allowed_sources": [*settings.allowed_sources, f"{redirect_server}/"], "remote_timeout": 5.0}
    )
    return {
        "cog": client,
        "stac": stac_client,
        "remote": TestClient(create_app(remote), raise_server_exceptions=False),
        "redirect": TestClient(create_app(redirect), raise_server_exceptions=False),
    }


@pytest.fixture(scope="module")
def context(hostile_items: StacItems, escape_link: Path, redirect_server: str) -> dict[str, str]:
    """Values of the `{placeholders}` in the corpus."""
    return {
        "naip": str(NAIP),
        "data": str(SHARED_DATA),
        "items": str(hostile_items.directory),
        "item1": str(hostile_items.item1),
        "escape_link": str(escape_link),
        "redirect": redirect_server,
    }


def _fill(value: object, context: dict[str, str]) -> object:
    if not isinstance(value, str):
        return value
    for key, replacement in context.items():
        value = value.replace("{" + key + "}", replacement)
    return value


# ---------------------------------------------------------------------- the corpus
def test_the_corpus_is_large_and_covers_every_family() -> None:
    assert len(CORPUS) >= 40 and len({c.name for c in CORPUS}) == len(CORPUS)
    paths = " ".join(c.path for c in CORPUS)
    for where in ("/cog/", "/stac/", "/stacapi/", "/areas", "/vectors/", "/threshold"):
        assert where in paths, where


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_hostile_request_gets_its_4xx_with_a_message_and_no_leak(
    case: Hostile, clients: dict[str, TestClient], context: dict[str, str]
) -> None:
    client = clients[case.app]
    params = {k: _fill(v, context) for k, v in case.params.items()}
    if case.body is None:
        r = client.get(case.path, params=params)
    else:
        body = str(_fill(case.body, context))
        r = client.post(case.path, params=params, content=body, headers={"content-type": "application/json"})
    assert r.status_code == case.status, r.text[:500]
    detail = r.json()["detail"]
    assert detail, "an error must say what to change"
    text = detail if isinstance(detail, str) else json.dumps(detail)
    assert case.says.lower() in text.lower(), text
    for secret in (str(SHARED_DATA.parent), context["items"], str(Path(context["escape_link"]).parent)):
        assert secret not in text, f"local path leaked: {text}"
    assert "Traceback" not in r.text and 'File "' not in r.text


def test_the_server_keeps_serving_after_the_corpus(clients: dict[str, TestClient], redirect_server: str) -> None:
    r = clients["cog"].get(COG_TILE.replace(".png", ".npy"), params={"url": str(NAIP), "bidx": 4})
    assert r.status_code == 200 and load_npy(r.content)[0].shape == (1, 256, 256)
    # a redirect to the same allowed host is followed, and the COG reads over HTTP
    r = clients["redirect"].get(
        COG_TILE.replace(".png", ".npy"), params={"url": f"{redirect_server}/to-naip.tif", "bidx": 4}
    )
    assert r.status_code == 200, r.text
    assert load_npy(r.content)[0].shape == (1, 256, 256)


def test_a_redirect_loop_is_a_502_naming_it(clients: dict[str, TestClient], redirect_server: str) -> None:
    r = clients["redirect"].get("/cog/info", params={"url": f"{redirect_server}/loop.tif"})
    assert r.status_code == 502 and "redirects more than" in r.json()["detail"]


def test_stac_api_search_results_with_forbidden_hrefs_are_403(stac_items: StacItems) -> None:
    # A real STAC API (rustac) whose second item points its assets at the metadata address.
    hostile = json.loads(stac_items.item2.read_text())
    for asset in hostile["assets"].values():
        asset["href"] = "http://169.254.169.254/latest/meta-data/" + asset["href"].rsplit("/", 1)[-1]
    path = stac_items.directory / "hostile_item2.json"
    path.write_text(json.dumps(hostile))
    port = free_port()
    proc = start_rustac([stac_items.item1, path], port)
    try:
        client = TestClient(
            create_app(stac_settings(stac_items, f"http://127.0.0.1:{port}")), raise_server_exceptions=False
        )
        t = TMS.tile(24.45, 32.0, 10)  # over the hostile item
        r = client.get(f"{STACAPI}/tiles/WebMercatorQuad/10/{t.x}/{t.y}.npy", params={"expression": NDWI})
        assert r.status_code == 403 and "not allowed" in r.json()["detail"], r.text
        t = TMS.tile(23.5, 32.0, 10)  # item1 only: served
        r = client.get(f"{STACAPI}/tiles/WebMercatorQuad/10/{t.x}/{t.y}.npy", params={"expression": NDWI})
        assert r.status_code == 200, r.text
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_symlink_inside_the_allow_list_to_an_allowed_file_is_served(client, synthetic_dir: Path) -> None:
    link = synthetic_dir / "naip_link.tif"
    target = synthetic_dir / "naip_copy.tif"
    if not target.exists():
        target.write_bytes(NAIP.read_bytes())
    if not link.is_symlink():
        link.symlink_to(target)
    r = client.get(COG_TILE.replace(".png", ".npy"), params={"url": str(link), "bidx": 4})
    assert r.status_code == 200, r.text


def test_unexpected_errors_are_a_500_with_a_reference_and_no_internals(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/boom")
    def boom() -> None:
        raise ZeroDivisionError(f"secret detail in {SHARED_DATA}")

    r = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert r.status_code == 500
    detail = r.json()["detail"]
    assert "reference" in detail and "secret" not in detail and str(SHARED_DATA) not in r.text


def test_a_request_slower_than_the_timeout_is_a_504_and_others_still_serve(settings: Settings) -> None:
    """The 504 comes while the endpoint is still running (it only ends when the test lets it)."""
    app = create_app(settings.model_copy(update={"request_timeout": 1.0}))
    release, finished = threading.Event(), threading.Event()

    @app.get("/slow")
    def slow() -> dict:
        release.wait(60)
        finished.set()
        return {}

    client = TestClient(app, raise_server_exceptions=False)
    r = client.get("/slow")
    assert r.status_code == 504 and "REQUEST_TIMEOUT" in r.json()["detail"]
    assert not finished.is_set()  # answered before the endpoint ended, whatever the machine's load
    release.set()
    assert client.get("/healthz").status_code == 200


def test_a_chunked_body_over_the_limit_is_a_413(settings: Settings) -> None:
    client = TestClient(create_app(settings.model_copy(update={"max_request_bytes": 2048})))

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 1024

    r = client.post("/cog/areas", params={"url": str(NAIP), "bidx": 4}, content=chunks())
    assert r.status_code == 413 and "MAX_REQUEST_BYTES" in r.json()["detail"]


# ---------------------------------------------------------------------- the policy itself
def test_policy_canonicalises_ip_forms_to_match_allowed_hosts() -> None:
    policy = SourcePolicy.from_prefixes(["http://127.0.0.1:8080/cogs/"])
    for url in (
        "http://2130706433:8080/cogs/a.tif",
        "http://[::ffff:7f00:1]:8080/cogs/a.tif",
        "http://127.1:8080/cogs/a.tif",
    ):
        assert policy.resolve(url, probe=False) == "http://127.0.0.1:8080/cogs/a.tif"
    for url in (
        "http://127.0.0.1:8081/cogs/a.tif",
        "http://127.0.0.1:8080/cogs2/a.tif",
        "https://127.0.0.1:8080/cogs/a.tif",
    ):
        with pytest.raises(Exception, match="not allowed"):
            policy.resolve(url, probe=False)


def test_policy_refuses_allowed_names_resolving_to_internal_addresses_for_host_wildcards() -> None:
    # A public-looking name whose DNS answer is internal (DNS rebinding): only a stub resolver
    # can make one on a machine without DNS, so the resolver is injected here.
    policy = SourcePolicy.from_prefixes(["https://"], resolver=lambda host, port: ["10.1.2.3"])
    with pytest.raises(Exception, match="internal"):
        policy.resolve("https://tiles.example.com/a.tif", probe=False)
    public = SourcePolicy.from_prefixes(["https://"], resolver=lambda host, port: ["93.184.216.34"])
    assert public.resolve("https://tiles.example.com/a.tif", probe=False) == "https://tiles.example.com/a.tif"


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("GET", "/stac/info", {"assets": "B08|bidx=1"}),
        ("GET", "/stac/info", {"assets": "B08|expression=b1*2"}),
        ("GET", "/stac/statistics", {"assets": "B08|bidx=1"}),
        ("GET", STAC_TILE, {"assets": "B08", "bidx": 1}),
        ("POST", "/stac/areas", {"assets": "B08|bidx=1", "algorithm": "otsu"}),
        ("POST", "/stac/areas", {"expression": NDWI, "algorithm": "multiotsu"}),
    ],
)
def test_stac_band_options_and_areas_on_a_local_item_are_served(
    stac_client: TestClient, stac_items: StacItems, method: str, path: str, params: dict
) -> None:
    query = {"url": str(stac_items.item1), **params}
    if method == "POST":
        ring = [[23.70, 31.95], [23.80, 31.95], [23.80, 32.05], [23.70, 32.05], [23.70, 31.95]]
        response = stac_client.post(path, params=query, json=_feature(ring))
    else:
        response = stac_client.get(path, params=query)
    assert response.status_code == 200, response.text[:300]
    if path == "/stac/info":
        info = response.json()
        assert list(info) == ["B08|" + params["assets"].split("|", 1)[1]] or len(info) == 1
        assert next(iter(info.values()))["count"] >= 1
    if path == "/stac/areas":
        (feature,) = response.json()["features"]
        result = feature["properties"]  # /areas answers the input features with results under properties
        assert result["pixels"] > 0 and sum(c["pixels"] for c in result["classes"]) == result["pixels"]

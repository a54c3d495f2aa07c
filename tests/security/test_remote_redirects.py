"""A remote source whose HEAD answers 200 but whose GET redirects elsewhere: GDAL never gets there.

Two real loopback HTTP servers: the allowed one answers `HEAD /sneaky.tif` with the file and
`GET /sneaky.tif` with a redirect to the other one (standing for an internal service), which
counts every request it receives. libcurl (inside GDAL) follows redirects and GDAL 3.10 has
no option to stop it, so the policy probes with the `GET` GDAL will send and checks its
redirects like the `HEAD` ones.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import rasterio
from fastapi.testclient import TestClient

from tests.conftest import NAIP
from tests.remote import send_range
from titiler_otsu import create_app
from titiler_otsu.settings import Settings


def _send_file(handler: BaseHTTPRequestHandler) -> None:
    send_range(handler, NAIP.read_bytes())  # the body for GET only


def _redirect(handler: BaseHTTPRequestHandler, location: str) -> None:
    handler.send_response(302)
    handler.send_header("Location", location)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


@dataclass
class Servers:
    """The allowed server's base URL, the internal one's, and what the internal one received."""

    allowed: str
    internal: str
    internal_requests: list[str]


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    received: list[str] = []

    class Internal(BaseHTTPRequestHandler):
        def _any(self) -> None:
            received.append(f"{self.command} {self.path}")
            _send_file(self)

        do_GET = do_HEAD = _any  # noqa: N815 - http.server API

        def log_message(self, *args: object) -> None:
            pass

    internal = ThreadingHTTPServer(("127.0.0.1", 0), Internal)
    internal_url = f"http://127.0.0.1:{internal.server_address[1]}"

    class Allowed(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:  # noqa: N802 - http.server API
            if self.path in ("/sneaky.tif", "/get-moves-here.tif", "/naip.tif"):
                _send_file(self)
            else:
                self.send_error(404)

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            if self.path == "/sneaky.tif":
                _redirect(self, f"{internal_url}/naip.tif")
            elif self.path == "/get-moves-here.tif":
                _redirect(self, "/naip.tif")
            elif self.path == "/naip.tif":
                _send_file(self)
            else:
                self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    allowed = ThreadingHTTPServer(("127.0.0.1", 0), Allowed)
    for server in (internal, allowed):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Servers(f"http://127.0.0.1:{allowed.server_address[1]}", internal_url, received)
    finally:
        for server in (internal, allowed):
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="module")
def remote_client(settings: Settings, servers: Servers) -> TestClient:
    allowed = settings.model_copy(
        update={"allowed_sources": [*settings.allowed_sources, f"{servers.allowed}/"], "remote_timeout": 5.0}
    )
    return TestClient(create_app(allowed), raise_server_exceptions=False)


def test_gdal_itself_follows_a_get_only_redirect_to_the_internal_server(servers: Servers) -> None:
    """The threat is real: GDAL opened on the sneaky URL reads from the other port."""
    servers.internal_requests.clear()
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(f"{servers.allowed}/sneaky.tif") as src:
        assert src.count == 4
    assert servers.internal_requests, "GDAL did not follow the redirect: the guard below would prove nothing"
    servers.internal_requests.clear()


@pytest.mark.parametrize(
    "path",
    [
        "/cog/info",
        "/cog/WebMercatorQuad/tilejson.json",
        "/cog/tiles/WebMercatorQuad/14/3679/5761.png",
        "/cog/threshold",
    ],
)
def test_a_get_redirect_to_an_internal_port_is_a_403_and_that_port_gets_no_request(
    remote_client: TestClient, servers: Servers, path: str
) -> None:
    servers.internal_requests.clear()
    response = remote_client.get(path, params={"url": f"{servers.allowed}/sneaky.tif", "bidx": 4})
    assert response.status_code == 403, response.text
    detail = response.json()["detail"]
    assert "GET" in detail and "redirect" in detail
    assert servers.internal_requests == []


def test_a_get_redirect_within_the_allowed_prefix_is_followed_and_served(
    remote_client: TestClient, servers: Servers
) -> None:
    servers.internal_requests.clear()
    response = remote_client.get("/cog/info", params={"url": f"{servers.allowed}/get-moves-here.tif"})
    assert response.status_code == 200, response.text
    assert response.json()["count"] == 4
    plain = remote_client.get("/cog/info", params={"url": f"{servers.allowed}/naip.tif"})
    assert plain.status_code == 200 and plain.json()["width"] == response.json()["width"]
    assert servers.internal_requests == []


def test_trusting_named_hosts_skips_only_their_get_probe() -> None:
    """`REMOTE_TRUST_NAMED_HOSTS` trusts a host named in a prefix; a host-wildcard source keeps both probes."""
    from titiler_otsu.security.sources import SourcePolicy
    from titiler_otsu.security.urls import parse_remote

    public = ["93.184.216.34"]
    named = parse_remote("https://cogs.example.com/b/scene.tif")
    other = parse_remote("https://elsewhere.example.org/scene.tif")
    default = SourcePolicy.from_prefixes(["https://cogs.example.com/b/", "https://"], resolver=lambda h, p: public)
    trusting = SourcePolicy.from_prefixes(
        ["https://cogs.example.com/b/", "https://"], resolver=lambda h, p: public, trust_named_hosts=True
    )
    assert default.get_probe_needed(named) and default.get_probe_needed(other)
    assert not trusting.get_probe_needed(named)
    assert trusting.get_probe_needed(other)  # admitted by the wildcard: merely "not internal"


def test_source_probes_build_their_tls_settings_once(servers: Servers, monkeypatch) -> None:
    """Each probe client used to load the CA bundle again (~22 ms, twice per source open)."""
    import httpcore2

    from titiler_otsu.security import remote_get
    from titiler_otsu.security.sources import SourcePolicy

    built: list[int] = []
    real = httpcore2.default_ssl_context

    def counting(*args, **kwargs):
        built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(httpcore2, "default_ssl_context", counting)  # what loads the CA bundle
    remote_get._build_tls_context.cache_clear()
    try:
        for name in ("naip.tif", "get-moves-here.tif"):  # two sources: HEAD and GET probes each
            policy = SourcePolicy.from_prefixes([servers.allowed + "/"])
            assert policy.resolve(f"{servers.allowed}/{name}").startswith(servers.allowed)
        assert built == [1]
    finally:
        remote_get._build_tls_context.cache_clear()


def test_the_get_probe_runs_beside_the_head_probe() -> None:
    """Both probes of a source are in flight at once: one round trip for the two, not two.

    The server holds its answer to `HEAD` until a `GET` has arrived (at most 5 s): probes
    sent one after the other would find it still waiting.
    """
    from titiler_otsu.security.sources import SourcePolicy

    get_arrived = threading.Event()
    head_saw_get: list[bool] = []

    class Server(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:  # noqa: N802 - http.server API
            head_saw_get.append(get_arrived.wait(5.0))
            _send_file(self)

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            get_arrived.set()
            _send_file(self)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        policy = SourcePolicy.from_prefixes([base + "/"])
        assert policy.resolve(f"{base}/naip.tif") == f"{base}/naip.tif"
        assert head_saw_get == [True]
    finally:
        server.shutdown()
        server.server_close()

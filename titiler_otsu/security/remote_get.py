"""The GET half of the redirect probe: what GDAL will be sent must answer GET without a surprise.

`SourcePolicy` probes an http(s) source with `HEAD` and checks each redirect. GDAL then reads
with `GET` requests and libcurl follows redirects (GDAL 3.10 has no option to stop it). A
server that answers `HEAD` with the file but `GET` with a redirect to an internal address
would steer GDAL there. So, before GDAL is given a URL, `confirm_get` sends the request GDAL
sends first (`GET` with a `Range`: the object's first 64 KB), without following redirects: a redirect is checked like
the `HEAD` ones (allowed prefix or public host, else 403, and the target is never contacted)
and GDAL is given the URL that answers `GET` itself. The bytes it reads are the COG's header:
they are kept (`remote_identity.record_header`) for the reader of remote bytes
(`io/remote_vsi.py`), whose open then sends no request of its own.

May import: `errors`, `settings` and `security`.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from urllib.parse import urljoin

import httpx2

from titiler_otsu.errors import (
    BadRequestError,
    SourceNotAllowedError,
    SourceNotFoundError,
    UpstreamError,
    UpstreamTimeoutError,
)
from titiler_otsu.security import remote_identity

_tls_lock = threading.Lock()


def tls_context() -> ssl.SSLContext:
    """The TLS settings of our HTTP clients (probes, `io/remote_http.py`), built once.

    httpx's defaults: certifi's CAs, nothing from the environment.

    Building them costs ~22 ms (loading the CA bundle); every probe client used to pay it,
    i.e. each source open and each revalidation of a source paid it twice. (The lock: the
    `HEAD` and `GET` probes of a first source start at the same time.)
    """
    with _tls_lock:
        return _build_tls_context()


@cache
def _build_tls_context() -> ssl.SSLContext:
    """Built on the first call, under `_tls_lock` (see `tls_context`)."""
    return httpx2.create_ssl_context(verify=True, trust_env=False)


def probe_client(timeout: float, proxy: str | None) -> httpx2.Client:
    """An HTTP client for the redirect probes: never follows redirects, ignores the environment."""
    return httpx2.Client(timeout=timeout, follow_redirects=False, trust_env=False, proxy=proxy, verify=tls_context())


#: The first read of a COG: its header, kept for the reader (`remote_identity.record_header`).
PROBE_RANGE = f"bytes=0-{remote_identity.HEADER_BYTES - 1}"


def confirm_get(
    url: str,
    shown: str,
    check_target: Callable[[str], str],
    *,
    timeout: float,
    proxy: str | None = None,
    max_redirects: int = 5,
) -> str:
    """The URL that answers a ranged `GET` directly, each redirect hop checked before it is contacted.

    Args:
        url: the URL the `HEAD` probe ended at.
        shown: the URL as the user gave it (for messages).
        check_target: canonicalises and checks a redirect target (raises 403 if not allowed),
            returning the URL to request next.
        timeout: seconds per request.
        proxy: proxy for `url` (from the environment), if any.
        max_redirects: most redirects followed.

    Raises:
        SourceNotAllowedError: a `GET` redirect to a target the policy refuses.
        SourceNotFoundError / UpstreamError / UpstreamTimeoutError: the `GET` fails.

    """
    current = url
    try:
        with probe_client(timeout, proxy) as client:
            for _ in range(max_redirects + 1):
                with client.stream(
                    "GET", current, headers={"Range": PROBE_RANGE, "Accept-Encoding": "identity"}
                ) as response:
                    status, location = response.status_code, response.headers.get("location", "")
                    redirect = response.is_redirect
                    encoded = response.headers.get("content-encoding", "identity").lower() != "identity"
                    if status == 206 and not encoded:  # the header, for the reader: its open then costs no request
                        remote_identity.record_header(current, response.headers, _body(response))
                if redirect:
                    try:
                        current = check_target(urljoin(current, location))
                    except (SourceNotAllowedError, BadRequestError) as e:
                        raise SourceNotAllowedError(
                            f"The source {shown} answers GET with a redirect that is not allowed ({e}); "
                            "GDAL would follow it, so the source is refused."
                        ) from e
                    continue
                if status in (404, 410):
                    raise SourceNotFoundError(f"Remote source not found: {shown} (HTTP {status} to GET).")
                if status >= 400:
                    raise UpstreamError(f"The remote source {shown} answered HTTP {status} to GET.")
                return current
    except httpx2.TimeoutException as e:
        raise UpstreamTimeoutError(f"The remote source {shown} did not answer within {timeout:g} s.") from e
    except httpx2.HTTPError as e:
        raise UpstreamError(f"Could not reach the remote source {shown} ({e.__class__.__name__}).") from e
    raise UpstreamError(f"The remote source {shown} redirects GET more than {max_redirects} times.")


def _body(response: httpx2.Response) -> bytes:
    """At most `HEADER_BYTES` of a streamed answer's body."""
    chunks, size = [], 0
    for chunk in response.iter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= remote_identity.HEADER_BYTES:
            break
    return b"".join(chunks)[: remote_identity.HEADER_BYTES]


@cache
def _get_probes() -> ThreadPoolExecutor:
    """Threads for `confirm_get_soon` (created on first use)."""
    return ThreadPoolExecutor(max_workers=8, thread_name_prefix="get-probe")


def confirm_get_soon(
    url: str, shown: str, check_target: Callable[[str], str], *, timeout: float, proxy: str | None = None
) -> Future[str]:
    """`confirm_get` in a background thread, so that it runs while the caller's `HEAD` probe runs.

    For an allowed URL whose `HEAD` is not redirected (the usual case), the two probes then cost
    one round trip instead of two. A caller whose `HEAD` turns out to be redirected drops the
    future: this `GET` went to the URL the allow-list already admitted, followed no redirect, and
    the redirect target is probed afresh.
    """
    return _get_probes().submit(confirm_get, url, shown, check_target, timeout=timeout, proxy=proxy)

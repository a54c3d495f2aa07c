"""Which sources a request may read: normalisation, the allow-list and SSRF checks.

Every `url=` of a request, every STAC asset href and every STAC Item URL goes through
`SourcePolicy.resolve`, which returns what may be opened or raises a 4xx/5xx error:

* local paths (plain or `file://`): absolute, no control characters, no GDAL `/vsi*` or
  driver prefixes (`GTIFF_DIR:`, `vrt://`...); `..` and symlinks are resolved (`realpath`)
  *before* the allow-list check, and the resolved path is what GDAL opens;
* remote URLs: a scheme with a configured prefix, no credentials, the host canonicalised
  (IDNA, trailing dot, decimal/octal/hex/short IPv4 forms, IPv4-mapped/6to4/NAT64 IPv6) and
  compared with the prefixes' hosts, no `.`/`..` path segments (also percent-encoded); a
  prefix with no host (`https://`) admits any *public* host only (every address it resolves
  to is checked). http(s) sources are probed with `HEAD` without following redirects: each
  redirect target must itself be allowed or be a public host, and GDAL is given the final URL.
  The ranged `GET` GDAL sends first is probed the same way (`remote_get.confirm_get`, sent
  beside the first `HEAD`: one round trip for both),
  unless `trust_named_hosts` is set and the URL is below a prefix that names its host: the
  operator vouches for that server not answering `GET` with a redirect its `HEAD` did not give
  (one request fewer per source open). Hosts admitted by a host wildcard (`https://`) are always
  probed with both.

May import: `errors`, `settings` and `security`.
"""

from __future__ import annotations

import ipaddress
import os
import threading
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import httpx2
from cachetools import TTLCache

from titiler_otsu.errors import (
    BadRequestError,
    SourceNotAllowedError,
    SourceNotFoundError,
    UpstreamError,
    UpstreamTimeoutError,
)
from titiler_otsu.security import remote_identity
from titiler_otsu.security.remote_get import confirm_get, confirm_get_soon, probe_client
from titiler_otsu.security.urls import (
    _CONTROL,
    HTTP_SCHEMES,
    MAX_NAME_LENGTH,
    MAX_REDIRECTS,
    MAX_SOURCE_LENGTH,
    REMOTE_SCHEMES,
    RemoteURL,
    Resolver,
    UrlPrefix,
    ip_literal,
    is_internal,
    parse_remote,
    system_resolver,
    url_scheme,
)


def _is_under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip(os.sep) + os.sep)


def _proxy_for(url: str) -> str | None:
    """The proxy the environment sets for `url` (http_proxy, https_proxy, no_proxy)."""
    parts = urlsplit(url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


@dataclass
class SourcePolicy:
    """Allow-list of local directories/files and remote URL prefixes, with SSRF checks.

    Attributes:
        local_prefixes: real (symlink-resolved) absolute paths a request may read below.
        remote_prefixes: allowed remote prefixes.
        timeout: seconds for the redirect probe of http(s) sources.
        resolver: host name resolution (the system's by default).
        probe_remote: whether `resolve` probes http(s) sources for redirects (network).
        probe_ttl: seconds a probe is reused; each probe also revalidates the source
            (its ETag/Last-Modified are recorded in `remote_identity`).
        trust_named_hosts: skip the `GET` redirect probe for URLs below a prefix naming their
            host (`get_probe_needed`); host-wildcard sources are always probed.

    """

    local_prefixes: tuple[str, ...]
    remote_prefixes: tuple[UrlPrefix, ...] = ()
    timeout: float = 10.0
    resolver: Resolver = field(default=system_resolver, repr=False)
    probe_remote: bool = True
    probe_ttl: float = 60.0
    trust_named_hosts: bool = False
    _probed: TTLCache = field(default_factory=lambda: TTLCache(maxsize=1024, ttl=60.0), repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Size the probe cache's TTL from `probe_ttl`."""
        if self._probed.ttl != self.probe_ttl:
            self._probed = TTLCache(maxsize=1024, ttl=max(self.probe_ttl, 1e-3))

    @classmethod
    def from_prefixes(
        cls,
        prefixes: list[str],
        timeout: float = 10.0,
        resolver: Resolver | None = None,
        probe_ttl: float = 60.0,
        trust_named_hosts: bool = False,
    ) -> SourcePolicy:
        """Split prefixes into resolved local paths and remote URL prefixes."""
        local, remote = [], []
        for prefix in prefixes:
            scheme = urlsplit(prefix).scheme.lower()
            if scheme in REMOTE_SCHEMES:
                remote.append(UrlPrefix.parse(prefix))
            else:
                path = unquote(urlsplit(prefix).path) if scheme == "file" else prefix
                local.append(os.path.realpath(os.path.expanduser(path)))
        return cls(
            tuple(local),
            tuple(remote),
            timeout,
            resolver or system_resolver,
            probe_ttl=probe_ttl,
            trust_named_hosts=trust_named_hosts,
        )

    def offline(self) -> SourcePolicy:
        """The same allow-list without network probes (for checks made on the event loop)."""
        return replace(self, probe_remote=False)

    @property
    def allows_remote(self) -> bool:
        """Whether any remote prefix is configured."""
        return bool(self.remote_prefixes)

    # ------------------------------------------------------------------ entry point
    def resolve(self, url: str, probe: bool | None = None) -> str:
        """Return the path or URL to open for a user-given `url`, or raise.

        Args:
            url: a local path, `file://` URI or remote URL.
            probe: for http(s), follow and check redirects with a `HEAD` request (network);
                False: only the checks that need no network. Default: `probe_remote`.

        Raises:
            BadRequestError: empty, too long, control characters, relative path.
            SourceNotAllowedError: outside the allow-list, GDAL `/vsi*` or driver prefixes,
                URL tricks, internal addresses.
            SourceNotFoundError: a local file that does not exist (or a remote 404).
            UpstreamError / UpstreamTimeoutError: a remote source that fails or does not answer.

        """
        url = url.strip()
        if not url:
            raise BadRequestError("url is empty: give the path or URL of a COG/GeoTIFF.")
        if len(url) > MAX_SOURCE_LENGTH:
            raise BadRequestError(f"url is longer than {MAX_SOURCE_LENGTH} characters.")
        if _CONTROL.search(url):
            raise BadRequestError("url contains control characters (e.g. a NUL byte): remove them.")
        if any(len(part) > MAX_NAME_LENGTH for part in url.split("/")):
            raise BadRequestError(
                f"url has a path component (file or folder name) too long: at most {MAX_NAME_LENGTH} characters."
            )
        if url.lower().startswith("/vsi"):
            raise SourceNotAllowedError(
                "GDAL virtual file system paths (/vsi...) are not allowed: give a plain path or an "
                "http(s)/s3 URL below the server's allowed prefixes."
            )
        scheme = url_scheme(url)
        if scheme in REMOTE_SCHEMES:
            return self._resolve_remote(url, self.probe_remote if probe is None else probe)
        if scheme and scheme != "file":
            raise SourceNotAllowedError(
                f"Unsupported source scheme '{scheme}:': give a local path, a file:// URI or an "
                "http(s) URL (GDAL driver prefixes and connection strings are not allowed)."
            )
        return self._resolve_local(url)

    def local_path(self, url: str) -> str | None:
        """The checked local path of `url`, None for a remote one (no network); raises like `resolve`."""
        resolved = self.resolve(url, probe=False)
        return None if "://" in resolved else resolved

    # ------------------------------------------------------------------ local
    def _resolve_local(self, url: str) -> str:
        raw = url
        if url.lower().startswith("file:"):
            parts = urlsplit(url)
            if parts.netloc not in ("", "localhost"):
                raise SourceNotAllowedError("file:// URIs must name a local path (file:///path/to/file.tif).")
            raw = unquote(parts.path)
            if _CONTROL.search(raw):
                raise BadRequestError("url contains control characters (e.g. a NUL byte): remove them.")
        if raw.lower().startswith("/vsi"):
            raise SourceNotAllowedError("GDAL virtual file system paths (/vsi...) are not allowed.")
        if not raw.startswith("/"):
            raise BadRequestError(f"url must be an absolute path, a file:// URI or an http(s) URL (got '{url}').")
        path = os.path.realpath(raw)
        if path.lower().startswith("/vsi") or not any(_is_under(path, p) for p in self.local_prefixes):
            raise SourceNotAllowedError(
                f"Source not allowed: {url}. The server reads only files below its allowed "
                "directories (setting TITILER_OTSU_ALLOWED_SOURCES)."
            )
        if not Path(path).is_file():
            raise SourceNotFoundError(f"No such file: {url}")
        return path

    # ------------------------------------------------------------------ remote
    def _prefix_for(self, remote: RemoteURL) -> UrlPrefix | None:
        return next((p for p in self.remote_prefixes if p.matches(remote)), None)

    def _check_public(self, remote: RemoteURL, what: str) -> None:
        """Raise unless every address of the host is a public one."""
        literal = ip_literal(remote.host)
        if literal is not None:
            addresses = [literal]
        else:
            addresses = [ipaddress.ip_address(a.split("%")[0]) for a in self.resolver(remote.host, remote.port)]
        if not addresses or any(is_internal(a) for a in addresses):
            raise SourceNotAllowedError(
                f"{what} not allowed: its host is a loopback, private, link-local or otherwise internal "
                "address. Only hosts named in TITILER_OTSU_ALLOWED_SOURCES may be internal."
            )

    def _check_remote(self, remote: RemoteURL, shown: str) -> None:
        """Allow-list (and, for host wildcards, public-address) check of a canonical URL."""
        prefix = self._prefix_for(remote)
        if prefix is None:
            raise SourceNotAllowedError(
                f"Remote source not allowed: {shown}. The server reads only sources below its "
                "allowed prefixes (setting TITILER_OTSU_ALLOWED_SOURCES)."
            )
        if prefix.host is None and remote.scheme in HTTP_SCHEMES:
            self._check_public(remote, "Remote source")

    def _resolve_remote(self, url: str, probe: bool) -> str:
        remote = parse_remote(url)
        self._check_remote(remote, url)
        if not probe or remote.scheme not in HTTP_SCHEMES:
            return remote.url
        with self._lock:
            cached = self._probed.get(remote.url)
        if cached is not None:
            return cached
        final = self._follow_redirects(remote, url)
        with self._lock:
            self._probed[remote.url] = final
        return final

    def _check_redirect(self, target: RemoteURL) -> None:
        """A redirect target: http(s), allowed by a prefix, or else a public host."""
        if target.scheme not in HTTP_SCHEMES:
            raise SourceNotAllowedError(f"The source redirects to a '{target.scheme}:' URL, which is not allowed.")
        prefix = self._prefix_for(target)
        if prefix is None or prefix.host is None:
            self._check_public(target, "The source redirects to a host that is")

    def _redirect_target(self, url: str) -> str:
        """A redirect target, canonicalised and checked (`_check_redirect`): the URL to request next."""
        target = parse_remote(url)
        self._check_redirect(target)
        return target.url

    def get_probe_needed(self, remote: RemoteURL) -> bool:
        """Whether the URL `HEAD` ended at must also be probed with GDAL's ranged `GET`.

        Always, unless `trust_named_hosts` and the URL is below a prefix that names its host:
        a server the operator named is trusted not to redirect `GET` where `HEAD` is not
        redirected. A host reached through a host wildcard (`https://`: any public host) is
        never trusted so.
        """
        if not self.trust_named_hosts:
            return True
        prefix = self._prefix_for(remote)
        return prefix is None or prefix.host is None

    def _follow_redirects(self, remote: RemoteURL, shown: str) -> str:
        """Probe with HEAD, checking each redirect, and GET (`get_probe_needed`); the URL GDAL is given.

        The `GET` probe of the URL as given is sent at once, beside its `HEAD` probe: when the
        `HEAD` is not redirected, its result is the answer (one round trip for both probes).
        """
        current = remote
        # the GET probe of the URL as given runs beside its HEAD probe (one round trip for both)
        get_probe = (
            confirm_get_soon(
                remote.url, shown, self._redirect_target, timeout=self.timeout, proxy=_proxy_for(remote.url)
            )
            if self.get_probe_needed(remote)
            else None
        )
        for _ in range(MAX_REDIRECTS + 1):
            response = self._probe(current.url, shown)
            if response.is_redirect:
                get_probe = None  # it probed the URL before the redirect: probe the target below
                location = response.headers.get("location", "")
                try:
                    target = parse_remote(urljoin(current.url, location))
                except (SourceNotAllowedError, BadRequestError) as e:
                    raise SourceNotAllowedError(f"The source {shown} redirects to a URL not allowed: {e}") from e
                self._check_redirect(target)
                current = target
                continue
            status = response.status_code
            if status in (404, 410):
                raise SourceNotFoundError(f"Remote source not found: {shown} (HTTP {status}).")
            if status >= 400:
                raise UpstreamError(f"The remote source {shown} answered HTTP {status}.")
            remote_identity.record(current.url, response.headers)
            if not self.get_probe_needed(current):
                return current.url
            if get_probe is not None:
                return get_probe.result()
            return confirm_get(
                current.url, shown, self._redirect_target, timeout=self.timeout, proxy=_proxy_for(current.url)
            )
        raise UpstreamError(f"The remote source {shown} redirects more than {MAX_REDIRECTS} times.")

    def _probe(self, url: str, shown: str) -> httpx2.Response:
        """`HEAD url` (a one-byte GET when HEAD is refused), never following redirects."""
        try:
            with probe_client(self.timeout, _proxy_for(url)) as client:
                response = client.head(url)
                if response.status_code in (405, 501):
                    response = client.get(url, headers={"Range": "bytes=0-0"})
                return response
        except httpx2.TimeoutException as e:
            raise UpstreamTimeoutError(f"The remote source {shown} did not answer within {self.timeout:g} s.") from e
        except httpx2.HTTPError as e:
            raise UpstreamError(f"Could not reach the remote source {shown} ({e.__class__.__name__}).") from e

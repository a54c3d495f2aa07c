"""Remote COG bytes for GDAL from our own HTTP client: exact ranges, no redirects, no HEAD.

GDAL's `/vsicurl/` costs a cold open two requests (a `HEAD` for the size, a `GET` for the
header), follows redirects (libcurl; GDAL 3.10 cannot be told not to), and reads ahead past a
block when the next block of the file follows. For http(s) sources this module installs a
GDAL virtual file system (`/vsiotsu/`, GDAL's plugin API through ctypes) whose bytes come from
`http.client` (`remote_http.fetch_range`):

* **open**: the size and the first 64 KB come from the redirect guard's `GET` probe
  (`remote_identity.header`), so opening a probed source sends no request; an unprobed one
  (an export worker) costs one ranged `GET`;
* **reads**: exactly the bytes GDAL asks for (16 KB at least, for the small reads of a TIFF
  directory), kept in a process-wide cache (`CACHE_BYTES`, keyed by URL and identity, so a
  changed object never mixes old bytes in); the ranges of one multi-block read
  (`VSIFReadMultiRangeL`, used by GTiff) are fetched in parallel;
* **no redirect** is ever followed: a `3xx` is a read error naming the URL. Every request
  goes to the URL the allow-list admitted and the probes confirmed.

`gdal_path(url)` is what every open of a source goes through: http(s) URLs become
`/vsiotsu/<url>` unless `TITILER_OTSU_REMOTE_READER=gdal` (GDAL's `/vsicurl/`, e.g. to use
its `GDAL_HTTP_*` authentication options); every other path is unchanged.

May import: `core`, `security`, `io`, `errors`, `settings`.
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from titiler_otsu.io.remote_http import RemoteReadError, fetch_range
from titiler_otsu.security import remote_identity

PREFIX = "/vsiotsu/"
#: Most bytes of fetched ranges kept per process (as GDAL's CPL_VSIL_CURL_CACHE_SIZE here).
CACHE_BYTES = 256 * 2**20
#: Smallest range fetched for a read (a TIFF directory is read in small pieces).
MIN_FETCH = 16384
#: Ranges of one multi-range read closer than this are fetched as one.
MERGE_GAP = 4096
#: Parallel range requests of one multi-range read.
PARALLEL = 8
#: `TITILER_OTSU_REMOTE_READER`: "direct" (this module) or "gdal" (`/vsicurl/`).
READER_VARIABLE = "TITILER_OTSU_REMOTE_READER"


_mode: dict[str, str] = {}


def configure(reader: str) -> None:
    """Choose how this process reads http(s) sources: "direct" (this module) or "gdal" (`/vsicurl/`)."""
    _mode["reader"] = reader


def enabled() -> bool:
    """Whether http(s) sources are read through this module.

    As `configure` chose (`create_app` passes `Settings.remote_reader`), else as the environment
    says (`TITILER_OTSU_REMOTE_READER`: export workers), else yes.
    """
    reader = _mode.get("reader") or os.environ.get(READER_VARIABLE, "direct")
    return reader.strip().lower() != "gdal"


def gdal_path(path: str) -> str:
    """The name GDAL opens for a source: `/vsiotsu/<url>` for http(s) URLs (when enabled), else `path`."""
    scheme = path.split("://", 1)[0].lower() if "://" in path else ""
    if scheme not in ("http", "https") or not enabled():
        return path
    _install()
    if len(_known) >= 65536:
        _known.clear()  # bounded: every open adds its URL again (open handles need no entry)
    _known.add(path)
    return PREFIX + path


# ---------------------------------------------------------------- bytes of objects
class _ByteCache:
    """Fetched ranges of remote objects, bounded in bytes, least recently used evicted first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._lock = threading.Lock()
        self._ranges: OrderedDict[tuple[Any, int], bytes] = OrderedDict()
        self._by_object: dict[Any, set[int]] = {}

    def get(self, key: Any, start: int, size: int) -> bytes | None:
        """The bytes [start, start + size) of an object when one kept range holds them."""
        with self._lock:
            for begin in self._by_object.get(key, ()):
                data = self._ranges[(key, begin)]
                if begin <= start and start + size <= begin + len(data):
                    self._ranges.move_to_end((key, begin))
                    return data[start - begin : start - begin + size]
        return None

    def put(self, key: Any, start: int, data: bytes) -> None:
        """Keep a fetched range (evicting the least recently used beyond `limit`)."""
        if len(data) > self.limit:
            return
        with self._lock:
            old = self._ranges.pop((key, start), None)
            self.size += len(data) - (len(old) if old is not None else 0)
            self._ranges[(key, start)] = data
            self._by_object.setdefault(key, set()).add(start)
            while self.size > self.limit:
                (k, begin), dropped = self._ranges.popitem(last=False)
                self.size -= len(dropped)
                self._by_object[k].discard(begin)
                if not self._by_object[k]:
                    del self._by_object[k]

    def clear(self) -> None:
        """Forget every range."""
        with self._lock:
            self._ranges.clear()
            self._by_object.clear()
            self.size = 0


_cache = _ByteCache(CACHE_BYTES)


class RemoteObject:
    """One remote object as GDAL sees it: its size, and its bytes fetched on demand."""

    def __init__(self, url: str) -> None:
        """Size and header from the `GET` probe (no request), else one ranged `GET` now."""
        self.url = url
        self.key = (url, remote_identity.identity(url))
        known = remote_identity.header(url)
        if known is not None:
            self.size, head = known
        else:
            head, headers = fetch_range(url, 0, remote_identity.HEADER_BYTES)
            size = remote_identity.object_size(headers)
            if size is None:
                raise RemoteReadError(f"{url}: the answer to a Range request has no Content-Range")
            self.size = size
        _cache.put(self.key, 0, head)

    def read(self, start: int, size: int) -> bytes:
        """Bytes [start, start + size), clipped to the object (cached, else fetched)."""
        size = min(size, self.size - start)
        if size <= 0:
            return b""
        data = _cache.get(self.key, start, size)
        if data is not None:
            return data
        want = min(max(size, MIN_FETCH), self.size - start)
        fetched, _ = fetch_range(self.url, start, want)
        _cache.put(self.key, start, fetched)
        return fetched[:size]

    def read_ranges(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        """Several ranges; those not cached are fetched in parallel, near ones merged."""
        missing = sorted({(s, n) for s, n in ranges if n > 0 and _cache.get(self.key, s, n) is None})
        groups: list[list[int]] = []
        for start, size in missing:
            end = min(start + size, self.size)
            if groups and start - groups[-1][1] <= MERGE_GAP:
                groups[-1][1] = max(groups[-1][1], end)
            elif start < self.size:
                groups.append([start, end])
        if len(groups) > 1:
            for _ in _pool().map(lambda g: self.read(g[0], g[1] - g[0]), groups):
                pass
        elif groups:
            self.read(groups[0][0], groups[0][1] - groups[0][0])
        return [self.read(s, n) for s, n in ranges]


_pool_lock = threading.Lock()
_pool_state: dict[str, Any] = {}


def _pool() -> ThreadPoolExecutor:
    """Threads for parallel range requests (made on first use, and again after a fork)."""
    with _pool_lock:
        if _pool_state.get("pid") != os.getpid():
            _pool_state.update(pid=os.getpid(), pool=ThreadPoolExecutor(PARALLEL, thread_name_prefix="vsiotsu"))
        return _pool_state["pool"]


# ---------------------------------------------------------------- the GDAL plugin
_STAT = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int)
_OPEN = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p)
_TELL = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p)
_SEEK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int)
_READ = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t)
_MULTI = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.c_int,
    ctypes.POINTER(ctypes.c_void_p),
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ctypes.c_size_t),
)
_HANDLE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
_VP = ctypes.c_void_p


class _Callbacks(ctypes.Structure):
    """The leading fields of GDAL's `VSIFilesystemPluginCallbacksStruct` (cpl_vsi.h, GDAL >= 3.0)."""

    _fields_ = [
        ("pUserData", _VP),
        ("stat", _STAT),
        ("unlink", _VP),
        ("rename", _VP),
        ("mkdir", _VP),
        ("rmdir", _VP),
        ("read_dir", _VP),
        ("open", _OPEN),
        ("tell", _TELL),
        ("seek", _SEEK),
        ("read", _READ),
        ("read_multi_range", _MULTI),
        ("get_range_status", _VP),
        ("eof", _HANDLE),
        ("write", _VP),
        ("flush", _VP),
        ("truncate", _VP),
        ("close", _HANDLE),
        ("nBufferSize", ctypes.c_size_t),
        ("nCacheSize", ctypes.c_size_t),
        ("sibling_files", _VP),
    ]


#: (st_mode, st_size) offsets in glibc's `struct stat` (GDAL's VSIStatBufL on Linux).
_STAT_OFFSETS = {"x86_64": (24, 48), "aarch64": (16, 48)}

_known: set[str] = set()  # URLs given out by gdal_path: the only names this file system serves
_objects: dict[str, RemoteObject] = {}
_handles: dict[int, list[Any]] = {}  # handle id -> [RemoteObject, position]
_state_lock = threading.Lock()
_install_lock = threading.Lock()
_installed: dict[str, Any] = {}


def _object(url: str) -> RemoteObject:
    """The object of `url` at its current identity (made on first use)."""
    with _state_lock:
        obj = _objects.get(url)
    if obj is not None and obj.key == (url, remote_identity.identity(url)):
        return obj
    obj = RemoteObject(url)
    with _state_lock:
        if len(_objects) >= 4096:
            _objects.clear()
        _objects[url] = obj
    return obj


def _report(message: str, installed: dict[str, Any] = _installed) -> None:
    """Put a read failure on GDAL's error stack (rasterio raises it; errors.py maps it to a status)."""
    lib = installed.get("lib")
    if lib is not None:
        lib.CPLError(3, 11, b"%s", message.encode("utf-8", "replace"))  # CE_Failure, CPLE_HttpResponse


def _guarded(fail: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    # what the callbacks use is bound here, not looked up in the module's dict: GDAL may still
    # call them (closing datasets) while Python finalizes and that dict is being cleared
    def wrap(func: Callable[..., Any], report: Callable[[str], None] = _report) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            try:
                return func(*args)
            except Exception as e:  # a callback must not raise into GDAL
                report(str(e) if isinstance(e, RemoteReadError) else f"remote read failed: {e!r}")
                return fail

        return call

    return wrap


@_guarded(-1)
def _cb_stat(_user: int, name: bytes, buf: int, _flags: int) -> int:
    url = name.decode("utf-8")
    offsets = _STAT_OFFSETS.get(platform.machine())
    if url not in _known or offsets is None:
        return -1
    size = _object(url).size
    ctypes.memset(buf, 0, 128)
    ctypes.c_uint32.from_address(buf + offsets[0]).value = 0o100444
    ctypes.c_int64.from_address(buf + offsets[1]).value = size
    return 0


@_guarded(None)
def _cb_open(_user: int, name: bytes, access: bytes) -> int | None:
    url = name.decode("utf-8")
    if url not in _known or access.decode().strip("b") not in ("r", ""):
        return None  # sidecars (.ovr, .msk, .aux.xml) and writes: not here, and no request
    obj = _object(url)
    with _state_lock:
        handle = _installed["next"] = _installed.get("next", 0) + 1
        _handles[handle] = [obj, 0]
    return handle


@_guarded(0)
def _cb_tell(handle: int, handles: dict[int, list[Any]] = _handles) -> int:
    return int(handles[handle][1])


@_guarded(-1)
def _cb_seek(handle: int, offset: int, whence: int, handles: dict[int, list[Any]] = _handles) -> int:
    entry = handles[handle]
    base = {0: 0, 1: entry[1]}.get(whence, entry[0].size)  # SEEK_SET, SEEK_CUR, else SEEK_END
    entry[1] = base + offset
    return 0


@_guarded(0)
def _cb_read(handle: int, buffer: int, size: int, count: int) -> int:
    entry = _handles[handle]
    if size == 0:
        return 0
    data = entry[0].read(entry[1], size * count)
    ctypes.memmove(buffer, data, len(data))
    entry[1] += len(data)
    return len(data) // size


@_guarded(-1)
def _cb_read_multi(handle: int, count: int, buffers: Any, offsets: Any, sizes: Any) -> int:
    ranges = [(int(offsets[i]), int(sizes[i])) for i in range(count)]
    for i, data in enumerate(_handles[handle][0].read_ranges(ranges)):
        if len(data) != ranges[i][1]:
            return -1
        ctypes.memmove(buffers[i], data, len(data))
    return 0


@_guarded(1)
def _cb_eof(handle: int, handles: dict[int, list[Any]] = _handles) -> int:
    entry = handles[handle]
    return int(entry[1] >= entry[0].size)


@_guarded(-1)
def _cb_close(handle: int, handles: dict[int, list[Any]] = _handles, lock: threading.Lock = _state_lock) -> int:
    with lock:
        handles.pop(handle, None)
    return 0


def _install() -> None:
    """Install the `/vsiotsu/` file system in GDAL (once per process)."""
    if _installed.get("done"):
        return
    with _install_lock:
        if _installed.get("done"):
            return
        lib = remote_identity._libgdal()
        if lib is None:
            raise RuntimeError("libgdal not found in this process: cannot install the remote reader")
        lib.VSIAllocFilesystemPluginCallbacksStruct.restype = ctypes.POINTER(_Callbacks)
        lib.VSIInstallPluginHandler.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Callbacks)]
        lib.VSIFreeFilesystemPluginCallbacksStruct.argtypes = [ctypes.POINTER(_Callbacks)]
        lib.CPLError.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p]
        callbacks = {
            "stat": _STAT(_cb_stat),
            "open": _OPEN(_cb_open),
            "tell": _TELL(_cb_tell),
            "seek": _SEEK(_cb_seek),
            "read": _READ(_cb_read),
            "read_multi_range": _MULTI(_cb_read_multi),
            "eof": _HANDLE(_cb_eof),
            "close": _HANDLE(_cb_close),
        }
        struct = lib.VSIAllocFilesystemPluginCallbacksStruct()
        for name, func in callbacks.items():
            setattr(struct.contents, name, func)
        # GDAL keeps a pointer to the prefix (not a copy): it lives as long as the process
        prefix = ctypes.create_string_buffer(PREFIX.encode())
        if lib.VSIInstallPluginHandler(ctypes.addressof(prefix), struct) != 0:
            raise RuntimeError("GDAL refused to install the /vsiotsu/ file system")
        lib.VSIFreeFilesystemPluginCallbacksStruct(struct)
        # GDAL calls these until the process ends, also while Python finalizes (a dataset
        # closed by the last garbage collection): they must outlive this module's dict
        for kept in (*callbacks.values(), prefix):
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(kept))
        _installed.update(lib=lib, callbacks=callbacks, prefix=prefix, done=True)


def clear() -> None:
    """Forget every fetched range and object (tests; a changed object needs no call: keys hold its identity)."""
    _cache.clear()
    with _state_lock:
        _objects.clear()

"""Remote COG bytes for GDAL from our own HTTP client: exact ranges, no redirects, no HEAD.

GDAL's `/vsicurl/` costs a cold open two requests (a `HEAD` for the size, a `GET` for the
header), follows redirects (libcurl; GDAL 3.10 cannot be told not to), and reads ahead past a
block when the next block of the file follows. For http(s) sources this module installs a
GDAL virtual file system (`/vsiotsu/`, GDAL's plugin API through ctypes) whose bytes come from
`http.client` (`remote_http.fetch_range`):

* **open** and **reads**: `remote_bytes.RemoteObject` (the probe's header, exact ranges, a
  byte cache, each range fetched once);
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
from collections.abc import Callable
from typing import Any

from titiler_otsu.errors import gdal_library
from titiler_otsu.io import remote_bytes
from titiler_otsu.io.remote_bytes import remote_object
from titiler_otsu.io.remote_http import RemoteReadError

PREFIX = "/vsiotsu/"
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
_handles: dict[int, list[Any]] = {}  # handle id -> [RemoteObject, position]
_state_lock = threading.Lock()
_install_lock = threading.Lock()
_installed: dict[str, Any] = {}


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
    size = remote_object(url).size
    ctypes.memset(buf, 0, 128)
    ctypes.c_uint32.from_address(buf + offsets[0]).value = 0o100444
    ctypes.c_int64.from_address(buf + offsets[1]).value = size
    return 0


@_guarded(None)
def _cb_open(_user: int, name: bytes, access: bytes) -> int | None:
    url = name.decode("utf-8")
    if url not in _known or access.decode().strip("b") not in ("r", ""):
        return None  # sidecars (.ovr, .msk, .aux.xml) and writes: not here, and no request
    obj = remote_object(url)
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
        lib = gdal_library()
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
    remote_bytes.clear()

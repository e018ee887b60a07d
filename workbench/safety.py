"""Guards every reader and writer shares: a memory budget, bounded JSON, safe input files, atomic outputs.

Memory budget: sizes declared by a file or a request are checked against
:func:`memory_limit` *before* anything is allocated. The default is the smallest of 4 GiB, half of
the physical memory and half of what the process may still map under ``RLIMIT_AS``; set the
environment variable ``WORKBENCH_MEMORY_LIMIT`` (bytes, or a size such as ``16G`` or ``512M``, or
``unlimited``) to change it.

Atomic writes: the data goes to a temporary ``.NAME.<pid>.<random>.tmp`` in the target's folder,
is flushed and ``fsync``-ed, then ``os.replace``-d over the target, so a reader sees the old file or
the new one, never a mix. Temporaries left by a killed writer (its pid is gone) are removed on the
next write to the same path. New files get ``0o666`` minus the umask; a replaced file keeps its
mode. Only regular files are ever replaced: a folder, FIFO or device at the target is refused.
"""
from __future__ import annotations

import errno
import json
import numbers
import os
import re
import secrets
import shutil
import stat
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import numpy as np

from .errors import BadParameterError, DatasetError, ResourceLimitError, StorageError

PathLike = Union[str, os.PathLike]

MEMORY_ENV = "WORKBENCH_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = 4 * 2**30
JSON_MAX_BYTES = 8 * 2**20
JSON_MAX_DEPTH = 64
# a temporary without a pid in its name (older versions) counts as stale after this long
LEGACY_TEMP_AGE_S = 600.0
_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20, "mib": 2**20,
          "g": 2**30, "gb": 2**30, "gib": 2**30, "t": 2**40, "tb": 2**40, "tib": 2**40}
_active_temporaries: set[str] = set()
_active_lock = threading.Lock()


# --- memory budget -----------------------------------------------------------------------------

def parse_size(text: str) -> int:
    """Bytes from ``"4G"``, ``"512 MiB"``, ``"1e9"`` or ``"1048576"`` (binary units)."""
    match = re.fullmatch(r"\s*([0-9.eE+]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = match.group(2).lower() if match else None
    try:
        if match is None or unit not in _UNITS:
            raise ValueError
        value = float(match.group(1)) * _UNITS[unit]
    except ValueError:
        raise ResourceLimitError(f"{MEMORY_ENV}={text!r} is not a size; use bytes or a size like 8G, 512M "
                                 "or 'unlimited'") from None
    if not value > 0 or value == float("inf"):
        raise ResourceLimitError(f"{MEMORY_ENV}={text!r} must be a positive size")
    return int(value)


def _physical_memory() -> Optional[int]:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _address_space_headroom() -> Optional[int]:
    """Bytes this process may still map under ``RLIMIT_AS`` (``None`` when unlimited)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/statm") as handle:
            mapped = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        mapped = 0
    return max(soft - mapped, 0)


def memory_limit_is_default() -> bool:
    """True unless the user set ``WORKBENCH_MEMORY_LIMIT``."""
    return not os.environ.get(MEMORY_ENV, "").strip()


def memory_limit() -> Optional[int]:
    """The memory budget in bytes for one allocation; ``None`` when ``WORKBENCH_MEMORY_LIMIT=unlimited``."""
    raw = os.environ.get(MEMORY_ENV, "").strip()
    if raw.lower() in ("unlimited", "none", "inf"):
        return None
    if raw:
        return parse_size(raw)
    candidates = [DEFAULT_MEMORY_LIMIT]
    for total in (_physical_memory(), _address_space_headroom()):
        if total:
            candidates.append(total // 2)
    return min(candidates)


def format_bytes(nbytes: float) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def check_allocation(nbytes: int, what: str) -> None:
    """Refuse an allocation of ``nbytes`` bytes for ``what`` that exceeds :func:`memory_limit`.

    Arguments:
        nbytes: the size the allocation would have (declared shape x item size).
        what: a phrase naming the thing, e.g. ``"dataset 'state' in data.h5 (1000, 100000, 3) float64"``.

    Raises:
        ResourceLimitError: naming ``what``, both sizes and the override.
    """
    limit = memory_limit()
    if limit is not None and nbytes > limit:
        raise ResourceLimitError(
            f"{what} needs {format_bytes(nbytes)}, more than the memory budget of {format_bytes(limit)}; "
            f"use a smaller input, or raise the budget with the environment variable {MEMORY_ENV} "
            "(e.g. 16G) if this machine has the memory")


# --- argument types ----------------------------------------------------------------------------

def check_integer(value: Any, name: str, low: Optional[int] = None, high: Optional[int] = None) -> int:
    """``value`` as an ``int`` in ``[low, high]``; booleans, floats and strings are refused.

    Raises:
        BadParameterError: naming ``name``, the value and the accepted range.
    """
    span = f"an integer in [{'-inf' if low is None else low}, {'inf' if high is None else high}]"
    fix = f"pass {span}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise BadParameterError(f"{name} must be {span}, got {value!r} ({type(value).__name__})", fix=fix)
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise BadParameterError(f"{name} must be {span}, got {value}", fix=fix)
    return value


def check_real(value: Any, name: str, low: Optional[float] = None, high: Optional[float] = None,
               low_open: bool = False) -> float:
    """``value`` as a finite ``float`` in ``[low, high]`` (``(low, high]`` with ``low_open``).

    Booleans and strings are refused, so ``True`` never becomes ``1.0`` and ``"1e-3"`` is not parsed.

    Raises:
        BadParameterError: naming ``name``, the value and the accepted range.
    """
    span = (f"a finite number in {'(' if low_open else '['}{'-inf' if low is None else low}, "
            f"{'inf' if high is None else high}]")
    fix = f"pass {span}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise BadParameterError(f"{name} must be {span}, got {value!r} ({type(value).__name__})", fix=fix)
    value = float(value)
    below = low is not None and (value <= low if low_open else value < low)
    if value != value or value in (float("inf"), float("-inf")) or below or (high is not None and value > high):
        raise BadParameterError(f"{name} must be {span}, got {value}", fix=fix)
    return value


def as_float_array(value: Any, name: str, error: type = BadParameterError) -> np.ndarray:
    """``value`` (a number or an array of numbers) as a float64 array.

    Strings, ``None``, booleans, objects and ragged lists are refused, so ``"1e-3"`` is never parsed
    and ``True`` never becomes ``1.0``.

    Raises:
        ``error`` (a :class:`WorkbenchError` subclass; default :class:`BadParameterError`): naming
        ``name`` and what was given.
    """
    refused = error(f"{name} must be a number or an array of numbers, got {type(value).__name__} "
                    f"{str(value)[:60]!r}", fix=f"pass {name} as numbers (a float or an array of floats)")
    if value is None or isinstance(value, (str, bytes, bool, np.bool_)):
        raise refused
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        raise refused from None
    if array.dtype.kind not in "iuf":
        raise refused
    return array.astype(np.float64)


# --- bounded JSON ------------------------------------------------------------------------------

def json_depth(value: Any) -> int:
    """Nesting depth of a decoded JSON value (a scalar is 0), measured without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            depth += 1
            deepest = max(deepest, depth)
            stack.extend((child, depth) for child in item if isinstance(child, (dict, list)))
    return deepest


def parse_json_bounded(text: Union[str, bytes], what: str, max_bytes: int = JSON_MAX_BYTES,
                       max_depth: int = JSON_MAX_DEPTH) -> Any:
    """Decode JSON ``text`` no longer than ``max_bytes`` and nested no deeper than ``max_depth``.

    Raises:
        DatasetError: naming ``what`` for oversize, too deep, or invalid JSON.
    """
    size = len(text.encode() if isinstance(text, str) else text)
    if size > max_bytes:
        raise DatasetError(f"{what} holds {format_bytes(size)} of JSON, more than the limit of "
                           f"{format_bytes(max_bytes)}; it was not written by the workbench or was padded")
    try:
        value = json.loads(text)
    except RecursionError:
        value, depth = None, max_depth + 1
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{what} is not valid JSON ({exc}); rewrite it with the workbench") from None
    else:
        depth = json_depth(value)
    if depth > max_depth:
        raise DatasetError(f"{what} nests JSON deeper than {max_depth} levels; the workbench never writes "
                           "that deep, so the file was crafted or corrupted")
    return value


def read_json_bounded(source: Union[PathLike, bytes], max_bytes: int = JSON_MAX_BYTES,
                      max_depth: int = JSON_MAX_DEPTH, what: Optional[str] = None) -> Any:
    """Decode a JSON file (a path) or JSON bytes, refusing oversize or deeply nested content.

    The file's size is checked before it is read.

    Arguments:
        source: a path to a JSON file, or the JSON as ``bytes``.
        max_bytes, max_depth: limits on size and nesting.
        what: how to name the source in errors (default: the path, or "JSON").

    Returns:
        The decoded value.

    Raises:
        DatasetError: missing, oversize, too deep or invalid JSON; StorageError: unreadable file.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return parse_json_bounded(bytes(source), what or "JSON", max_bytes, max_depth)
    path = check_input_file(source, what or "JSON file")
    size = path.stat().st_size
    if size > max_bytes:
        raise DatasetError(f"{what or path} holds {format_bytes(size)} of JSON, more than the limit of "
                           f"{format_bytes(max_bytes)}; it was not written by the workbench or was padded")
    with _reading(path):
        raw = path.read_bytes()
    return parse_json_bounded(raw, what or str(path), max_bytes, max_depth)


# --- input files -------------------------------------------------------------------------------

@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn the operating system's refusals into :class:`StorageError` naming ``path``."""
    try:
        yield
    except PermissionError:
        raise StorageError(f"{path} cannot be read: permission denied; fix its permissions "
                           f"(e.g. chmod u+r {path}) or run as its owner") from None
    except IsADirectoryError:
        raise DatasetError(f"{path} is a folder, not a file; pass the file inside it") from None


def check_input_file(path: PathLike, what: str = "file") -> Path:
    """``path`` as a :class:`Path` after checking it is an existing, readable regular file.

    A folder, FIFO or device is refused (reading a FIFO would block forever).

    Raises:
        DatasetError: missing or not a regular file; StorageError: permission denied.
    """
    path = as_path(path, what)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise DatasetError(f"no such file: {path}; check the path") from None
    except NotADirectoryError:
        raise DatasetError(f"no such file: {path}; a part of the path is a file, not a folder") from None
    except PermissionError:
        raise StorageError(f"{path} cannot be reached: permission denied on a folder above it") from None
    if stat.S_ISDIR(info.st_mode):
        raise DatasetError(f"{path} is a folder; pass the {what} inside it")
    if not stat.S_ISREG(info.st_mode):
        raise DatasetError(f"{path} is {_kind(info.st_mode)}, not a regular file; give the path of the {what} on disk")
    with _reading(path):
        with open(path, "rb"):
            pass
    return path


def as_path(path: Any, what: str = "path") -> Path:
    """``path`` as a :class:`Path`; anything but text or a path-like object is a :class:`BadParameterError`."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise BadParameterError(f"{what} must be a file path (text or pathlib.Path), got {path!r}")
    return Path(path)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


# --- atomic outputs ----------------------------------------------------------------------------

def check_output_target(path: PathLike) -> Path:
    """``path`` after checking a file may be written there; creates missing parent folders.

    Raises:
        StorageError: the target is a folder, FIFO, device or socket, or its parent is not a folder
        or cannot be created.
    """
    path = as_path(path, "output path")
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        info = None
    except PermissionError:
        raise StorageError(f"cannot write {path}: permission denied on a folder above it") from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise StorageError(f"{path} is a folder; give a file name inside it, e.g. {path / 'data.h5'}")
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise StorageError(f"{path} is {_kind(info.st_mode)}, not a regular file; refusing to replace it. "
                           "Give a path to a regular file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise StorageError(f"cannot write {path}: a part of {path.parent} is a file, not a folder; "
                           "choose another output path") from None
    except OSError as exc:
        raise storage_error(exc, path, None) from None
    return path


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}."


def remove_stale_temporaries(path: PathLike) -> list[Path]:
    """Delete ``.NAME.<pid>.*.tmp`` files next to ``path`` whose writer process no longer exists.

    Temporaries of live writers (this process's included) are kept. Returns the removed paths.
    """
    path = Path(path)
    prefix, removed = _temporary_prefix(path), []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return removed
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        candidate = path.parent / name
        with _active_lock:
            if str(candidate) in _active_temporaries:
                continue
        if _writer_alive(name[len(prefix):-len(".tmp")], candidate):
            continue
        try:
            candidate.unlink()
            removed.append(candidate)
        except OSError:  # another process removed it first, or it is not ours to remove
            pass
    return removed


def _writer_alive(middle: str, candidate: Path) -> bool:
    pid_text = middle.split(".")[0]
    if not pid_text.isdigit():
        try:
            return time.time() - candidate.lstat().st_mtime < LEGACY_TEMP_AGE_S
        except OSError:
            return True
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # ours, but not in the active set: left by an earlier failed write
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


@contextmanager
def atomic_target(path: PathLike, need_bytes: Optional[int] = None) -> Iterator[Path]:
    """Context manager yielding a temporary path that replaces ``path`` when the block succeeds.

    The temporary is created next to ``path`` (same file system) with the umask's mode (or the
    replaced file's mode), fsync-ed before the rename, and removed on any failure. An ``OSError``
    (full disk, permissions) becomes a :class:`StorageError` naming ``path`` and, for a full disk,
    ``need_bytes``; the old file is left as it was.
    """
    path = check_output_target(path)
    remove_stale_temporaries(path)
    tmp = path.parent / f"{_temporary_prefix(path)}{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mode = 0o666  # the kernel applies the umask on creation
    with _active_lock:
        _active_temporaries.add(str(tmp))
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            os.close(fd)
            if mode != 0o666:
                os.chmod(tmp, mode)
            yield tmp
            _fsync_file(tmp)
            os.replace(tmp, path)
            fsync_folder(path.parent)
        except BaseException as exc:
            _unlink_quietly(tmp)
            if isinstance(exc, OSError) and not isinstance(exc, StorageError):
                raise storage_error(exc, path, need_bytes) from None
            raise
    finally:
        with _active_lock:
            _active_temporaries.discard(str(tmp))


def atomic_write_bytes(path: PathLike, data: Union[bytes, bytearray, memoryview]) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_target`); returns the path."""
    data = memoryview(data)
    with atomic_target(path, need_bytes=data.nbytes) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
    return Path(path)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(folder: Path) -> None:
    """Make the rename durable; some file systems refuse fsync on folders, which is harmless."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def is_disk_full(exc: BaseException) -> bool:
    """True for a full disk or exhausted quota (also when a library only says so in its message)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return "no space left" in str(exc).lower() or "disk quota exceeded" in str(exc).lower()


def storage_error(exc: OSError, path: Path, need_bytes: Optional[int]) -> StorageError:
    if is_disk_full(exc):
        try:
            free = format_bytes(shutil.disk_usage(path.parent).free)
        except OSError:
            free = "unknown"
        need = f"about {format_bytes(need_bytes)}" if need_bytes is not None else "more space"
        return StorageError(f"the disk is full writing {path}: it needs {need}, {free} is free; free some space "
                            "or write elsewhere. The previous file (if any) is unchanged")
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageError(f"cannot write {path}: {exc.strerror or 'permission denied'}; choose a folder you "
                            "can write to")
    return StorageError(f"could not write {path}: {exc.strerror or exc}; the previous file (if any) is unchanged")


__all__ = [
    "MEMORY_ENV", "as_path", "atomic_target", "atomic_write_bytes", "check_allocation", "check_input_file", "check_integer",
    "check_output_target", "check_real", "format_bytes", "is_disk_full", "json_depth", "memory_limit",
    "memory_limit_is_default", "parse_json_bounded", "parse_size", "read_json_bounded", "remove_stale_temporaries",
]

"""Run folders that change as one unit: every save writes a complete new generation, then one
small pointer file is switched atomically, so a reader or a resumed run never sees a mix of files
from two saves, and a ``kill -9`` at any moment leaves the previous generation loadable.

Layout::

    run/CURRENT            the name of the newest complete generation ("gen-000012")
    run/gen-000012/        model.safetensors, config.json, history.json (+ checkpoint.* while training)
    run/.lock              held (flock) by the one process writing the folder

Folders written before generations existed (the files directly in ``run/``) are still read.
"""
from __future__ import annotations

import fcntl
import os
import re
import shutil
from pathlib import Path
from typing import Optional

from ..data.io import PathLike
from ..safety import atomic_write_bytes
from ..errors import DatasetError, WorkbenchError
from ..safety import fsync_folder, storage_error

POINTER = "CURRENT"
KEEP_GENERATIONS = 3
# a generation number has at least six digits; 18 bound it (10**18 saves) so a pointer's name stays short
GENERATION = re.compile(r"gen-(\d{6,18})")
MAX_POINTER_BYTES = 64  # "gen-" + 18 digits + a newline fits; a longer pointer is not ours
READ_ATTEMPTS = 5


class RunBusyError(WorkbenchError, RuntimeError):
    """Another process is writing the same run folder."""


class RunWriter:
    """The one writer of a run folder: holds its lock and writes generations.

    Use as a context manager; a second writer of the same folder gets :class:`RunBusyError`.
    """

    def __init__(self, path: PathLike):
        self.folder = Path(path)
        self._lock_fd: Optional[int] = None

    def __enter__(self) -> "RunWriter":
        if self.folder.exists() and not self.folder.is_dir():
            raise DatasetError(f"{self.folder} exists and is not a folder; choose another --out path")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DatasetError(f"cannot create the run folder {self.folder} ({exc.strerror}); "
                               "choose a writable --out path") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RunBusyError(f"run folder {self.folder} is being written by another process; wait for it to "
                               "finish or write to another folder") from None
        self._lock_fd = fd
        self._remove_partial()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _remove_partial(self) -> None:
        """Delete generations a killed writer left half-written (never pointed to)."""
        for entry in self.folder.glob(".gen-*.partial"):
            shutil.rmtree(entry, ignore_errors=True)

    def write(self, files: dict[str, bytes]) -> Path:
        """Write ``files`` as the next generation and make it current; returns its folder."""
        number = max((n for n, _ in generations(self.folder)), default=0) + 1
        name = f"gen-{number:06d}"
        partial = self.folder / f".{name}.partial"
        try:
            partial.mkdir()
            for filename, data in files.items():
                with open(partial / filename, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
            fsync_folder(partial)
            os.rename(partial, self.folder / name)
            atomic_write_bytes(self.folder / POINTER, name.encode())
        except OSError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            raise storage_error(exc, self.folder / name, sum(len(d) for d in files.values())) from None
        for _, path in generations(self.folder)[:-KEEP_GENERATIONS]:
            shutil.rmtree(path, ignore_errors=True)
        return self.folder / name


def generations(folder: Path) -> list[tuple[int, Path]]:
    """Complete generations in a run folder, oldest first."""
    found = []
    for entry in folder.iterdir() if folder.is_dir() else ():
        match = GENERATION.fullmatch(entry.name)
        if match and entry.is_dir():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def read_run_files(path: PathLike, names: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, bytes]:
    """The files of a run folder's current generation (or of a pre-generation flat folder).

    Retries when a concurrent writer prunes the generation between reading the pointer and the
    files, so readers never fail because a save happened at the same time.
    """
    folder = Path(path)
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is not a folder"
        raise DatasetError(f"{folder} {what}; pass a run folder written by model.save or `workbench fit --out`")
    for _ in range(READ_ATTEMPTS):
        base = current_generation(folder)
        try:
            out = {n: (base / n).read_bytes() for n in names}
            out.update({n: (base / n).read_bytes() for n in optional if (base / n).is_file()})
            return out
        except FileNotFoundError as exc:
            # a writer that switched the pointer meanwhile may have pruned `base`: read again; a pointer
            # that still names `base` means the files are missing, not changing
            if base == folder or current_generation(folder) == base:
                raise _missing(folder, base, exc) from None
        except PermissionError:
            raise DatasetError(f"{folder}: permission denied reading the run files",
                               fix="check the folder's permissions") from None
        except OSError as exc:  # a run file that is a folder, a device or unreadable
            what = Path(exc.filename).name if exc.filename else "the run files"
            raise DatasetError(f"{folder}: cannot read {what} in {base.name} ({exc.strerror or exc})",
                               fix="restore the folder from a copy or save the model again") from None
    raise DatasetError(f"{folder} kept changing while it was read ({READ_ATTEMPTS} attempts): another process "
                       "saves to it", fix="wait for that process to finish, then try again")


def _missing(folder: Path, base: Path, exc: FileNotFoundError) -> DatasetError:
    """The error for a run file that is not there: a missing generation or a missing file in one."""
    if base != folder and not base.is_dir():
        return DatasetError(f"{folder / POINTER} names the generation {base.name}, which does not exist",
                            fix="restore the folder from a copy, or point CURRENT at one of "
                                f"{[p.name for _, p in generations(folder)] or 'its generations (none left)'}")
    missing = Path(exc.filename).name if exc.filename else "a file"
    return DatasetError(f"{base} is not a complete model folder (no {missing})",
                        fix="save models with model.save(path)")


def current_generation(path: PathLike) -> Path:
    """The folder holding the run's current files: its newest generation, or the folder itself
    for runs saved before generations existed."""
    folder = Path(path)
    pointer = folder / POINTER
    if not pointer.is_file():
        return folder
    try:
        with open(pointer, "rb") as handle:  # bounded: a hostile pointer may be any size
            raw = handle.read(MAX_POINTER_BYTES + 1)
    except OSError as exc:
        raise DatasetError(f"cannot read {pointer} ({exc.strerror or exc})",
                           fix="check the folder's permissions or restore it from a copy") from None
    name = raw.decode("ascii", errors="replace").strip()
    if len(raw) > MAX_POINTER_BYTES or not GENERATION.fullmatch(name):
        found = f"more than {MAX_POINTER_BYTES} bytes" if len(raw) > MAX_POINTER_BYTES else repr(name[:40])
        raise DatasetError(f"{pointer} does not name a generation (found {found})",
                           fix="the folder was modified by hand: restore it from a copy, or write the name of one of "
                               "its gen-NNNNNN folders into CURRENT")
    return folder / name


def has_run(path: PathLike) -> bool:
    """True if ``path`` holds a saved run (current generation or flat files)."""
    folder = Path(path)
    return (folder / POINTER).is_file() or (folder / "config.json").is_file()

"""Datasets on disk: HDF5 (netCDF-4 layout via h5netcdf) written atomically and read behind safety checks.

Files written here open with ``xarray.open_dataset(path, engine="h5netcdf")`` and plain h5py; reading
checks the HDF5 tree first (links, external storage, virtual datasets, depth, declared sizes) so a
hostile file raises a :class:`~workbench.errors.DatasetError` instead of exhausting memory.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import h5py
import numpy as np
import xarray as xr

from ..errors import DatasetError, ResourceLimitError
from ..safety import (MEMORY_ENV, atomic_write_bytes, check_allocation, check_input_file, check_output_target,
                      format_bytes, memory_limit_is_default)
from .schema import validate

PathLike = Union[str, os.PathLike]

def save(ds: xr.Dataset, path: PathLike) -> Path:
    """Write ``ds`` to HDF5 (netCDF-4 layout via h5netcdf), gzip+shuffle, chunked per trajectory.

    The write is atomic (:func:`workbench.safety.atomic_target`): the file is encoded in memory,
    written to a temporary in the same folder, fsync-ed and renamed over ``path``, so a crash or a
    full disk never leaves a half-written file and the old file stays intact. Returns the path.

    Raises:
        DatasetError: ``ds`` breaks the schema; StorageError: ``path`` is a folder, FIFO or device,
        the disk is full, or the folder cannot be written.
    """
    ds = validate(ds)
    encoding = {}
    for name, var in ds.variables.items():
        if var.dtype.kind in "fiub" and var.ndim >= 1 and var.size > 0:
            chunks = tuple(1 if dim in ("trajectory", "sample") else size for dim, size in zip(var.dims, var.shape))
            encoding[name] = {"compression": "gzip", "compression_opts": 4, "shuffle": True, "chunksizes": chunks}
            if var.dtype.kind == "f":
                encoding[name]["_FillValue"] = None
    return write_netcdf(ds, path, encoding)


def write_netcdf(ds: xr.Dataset, path: PathLike, encoding: Optional[dict] = None) -> Path:
    """Write any xarray Dataset (e.g. metrics) to HDF5 via h5netcdf, atomically.

    HDF5 never touches the target's file system: the file is built in memory and written as plain
    bytes, because HDF5 crashes the process when it closes a file after a failed write (full disk).
    """
    path = check_output_target(path)
    data = ds.to_netcdf(engine="h5netcdf", encoding=encoding or {}, invalid_netcdf=False)
    atomic_write_bytes(path, data)
    return path


def check_hdf5_safety(path: PathLike) -> None:
    """Reject files we will not read, before xarray touches them.

    Refused: a missing, unreadable or non-regular file, non-HDF5 content, external or soft links,
    external storage, virtual datasets, groups linked into themselves, nesting deeper than
    :data:`MAX_GROUP_DEPTH` or more than :data:`MAX_OBJECTS` objects, and datasets whose declared
    shape x dtype exceeds the memory budget (:func:`workbench.safety.check_allocation`): a small
    compressed or fill-value file can declare gigabytes. With the default budget, a file that
    would expand more than :data:`MAX_EXPANSION` times (and past 256 MiB) is refused as well.
    """
    path = check_input_file(path, "HDF5 file")
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError as exc:  # e.g. /proc files: regular, but unreadable the way HDF5 reads
        raise DatasetError(f"{path} could not be read as a file ({exc.strerror or exc}); pass a dataset file") from None
    if not is_hdf5:
        raise DatasetError(f"{path} is not an HDF5 file; save datasets with workbench.save or import CSV with workbench.from_csv")
    try:
        with h5py.File(path, "r") as handle:
            declared = _check_tree(handle, path)
    except OSError as exc:
        raise DatasetError(f"{path} could not be read as HDF5 ({exc}); the file may be truncated or corrupt") from None
    check_allocation(declared, f"reading {path} (its datasets as declared)")
    stored = path.stat().st_size
    if memory_limit_is_default() and declared > max(MIN_SUSPECT_BYTES, MAX_EXPANSION * stored):
        raise ResourceLimitError(
            f"{path} is {format_bytes(stored)} on disk but declares {format_bytes(declared)} of data "
            f"({declared / max(stored, 1):.0f}x; trajectory data compresses a few-fold), which is how "
            f"decompression and fill-value bombs look. If the file is genuine, set {MEMORY_ENV} (e.g. 16G) "
            "to read it")


MAX_GROUP_DEPTH = 32
MAX_OBJECTS = 10_000
# a file may expand this much when read before it counts as a bomb (with the default memory budget)
MAX_EXPANSION = 100
MIN_SUSPECT_BYTES = 256 * 2**20


def _check_tree(root: h5py.Group, path: Path) -> int:
    """Walk every link without recursion; return the bytes the datasets declare once read."""
    declared, seen, count = 0, {h5py.h5o.get_info(root.id).addr}, 0
    stack = [(root, 0)]
    while stack:
        group, depth = stack.pop()
        for name in group:
            count += 1
            if count > MAX_OBJECTS:
                raise DatasetError(f"{path} holds more than {MAX_OBJECTS} HDF5 objects; a workbench dataset has a "
                                   "few dozen. Export the variables you need into a new file")
            link = group.get(name, getlink=True)
            where = f"{group.name.rstrip('/')}/{name}"
            if isinstance(link, h5py.ExternalLink):
                raise DatasetError(f"{path}: {where} is an external link to {link.filename}; external links are "
                                   "refused because they read other files. Copy the data into the file instead")
            if isinstance(link, h5py.SoftLink):
                raise DatasetError(f"{path}: {where} is a soft link; links are refused, store the data directly")
            item = group[name]
            if isinstance(item, h5py.Group):
                address = h5py.h5o.get_info(item.id).addr
                if address in seen:
                    raise DatasetError(f"{path}: {where} links back to a group already in the file (a cycle or "
                                       "alias); store each group once")
                if depth + 1 > MAX_GROUP_DEPTH:
                    raise DatasetError(f"{path}: groups are nested deeper than {MAX_GROUP_DEPTH} levels at {where}; "
                                       "a workbench dataset keeps its variables at the top level")
                seen.add(address)
                stack.append((item, depth + 1))
            elif isinstance(item, h5py.Dataset):
                if item.is_virtual:
                    raise DatasetError(f"{path}: {where} is a virtual dataset; virtual datasets map other files and are refused")
                if item.external:
                    raise DatasetError(f"{path}: {where} uses external storage; its data lies in other files and is refused")
                declared += _declared_bytes(item, where, path)
    return declared


def _declared_bytes(item: h5py.Dataset, where: str, path: Path) -> int:
    """Bytes ``item`` occupies once read: its shape (or one chunk, if larger) x at least 8 bytes an element.

    Eight bytes because readers widen narrow types (integers with fill values become float64).
    """
    width = max(item.dtype.itemsize, 8)
    size = int(np.prod(item.shape, dtype=object)) * width if item.shape else width
    chunk = int(np.prod(item.chunks, dtype=object)) * width if item.chunks else 0
    check_allocation(max(size, chunk), f"{path}: dataset {where} (shape {item.shape}, {item.dtype})")
    return max(size, chunk)


def read_netcdf(path: PathLike) -> xr.Dataset:
    """Read any netCDF-4/HDF5 file (a dataset, a score table) fully into memory, behind the safety checks.

    The file is checked with h5py first (:func:`check_hdf5_safety`: links, external storage,
    virtual datasets, cycles, depth, declared sizes against the memory budget), then read and
    closed; its contents are not checked against the dataset schema (:func:`load` does that).

    Raises:
        DatasetError: the file is not readable netCDF-4; ResourceLimitError, StorageError: see
        :func:`check_hdf5_safety`.
    """
    check_hdf5_safety(path)
    try:
        # decode_times=False: a calendar axis stays numeric ("days since ...") as the schema wants
        with xr.open_dataset(path, engine="h5netcdf", phony_dims="sort", decode_times=False) as opened:
            return opened.load()
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise DatasetError(f"{path} is HDF5 but not a readable netCDF-4 dataset ({type(exc).__name__}: {exc})",
                           fix="write it with workbench.save or xarray's to_netcdf(engine='h5netcdf')") from None


def load(path: PathLike) -> xr.Dataset:
    """Read and validate a dataset written by :func:`save` (or any netCDF-4/HDF5 file in the schema).

    Reads through :func:`read_netcdf` (the safety checks), then checks the schema. Raises
    :class:`DatasetError` (or :class:`ResourceLimitError`, :class:`StorageError`) on any problem.
    """
    return validate(read_netcdf(path), source=str(path))

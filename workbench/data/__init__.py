"""Data: the dataset schema, files on disk, imports from the world, the time axis and series recipes.

``schema`` (make_dataset, validate, masks) · ``io`` (save/load, HDF5 safety) · ``imports`` (CSV,
netCDF, NumPy) · ``time`` (calendar axes, ``is_regular``, ``median_step``) · ``splits`` (split_time;
a split is labels on the time axis of whole series, pieces only where asked) · ``transforms``,
``embedding``, ``drivers`` and ``series`` (:class:`SeriesRecipe`: what a learner sees of a
measured series).

The names in ``__all__`` are this room's public API; they load on first use (PEP 562), so
importing one submodule does not import the others.
"""
import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING

if _TYPE_CHECKING:  # the same names, eagerly, for type checkers and editors
    from .drivers import add_seasonal_inputs
    from .embedding import suggest_embedding
    from .imports import TIME_NAMES
    from .realdata import load_real, real_datasets
    from .series import SeriesRecipe
    from .splits import label_split, merge_segments, split_at, split_time, time_split_info
    from .time import is_regular, median_step

# Public name -> the module of this room defining it, imported on first use.
_EXPORTS = {
    "SeriesRecipe": ".series", "add_seasonal_inputs": ".drivers", "suggest_embedding": ".embedding",
    "TIME_NAMES": ".imports", "load_real": ".realdata", "real_datasets": ".realdata",
    "label_split": ".splits", "merge_segments": ".splits", "split_at": ".splits", "split_time": ".splits",
    "time_split_info": ".splits", "is_regular": ".time", "median_step": ".time",
}

__all__ = [
    "SeriesRecipe", "TIME_NAMES", "add_seasonal_inputs", "is_regular", "label_split", "load_real", "median_step",
    "merge_segments", "real_datasets", "split_at", "split_time", "suggest_embedding", "time_split_info",
]


def __getattr__(name: str) -> object:
    """A public name, imported from its module on first access and cached."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value

"""Data: the dataset schema, files on disk, imports from the world, the time axis and series recipes.

``schema`` (make_dataset, validate, masks) · ``io`` (save/load, HDF5 safety) · ``imports`` (CSV,
netCDF, NumPy) · ``time`` (calendar axes, ``is_regular``, ``median_step``) · ``splits`` (split_time;
a split is labels on the time axis of whole series, pieces only where asked) · ``transforms``,
``embedding``, ``drivers`` and ``series`` (:class:`SeriesRecipe`: what a learner sees of a
measured series).

The names in ``__all__`` are this room's public API; they load on first use (PEP 562), so
importing one submodule does not import the others.
"""
from .._lazy import lazy_exports
from typing import TYPE_CHECKING as _TYPE_CHECKING

if _TYPE_CHECKING:  # the same names, eagerly, for type checkers and editors
    from .drivers import add_seasonal_inputs
    from .embedding import suggest_embedding
    from .imports import TIME_NAMES
    from .io import read_netcdf
    from .realdata import load_real, real_dataset_path, real_datasets
    from .schema import content_key, json_attr, make_dataset, observation_mask, validate
    from .series import SeriesRecipe
    from .splits import label_split, merge_segments, split_at, split_time, time_split_info
    from .time import is_calendar, is_regular, median_step, step_label, to_datetimes

# Public name -> the module of this room defining it, imported on first use.
_EXPORTS = {
    "SeriesRecipe": ".series", "add_seasonal_inputs": ".drivers", "suggest_embedding": ".embedding",
    "TIME_NAMES": ".imports", "load_real": ".realdata", "real_datasets": ".realdata",
    "label_split": ".splits", "merge_segments": ".splits", "split_at": ".splits", "split_time": ".splits",
    "time_split_info": ".splits", "is_regular": ".time", "median_step": ".time",
    "content_key": ".schema", "json_attr": ".schema", "observation_mask": ".schema", "make_dataset": ".schema",
    "validate": ".schema", "is_calendar": ".time", "step_label": ".time", "to_datetimes": ".time",
    "real_dataset_path": ".realdata", "read_netcdf": ".io",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

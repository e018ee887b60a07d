"""What a learner sees of a measured series: the recipe (:class:`SeriesRecipe`) and the one cut for training.

:func:`workbench.fit` hands a dataset here when it has a time split (:func:`workbench.split_time`)
or a recipe (``series=SeriesRecipe(...)``, or the keywords ``embed``, ``lag``, ``transform``,
``difference``, ``fill_gaps``). The walk touches each step once (:func:`prepare_series`):

1. the pieces of a time split are merged into whole series once; the split stays recorded as
   ``attrs["time_split"]`` (labels on the time axis), never as pieces;
2. the recipe runs on the whole series (:meth:`SeriesRecipe.forward`): ``transform`` (per variable
   ``log``/``log1p``/``logit``), ``fill_gaps``, ``difference`` (increments instead of levels, for
   trending series) and the delay embedding ``embed=k, lag=tau`` (delays only look back, so no
   sample of the training period sees a later one);
3. the result is cut once (:func:`training_layout`): regular series into equal-length, overlapping
   trajectories ("chunks") of the train and val periods on a time axis that starts at 0 and steps
   by the median sampling interval (a calendar axis of months, 28-31 days, counts as regular:
   :func:`workbench.data.time.is_regular`); every learner, discrete maps and closed-form ones
   included, then sees complete, regular trajectories; the test period is never used.

The fitted recipe is recorded as ``model.meta["series"]`` (:meth:`SeriesRecipe.to_json`, the JSON
model files have always held) so that :mod:`workbench.evaluation.forecast` maps forecasts back
(:meth:`SeriesRecipe.inverse`).

A 1-D autonomous ODE cannot oscillate (its flow is monotone), so fitting one to an oscillating
series warns and names ``embed`` with a suggestion from :func:`workbench.suggest_embedding`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import xarray as xr

from . import time as timeaxis, transforms
from ..evaluation.baselines import detect_period
from .schema import json_attr, make_dataset, observation_mask
from .drivers import check_driver_spec
from .embedding import check_embedding, embed_series, embedded_names, suggest_from_series, training_series
from ..errors import BadParameterError, DatasetError, UnsupportedError
from ..safety import check_real
from .splits import merge_segments, split_at, time_split_info
from .time import is_regular, median_step

# the recipe's choices, also accepted by fit as keywords
SERIES_OPTIONS = ("embed", "lag", "transform", "difference", "fill_gaps")
LAYOUTS = ("trajectories", "chunks", "pieces")
MIN_CHUNK = 16


@dataclass(frozen=True)
class SeriesRecipe:
    """How a measured series becomes what a learner sees, and how its outputs go back.

    Attributes:
        transform: per-variable transforms, e.g. ``{"sunspots": "log1p"}``, one name for every
            variable (``"log1p"``), or None.
        difference: fit the increments ``x_t - x_{t-1}`` (after the transform) instead of the
            levels, for trending series; forecasts sum them from the last observed level.
        embed, lag: delay embedding (Takens 1981; ``embed=1``: none), see
            :mod:`workbench.data.embedding`.
        fill_gaps: interpolate missing samples inside each series linearly before fitting, so that
            learners needing complete samples (discrete maps, NVAR, ESN, SINDy) can fit gappy data.
            The interpolated values are training data then; say so when you report results. An
            axis whose steps are not multiples of one step has no gaps to fill: such learners are
            refused.
        variables, units, time_units, time_split, drivers: facts of the data the recipe was fitted
            on, filled by :meth:`bind` (None before).
        step, layout: the learner's time step and how the data was laid out for training
            (``"trajectories"``, ``"chunks"`` or ``"pieces"``, see :func:`training_layout`), filled
            by ``fit``.

    Raises:
        BadParameterError: at construction, naming the field and what it accepts.
    """

    transform: Union[None, str, Mapping[str, str]] = None
    difference: bool = False
    embed: int = 1
    lag: int = 1
    fill_gaps: bool = False
    variables: Optional[tuple[str, ...]] = None
    units: Optional[tuple[str, ...]] = None
    time_units: Optional[str] = None
    time_split: Optional[Mapping[str, Any]] = None
    drivers: Optional[Mapping[str, Any]] = None
    step: Optional[float] = None
    layout: Optional[str] = None

    def __post_init__(self) -> None:
        embed, lag = check_embedding(self.embed, self.lag)
        object.__setattr__(self, "embed", embed)
        object.__setattr__(self, "lag", lag)
        for name in ("difference", "fill_gaps"):
            if not isinstance(getattr(self, name), bool):
                raise BadParameterError(f"{name}={getattr(self, name)!r} is not True or False",
                                        fix=f"pass {name}=True or {name}=False")
        variables = _names(self.variables, "variables")
        object.__setattr__(self, "variables", variables)
        object.__setattr__(self, "units", _names(self.units, "units"))
        if self.units is not None and variables is not None and len(self.units) != len(variables):
            raise BadParameterError(f"units lists {len(self.units)} entries for {len(variables)} variables")
        object.__setattr__(self, "transform", _checked_transform(self.transform, variables))
        if self.time_units is not None and not isinstance(self.time_units, str):
            raise BadParameterError(f"time_units must be a string, got {type(self.time_units).__name__}")
        if self.time_split is not None and not isinstance(self.time_split, Mapping):
            raise BadParameterError(f"time_split must be a mapping (split_time's record), got "
                                    f"{type(self.time_split).__name__}")
        if self.drivers is not None:
            object.__setattr__(self, "drivers", check_driver_spec(self.drivers))
        if self.step is not None:
            object.__setattr__(self, "step", check_real(self.step, "step", 0.0, low_open=True))
        if self.layout is not None and self.layout not in LAYOUTS:
            raise BadParameterError(f"layout {self.layout!r} is not one of {LAYOUTS}")

    @property
    def warmup(self) -> int:
        """Samples of history the recipe needs before its first complete sample: the embedding's
        delays and one sample for an increment."""
        return (self.embed - 1) * self.lag + int(self.difference)

    @property
    def learner_variables(self) -> list[str]:
        """The names of the variables the learner sees (the delays of each data variable)."""
        return embedded_names(list(self._bound("learner_variables").variables), self.embed, self.lag)

    def bind(self, ds: xr.Dataset) -> "SeriesRecipe":
        """This recipe with the facts of whole series ``ds`` filled in (``transform`` per variable).

        Raises:
            BadParameterError: a transform naming an unknown variable, or an embedding longer than the data.
        """
        variables = tuple(str(v) for v in ds["variable"].values)
        check_embedding(self.embed, self.lag, ds.sizes["time"])
        return replace(self, transform=transforms.check_spec(self.transform, variables), variables=variables,
                       units=tuple(str(u) for u in ds["units"].values) if "units" in ds.coords else None,
                       time_units=str(ds["time"].attrs.get("units", "1")), time_split=time_split_info(ds),
                       drivers=json_attr(ds, "drivers"))

    def forward(self, ds: xr.Dataset) -> xr.Dataset:
        """The whole series as the learner sees them: transformed, gaps filled, differenced and
        embedded, in that order, on the data's own time axis.

        Arguments:
            ds: whole series, or the pieces of a time split (merged here; the split stays as
                ``attrs["time_split"]``).

        Returns:
            The series in :attr:`learner_variables`; samples without their full history are masked.

        Raises:
            DatasetError: a value outside a transform's domain, or a series too short for the embedding.
        """
        whole = merge_segments(ds) if "series" in ds.coords else ds
        recipe = self.bind(whole) if self.variables is None else self._matching(whole)
        out = transforms.transform_dataset(whole, recipe.transform)
        if recipe.fill_gaps:
            out = interpolate_gaps(out)
        if recipe.difference:
            out = transforms.difference_dataset(out)
        return embed_series(out, recipe.embed, recipe.lag)

    def inverse(self, values: np.ndarray, last: Optional[np.ndarray] = None) -> np.ndarray:
        """Learner outputs back to the data's variables and units.

        Arguments:
            values: paths ``(..., H, D * embed)`` in :attr:`learner_variables` (standardisation
                already undone), ``H`` steps along the second-last axis.
            last: the last observed values ``(..., D)`` in the data's units before each path; with
                ``difference`` the increments are summed from them.

        Returns:
            ``(..., H, D)``: the undelayed coordinate of each variable, summed (``difference``) and
            inverse-transformed, so a positive quantity stays positive.
        """
        recipe = self._bound("inverse")
        variables = list(recipe.variables)
        out = np.asarray(values, dtype=np.float64)[..., ::self.embed]
        if self.difference:
            if last is None:
                raise BadParameterError("a differenced recipe needs the last observed values to sum increments from",
                                        fix="pass last=<the values at the forecast origins>")
            level = transforms.forward(np.asarray(last, dtype=np.float64), recipe.transform, variables,
                                       "the last observed values")
            with np.errstate(over="ignore", invalid="ignore"):
                out = level[..., None, :] + np.cumsum(out, axis=-2)
        return transforms.inverse(out, recipe.transform, variables)

    def to_json(self) -> dict[str, Any]:
        """The recipe as ``model.meta["series"]`` holds it (the keys model files have always used)."""
        return {"transform": dict(self.transform) if isinstance(self.transform, Mapping) else self.transform,
                "difference": self.difference, "fill_gaps": self.fill_gaps, "embed": self.embed, "lag": self.lag,
                "variables": None if self.variables is None else list(self.variables),
                "units": None if self.units is None else list(self.units), "step": self.step,
                "layout": self.layout, "time_units": self.time_units,
                "time_split": None if self.time_split is None else dict(self.time_split),
                "drivers": None if self.drivers is None else dict(self.drivers)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "SeriesRecipe":
        """The recipe from :meth:`to_json` output (or a model file of any version); unknown keys are ignored.

        Raises:
            BadParameterError: not a mapping, or a field out of range (naming it).
        """
        if not isinstance(data, Mapping):
            raise BadParameterError(f"a series recipe must be a mapping, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def _bound(self, what: str) -> "SeriesRecipe":
        if self.variables is None:
            raise BadParameterError(f"{what} needs a recipe bound to data (it has no variables yet)",
                                    fix="call recipe.bind(ds) first, or use the recipe of a fitted model")
        return self

    def _matching(self, ds: xr.Dataset) -> "SeriesRecipe":
        found = [str(v) for v in ds["variable"].values]
        if found != list(self.variables):
            raise DatasetError(f"the recipe was made for the variables {list(self.variables)}, the data has {found}",
                               fix="apply it to data with the same variables, or bind a new recipe")
        return self


def _names(value: Any, what: str) -> Optional[tuple[str, ...]]:
    """``value`` as a tuple of names, or None."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value \
            or not all(isinstance(v, str) for v in value):
        raise BadParameterError(f"{what} must be a non-empty list of names, got {str(value)[:80]}")
    return tuple(value)


def _checked_transform(spec: Any, variables: Optional[Sequence[str]]) -> Union[None, str, dict[str, str]]:
    """``spec`` checked: per variable once the variables are known; before that a mapping's names
    and types, and a single name only when :meth:`SeriesRecipe.bind` applies it to each variable
    (so the message names the variable)."""
    if variables is not None:
        return transforms.check_spec(spec, variables)
    if isinstance(spec, str):
        return spec
    return transforms.check_spec(spec, list(spec) if isinstance(spec, Mapping) else ["variable"]) or None


def wants_series_fit(ds: xr.Dataset, recipe: Optional[SeriesRecipe]) -> bool:
    """Whether ``fit`` should prepare ``ds`` here: a time split, or a recipe."""
    return recipe is not None or time_split_info(ds) is not None


def prepare_series(ds: xr.Dataset, learner: str, recipe: SeriesRecipe) -> tuple[xr.Dataset, SeriesRecipe]:
    """The data the fit loop trains on, and the fitted recipe (see the module docstring).

    Arguments:
        ds: a dataset, usually a :func:`workbench.split_time` result.
        learner: the learner name.
        recipe: the series recipe (``SeriesRecipe()`` for a time split alone).

    Returns:
        ``(data, recipe)``: the training data, and the recipe bound to the data with its step and
        layout (stored as ``model.meta["series"]``).
    """
    whole = merge_segments(ds)  # the one merge; attrs["time_split"] keeps where the pieces start
    recipe = recipe.bind(whole)
    warn_if_cannot_oscillate(whole, learner, recipe.embed)
    learned = recipe.forward(whole)
    fit_ds, recipe = training_layout(learned, recipe, fits_whole_history(learner))
    if recipe.fill_gaps and recipe.layout == "pieces":
        refuse_irregular_axis(learned, learner)
    return fit_ds, recipe


def check_recipe(recipe: Any, model_variables: Sequence[str]) -> dict[str, Any]:
    """A model's series recipe (``model.meta["series"]``, e.g. from a loaded folder or zip) checked
    before any forecast uses it: every field within the limits ``fit`` enforces
    (:class:`SeriesRecipe`), and the embedding consistent with the variables the learner was built on.

    Arguments:
        recipe: the recipe as stored.
        model_variables: the model's (embedded) variable names.

    Returns:
        The recipe with ``embed``, ``lag``, ``transform`` and ``drivers`` normalised.

    Raises:
        DatasetError: naming the field; the fix is to refit and save with this workbench.
    """
    fix = "refit the model and save it with model.save (the recipe was edited or written by another program)"
    if not isinstance(recipe, Mapping):
        raise DatasetError(f"the model's series recipe is a {type(recipe).__name__}, not a mapping", fix=fix)
    variables = recipe.get("variables")
    if not isinstance(variables, list) or not variables or not all(isinstance(v, str) for v in variables):
        raise DatasetError(f"the model's series recipe has variables {str(variables)[:80]}, not a list of names",
                           fix=fix)
    try:
        checked = SeriesRecipe.from_json(recipe)
    except BadParameterError as exc:
        raise DatasetError(f"the model's series recipe is invalid: {exc.problem}", fix=fix) from None
    expected = checked.learner_variables
    if expected != list(model_variables):
        raise DatasetError(f"the model's series recipe (variables {list(checked.variables)}, embed={checked.embed}, "
                           f"lag={checked.lag}) implies the learner's variables {expected[:6]}, but the model has "
                           f"{list(model_variables)[:6]}", fix=fix)
    return {**recipe, **checked.to_json()}


def refuse_irregular_axis(ds: xr.Dataset, learner: str) -> None:
    """Refuse a learner that needs regular samples on an axis ``fill_gaps=True`` cannot make regular.

    ``fill_gaps`` fills missing samples of a regular grid (missing rows of a daily or monthly CSV
    are such samples); steps that are not multiples of one step are no gaps, so the generic
    refusal, which suggests ``fill_gaps=True``, would send the user in a circle.
    """
    from ..learners import get_learner

    if get_learner(learner).supports.irregular:
        return
    steps = np.diff(ds["time"].values.astype(np.float64))
    raise UnsupportedError(f"learner {learner!r} needs regularly sampled data, and fill_gaps=True cannot make this "
                           f"time axis regular: its steps run from {float(steps.min()):g} to {float(steps.max()):g}, "
                           "not multiples of one step",
                           fix="resample the series onto a regular grid first (or import it with from_csv(..., "
                               "freq=...)), or use 'node', which fits irregular data")


def interpolate_gaps(ds: xr.Dataset) -> xr.Dataset:
    """Whole series ``ds`` with missing samples between a series' first and last observation
    filled by linear interpolation (``attrs["gaps_interpolated"]`` counts them)."""
    transforms.refuse_pieces(ds, "filling gaps")
    observed = observation_mask(ds)
    state = ds["state"].values.copy()
    mask = observed.copy()
    for k in range(state.shape[0]):
        seen = np.flatnonzero(observed[k] & np.isfinite(state[k]).all(-1))
        inside = np.arange(seen[0], seen[-1] + 1)
        for d in range(state.shape[2]):
            state[k, inside, d] = np.interp(inside, seen, state[k, seen, d])
        mask[k, inside] = True
    out = ds.copy()
    out["state"] = (ds["state"].dims, state, ds["state"].attrs)
    out["mask"] = (("trajectory", "time"), mask, {"long_name": "observed or interpolated"})
    out.attrs["gaps_interpolated"] = int((mask & ~observed).sum())
    return out


def fits_whole_history(learner: str) -> bool:
    """Whether ``learner`` fits one uncut training history (the statistical backbones) instead of chunks."""
    from ..learners import get_learner

    return bool(getattr(get_learner(learner), "whole_series", False))


def training_layout(ds: xr.Dataset, recipe: SeriesRecipe, whole: bool = False) -> tuple[xr.Dataset, SeriesRecipe]:
    """The one cut: the data the fit loop sees, and ``recipe`` with the learner's step and the layout.

    Arguments:
        ds: whole series after :meth:`SeriesRecipe.forward`, the time split (if any) in
            ``attrs["time_split"]``.
        recipe: the bound recipe.
        whole: the learner fits one whole history (ARIMA and the other backbones).

    Regular series with a time split become equal-length chunks of the train and val periods on a
    relative axis (``"chunks"``; with ``whole``, one chunk: the train and val periods together, all
    for training); data without a time split keeps its trajectories with the first ``warmup``
    samples (no delay history) dropped (``"trajectories"``); irregular series are cut into pieces
    on the absolute axis (``"pieces"``; only learners for masked data can fit them).
    """
    info = time_split_info(ds)
    times = ds["time"].values.astype(np.float64)
    step = median_step(times)
    if info is None:
        return ds.isel(time=slice(recipe.warmup, None)), replace(recipe, step=step, layout="trajectories")
    if not is_regular(times):
        pieces = split_at(ds, info.get("val_start"), info.get("test_start"))
        pieces.attrs = {k: v for k, v in pieces.attrs.items() if k != "time_split"}  # fit it as plain trajectories
        return pieces, replace(recipe, step=step, layout="pieces")
    observed = observation_mask(ds)
    bounds = {"val": info.get("val_start"), "test": info.get("test_start")}
    val_at = int(np.searchsorted(times, bounds["val"])) if bounds["val"] is not None else None
    test_at = int(np.searchsorted(times, bounds["test"])) if bounds["test"] is not None else len(times)
    train_end = val_at if val_at is not None else test_at
    first = int(np.flatnonzero(observed.any(0))[0])
    train_range = (first, train_end)
    val_range = (val_at, test_at) if val_at is not None else None
    length = train_end - first
    if whole:
        train_range, val_range, length = (first, test_at), None, test_at - first
    elif val_range is not None:
        length = min(length, max(MIN_CHUNK, val_range[1] - val_range[0]))
    if length < 2:
        raise DatasetError("the training piece is too short to train on after the embedding's warm-up; "
                           "give it more samples (split_time with a smaller val/test)")
    pieces, names = [], []
    for split, rng in (("train", train_range), ("val", val_range)):
        if rng is None or rng[1] - rng[0] < 2:
            continue
        for start in chunk_starts(rng[0], rng[1], length):
            pieces.append(slice(start, start + length))
            names.append(split)
    state = ds["state"].values
    n_series = state.shape[0]
    chunks = [(k, sl, name) for sl, name in zip(pieces, names) for k in range(n_series)]
    take = lambda a: np.stack([_window(a[k], sl, length) for k, sl, _ in chunks])  # noqa: E731
    mask = take(observed[..., None])[..., 0].astype(bool)
    keep = mask.any(1)
    kwargs: dict[str, Any] = {}
    if "input" in ds:
        kwargs = {"inputs": take(ds["input"].values)[keep],
                  "input_names": [str(v) for v in ds["input_variable"].values],
                  "input_units": [str(u) for u in ds["input_units"].values] if "input_units" in ds.coords
                  else None}
    attrs = {k: v for k, v in ds.attrs.items() if k not in ("time_split", "Conventions", "workbench_version")}
    attrs["layout"] = "chunks of the train/val pieces on a relative time axis (workbench.data.series)"
    out = make_dataset(take(state)[keep], np.arange(length) * step, [str(v) for v in ds["variable"].values],
                       units=[str(u) for u in ds["units"].values] if "units" in ds.coords else None,
                       time_units=timeaxis.step_label(ds), mask=None if mask[keep].all() else mask[keep],
                       split=[c[2] for c, k in zip(chunks, keep) if k], attrs=attrs, **kwargs)
    return out, replace(recipe, step=step, layout="chunks")


def chunk_starts(lo: int, hi: int, length: int) -> list[int]:
    """Starts of windows of ``length`` covering ``[lo, hi)`` with a stride of a quarter window.

    The overlap keeps every transition (and a learner's warm-up context) inside some chunk; a
    sample appears in up to four chunks, evenly, so no part of the series is weighted more. A
    period shorter than a window gets one window ending at the period's end: it reaches back into
    the period before (a validation chunk starts in the training period), never into the one after
    (the test period).
    """
    if hi - lo <= length:
        return [hi - length]
    stride = max(1, length // 4)
    count = int(np.ceil((hi - lo - length) / stride)) + 1
    return [int(round(s)) for s in np.linspace(lo, hi - length, count)]


def _window(values: np.ndarray, sl: slice, length: int) -> np.ndarray:
    """``values[sl]`` padded with NaN/False to ``length`` samples."""
    part = values[sl]
    if len(part) == length:
        return part
    pad = np.zeros((length - len(part),) + part.shape[1:], dtype=part.dtype)
    if part.dtype.kind == "f":
        pad[:] = np.nan
    return np.concatenate([part, pad])


def warn_if_cannot_oscillate(ds: xr.Dataset, learner: str, embed: int) -> None:
    """Warn when a 1-D autonomous flow is asked to fit whole series ``ds`` that oscillate."""
    from ..learners import AugmentedNODE, get_learner
    from ..learners.continuous import ContinuousLearner

    if embed > 1 or ds.sizes["variable"] != 1 or "input" in ds:
        return
    cls = get_learner(learner)
    if not issubclass(cls, ContinuousLearner) or issubclass(cls, AugmentedNODE):  # extra dimensions can turn
        return
    observed = observation_mask(ds)
    series = [np.where(observed[k, :, None], ds["state"].values[k], np.nan) for k in range(ds.sizes["trajectory"])]
    times = [ds["time"].values.astype(np.float64)] * len(series)
    if detect_period(series, times) is None:
        return
    suggestion = suggest_from_series(training_series(ds))
    warnings.warn(f"a 1-D autonomous ODE cannot oscillate, but this series does (it has a cycle): the fit will "
                  f"relax towards a constant. Give the model a state that can turn: embed={suggestion['embed']}, "
                  f"lag={suggestion['lag']} (from wb.suggest_embedding), or learner='anode'", UserWarning,
                  stacklevel=5)


__all__ = ["LAYOUTS", "SERIES_OPTIONS", "SeriesRecipe", "check_recipe", "is_regular", "prepare_series",
           "training_layout", "wants_series_fit"]

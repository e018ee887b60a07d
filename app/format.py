"""Labels, units and tables as the pages show them.

The numbers come from the workbench (``workbench.evaluate``, ``workbench.evaluation``); this module
only turns them and a dataset's attributes into text, axis titles and tables.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pandas as pd
import xarray as xr

from workbench.data import (is_calendar, is_regular, json_attr, merge_segments, observation_mask, step_label,
                            time_split_info, to_datetimes)

DIMENSIONLESS = "1"


# --- units and time axes -----------------------------------------------------------------------------------------

def variable_units(ds: xr.Dataset) -> dict[str, Optional[str]]:
    """Each state variable's unit (``"1"`` when dimensionless, None when the file does not say)."""
    names = [str(v) for v in ds["variable"].values]
    if "units" in ds.coords:
        return dict(zip(names, (str(u) for u in np.atleast_1d(ds["units"].values))))
    unit = ds["state"].attrs.get("units")
    return {name: (str(unit) if unit is not None else None) for name in names}


def time_units(ds: xr.Dataset) -> Optional[str]:
    """The unit of the time axis (``"1"`` when dimensionless, None when the file does not say)."""
    unit = ds["time"].attrs.get("units")
    return None if unit is None else str(unit)


def unit_text(unit: Optional[str], unknown: str = "") -> str:
    """A unit as the app writes it everywhere: ``"rad"``; ``"dimensionless"`` for ``"1"``; ``unknown``
    when the file does not say (None or empty)."""
    if unit is None or str(unit) == "":
        return unknown
    return "dimensionless" if str(unit) == DIMENSIONLESS else str(unit)


def unit_label(name: str, unit: Optional[str]) -> str:
    """``"theta [rad]"``; ``"x [dimensionless]"`` for unit ``"1"``; the bare name for an unknown unit."""
    text = unit_text(unit)
    return f"{name} [{text}]" if text else name


def rate_label(name: str, unit: Optional[str], time_unit: Optional[str]) -> str:
    """``"dx/dt [m/s]"``: a rate of change with the variable's unit over the time axis's unit
    (``"1"`` counts as no unit; a calendar axis, ``"days since ..."``, gives days); the bare
    ``"dx/dt"`` where the variable's unit is unknown."""
    if unit is None or str(unit) == "":
        return f"d{name}/dt"
    top = "" if str(unit) == DIMENSIONLESS else str(unit)
    below = "" if time_unit is None else str(time_unit).split(" since ")[0].strip()
    below = "" if below in ("", DIMENSIONLESS) else below
    text = f"{top or '1'}/{below}" if below else (top or "dimensionless")
    return f"d{name}/dt [{text}]"


def observed_values(ds: xr.Dataset) -> np.ndarray:
    """``state`` as a float array ``(trajectory, time, variable)`` with NaN at unobserved samples (``mask``
    False), so a chart draws a gap there instead of a line across a value nobody measured."""
    values = np.array(ds["state"].values, dtype=float)
    values[~observation_mask(ds)] = np.nan
    return values


def axis_time(ds: xr.Dataset, t: float) -> Any:
    """Where the numeric time ``t`` of ``ds`` lies on the axis :func:`time_axis` draws: a ``datetime64``
    on a calendar axis, else ``t`` as a float."""
    dates = to_datetimes(ds, np.array([float(t)]))
    return dates[0] if dates is not None else float(t)


def time_axis(ds: xr.Dataset) -> tuple[np.ndarray, str]:
    """The time values to plot and their axis title: dates for a calendar axis (``days since ...``),
    else the numbers with their unit (``time [s]``)."""
    dates = to_datetimes(ds)
    if dates is not None:
        return dates, "date"
    return ds["time"].values, unit_label("time", time_units(ds))


def duration_text(value: float, ds: xr.Dataset) -> str:
    """A span on the time axis of ``ds`` in words: ``"2.31 s"``, ``"14 days"``, ``"2.31 time units"``."""
    unit = time_units(ds)
    if unit is not None and is_calendar(ds):
        unit = step_label(ds)
    if unit in (None, "", DIMENSIONLESS):
        return f"{value:.3g} time units"
    return f"{value:.3g} {unit}"


def divergence_text(pred: xr.Dataset, ds: xr.Dataset) -> Optional[str]:
    """A sentence on the paths of ``pred`` (from ``Model.predict(on_divergence="mark")``) that left the
    finite numbers, with the earliest time after the start on the time axis of ``ds``; None if none did."""
    at = pred["diverged_at"]
    lost = int(at.notnull().sum())
    if not lost:
        return None
    first = duration_text(float(at.min()) - float(pred["time"][0]), ds)
    which = (f"{lost} of the model's {at.size} predicted paths" if pred.sizes["sample"] > 1
             else f"The model's rollout of {lost} of {at.size} trajectories")
    return (f"{which} left the finite numbers, the first {first} after the start: the charts "
            "show each path up to its blow-up, and the scores count it as infinitely wrong from there.")


# --- summaries -------------------------------------------------------------------------------------

def _number(value: float) -> str:
    return f"{value:.4g}"


def describe(ds: xr.Dataset) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A readable summary of a dataset (simulated or imported) with units.

    Arguments:
        ds: dataset in the schema.

    Returns:
        ``(overview, variables)``: ``overview`` has columns ``property`` and ``value`` (source, kind,
        sizes, time span and step with units, split counts, observed share, generator/integrator where
        known); ``variables`` has one row per state variable with its unit, min, mean, max and std over
        the observed samples.
    """
    split_info = time_split_info(ds)
    whole = merge_segments(ds)  # the pieces of a time split are one series again
    t = ds["time"].values
    tu = time_units(ds)
    tu_text = "" if tu in (None, "", DIMENSIONLESS) else f" {tu}"
    simulated = ds.attrs.get("kind") in ("ode", "sde") and ds.attrs.get("system")
    source = ds.attrs["system"] if simulated else next(
        (str(ds.attrs[k]) for k in ("source_file", "source", "title") if ds.attrs.get(k)), "imported data")
    rows = [("source", str(source)),
            ("kind", {"ode": "simulated, deterministic (ODE)", "sde": "simulated, stochastic (SDE)"}.get(
                ds.attrs.get("kind"), "measured or imported")),
            ("size", f"{whole.sizes['trajectory']} {'series' if split_info else 'trajectories'} x "
                     f"{ds.sizes['time']} samples x {ds.sizes['variable']} variables")]
    dates = to_datetimes(ds)
    if dates is not None:
        rows.append(("dates", f"{np.datetime_as_string(dates[0], unit='D')} to "
                              f"{np.datetime_as_string(dates[-1], unit='D')} (time axis: {tu})"))
        tu_text = f" {step_label(ds)}"
    else:
        rows.append(("time span", f"{_number(float(t[0]))} to {_number(float(t[-1]))}{tu_text}" +
                     ("" if tu_text else " (dimensionless time)" if tu == DIMENSIONLESS else " (unit not given)")))
    if len(t) > 1:
        steps = np.diff(t)
        regular = is_regular(t)
        rows.append(("sampling step", f"{_number(float(steps[0]))}{tu_text}" if regular else
                     f"irregular, {_number(float(steps.min()))} to {_number(float(steps.max()))}{tu_text}"))
    if split_info:
        starts = {k: v for k, v in split_info.items() if k.endswith("_date") or k in ("val_start", "test_start")}
        rows.append(("split in time", ", ".join(f"{k.replace('_', ' ')} {str(v)[:10] if k.endswith('_date') else v}"
                                                for k, v in starts.items()
                                                if v is not None and not (dates is not None and k[-5:] == "start"))))
    elif "split" in ds.coords:
        names, counts = np.unique(ds["split"].values.astype(str), return_counts=True)
        order = {"train": 0, "val": 1, "test": 2}
        pairs = sorted(zip(names, counts), key=lambda pair: order.get(pair[0], 3))
        rows.append(("split (trajectories)", ", ".join(f"{name} {count}" for name, count in pairs)))
    observed = observation_mask(whole)
    if not observed.all():
        rows.append(("observed samples", f"{observed.mean():.1%}"))
    params = json_attr(ds, "params", None)
    if params:
        rows.append(("parameters", ", ".join(f"{k} = {_number(float(v))}" for k, v in params.items())))
    for key, label in (("integrator", "integrator"), ("generator", "generated by"), ("seed", "seed")):
        if key in ds.attrs:
            rows.append((label, str(ds.attrs[key])))
    overview = pd.DataFrame(rows, columns=["property", "value"])

    units = variable_units(ds)
    state = whole["state"].values[observed]
    table = []
    for k, name in enumerate(units):
        column = state[:, k][np.isfinite(state[:, k])]
        stats = [float(f(column)) if column.size else float("nan") for f in (np.min, np.mean, np.max, np.std)]
        table.append({"variable": name, "unit": unit_text(units[name], "not given"),
                      **dict(zip(("min", "mean", "max", "std"), stats))})
    return overview, pd.DataFrame(table)


def score_table(scores: xr.Dataset) -> pd.DataFrame:
    """The scalar scores of an :func:`workbench.evaluation.evaluate` result as rows ``metric``, ``meaning``, ``value``,
    ``unit`` (from each score's attrs; ``dimensionless`` for unit ``"1"``, blank when not stated)."""
    rows = []
    for name, var in scores.data_vars.items():
        if var.ndim == 0:
            unit = var.attrs.get("units")
            rows.append({"metric": str(name), "meaning": str(var.attrs.get("long_name", "")),
                         "value": float(var), "unit": unit_text(unit)})
    return pd.DataFrame(rows, columns=["metric", "meaning", "value", "unit"])


def facts_table(facts: dict[str, Any], time_unit: Optional[str] = None) -> pd.DataFrame:
    """A catalog system's ``facts`` as a two-column table (``fact``, ``value``) of readable text.

    Arguments:
        facts: mapping of fact names to numbers, booleans, strings, lists or nested mappings.
        time_unit: the system's time unit; Lyapunov exponents and times are stated in it.

    Returns:
        DataFrame with one row per fact (nested mappings flattened to ``outer: inner``).
    """
    def text(value: Any) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, float):
            return _number(value)
        if isinstance(value, (list, tuple)):
            return ", ".join(text(v) for v in value)
        return str(value)

    unit = "time unit" if time_unit in (None, "", DIMENSIONLESS) else time_unit
    suffix = {"max_lyapunov_exponent": f" per {unit}", "lyapunov_time": f" {unit}s" if unit == "time unit" else f" {unit}"}
    rows = []
    for key, value in facts.items():
        if key in suffix and isinstance(value, (int, float)) and not isinstance(value, bool):
            rows.append((key.replace("_", " "), text(value) + suffix[key]))
        elif isinstance(value, dict):
            rows += [(f"{key.replace('_', ' ')}: {inner.replace('_', ' ')}", text(v)) for inner, v in value.items()]
        else:
            rows.append((key.replace("_", " "), text(value)))
    return pd.DataFrame(rows, columns=["fact", "value"])


def parameter_frame(table: xr.Dataset) -> pd.DataFrame:
    """:func:`parameter_comparison` as a table to show: numbers to 4 significant digits, text for
    parameters the data cannot identify."""
    rows = []
    for i, name in enumerate(table["parameter"].values):
        identifiable = bool(table["identifiable"][i])
        estimate, std = float(table["estimate"][i]), float(table["std_error"][i])
        # enough digits that a narrow interval (noise-free data) does not print as [10, 10]
        digits = int(min(15, max(4, np.ceil(np.log10(abs(estimate) / std)) + 2))) if 0 < std < np.inf and estimate else 4
        row = {"parameter": str(name), "estimate": f"{estimate:.{digits}g}",
               "std. error": _number(std) if identifiable else "not identifiable",
               f"{100 * table.attrs['level']:g}% interval": (
                   f"[{float(table['ci_low'][i]):.{digits}g}, {float(table['ci_high'][i]):.{digits}g}]"
                   if identifiable else "-")}
        if "true" in table and np.isfinite(float(table["true"][i])):
            row["true"] = _number(float(table["true"][i]))
            row["relative error"] = f"{100 * float(table['relative_error'][i]):.2g}%"
            row["interval holds truth"] = "yes" if bool(table["covered"][i]) else "no"
        rows.append(row)
    return pd.DataFrame(rows)


def coefficient_table(comparison: xr.Dataset) -> pd.DataFrame:
    """The terms of :func:`equation_comparison` that the truth or the model uses, one row each:
    ``equation``, ``term``, ``true``, ``learned``, ``error``, ``relative error``."""
    rows = []
    for variable in comparison["variable"].values:
        row = comparison.sel(variable=variable)
        for k, term in enumerate(comparison["term"].values):
            true, learned = float(row["true"][k]), float(row["learned"][k])
            if true != 0 or learned != 0:
                rows.append({"equation": f"d{variable}/dt", "term": str(term), "true": true, "learned": learned,
                             "error": learned - true, "relative error": float(row["relative_error"][k])})
    return pd.DataFrame(rows, columns=["equation", "term", "true", "learned", "error", "relative error"])

"""Delay embedding (Takens 1981): a scalar or partly observed series as a state a flow can model.

A 1-D autonomous ODE cannot oscillate; the delay vector ``(s_t, s_{t-tau}, ..., s_{t-(k-1)tau})``
of an oscillating series can. :func:`suggest_embedding` picks ``tau`` at the first minimum of the
average mutual information (Fraser & Swinney 1986), falling back to the lag where the
autocorrelation first drops below 1/e, and ``k`` by false nearest neighbours (Kennel, Brown &
Abarbanel 1992, criteria R_tol = 15, A_tol = 2; the smallest ``k`` with under 5% false
neighbours, or where one more delay stops helping). Only the training part of a split dataset is
used, so the choice never looks at test data.

Work is bounded before allocation: ``embed <= MAX_EMBED`` (Takens needs ``2d + 1`` delays for an
attractor of dimension ``d``; 100 covers any attractor a measured series can resolve),
``lag <= MAX_LAG`` and ``(embed - 1) * lag`` shorter than the series (otherwise no sample has its
delays); the delay array must fit the memory budget of :mod:`workbench.safety`.
:func:`suggest_embedding` tries at most ``MAX_SUGGEST_LAG`` lags (each costs a pass over the data)
and no more than half the shortest series.
"""
from __future__ import annotations

import json
from typing import Optional

import numpy as np
import xarray as xr
from scipy.spatial import cKDTree

from ..evaluation.baselines import fill_gaps
from .schema import observation_mask, validate
from ..errors import BadParameterError, DatasetError
from ..safety import check_allocation, check_integer
from .splits import merge_segments, on_whole_series, time_split_info
from .transforms import refuse_pieces

FNN_RTOL = 15.0
FNN_ATOL = 2.0
FNN_FRACTION = 0.05
MAX_EMBED = 100
MAX_LAG = 100_000
MAX_SUGGEST_LAG = 1000


def check_embedding(k: object, lag: object, length: Optional[int] = None) -> tuple[int, int]:
    """``(embed, lag)`` as ints after checking their ceilings (and, with ``length``, that a series
    of ``length`` samples has a sample with all its delays).

    Raises:
        BadParameterError: naming the largest allowed value.
    """
    k = check_integer(k, "embed", 1, MAX_EMBED)
    lag = check_integer(lag, "lag", 1, MAX_LAG)
    if length is not None and (k - 1) * lag >= length:
        raise BadParameterError(f"embed={k}, lag={lag} needs {(k - 1) * lag} samples of history before the first "
                                f"delay vector, but the series has {int(length)} samples",
                                fix=f"use embed <= {(int(length) - 1) // lag + 1} with lag={lag}, or a smaller lag")
    return k, lag


def delay_vectors(x: np.ndarray, k: int, lag: int) -> np.ndarray:
    """``(T, D*k)`` delay coordinates of ``x`` (T, D): for each variable ``x_t, x_{t-lag}, ...``; NaN without history."""
    k, lag = check_embedding(k, lag)
    T, D = x.shape
    check_allocation(8 * T * D * k, f"delay vectors ({T} samples x {D} variables x embed={k})")
    out = np.full((T, D * k), np.nan)
    for d in range(D):
        for j in range(k):
            shift = j * lag
            out[shift:, d * k + j] = x[: T - shift, d]
    return out


def embedded_names(variables: list[str], k: int, lag: int) -> list[str]:
    """``["s", "s_lag2", "s_lag4"]`` for ``k=3, lag=2``."""
    return [v if j == 0 else f"{v}_lag{j * lag}" for v in variables for j in range(k)]


def embed_dataset(ds: xr.Dataset, k: int, lag: int) -> xr.Dataset:
    """``ds`` with each variable replaced by its ``k`` delays; samples lacking history are masked.

    A :func:`workbench.split_time` dataset is embedded as whole series (delays only look back, so
    no piece sees later data) and cut again at the same boundaries
    (:func:`workbench.data.splits.on_whole_series`); the fit path embeds whole series with
    :func:`embed_series` and cuts once.
    """
    k, lag = check_embedding(k, lag, ds.sizes["time"])
    return ds if k == 1 else on_whole_series(ds, lambda whole: embed_series(whole, k, lag))


def embed_series(ds: xr.Dataset, k: int, lag: int) -> xr.Dataset:
    """Whole series ``ds`` (no pieces of a time split) with each variable replaced by its ``k``
    delays at ``lag``; samples lacking history are masked (and ``NaN``); ``attrs["time_split"]`` is kept.

    Raises:
        BadParameterError: ``k``/``lag`` out of range; DatasetError: pieces, or a series with no
        sample that has all its delays; ResourceLimitError: the delays exceed the memory budget.
    """
    k, lag = check_embedding(k, lag, ds.sizes["time"])
    if k == 1:
        return ds
    refuse_pieces(ds, "a delay embedding")
    n, T, D = ds["state"].shape
    # the delay array and its copy in the output dataset
    check_allocation(2 * 8 * n * T * D * k, f"the delay embedding ({n} series x {T} samples x {D} variables x "
                                            f"embed={k})")
    observed = observation_mask(ds)
    variables = [str(v) for v in ds["variable"].values]
    values = np.where(observed[..., None], ds["state"].values, np.nan)
    embedded = np.stack([delay_vectors(v, k, lag) for v in values])
    mask = np.isfinite(embedded).all(-1)
    embedded[~mask] = np.nan  # a sample without all its delays is unobserved, whole
    if not mask.any(1).all():
        raise DatasetError(f"a series is too short or gappy for embed={k}, lag={lag}: no sample has all "
                           f"{(k - 1) * lag} samples of history; use a smaller embed or lag")
    units = list(np.repeat(ds["units"].values, k)) if "units" in ds.coords else None
    out = ds.drop_vars(["state", "mask", "derivative", "variable", "units"], errors="ignore")
    names = embedded_names(variables, k, lag)
    out = out.assign_coords(variable=("variable", np.asarray(names, dtype=str)))
    if units is not None:
        out = out.assign_coords(units=("variable", np.asarray(units, dtype=str)))
    out["state"] = (("trajectory", "time", "variable"), embedded, ds["state"].attrs)
    out["mask"] = (("trajectory", "time"), mask, {"long_name": "true where the sample and its delays were observed"})
    out.attrs["embedding"] = json.dumps({"embed": k, "lag": lag, "variables": variables})
    return validate(out)


def training_series(ds: xr.Dataset) -> list[np.ndarray]:
    """Each whole series' samples before the test period (all samples without a time split), gaps filled.

    ``ds`` holds whole series (merge a time split first); ``attrs["time_split"]`` says where the test
    period starts.
    """
    refuse_pieces(ds, "choosing an embedding")
    info = time_split_info(ds)
    observed = observation_mask(ds)
    t = ds["time"].values
    end = np.searchsorted(t, info["test_start"]) if info and info.get("test_start") is not None else len(t)
    out = []
    for values, seen in zip(ds["state"].values, observed):
        rows = np.flatnonzero(seen[:end])
        if rows.size >= 8:
            out.append(fill_gaps(np.where(seen[:, None], values, np.nan)[rows[0]: rows[-1] + 1]))
    if not out:
        raise DatasetError("suggest_embedding needs a series with at least 8 observed training samples")
    return out


def mutual_information(x: np.ndarray, lag: int, bins: int) -> float:
    """Average mutual information (nats) between ``x_t`` and ``x_{t+lag}`` from a 2-D histogram."""
    joint, _, _ = np.histogram2d(x[:-lag], x[lag:], bins=bins)
    p = joint / joint.sum()
    px, py = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log(p[nz] / (px @ py)[nz])).sum())


def choose_lag(x: np.ndarray, max_lag: int) -> tuple[int, str]:
    """First minimum of the AMI, else first lag with autocorrelation below 1/e, else 1."""
    bins = max(4, int(np.sqrt(len(x) / 5)))
    raw = np.array([mutual_information(x, lag, bins) for lag in range(1, max_lag + 3)])
    # a 3-lag running mean and a look-ahead of 2 lags keep histogram noise from posing as a minimum
    ami = np.convolve(np.pad(raw, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    for i in range(1, max_lag):
        if ami[i] < ami[i - 1] and ami[i] <= ami[i + 1: i + 3].min():
            return i + 1, "first minimum of the average mutual information"
    z = (x - x.mean()) / (x.std() or 1.0)
    for lag in range(1, max_lag + 1):
        if np.mean(z[:-lag] * z[lag:]) < np.exp(-1):
            return lag, "autocorrelation below 1/e"
    return 1, "no decorrelation within max_lag (lag 1)"


def false_neighbour_fraction(x: np.ndarray, k: int, lag: int, theiler: int) -> float:
    """Fraction of nearest neighbours in ``k`` delays that separate when the ``k+1``-th delay is added."""
    n = len(x) - k * lag
    if n < 10:
        return np.nan
    vectors = np.stack([x[k * lag - j * lag: k * lag - j * lag + n] for j in range(k)], axis=1)
    following = x[:n]  # x_{t-k*lag}, the delay added next
    tree = cKDTree(vectors)
    dist, idx = tree.query(vectors, k=min(n, theiler * 2 + 2))
    spread = x.std() or 1.0
    false = 0
    counted = 0
    for i in range(n):
        for dd, j in zip(dist[i, 1:], idx[i, 1:]):
            if abs(int(j) - i) > theiler:
                break
        else:
            continue
        counted += 1
        extra = abs(following[i] - following[j])
        # the tiny floor keeps exact repeats (periodic data, dd = extra = 0 up to rounding) true neighbours
        if extra > FNN_RTOL * dd + 1e-9 * spread or np.sqrt(dd ** 2 + extra ** 2) / spread > FNN_ATOL:
            false += 1
    return false / counted if counted else np.nan


def suggest_embedding(ds: xr.Dataset, max_embed: int = 8, max_lag: Optional[int] = None) -> dict:
    """Delay embedding suggested by the data (training part only).

    Arguments:
        ds: a dataset (one or a few series; its ``time_split`` test piece is left out).
        max_embed: the largest embedding dimension tried.
        max_lag: the largest lag tried (default: a fifth of the shortest series, at most 50; at most
            half the shortest series and ``MAX_SUGGEST_LAG``).

    Returns:
        ``{"embed": k, "lag": tau, "lag_method": ..., "fnn": {k: fraction}}`` for the variable that
        needs the largest ``k`` (``tau`` is the smallest over variables).
    """
    return suggest_from_series(training_series(merge_segments(validate(ds))), max_embed, max_lag)


def suggest_from_series(series: list[np.ndarray], max_embed: int = 8, max_lag: Optional[int] = None) -> dict:
    """:func:`suggest_embedding` for training series already taken out of a dataset
    (:func:`training_series`): ``(T, D)`` arrays without gaps."""
    max_embed = check_integer(max_embed, "max_embed", 1, MAX_EMBED)
    n = min(len(s) for s in series)
    max_lag = max(1, min(50, n // 5)) if max_lag is None else check_integer(
        max_lag, "max_lag", 1, max(1, min(MAX_SUGGEST_LAG, n // 2)))
    best = {"embed": 1, "lag": None, "lag_method": "", "fnn": {}}
    for d in range(series[0].shape[1]):
        x = np.concatenate([s[:, d] for s in series])
        lag, method = choose_lag(x, max_lag)
        fractions = {}
        k = max_embed
        for dim in range(1, max_embed + 1):
            fractions[dim] = false_neighbour_fraction(x, dim, lag, theiler=lag)
            if np.isnan(fractions[dim]):
                k = max(1, dim - 1)
                break
            # done below the threshold, or at the noise floor (one more delay no longer helps)
            if fractions[dim] <= FNN_FRACTION or (dim > 1 and fractions[dim] >= fractions[dim - 1] - 0.005):
                k = dim if fractions[dim] <= FNN_FRACTION else dim - 1
                break
        if best["lag"] is None or lag < best["lag"]:
            best["lag"], best["lag_method"] = lag, method
        if k >= best["embed"]:
            best["embed"], best["fnn"] = k, {int(a): float(b) for a, b in fractions.items()}
    return best


__all__ = ["MAX_EMBED", "MAX_LAG", "MAX_SUGGEST_LAG", "check_embedding", "delay_vectors", "embed_dataset",
           "embed_series", "embedded_names", "suggest_embedding", "suggest_from_series", "training_series"]

"""Scores comparing predicted trajectories (or ensembles) with the truth, as labelled xarray objects.

Inputs follow the dataset schema (README, "File format"): truth ``state(trajectory, time, variable)``,
predictions ``state(sample, trajectory, time, variable)``; every function takes the DataArray or the
Dataset holding it. Conventions shared by all metrics:

* Unobserved samples are ignored: truth entries that are NaN, or where a Dataset's boolean
  ``mask(trajectory, time)`` is False, do not enter any average.
* A non-finite prediction at an observed sample is never skipped: it propagates (NaN/inf), so a
  diverged model cannot look good by dropping the samples where it diverged.
* Inputs must share coordinates exactly (``trajectory``, ``time``, ``variable``); a mismatch raises
  :class:`~workbench.errors.BadParameterError` rather than silently scoring the intersection.
* Every result is named and carries ``long_name`` (and ``units`` where one unit applies).
"""
from __future__ import annotations

from typing import Callable, Literal, Optional, Sequence, Union

import numpy as np
import xarray as xr
from scipy.spatial.distance import pdist

from ..errors import BadParameterError, DatasetError

Data = Union[xr.DataArray, xr.Dataset]
Over = Literal["time", "all"]

# Elements per block of kernel temporaries (~32 MiB in float64); big ensembles are scored in time blocks.
_BLOCK_ELEMENTS = 2**22


# --- inputs ----------------------------------------------------------------------------------------

def _state(data: Data, role: str) -> tuple[xr.DataArray, Optional[xr.DataArray]]:
    """The ``state`` array of ``data`` and its boolean observation mask (None when there is none)."""
    if isinstance(data, xr.Dataset):
        if "state" not in data:
            raise DatasetError(f"{role}: the Dataset has no 'state' variable; pass a workbench dataset "
                               "or the state DataArray itself")
        mask = data["mask"].astype(bool) if "mask" in data else None
        return data["state"], mask
    if isinstance(data, xr.DataArray):
        return data, None
    raise BadParameterError(f"{role}: expected an xarray DataArray or Dataset, got {type(data).__name__}")


def _pair(pred: Data, truth: Data, metric: str,
          min_samples: int = 0) -> tuple[xr.DataArray, xr.DataArray, xr.DataArray]:
    """``pred`` and ``truth`` states aligned exactly, truth NaN where unobserved, and the observed mask."""
    p, p_mask = _state(pred, "pred")
    t, t_mask = _state(truth, "truth")
    if "sample" in t.dims:
        raise BadParameterError(f"{metric}: truth has a 'sample' dim; pass the ground truth as truth "
                                "and the model's samples as pred")
    if p.sizes.get("sample", 0) < min_samples:
        raise BadParameterError(f"{metric} needs an ensemble: pred must have a 'sample' dim with at least "
                                f"{min_samples} members (found {p.sizes.get('sample', 0)}); "
                                f"predict with n_samples>={min_samples}")
    p, t = _aligned(p, t, metric)
    observed = t.notnull()
    for mask in (t_mask, p_mask):
        if mask is not None:
            observed = observed & mask
    return p, t.where(observed), observed


def _aligned(a: xr.DataArray, b: xr.DataArray, metric: str,
             exclude: Sequence[str] = ()) -> tuple[xr.DataArray, xr.DataArray]:
    """``a`` and ``b`` on identical coordinates (no copy); a mismatch is the caller's error, not an intersection."""
    try:
        return xr.align(a, b, join="exact", exclude=exclude, copy=False)
    except ValueError as exc:
        raise BadParameterError(f"{metric}: the two inputs must share their trajectory, time and variable "
                                f"coordinates exactly ({exc}); select the same trajectories and times "
                                "in both") from None


def _energy(energy: xr.DataArray, role: str) -> xr.DataArray:
    """An energy DataArray with a time dim, in floating point."""
    if not isinstance(energy, xr.DataArray) or "time" not in energy.dims:
        raise BadParameterError(f"{role}: expected an energy DataArray with dims (trajectory, time) "
                                f"(optionally with 'sample'), got {type(energy).__name__}")
    return energy.astype(np.result_type(energy.dtype, np.float64))


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise BadParameterError(f"interval level must lie strictly between 0 and 1 (e.g. 0.9), got {level}")


# --- reductions and attributes ---------------------------------------------------------------------

def _observed_mean(values: xr.DataArray, observed: xr.DataArray,
                   dims: Union[str, Sequence[str]]) -> xr.DataArray:
    """Mean of ``values`` over ``dims`` counting only observed entries (NaN where none is).

    Unobserved entries are zeroed rather than skipped with ``skipna`` so that a NaN prediction at an
    observed entry still propagates.
    """
    observed = observed.broadcast_like(values)
    total = values.where(observed, 0.0).sum(dims, skipna=False)
    count = observed.sum(dims)
    return total / count.where(count > 0)


def _ensemble_mean(pred: xr.DataArray) -> xr.DataArray:
    return pred.mean("sample", skipna=False) if "sample" in pred.dims else pred


def _units(state: xr.DataArray) -> Optional[str]:
    """The state's unit when one unit applies to all variables (per-variable units live in a ``units`` coord)."""
    if "units" in state.attrs:
        return str(state.attrs["units"])
    if "units" in state.coords:
        units = set(map(str, np.atleast_1d(state["units"].values)))
        if len(units) == 1:
            return units.pop()
    return None


def _finish(result: xr.DataArray, name: str, long_name: str, units: Optional[str] = None,
            **extra: Union[str, float]) -> xr.DataArray:
    result = result.rename(name)
    result.attrs = {"long_name": long_name, **({"units": units} if units is not None else {}), **extra}
    return result


def _over_time_blocks(func: Callable[..., Data], *arrays: xr.DataArray) -> Data:
    """``func(*arrays)`` evaluated on consecutive blocks of times, so temporaries stay near ``_BLOCK_ELEMENTS``."""
    n_time = arrays[0].sizes["time"]
    per_time = sum(a.size for a in arrays) // n_time
    step = max(1, _BLOCK_ELEMENTS // max(per_time, 1))
    blocks = [func(*(a.isel(time=slice(start, start + step)) for a in arrays))
              for start in range(0, n_time, step)]
    return blocks[0] if len(blocks) == 1 else xr.concat(blocks, "time")


# --- deterministic ---------------------------------------------------------------------------------

def rmse(pred: Data, truth: Data) -> xr.DataArray:
    """Root-mean-square error at each time.

    Definition: ``RMSE(t) = sqrt(mean_{trajectory, variable} (pred(t) - truth(t))^2)`` over observed
    samples, where ``pred`` is the ensemble mean when it has a ``sample`` dim.

    Arguments:
        pred: predicted ``state`` (with or without ``sample``), DataArray or Dataset.
        truth: true ``state(trajectory, time, variable)``, DataArray or Dataset (its mask is honoured).

    Returns:
        DataArray ``rmse(time)`` in the state's units.
    """
    p, t, observed = _pair(pred, truth, "rmse")
    squared = (_ensemble_mean(p) - t) ** 2
    result = np.sqrt(_observed_mean(squared, observed, ("trajectory", "variable")))
    return _finish(result, "rmse", "root-mean-square error", _units(t))


def normalized_error(pred: Data, truth: Data) -> xr.DataArray:
    """Normalized prediction error per trajectory and time, the quantity behind valid prediction time.

    Definition: ``E(n, t) = ||pred(n, t) - truth(n, t)||_2 / sqrt(sum_v sigma_v^2)`` where the norm runs
    over variables and ``sigma_v^2`` is the (population) variance of true variable ``v`` over all
    observed trajectories and times. ``pred`` is the ensemble mean when it has a ``sample`` dim. A
    non-finite prediction at an observed sample has error ``inf``; unobserved samples are NaN.

    Arguments:
        pred: predicted ``state``, DataArray or Dataset.
        truth: true ``state(trajectory, time, variable)``, DataArray or Dataset.

    Returns:
        DataArray ``normalized_error(trajectory, time)``, dimensionless.

    References:
        Pathak, Hunt, Girvan, Lu, Ott (2018), Phys. Rev. Lett. 120, 024102;
        Vlachas et al. (2020), Neural Networks 126, 191-217.
    """
    p, t, observed = _pair(pred, truth, "normalized_error")
    scale = np.sqrt(t.var(("trajectory", "time")).sum("variable", skipna=False))
    if not float(scale) > 0.0:
        raise BadParameterError("normalized_error: the truth has zero (or undefined) variance, so the error "
                                "cannot be normalized; use rmse instead")
    distance = np.sqrt(((_ensemble_mean(p) - t) ** 2).sum("variable", skipna=False))
    point_observed = observed.all("variable")
    result = xr.where(point_observed, (distance / scale).fillna(np.inf), np.nan)
    return _finish(result, "normalized_error", "normalized prediction error", "1")


def valid_prediction_time(pred: Data, truth: Data, threshold: float = 0.4,
                          lyapunov: Optional[float] = None) -> xr.Dataset:
    """Valid prediction time (VPT) per trajectory; see :func:`valid_prediction_time_from_error`.

    Arguments:
        pred, truth: as for :func:`normalized_error`.
        threshold: the normalized-error level that ends the valid prediction.
        lyapunov: the system's largest Lyapunov exponent (1 / time unit), to report VPT in Lyapunov times.

    Returns:
        Dataset with ``vpt(trajectory)`` and, when ``lyapunov`` is given, ``vpt_lyapunov(trajectory)``.

    References:
        Pathak et al. (2018), Phys. Rev. Lett. 120, 024102; Vlachas et al. (2020), Neural Networks 126.
    """
    return valid_prediction_time_from_error(normalized_error(pred, truth), threshold, lyapunov)


def valid_prediction_time_from_error(error: xr.DataArray, threshold: float = 0.4,
                                     lyapunov: Optional[float] = None) -> xr.Dataset:
    """Valid prediction time from a precomputed normalized error.

    Definition: ``VPT = t* - t_0`` where ``t*`` is the first time at which ``error > threshold`` and
    ``t_0`` the first time in the data; if the error never exceeds the threshold, VPT is the full horizon
    ``t_end - t_0``. Unobserved (NaN) errors never end the valid prediction. In Lyapunov times,
    ``VPT_lambda = VPT * lambda_max``.

    Arguments:
        error: normalized error with a ``time`` dim, e.g. from :func:`normalized_error`.
        threshold: positive error level that ends the valid prediction (0.4 in Vlachas et al. 2020).
        lyapunov: positive largest Lyapunov exponent, in 1 / time unit.

    Returns:
        Dataset with ``vpt`` (time units) and, if ``lyapunov`` is given, ``vpt_lyapunov`` (dimensionless),
        over the non-time dims of ``error``.
    """
    if not threshold > 0:
        raise BadParameterError(f"valid_prediction_time: threshold must be positive, got {threshold}")
    if lyapunov is not None and not lyapunov > 0:
        raise BadParameterError(f"valid_prediction_time: lyapunov must be the positive largest Lyapunov "
                                f"exponent, got {lyapunov}")
    time = error["time"]
    elapsed = (time - time[0]).drop_vars("time")
    exceeded = error > threshold
    first = exceeded.argmax("time")
    vpt = elapsed.isel(time=first).where(exceeded.any("time"), float(elapsed[-1]))
    time_units = time.attrs.get("units")
    out = xr.Dataset({"vpt": _finish(vpt, "vpt", "valid prediction time", time_units)},
                     attrs={"threshold": threshold})
    if lyapunov is not None:
        out["vpt_lyapunov"] = _finish(vpt * lyapunov, "vpt_lyapunov", "valid prediction time in Lyapunov times",
                                      "1")
        out.attrs["lyapunov_exponent"] = lyapunov
    return out


def vector_field_error(learned: Union[xr.DataArray, np.ndarray],
                       true: Union[xr.DataArray, np.ndarray]) -> xr.DataArray:
    """Relative L2 error of a learned vector field.

    Definition: ``||f_learned - f_true||_2 / ||f_true||_2`` with the norms over all points and variables
    (Frobenius norm), both fields evaluated on the same points.

    Arguments:
        learned: learned drift, dims ``("point", "variable")`` (a plain array is read with those dims).
        true: true drift on the same points.

    Returns:
        Scalar DataArray, dimensionless.
    """
    learned, true = (x if isinstance(x, xr.DataArray) else xr.DataArray(np.asarray(x), dims=("point", "variable"))
                     for x in (learned, true))
    learned, true = _aligned(learned, true, "vector_field_error")
    norm_true = np.sqrt((true ** 2).sum(skipna=False))
    if not float(norm_true) > 0.0:
        raise BadParameterError("vector_field_error: the true field is zero (or undefined) on every point, "
                                "so the relative error is undefined")
    result = np.sqrt(((learned - true) ** 2).sum(skipna=False)) / norm_true
    return _finish(result, "vector_field_error", "relative L2 error of the vector field", "1")


def energy_drift(energy: xr.DataArray) -> xr.DataArray:
    """Relative drift of a conserved energy along rollouts.

    Definition: ``|H(t) - H(t_0)| / max(|H(t_0)|, tiny)`` per trajectory, with ``tiny`` the smallest
    positive normal float (so a zero initial energy gives a huge rather than undefined drift); with a
    ``sample`` dim the drift of each member is averaged over members.

    Arguments:
        energy: ``H`` as a DataArray ``(trajectory, time)`` or ``(sample, trajectory, time)``.

    Returns:
        DataArray ``energy_drift(trajectory, time)``, dimensionless.

    References:
        Greydanus, Dzamba, Yosinski (2019), "Hamiltonian Neural Networks", NeurIPS.
    """
    energy = _energy(energy, "energy_drift")
    initial = energy.isel(time=0, drop=True)
    drift = abs(energy - initial) / np.maximum(abs(initial), np.finfo(energy.dtype).tiny)
    return _finish(_ensemble_mean(drift), "energy_drift", "relative energy drift", "1")


def energy_mse(pred_energy: xr.DataArray, true_energy: xr.DataArray) -> xr.DataArray:
    """Mean squared energy error along rollouts.

    Definition: ``mean_{trajectory, time} (H_pred - H_true)^2`` over observed (non-NaN) true energies;
    with a ``sample`` dim in ``pred_energy`` the mean also runs over members.

    Arguments:
        pred_energy: energy of the predicted rollouts, ``(trajectory, time)`` or with ``sample``.
        true_energy: energy of the true trajectories, ``(trajectory, time)``.

    Returns:
        Scalar DataArray in squared energy units (when ``true_energy`` has ``units``).

    References:
        Greydanus, Dzamba, Yosinski (2019), "Hamiltonian Neural Networks", NeurIPS (energy MSE).
    """
    pred_energy, true_energy = _aligned(_energy(pred_energy, "pred_energy"), _energy(true_energy, "true_energy"),
                                        "energy_mse")
    squared = (pred_energy - true_energy) ** 2
    result = _observed_mean(squared, true_energy.notnull(), squared.dims)
    units = true_energy.attrs.get("units")
    return _finish(result, "energy_mse", "mean squared energy error", f"({units})2" if units else None)


# --- stochastic ------------------------------------------------------------------------------------

def _crps_rows(members: np.ndarray, obs: np.ndarray, fair: bool) -> np.ndarray:
    """Ensemble CRPS with members on the last axis, via the sorted-ensemble identity
    ``sum_ij |x_i - x_j| = 2 sum_i (2i - M - 1) x_(i)`` (O(M log M) instead of O(M^2))."""
    m = members.shape[-1]
    with np.errstate(invalid="ignore"):  # inf - inf below; such rows are set to inf at the end
        accuracy = np.abs(members - obs[..., None]).mean(-1)
        half_pair_sum = np.sort(members, axis=-1) @ (2.0 * np.arange(1, m + 1) - m - 1)
        score = accuracy - half_pair_sum / (m * (m - 1) if fair else m * m)
    return _infinite_where_diverged(score, np.isinf(members).any(-1))


def _infinite_where_diverged(score: np.ndarray, diverged: np.ndarray) -> np.ndarray:
    """``score`` set to inf where an ensemble has a member at infinity (a path that blew up, see
    ``Model.predict(on_divergence="mark")``): its distribution puts mass at infinity, so the CRPS and
    energy score are infinite, where the sample formulas would give inf - inf = NaN, read as unobserved."""
    return np.where(diverged, np.inf, score)


def crps(pred: Data, truth: Data, fair: bool = True, per_trajectory: bool = False) -> xr.DataArray:
    """Continuous ranked probability score of an ensemble, per time and variable.

    Definition, for members ``X_1..X_M`` and observation ``y``:
    ``CRPS = 1/M sum_i |X_i - y| - 1/(2 M^2) sum_{i,j} |X_i - X_j|``; the fair version (an unbiased
    estimate of the CRPS of the distribution the members are drawn from) uses ``1/(2 M (M-1))``
    instead of ``1/(2 M^2)``. Averaged over observed trajectories. Lower is better; 0 is perfect.

    Arguments:
        pred: ensemble ``state(sample, trajectory, time, variable)``; fair needs M >= 2.
        truth: true ``state(trajectory, time, variable)``.
        fair: use the fair (unbiased) estimator.
        per_trajectory: keep the ``trajectory`` dim instead of averaging over it (NaN where unobserved).

    Returns:
        DataArray ``crps(time, variable)`` (or ``crps(trajectory, time, variable)``) in state units.

    References:
        Gneiting & Raftery (2007), JASA 102, 359-378; Ferro (2014), QJRMS 140, 1917-1923;
        Zamo & Naveau (2018), Math. Geosci. 50, 209-234.
    """
    return _ensemble_score(pred, truth, "crps", "CRPS", _crps_rows, [["sample"], []], fair, per_trajectory)


def _energy_score_rows(members: np.ndarray, obs: np.ndarray, fair: bool) -> np.ndarray:
    """Energy score with members ``(..., M, V)`` and observations ``(..., V)``."""
    m, v = members.shape[-2:]
    with np.errstate(invalid="ignore"):  # as in _crps_rows
        accuracy = np.linalg.norm(members - obs[..., None, :], axis=-1).mean(-1)
        # pdist sums each unordered pair once, in C: ~10x faster than broadcasting M x M differences.
        pair_sum = np.array([pdist(row).sum() for row in members.reshape(-1, m, v)]).reshape(members.shape[:-2])
        score = accuracy - pair_sum / (m * (m - 1) if fair else m * m)
    return _infinite_where_diverged(score, np.isinf(members).any((-2, -1)))


def energy_score(pred: Data, truth: Data, fair: bool = True, per_trajectory: bool = False) -> xr.DataArray:
    """Energy score of an ensemble of state vectors, per time.

    Definition: ``ES = 1/M sum_i ||X_i - y|| - 1/(2 M (M-1)) sum_{i != j} ||X_i - X_j||`` (fair) with the
    Euclidean norm over variables; the unfair version uses ``1/(2 M^2)``. A sample counts only when
    all its variables are observed; averaged over trajectories. In one dimension it equals the CRPS.

    Arguments:
        pred: ensemble ``state(sample, trajectory, time, variable)``; fair needs M >= 2.
        truth: true ``state(trajectory, time, variable)``.
        fair: use the fair (unbiased) estimator.
        per_trajectory: keep the ``trajectory`` dim instead of averaging over it (NaN where unobserved).

    Returns:
        DataArray ``energy_score(time)`` (or ``energy_score(trajectory, time)``) in state units (when one
        unit applies).

    References:
        Gneiting & Raftery (2007), JASA 102, 359-378.
    """
    return _ensemble_score(pred, truth, "energy_score", "energy score", _energy_score_rows,
                           [["sample", "variable"], ["variable"]], fair, per_trajectory)


def _ensemble_score(pred: Data, truth: Data, key: str, label: str, rows: Callable[..., np.ndarray],
                    core_dims: list, fair: bool, per_trajectory: bool) -> xr.DataArray:
    """An ensemble score computed by ``rows`` over ``core_dims`` (members, and the variables when the score
    is multivariate), counted where every core variable is observed, averaged over trajectories unless
    ``per_trajectory``."""
    p, t, observed = _pair(pred, truth, key, min_samples=2 if fair else 1)
    score = _over_time_blocks(
        lambda pb, tb: xr.apply_ufunc(rows, pb, tb, input_core_dims=core_dims, kwargs={"fair": fair}), p, t)
    complete = observed.all("variable") if "variable" in core_dims[1] else observed
    result = score.where(complete) if per_trajectory else _observed_mean(score, complete, "trajectory")
    return _finish(result, key, f"{'fair ' if fair else ''}{label} of the ensemble", _units(t), fair=int(fair))


def _interval(pred: xr.DataArray, level: float) -> tuple[xr.DataArray, xr.DataArray]:
    """Lower and upper ends of the central ``level`` interval of the ensemble.

    Quantiles at Weibull plotting positions: member ``k`` of ``M`` (in sorted order) stands at probability
    ``k / (M + 1)``, its expected CDF value, and levels in between interpolate linearly (numpy's
    ``method="weibull"``). Levels outside ``[1, M] / (M + 1)`` clamp to the extreme members.
    """
    _check_level(level)
    bounds = _over_time_blocks(lambda block: sample_quantiles(block, [(1 - level) / 2, (1 + level) / 2]), pred)
    return bounds.isel(quantile=0, drop=True), bounds.isel(quantile=1, drop=True)


def sample_quantiles(pred: xr.DataArray, probabilities: Sequence[float]) -> xr.DataArray:
    """Quantiles over the ``sample`` dim at Weibull plotting positions (member ``k`` of ``M`` at
    ``k / (M + 1)``), NaN where a member is NaN. A +inf member (a path that blew up, see
    ``Model.predict(on_divergence="mark")``) sorts above the others, so a quantile that reaches it is
    +inf, where numpy's interpolation would give inf - inf = NaN."""
    with np.errstate(invalid="ignore"):
        q = pred.quantile(list(probabilities), dim="sample", method="weibull", skipna=False)
    return q.where(q.notnull() | pred.isnull().any("sample"), np.inf)


def _ranks(pred: xr.DataArray, truth: xr.DataArray) -> xr.Dataset:
    """Per truth value, the members strictly ``below`` it and ``at_or_below`` it (NaN where a member is NaN)."""
    def block(p: xr.DataArray, t: xr.DataArray) -> xr.Dataset:
        valid = p.notnull().all("sample")
        return xr.Dataset({"below": (p < t).sum("sample").where(valid),
                           "at_or_below": (p <= t).sum("sample").where(valid)})
    return _over_time_blocks(block, pred, truth)


def _reduce_dims(values: xr.DataArray, over: Over) -> tuple[str, ...]:
    if over == "time":
        return tuple(d for d in values.dims if d != "time")
    if over == "all":
        return tuple(values.dims)
    raise BadParameterError(f"over must be 'time' (a time series) or 'all' (one number), got {over!r}")


def _coverage(ranks: xr.Dataset, members: int, observed: xr.DataArray, level: float, over: Over) -> xr.DataArray:
    # For an exchangeable ensemble of M members the truth's rank among the M + 1 values is uniform on
    # 0..M (ties broken at random), so its randomised PIT value is uniform on [below, at_or_below + 1]
    # / (M + 1). Counting the share of that range inside [(1 - level)/2, (1 + level)/2] makes the expected
    # coverage of a calibrated ensemble exactly `level` for every M; a 0/1 count against sample quantiles
    # is biased low (about (M - 1)/(M + 1) of the level for linear quantiles) and cannot exceed
    # (M - 1)/(M + 1) at all. A NaN member makes the entry NaN (undefined, not a miss); a +inf member (a
    # path marked as blown up by Model.predict) ranks above the truth like any member above it.
    _check_level(level)
    low, high = (members + 1) * (1 - level) / 2, (members + 1) * (1 + level) / 2
    start, stop = ranks["below"], ranks["at_or_below"] + 1
    inside = (np.minimum(stop, high) - np.maximum(start, low)).clip(min=0.0) / (stop - start)
    result = _observed_mean(inside, observed, _reduce_dims(inside, over))
    return _finish(result, f"coverage_{_level_tag(level)}", f"fraction of truth inside the central "
                   f"{level:g} ensemble interval (rank-based)", "1", level=level)


def _width(lower: xr.DataArray, upper: xr.DataArray, observed: xr.DataArray, level: float,
           units: Optional[str], over: Over) -> xr.DataArray:
    width = (upper - lower).where(~np.isinf(upper), np.inf)  # also where both ends went to +inf
    result = _observed_mean(width, observed, _reduce_dims(width, over))
    return _finish(result, f"width_{_level_tag(level)}", f"mean width of the central {level:g} ensemble "
                   "interval", units, level=level)


def _level_tag(level: float) -> str:
    return f"{100 * level:g}".replace(".", "_")


def _prediction_observed(pred: Data, metric: str) -> tuple[xr.DataArray, xr.DataArray]:
    """The ensemble and where its samples count (a ``pred`` Dataset's mask, else everywhere)."""
    p, mask = _state(pred, "pred")
    if "sample" not in p.dims:
        raise BadParameterError(f"{metric} needs an ensemble: pred must have a 'sample' dim")
    return p, (mask if mask is not None else xr.ones_like(p.isel(sample=0, drop=True), dtype=bool))


def coverage(pred: Data, truth: Data, level: float = 0.9, over: Over = "time") -> xr.DataArray:
    """Empirical coverage of the ensemble's central interval, unbiased for any ensemble size.

    Definition: with ``M`` members, ``b`` of them below the truth ``y`` and ``e`` equal to it, the
    randomised PIT value of ``y`` is uniform on ``[b, b + e + 1] / (M + 1)``; an observation counts with
    the share of that range inside ``[(1 - level)/2, (1 + level)/2]``. Averaged over trajectories and
    variables. Order statistic ``k`` sits at probability ``k / (M + 1)`` as in :func:`interval_width`, so
    the count is the 0/1 inside-test against those quantiles with the two ranks that straddle a bound
    counted fractionally. A calibrated ensemble (truth and members exchangeable) covers exactly ``level``
    in expectation, for M = 8 as for M = 1000; linear sample quantiles would cover about
    ``(M - 1)/(M + 1)`` of it.

    Arguments:
        pred: ensemble ``state(sample, trajectory, time, variable)``.
        truth: true ``state(trajectory, time, variable)``.
        level: nominal probability of the interval, in (0, 1).
        over: ``"time"`` for a time series, ``"all"`` for one number over all times too.

    Returns:
        DataArray ``coverage_<100 level>(time)`` (or a scalar), dimensionless.

    References:
        Anderson (1996), J. Climate 9, 1518-1530 (rank histograms: each of the M + 1 ranks has probability
        1/(M + 1)); Czado, Gneiting, Held (2009), Biometrics 65, 1254-1261 (randomised PIT);
        Gneiting, Balabdaoui, Raftery (2007), JRSS B 69, 243-268 (calibration and sharpness).
    """
    p, t, observed = _pair(pred, truth, "coverage", min_samples=1)
    return _coverage(_ranks(p, t), p.sizes["sample"], observed, level, over)


def interval_width(pred: Data, level: float = 0.9, over: Over = "time") -> xr.DataArray:
    """Mean width of the ensemble's central ``level`` interval (sharpness).

    Definition: ``mean_{trajectory, variable} (q_hi - q_lo)`` with ``q_lo``, ``q_hi`` the
    ``(1 - level)/2`` and ``(1 + level)/2`` quantiles at Weibull plotting positions (member ``k`` of ``M``
    at probability ``k / (M + 1)``, linear in between, clamped to the extreme members when
    ``M < 2 / (1 - level) - 1``), over all predicted samples (those a mask in a ``pred`` Dataset marks
    unobserved excluded).

    Arguments:
        pred: ensemble ``state(sample, trajectory, time, variable)``.
        level: nominal probability of the interval, in (0, 1).
        over: ``"time"`` for a time series, ``"all"`` for one number.

    Returns:
        DataArray ``width_<100 level>(time)`` (or a scalar) in state units.

    References:
        Hyndman & Fan (1996), Am. Stat. 50, 361-365 (definition 6); Gneiting, Balabdaoui, Raftery (2007),
        JRSS B 69, 243-268.
    """
    p, observed = _prediction_observed(pred, "interval_width")
    lower, upper = _interval(p, level)
    return _width(lower, upper, observed, level, _units(p), over)


def interval_scores(pred: Data, truth: Data, levels: Sequence[float] = (0.5, 0.9)) -> xr.Dataset:
    """Coverage and width time series for several interval levels, sharing one rank computation.

    Arguments:
        pred: ensemble ``state(sample, trajectory, time, variable)``.
        truth: true ``state(trajectory, time, variable)``.
        levels: nominal interval probabilities.

    Returns:
        Dataset with ``coverage_<100 level>(time)`` (as :func:`coverage`) and ``width_<100 level>(time)``
        (as :func:`interval_width`), e.g. ``coverage_50, width_50, coverage_90, width_90``.
    """
    p, t, observed = _pair(pred, truth, "interval_scores", min_samples=1)
    _, pred_observed = _prediction_observed(pred, "interval_scores")
    ranks = _ranks(p, t)
    scores = []
    for level in levels:
        lower, upper = _interval(p, level)
        scores += [_coverage(ranks, p.sizes["sample"], observed, level, "time"),
                   _width(lower, upper, pred_observed, level, _units(p), "time")]
    return xr.Dataset({score.name: score for score in scores})


def _wasserstein_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact W1 between the empirical distributions of the rows of ``a (..., n)`` and ``b (..., m)``.

    ``W1 = integral |F_a(x) - F_b(x)| dx``: sort the pooled values; between consecutive values both
    empirical CDFs are constant, equal to the share of each sample at or below the left value. NaN
    entries (absent samples) sort last and only touch NaN steps, which are dropped. O((n + m) log(n + m))
    time and O(n + m) memory per row.
    """
    n_a = np.count_nonzero(~np.isnan(a), axis=-1)[..., None]
    n_b = np.count_nonzero(~np.isnan(b), axis=-1)[..., None]
    merged = np.concatenate([a, b], axis=-1)
    order = np.argsort(merged, axis=-1, kind="stable")
    values = np.take_along_axis(merged, order, axis=-1)
    from_a = order < a.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        cdf_gap = np.abs(np.cumsum(from_a, axis=-1) / n_a - np.cumsum(~from_a, axis=-1) / n_b)
        distance = np.nansum(np.diff(values, axis=-1) * cdf_gap[..., :-1], axis=-1)
    return np.where((n_a[..., 0] > 0) & (n_b[..., 0] > 0), distance, np.nan)


def _pooled(samples: Data, role: str, pool_name: str, times: Optional[Sequence[float]]) -> xr.DataArray:
    """Observed values with sample and trajectory dims flattened into one ``pool_name`` dim."""
    state, mask = _state(samples, role)
    if mask is not None:
        state = state.where(mask)
    pool = [d for d in ("sample", "trajectory") if d in state.dims]
    if not pool:
        raise BadParameterError(f"wasserstein1: {role} needs a 'sample' or 'trajectory' dim to pool into an "
                                f"empirical distribution; it has dims {state.dims}")
    if times is not None:
        state = _select_times(state, times, role)
    # Coordinates along the pooled dims (trajectory ids, split, per-trajectory parameters) must go: kept,
    # they would sit on pool_a in one input and pool_b in the other, and xarray would broadcast them to
    # a pool_a x pool_b array (1.1 GB for 16k vs 8k samples).
    along_pool = [name for name, coord in state.coords.items() if set(coord.dims) & set(pool)]
    return state.drop_vars(along_pool).stack({pool_name: pool}, create_index=False)


def _select_times(state: xr.DataArray, times: Sequence[float], role: str) -> xr.DataArray:
    """The samples nearest to ``times``, refusing times farther than half a step from every sample."""
    grid = state["time"].values
    tolerance = 0.5 * float(np.min(np.diff(grid))) if grid.size > 1 else 0.0
    try:
        return state.sel(time=np.asarray(times, dtype=float), method="nearest", tolerance=tolerance)
    except KeyError:
        raise BadParameterError(f"wasserstein1: some of the requested times lie outside {role}'s time axis "
                                f"[{grid[0]:g}, {grid[-1]:g}]") from None


def wasserstein1(samples_a: Data, samples_b: Data, times: Optional[Sequence[float]] = None) -> xr.DataArray:
    """Wasserstein-1 distance between the one-dimensional marginals of two sample sets, per time and variable.

    Definition: ``W1(mu, nu) = integral_0^1 |F_mu^-1(u) - F_nu^-1(u)| du = integral |F_mu - F_nu| dx``
    for the empirical distributions that pool the ``sample`` and ``trajectory`` dims of each input (pool
    sizes may differ; NaN or masked entries are left out). Exact; equals
    ``scipy.stats.wasserstein_distance`` on the pooled values. Time O(N log N) and memory O(N) in the
    total pool size N per time and variable (200k vs 100k samples take a fraction of a second).

    Arguments:
        samples_a: e.g. model samples ``state(sample, trajectory, time, variable)``.
        samples_b: e.g. true samples ``state(trajectory, time, variable)``, on the same time axis.
        times: evaluate only at these times (each matched to the nearest sample time).

    Returns:
        DataArray ``wasserstein1(time, variable)`` in state units.

    References:
        Villani (2009), "Optimal Transport: Old and New", Springer; Ramdas, Garcia Trillos, Cuturi
        (2017), Entropy 19, 47 (the one-dimensional quantile-function form).
    """
    a = _pooled(samples_a, "samples_a", "pool_a", times)
    b = _pooled(samples_b, "samples_b", "pool_b", times)
    a, b = _aligned(a, b, "wasserstein1", exclude=("pool_a", "pool_b"))
    result = _over_time_blocks(
        lambda ab, bb: xr.apply_ufunc(_wasserstein_rows, ab, bb, input_core_dims=[["pool_a"], ["pool_b"]]), a, b)
    return _finish(result, "wasserstein1", "Wasserstein-1 distance between marginal distributions", _units(b))


def oracle_relative(score_model: xr.DataArray, score_oracle: xr.DataArray) -> xr.DataArray:
    """A model's score relative to the oracle's: ``score_model / score_oracle``.

    The oracle is an ensemble of samples of the true SDE scored against the same truth, so it carries
    the irreducible sampling error of a finite ensemble. For lower-is-better scores (CRPS, energy score,
    Wasserstein-1) a ratio of 1 means as good as the true SDE, above 1 worse.

    Arguments:
        score_model: the model's score (any of the metrics above).
        score_oracle: the same metric for true-SDE samples, with the same coordinates.

    Returns:
        The ratio, dimensionless, named ``<name>_oracle_relative``.
    """
    model, oracle = _aligned(score_model, score_oracle, "oracle_relative")
    name = f"{model.name}_oracle_relative" if model.name else "oracle_relative"
    what = model.attrs.get("long_name", "score")
    return _finish(model / oracle, name, f"{what} relative to samples of the true SDE", "1",
                   description="score_model / score_oracle; 1 means as good as samples of the true SDE")


def oracle_relative_se(score_model: xr.DataArray, score_oracle: xr.DataArray,
                       dim: str = "trajectory") -> xr.DataArray:
    """Standard error of ``mean(score_model) / mean(score_oracle)`` from independent units along ``dim``.

    Definition: with ``a_i``, ``b_i`` the model's and the oracle's score of unit ``i`` (each averaged over
    its other dims, NaN skipped) and ``R = mean(a) / mean(b)``, the delta-method (ratio estimator)
    standard error ``sqrt(sum_i (a_i - R b_i)^2 / (n (n - 1))) / mean(b)``. Held-out trajectories are the
    independent units: an oracle-relative score from a few of them is mostly sampling noise, and this
    says how much (NaN for fewer than two units).

    Arguments:
        score_model, score_oracle: per-unit scores with a ``dim`` dim and the same coordinates, e.g.
            :func:`crps` with ``per_trajectory=True``.
        dim: the dim of independent units.

    Returns:
        Scalar DataArray named ``<name>_oracle_relative_se``, dimensionless.

    References:
        Cochran (1977), Sampling Techniques, 3rd ed., Wiley, sec. 6.4 (variance of the ratio estimator).
    """
    model, oracle = _aligned(score_model, score_oracle, "oracle_relative_se")
    if dim not in model.dims:
        raise BadParameterError(f"oracle_relative_se needs per-unit scores with a {dim!r} dim; score with "
                                "per_trajectory=True")
    a = model.mean([d for d in model.dims if d != dim])
    b = oracle.mean([d for d in oracle.dims if d != dim])
    n = a.sizes[dim]
    ratio = a.mean() / b.mean()
    se = np.sqrt(((a - ratio * b) ** 2).sum() / (n * (n - 1))) / b.mean() if n > 1 else xr.DataArray(np.nan)
    name = f"{model.name}_oracle_relative_se" if model.name else "oracle_relative_se"
    return _finish(se, name, f"standard error of the {model.name or 'score'} relative to the oracle", "1",
                   description=f"delta-method standard error over {n} independent {dim}s")

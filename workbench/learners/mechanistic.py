"""Mechanistic models: the unknown constants of a known system estimated from data, with intervals.

The drift is a catalog (or registered) system's own right-hand side; what is learned is a set of its
parameters and, per training trajectory, the initial state. The fit follows the practice of
systems-biology and SciML parameter estimation (PEtab/pyPESTO, DiffEqParamEstim):

1. **Multiple shooting** (Bock & Plitt 1984): each trajectory is cut into segments of a few
   samples whose start states are unknowns too, tied by continuity residuals, so the least-squares
   landscape stays smooth on chaotic and stiff data where one long solve would not.
2. **Single shooting refinement**: from that solution, the parameters and one initial state per
   trajectory minimise the data misfit alone (trust-region Levenberg-Marquardt, scipy's
   ``least_squares``), which is the likelihood the intervals refer to.
3. **Per-variable noise**: each measured variable has its own noise variance, estimated from its
   residuals (its share ``n_v (n - k) / n`` of the residual degrees of freedom), and the
   single-shooting fit is repeated with residuals weighted by those noise levels until they settle:
   iteratively reweighted (feasible generalised) least squares, the Gaussian likelihood with one
   unknown variance per variable (Carroll & Ruppert 1988, "Transformation and Weighting in
   Regression", ch. 2; Seber & Wild 1989, "Nonlinear Regression", sec. 2.8). Variables measured on
   different scales or with different instruments are then neither over- nor under-trusted.
4. **Intervals**: the Gauss-Newton covariance ``(J_w^T J_w)^-1`` of the weighted residuals (the
   pooled weighted residual variance is 1 by construction; Bates & Watts 1988), over every unknown
   (parameters and initial states), with Student-t quantiles on ``n - k`` degrees of freedom
   (``n`` observed values, ``k`` parameters plus initial states); and on request the **profile
   likelihood** (Raue et al. 2009, "Structural and practical identifiability analysis of partially
   observed dynamical models by exploiting the profile likelihood"). Parameters along a flat
   direction of the Fisher information are reported as not identifiable, with the combination the
   data does determine. The continuity residuals of stage 1 do not enter the covariance.

Jacobians are forward-mode derivatives through a fixed-step RK4 solver (``torch.func.jvp``, one
batched solve per unknown of a segment, not per segment); the step is checked after the fit against
the adaptive DOP853 solver and refined where they differ.
"""
from __future__ import annotations

import math
import time
import warnings
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
import xarray as xr
from scipy import optimize, sparse, stats

from ..errors import BadParameterError, DatasetError, UnknownNameError, UnsupportedError
from ..safety import check_integer
from .base import Capabilities, DataInfo, InputSignal, Learner, rk4_step

# residual weight of a segment's end against the next segment's start, relative to a data residual
CONTINUITY_WEIGHT = 10.0
# relative eigenvalue of the parameters' Fisher information below which a direction counts as flat
FLAT_DIRECTION = 1e-8
# the RK4 step is refined until it agrees with DOP853 to this fraction of each variable's noise level
STEP_AGREEMENT = 0.01
# the smallest noise level resolved, as a fraction of a variable's spread: noise-free data would otherwise
# weight a variable without limit and ask for a step error far below what the estimates need
NOISE_FLOOR = 1e-4
# the per-variable noise levels are re-estimated until their ratios move by no more than this fraction
# (a relative weight error e moves the estimates by about e times the gap between differently weighted
# fits, itself of the order of a standard error: 1% of a standard error)
REWEIGHT_TOLERANCE = 1e-2
MAX_REWEIGHTINGS = 10
MAX_SUBSTEPS = 64
MAX_UNKNOWNS = 20_000


def _rk4_segments(drift: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], start: torch.Tensor,
                  t0: torch.Tensor, steps: torch.Tensor, substeps: int) -> torch.Tensor:
    """Fixed-step RK4 of a batch of segments.

    Arguments:
        drift: ``f(t, x)`` with ``t`` (M,) and ``x`` (M, d).
        start: segment start states (M, d).
        t0: segment start times (M,).
        steps: sample intervals (M, K); zero intervals (padding past a trajectory's end) hold the state.
        substeps: RK4 steps per sample interval.

    Returns:
        States at the segment's samples, (M, K + 1, d).
    """
    x, t, out = start, t0, [start]
    for k in range(steps.shape[1]):
        h = steps[:, k] / substeps
        for _ in range(substeps):
            x, t = rk4_step(drift, t, x, h), t + h
        out.append(x)
    return torch.stack(out, dim=1)


class Mechanistic(Learner):
    """Parameter estimation for a known ODE system (see the module docstring for the method).

    Options:
        system: catalog or registered system name (a :class:`systems.System` passed to ``fit`` is
            registered under its name first); its state names must be the dataset's variables.
            Default: the system a simulated dataset names in its attributes.
        estimate: parameter names to estimate, or ``"all"``; the others stay at ``fixed`` or the
            system's defaults.
        start: initial guesses ``{name: value}`` (default: the system's defaults).
        bounds: ``{name: (low, high)}`` for estimated parameters (default: unbounded).
        fixed: values of parameters that are not estimated (default: the system's defaults).
        segment: samples per multiple-shooting segment (default: about a tenth of a trajectory,
            at least 4; for chaotic systems at most half a Lyapunov time).
        substeps: RK4 steps per sample interval to start with (refined automatically).
        level: confidence level of the intervals.
        max_iterations: function evaluations per least-squares stage.
        variables: the dataset's variable names (set by ``fit``).
    """

    name = "mechanistic"
    supports = Capabilities(kinds=("ode",), irregular=True, inputs=True, training="closed_form", has_equations=True)
    defaults = {"system": None, "estimate": "all", "start": None, "bounds": None, "fixed": None, "segment": None,
                "substeps": 4, "level": 0.95, "max_iterations": 200, "variables": None}
    reference = ("Bock & Plitt 1984 (multiple shooting); Bates & Watts 1988 (Gauss-Newton intervals); "
                 "Raue et al. 2009 (profile likelihood)")

    def __init__(self, dim: int, n_inputs: int = 0, **options: Any):
        super().__init__(dim, n_inputs, **options)
        self.system = _resolve_system(self.options["system"])
        self.options["system"] = self.system.name
        variables = self.options["variables"] or list(self.system.state_names)
        if list(variables) != list(self.system.state_names):
            raise UnsupportedError(
                f"mechanistic: the dataset's variables {list(variables)} are not the states "
                f"{list(self.system.state_names)} of {self.system.name!r}",
                fix="use data whose variables are the system's state names (ds.assign_coords(variable=[...])); "
                    "every state must be measured, with gaps as a mask")
        self.estimated = _estimated_names(self.system, self.options["estimate"])
        self.fixed_values = _fixed_values(self.system, self.estimated, self.options["fixed"])
        self.start_values = _start_values(self.system, self.estimated, self.options["start"])
        self.bounds = _bounds(self.estimated, self.start_values, self.options["bounds"])
        level = self.options["level"]
        if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.5 <= level < 1:
            raise BadParameterError(f"level must be a number in [0.5, 1), got {level!r}", fix="e.g. level=0.95")
        p = len(self.estimated)
        self.register_buffer("estimate", torch.tensor(self.start_values, dtype=torch.float64))
        self.register_buffer("covariance", torch.full((p, p), float("nan"), dtype=torch.float64))
        self.register_buffer("flat_directions", torch.zeros(p, p, dtype=torch.float64))
        # ssr and residual variance in standardised units (the data's spread), observations, unknowns
        self.register_buffer("fit_statistics", torch.zeros(4, dtype=torch.float64))
        self.register_buffer("noise_std", torch.full((dim,), float("nan"), dtype=torch.float64))
        self._problem: Optional[_Problem] = None

    @classmethod
    def options_from_data(cls, info: DataInfo, options: dict[str, Any]) -> dict[str, Any]:
        options = dict(super().options_from_data(info, options))
        options.setdefault("variables", list(info.names))
        from systems import names
        if options.get("system") is None and info.system in names():  # simulated data names its system
            options["system"] = info.system
        return options

    # --- physics -------------------------------------------------------------------------------------
    def _params(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        values = {name: torch.as_tensor(v, dtype=theta.dtype, device=theta.device)
                  for name, v in self.fixed_values.items()}
        values.update({name: theta[i] for i, name in enumerate(self.estimated)})
        return values

    def _field(self, theta: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        params = self._params(theta)
        return lambda t, x: self.system.drift(t, x, params)

    # --- fit -----------------------------------------------------------------------------------------
    def fit_closed_form(self, train: Any, val: Optional[Any], times: torch.Tensor) -> dict[str, float]:
        """Estimate on the training and validation trajectories together (nothing is chosen on the
        validation ones, so they add information instead of sitting idle)."""
        z = train.z if val is None else torch.cat([train.z, val.z])
        mask = train.mask if val is None else torch.cat([train.mask, val.mask])
        x = (z.double() * self.scale.double() + self.offset.double()).cpu()
        problem = _Problem(self, x, mask.cpu(), times.double().cpu())
        theta, x0 = problem.solve()
        self._store(problem, theta, x0)
        standardised = float(self.fit_statistics[1])
        return {"val_loss": float(self.fit_statistics[0]) / max(problem.n_observations, 1),
                "residual_std": math.sqrt(standardised)}

    def _store(self, problem: "_Problem", theta: np.ndarray, x0: np.ndarray) -> None:
        """The estimates, their covariance from the noise-weighted Jacobian, and the fit statistics."""
        jac = problem.jacobian_single(theta, x0)
        residuals = problem.single_residuals(theta, x0)
        n, k = problem.n_observations, jac.shape[1]
        ssr = float(residuals @ residuals)
        # the weights are the noise levels estimated from these residuals, so s2 is 1 up to the last
        # reweighting's change; it stays in the covariance to keep it exact at the point reported
        s2 = ssr / max(n - k, 1)
        problem.s2 = s2
        fisher = (jac.T @ jac) / s2
        cov, flat = _parameter_covariance(fisher, len(theta), theta)
        weights = (problem.sigma / problem.scale).numpy()
        standardised_ssr = float(np.sum((residuals.reshape(-1, problem.dim) * weights) ** 2))
        with torch.no_grad():
            self.estimate.copy_(torch.as_tensor(theta))
            self.covariance.copy_(torch.as_tensor(cov))
            self.flat_directions.copy_(torch.as_tensor(flat))
            self.noise_std.copy_(problem.sigma)
            self.fit_statistics.copy_(torch.tensor([standardised_ssr, standardised_ssr / max(n - k, 1), n, k],
                                                   dtype=torch.float64))
        self._problem = problem
        problem.theta_hat, problem.x0_hat, problem.ssr_hat = theta, x0, ssr

    # --- results -------------------------------------------------------------------------------------
    def parameter_table(self, level: Optional[float] = None, units: Optional[dict[str, str]] = None) -> xr.Dataset:
        """Estimates with standard errors and intervals, as a Dataset over ``parameter``.

        Arguments:
            level: confidence level (default the fit's ``level``).
            units: the parameters' units, for the attrs.

        Returns:
            ``estimate``, ``std_error``, ``ci_low``, ``ci_high`` (Student-t on ``n - k`` degrees of
            freedom; NaN for a parameter that is not identifiable), ``identifiable``, ``description``;
            attrs include ``noise_std`` (each variable's estimated noise level, data units, the weights
            of the fit) and ``residual_variance`` (in the data's standardised units).
        """
        level = self.options["level"] if level is None else level
        if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.5 <= level < 1:
            raise BadParameterError(f"level must be a number in [0.5, 1), got {level!r}", fix="e.g. level=0.95")
        theta = self.estimate.double().cpu().numpy()
        cov = self.covariance.double().cpu().numpy()
        _, s2, n, k = self.fit_statistics.double().tolist()
        dof = max(int(n - k), 1)
        quantile = float(stats.t.ppf(0.5 + level / 2, dof))
        flat = self.flat_directions.double().cpu().numpy()
        identifiable = ~(np.abs(flat) > 0.1).any(axis=1) if flat.size else np.ones(0, bool)
        std = np.sqrt(np.clip(np.diag(cov), 0, None))
        std = np.where(identifiable, std, np.inf)
        low = np.where(identifiable, theta - quantile * std, np.nan)
        high = np.where(identifiable, theta + quantile * std, np.nan)
        coords = {"parameter": list(self.estimated)}
        descriptions = [self.system.params[p].description for p in self.estimated]
        table = xr.Dataset(
            {"estimate": ("parameter", theta), "std_error": ("parameter", std),
             "ci_low": ("parameter", low), "ci_high": ("parameter", high),
             "identifiable": ("parameter", identifiable.astype(bool)),
             "description": ("parameter", descriptions)},
            coords=coords,
            attrs={"system": self.system.name, "level": float(level), "method":
                   "multiple shooting then single-shooting trust-region least squares, iteratively reweighted by "
                   "per-variable noise levels estimated from the residuals; Gauss-Newton covariance (J_w^T J_w)^-1 "
                   "with Student-t quantiles on n - k degrees of freedom", "residual_variance": s2,
                   "noise_std": "; ".join(f"{v} {s:.4g}" for v, s in zip(self.system.state_names,
                                                                          self.noise_std.double().tolist())),
                   "degrees_of_freedom": dof, "observations": int(n), "unknowns": int(k),
                   "identifiable_combinations": "; ".join(_combinations(self.estimated, theta, flat))})
        for name in ("estimate", "std_error", "ci_low", "ci_high"):
            table[name].attrs["units"] = "as the system's equations (dataset units)" if units is None else units
        return table

    def profile(self, name: str, points: int = 21, level: Optional[float] = None) -> xr.DataArray:
        """Profile likelihood of one parameter: ``(SSR(value) - SSR_min) / s^2`` with the others re-fitted.

        Arguments:
            name: an estimated parameter.
            points: grid size (odd, 5..201), centred on the estimate over +-4 standard errors (or a
                factor of 2 either way when the parameter is not identifiable).
            level: confidence level of the threshold and the profile interval.

        Returns:
            DataArray over ``value`` with attrs ``threshold`` (the chi-square quantile), ``ci_low``
            and ``ci_high`` (where the profile crosses it; NaN where it never does: the data do not
            bound the parameter on that side).
        """
        if name not in self.estimated:
            raise UnknownNameError(f"profile: {name!r} is not an estimated parameter",
                                   fix=f"use one of {list(self.estimated)}")
        if self._problem is None:
            raise UnsupportedError("profile needs the fitted data, which a loaded model does not keep",
                                   fix="profile right after wb.fit, in the same session")
        if isinstance(points, bool) or not isinstance(points, int) or not 5 <= points <= 201:
            raise BadParameterError(f"points must be an integer in [5, 201], got {points!r}")
        level = self.options["level"] if level is None else level
        table = self.parameter_table(level)
        index = self.estimated.index(name)
        centre, std = float(table["estimate"][index]), float(table["std_error"][index])
        if np.isfinite(std) and std > 0:
            values = centre + np.linspace(-4, 4, points) * std
        else:
            values = centre * np.geomspace(0.5, 2.0, points)
        statistic = self._problem.profile(index, values)
        threshold = float(stats.chi2.ppf(level, 1))
        low, high = _crossings(values, statistic, threshold, centre)
        return xr.DataArray(statistic, dims=("value",), coords={"value": values}, name=f"profile_{name}",
                            attrs={"parameter": name, "threshold": threshold, "level": float(level),
                                   "ci_low": low, "ci_high": high,
                                   "method": "profile likelihood (Raue et al. 2009): (SSR - SSR_min) / s^2, "
                                             "the other parameters and initial states re-fitted"})

    # --- use -----------------------------------------------------------------------------------------
    def rollout(self, z0: torch.Tensor, t: torch.Tensor, n_samples: int = 1,
                generator: Optional[torch.Generator] = None, inputs: Optional[InputSignal] = None,
                context: Optional[torch.Tensor] = None) -> torch.Tensor:
        from ..numerics import integrate_batch
        x0 = z0.double() * self.scale.double() + self.offset.double()
        params = self._params(self.estimate.double().to(x0.device))
        bound = float(self.system.bound)
        out, _ = integrate_batch(lambda tt, x: self.system.drift(tt, x, params), x0, t.double(), rtol=1e-8,
                                 atol=1e-8, max_seconds=120.0, bound=bound)
        z = (out - self.offset.double()) / self.scale.double()
        return z.to(z0.dtype)[None].expand(n_samples, *z.shape)

    def drift(self, z: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = z.double() * self.scale.double() + self.offset.double()
        t = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        dx = self.system.drift(t, x, self._params(self.estimate.double().to(x.device)))
        return (dx / self.scale.double()).to(z.dtype)

    def equations(self, names: list[str], latex: bool = False) -> list[str]:
        values = {**self.fixed_values, **dict(zip(self.estimated, self.estimate.double().tolist()))}
        given = ", ".join(f"{k} = {v:.4g}" for k, v in values.items())
        lines = [line.strip() for line in self.system.equations.split(r"\\")]
        if len(lines) != len(names):
            lines = [self.system.equations] * len(names)
        if latex:
            return [f"{line} \\quad ({given})" for line in lines]
        return [f"{line}   with {given}" for line in lines]


class _OutOfTime(Exception):
    """The fit's time budget ended a least-squares stage (caught where the stage keeps its best point)."""


class _Problem:
    """The least-squares problem of one fit: data, unknowns, residuals and their Jacobians."""

    def __init__(self, learner: Mechanistic, x: torch.Tensor, mask: torch.Tensor, times: torch.Tensor):
        self.learner = learner
        self.x, self.mask, self.times = x, mask.bool(), times
        n, length, dim = x.shape
        self.n, self.length, self.dim = n, length, dim
        self.n_observations = int(self.mask.sum()) * dim
        # residuals are divided by sigma: the data's spread in the shooting stage, then each variable's
        # estimated noise level (_reweighted_fit)
        self.scale = learner.scale.double().cpu().clamp_min(1e-300)
        self.sigma = self.scale.clone()
        unknowns = len(learner.estimated) + n * dim
        if length < 2 or self.n_observations <= unknowns:
            raise DatasetError(
                f"mechanistic: {self.n_observations} observed values cannot determine {unknowns} unknowns "
                f"({len(learner.estimated)} parameters and {dim} initial values per trajectory)",
                fix="give more samples or trajectories, estimate fewer parameters, or fix some with fixed={...}")
        observed_first = self.mask.any(dim=1)
        if not observed_first.all():
            raise DatasetError("mechanistic: some trajectories have no observed sample",
                               fix="drop them (ds.isel(trajectory=...)) before fitting")
        self.substeps = check_integer(learner.options["substeps"], "substeps", 1, MAX_SUBSTEPS)
        self.max_iterations = check_integer(learner.options["max_iterations"], "max_iterations", 1, 100_000)
        self.segment = self._segment_length(learner.options["segment"])
        self.s2 = float("nan")
        self.started = time.perf_counter()
        self.theta_hat: Optional[np.ndarray] = None
        self.x0_hat: Optional[np.ndarray] = None
        self.ssr_hat = float("nan")

    def _segment_length(self, segment: Optional[int]) -> int:
        if segment is not None:
            return check_integer(segment, "segment", 1, self.length - 1)
        length = max(4, (self.length - 1) // 10)
        lyapunov = self.learner.system.lyapunov
        if lyapunov and lyapunov > 0:
            dt = float((self.times[-1] - self.times[0]) / (self.length - 1))
            length = min(length, max(2, int(0.5 / (lyapunov * dt))))
        return min(length, self.length - 1)

    # --- shooting ------------------------------------------------------------------------------------
    def _segments(self, length: int) -> tuple[np.ndarray, int]:
        """Start indices (S,) of segments of ``length`` intervals and the count per trajectory."""
        starts = np.arange(0, self.length - 1, length)
        return starts, len(starts)

    def _steps(self, starts: np.ndarray, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.times
        index = np.minimum(starts[:, None] + np.arange(length + 1)[None], self.length - 1)
        grid = t[torch.as_tensor(index)]
        return grid[:, 0], grid[:, 1:] - grid[:, :-1]

    def simulate(self, theta: np.ndarray, starts_x: torch.Tensor, starts: np.ndarray, length: int,
                 tangents: Optional[tuple[torch.Tensor, torch.Tensor]] = None) -> Any:
        """States over every segment of every trajectory: (n, S, length + 1, d); with ``tangents``
        also their directional derivatives (one per tangent) by forward-mode differentiation."""
        t0, steps = self._steps(starts, length)
        s = len(starts)
        t0 = t0.repeat(self.n)
        steps = steps.repeat(self.n, 1)
        th = torch.as_tensor(theta, dtype=torch.float64)

        def run(start: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
            field = self.learner._field(params)
            return _rk4_segments(field, start.reshape(-1, self.dim), t0, steps, self.substeps)

        if tangents is None:
            with torch.no_grad():
                return run(starts_x, th).reshape(self.n, s, length + 1, self.dim)
        d_start, d_theta = tangents

        def directional(ts: torch.Tensor, tp: torch.Tensor) -> torch.Tensor:
            return torch.func.jvp(run, (starts_x, th), (ts, tp))[1]

        try:
            derivative = torch.func.vmap(directional)(d_start, d_theta)
        except Exception as exc:  # noqa: BLE001 -- a drift functorch cannot trace: central differences
            warnings.warn(f"mechanistic: forward-mode derivatives failed ({type(exc).__name__}); using central "
                          "differences", RuntimeWarning, stacklevel=2)
            derivative = torch.stack([self._central(run, starts_x, th, a, b) for a, b in zip(d_start, d_theta)])
        return derivative.reshape(len(d_start), self.n, s, length + 1, self.dim)

    @staticmethod
    def _central(run: Callable, x: torch.Tensor, th: torch.Tensor, dx: torch.Tensor, dth: torch.Tensor) -> torch.Tensor:
        eps = 1e-6 * max(1.0, float(x.abs().max()), float(th.abs().max()) if th.numel() else 1.0)
        with torch.no_grad():
            return (run(x + eps * dx, th + eps * dth) - run(x - eps * dx, th - eps * dth)) / (2 * eps)

    def _pack(self, theta: np.ndarray, starts_x: np.ndarray) -> np.ndarray:
        return np.concatenate([theta, starts_x.ravel()])

    def _unpack(self, u: np.ndarray, s: int) -> tuple[np.ndarray, torch.Tensor]:
        p = len(self.learner.estimated)
        return u[:p], torch.as_tensor(u[p:].reshape(self.n, s, self.dim))

    def _targets(self, starts: np.ndarray, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = starts[:, None] + np.arange(length + 1)[None]
        valid = torch.as_tensor(index < self.length)
        index = torch.as_tensor(np.minimum(index, self.length - 1))
        y = self.x[:, index]  # (n, S, L+1, d)
        m = self.mask[:, index] & valid[None]
        # a segment's last sample is the next one's first: count it once
        if len(starts) > 1:
            m[:, :-1, -1] = False
        return torch.nan_to_num(y), m

    def residuals(self, u: np.ndarray, starts: np.ndarray, length: int, continuity: bool) -> np.ndarray:
        theta, sx = self._unpack(u, len(starts))
        states = self.simulate(theta, sx, starts, length)
        return self._residual_vector(states, sx, starts, length, continuity)

    def _residual_vector(self, states: torch.Tensor, sx: torch.Tensor, starts: np.ndarray, length: int,
                         continuity: bool) -> np.ndarray:
        y, m = self._targets(starts, length)
        data = ((states - y) / self.sigma)[m]
        parts = [data.reshape(-1)]
        if continuity and len(starts) > 1:
            gap = (states[:, :-1, -1] - sx[:, 1:]) / self.sigma * CONTINUITY_WEIGHT
            parts.append(gap.reshape(-1))
        r = torch.cat(parts).numpy()
        return np.clip(np.nan_to_num(r, nan=1e10), -1e10, 1e10)  # a blown-up trial point is far, not a crash

    def jacobian(self, u: np.ndarray, starts: np.ndarray, length: int, continuity: bool) -> Any:
        theta, sx = self._unpack(u, len(starts))
        p, d, s = len(theta), self.dim, len(starts)
        # tangents: one per start-state component (all segments at once: each segment depends only on its
        # own start) and one per parameter
        eye = torch.eye(d, dtype=torch.float64)
        d_start = torch.cat([eye[:, None, None, :].expand(d, self.n, s, d),
                             torch.zeros(p, self.n, s, d, dtype=torch.float64)])
        d_theta = torch.cat([torch.zeros(d, p, dtype=torch.float64), torch.eye(p, dtype=torch.float64)])
        deriv = self.simulate(theta, sx, starts, length, (d_start, d_theta)) / self.sigma  # (d+p, n, S, L+1, d)
        deriv = torch.nan_to_num(deriv, nan=0.0, posinf=1e10, neginf=-1e10)
        y, m = self._targets(starts, length)
        rows, cols, vals = [], [], []
        # data rows, in the order of _residual_vector's boolean indexing
        where = torch.nonzero(m.unsqueeze(-1).expand(*m.shape, d))  # (R, 4): traj, seg, sample, var
        row_ids = np.arange(len(where))
        traj, seg, k, var = (where[:, i].numpy() for i in range(4))
        for j in range(d):  # derivative by start component j of the row's own segment
            rows.append(row_ids)
            cols.append(p + ((traj * s + seg) * d + j))
            vals.append(deriv[j][traj, seg, k, var].numpy())
        for j in range(p):
            rows.append(row_ids)
            cols.append(np.full(len(row_ids), j))
            vals.append(deriv[d + j][traj, seg, k, var].numpy())
        n_rows = len(row_ids)
        if continuity and s > 1:
            grid = np.stack(np.meshgrid(np.arange(self.n), np.arange(s - 1), np.arange(d), indexing="ij"), -1)
            gt, gs, gv = (grid[..., i].ravel() for i in range(3))
            gap_rows = n_rows + np.arange(len(gt))
            w = CONTINUITY_WEIGHT
            for j in range(d):
                rows.append(gap_rows)
                cols.append(p + ((gt * s + gs) * d + j))
                vals.append(w * deriv[j][gt, gs, -1, gv].numpy())
            for j in range(p):
                rows.append(gap_rows)
                cols.append(np.full(len(gt), j))
                vals.append(w * deriv[d + j][gt, gs, -1, gv].numpy())
            rows.append(gap_rows)
            cols.append(p + ((gt * s + gs + 1) * d + gv))
            vals.append(-w / self.sigma.numpy()[gv])
            n_rows += len(gt)
        shape = (n_rows, p + self.n * s * d)
        jac = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape)
        return jac.toarray() if shape[1] <= 1500 else jac

    def _least_squares(self, u0: np.ndarray, starts: np.ndarray, length: int, continuity: bool,
                       free: Optional[np.ndarray] = None) -> np.ndarray:
        """Trust-region least squares over the unknowns ``u`` (those with ``free`` True)."""
        p = len(self.learner.estimated)
        low = np.full(len(u0), -np.inf)
        high = np.full(len(u0), np.inf)
        low[:p], high[:p] = self.learner.bounds
        free = np.ones(len(u0), bool) if free is None else free

        def full(v: np.ndarray) -> np.ndarray:
            u = u0.copy()
            u[free] = v
            return u

        best = {"cost": np.inf, "v": None}

        def fun(v: np.ndarray) -> np.ndarray:
            if self.out_of_time():
                raise _OutOfTime
            r = self.residuals(full(v), starts, length, continuity)
            cost = float(r @ r)
            if cost < best["cost"]:
                best.update(cost=cost, v=v.copy())
            return r

        def jac(v: np.ndarray) -> Any:
            j = self.jacobian(full(v), starts, length, continuity)
            return j[:, free]

        lo, hi = low[free], high[free]
        inside = 1e-9 * np.maximum(np.abs(np.where(np.isfinite(lo), lo, 0)), 1.0)  # trf needs a strictly inner start
        x0 = np.clip(u0[free], np.where(np.isfinite(lo), lo + inside, lo), np.where(np.isfinite(hi), hi - inside, hi))
        try:
            result = optimize.least_squares(fun, x0, jac=jac, bounds=(lo, hi), method="trf",
                                            x_scale="jac", max_nfev=self.max_iterations, xtol=1e-12, ftol=1e-12,
                                            gtol=1e-12)
        except _OutOfTime:  # the budget is spent: the best point evaluated so far
            return full(best["v"] if best["v"] is not None else x0)
        return full(result.x)

    def out_of_time(self) -> bool:
        budget = self.learner.time_budget
        return budget is not None and time.perf_counter() - self.started > budget

    def _initial_starts(self, starts: np.ndarray) -> np.ndarray:
        """Segment start states from the data, filled by linear interpolation where a sample is missing."""
        filled = self.x.numpy().copy()
        t = self.times.numpy()
        for i in range(self.n):
            seen = self.mask[i].numpy()
            for v in range(self.dim):
                filled[i, :, v] = np.interp(t, t[seen], self.x[i, seen, v].numpy())
        return filled[:, starts]

    def solve(self) -> tuple[np.ndarray, np.ndarray]:
        """Multiple shooting, then single shooting reweighted by the variables' noise levels; returns the
        parameters and the initial states (n, d), which come out of the second stage."""
        theta = np.array(self.learner.start_values, dtype=np.float64)
        starts, s = self._segments(self.segment)
        if self.n * s * self.dim + len(theta) > MAX_UNKNOWNS:
            raise BadParameterError(f"mechanistic: {self.n * s * self.dim + len(theta):,} unknowns (segment "
                                    f"starts x variables x trajectories) exceed {MAX_UNKNOWNS:,}",
                                    fix="pass a longer segment= or fewer trajectories")
        u = self._least_squares(self._pack(theta, self._initial_starts(starts)), starts, self.segment, True)
        theta, shooting = u[:len(theta)], u[len(theta):].reshape(self.n, s, self.dim)
        x0 = shooting[:, 0]
        while True:
            theta, x0 = self._reweighted_fit(theta, x0)
            if self.substeps >= MAX_SUBSTEPS or self.out_of_time() or self._step_agrees(theta, x0):
                break
            self.substeps *= 2
        # in the data's spread: the noise weights of a diverged solve would scale its misfit down to ~1
        standardised = self.single_residuals(theta, x0).reshape(-1, self.dim) * (self.sigma / self.scale).numpy()
        ssr = float(np.sum(standardised ** 2))
        if self.out_of_time():
            warnings.warn(f"mechanistic: the time budget of {self.learner.time_budget:g} s ended the fit before it "
                          "converged; the estimates are the best point reached (give a larger time_budget)",
                          RuntimeWarning, stacklevel=2)
        if not math.isfinite(ssr) or ssr >= 1e18:
            raise BadParameterError("mechanistic: the fitted system diverges from the data's initial states",
                                    fix="give start= guesses closer to the truth, bounds=, or a shorter segment=")
        return theta, x0

    def _reweighted_fit(self, theta: np.ndarray, x0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Single shooting, alternating with re-estimating each variable's noise level from its residuals
        (the weights) until the levels settle."""
        whole = np.array([0])
        for _ in range(MAX_REWEIGHTINGS):
            u = self._least_squares(self._pack(theta, x0), whole, self.length - 1, False)
            theta, x0 = u[:len(theta)], u[len(theta):].reshape(self.n, self.dim)
            noise = self.noise_levels(theta, x0)
            # a common factor on every weight leaves the least-squares solution where it is: only the
            # levels relative to each other need to settle
            ratio = noise / self.sigma
            settled = float(ratio.max() / ratio.min()) - 1 <= REWEIGHT_TOLERANCE
            self.sigma = noise
            if settled or self.out_of_time():
                break
        return theta, x0

    def noise_levels(self, theta: np.ndarray, x0: np.ndarray) -> torch.Tensor:
        """Each variable's noise standard deviation (data units): its residual sum of squares over its
        share of the residual degrees of freedom, ``n_v (n - k) / n``, floored at ``NOISE_FLOOR`` of its
        spread. Every sample observes every variable, so the shares are equal."""
        residuals = self.single_residuals(theta, x0).reshape(-1, self.dim) * self.sigma.numpy()
        unknowns = len(theta) + self.n * self.dim
        dof = max(self.n_observations - unknowns, 1) / self.dim
        level = torch.as_tensor(np.sqrt(np.sum(residuals ** 2, axis=0) / dof))
        return torch.maximum(level, NOISE_FLOOR * self.scale)

    def _step_agrees(self, theta: np.ndarray, x0: np.ndarray) -> bool:
        """Whether the RK4 grid solution matches DOP853 to a small fraction of every variable's noise."""
        from ..numerics import integrate_batch
        fixed = self.simulate(theta, torch.as_tensor(x0[:, None]), np.array([0]), self.length - 1)[:, 0]
        field = self.learner._field(torch.as_tensor(theta))
        try:
            exact, _ = integrate_batch(field, torch.as_tensor(x0), self.times, rtol=1e-9, atol=1e-9,
                                       max_seconds=60.0)
        except Exception:  # noqa: BLE001 -- the reference solve failing says nothing about the RK4 grid
            return True
        # sigma is floored at NOISE_FLOOR of the spread: noise-free data ask for 1e-6 of the spread, not less
        return bool(((fixed - exact).abs() <= STEP_AGREEMENT * self.sigma).all())

    def single_residuals(self, theta: np.ndarray, x0: np.ndarray) -> np.ndarray:
        """Weighted data residuals of one solve per trajectory from ``x0`` (n, d), variable fastest."""
        return self.residuals(self._pack(theta, x0[:, None]), np.array([0]), self.length - 1, False)

    def jacobian_single(self, theta: np.ndarray, x0: np.ndarray) -> np.ndarray:
        j = self.jacobian(self._pack(theta, x0[:, None]), np.array([0]), self.length - 1, False)
        return j if isinstance(j, np.ndarray) else j.toarray()

    def profile(self, index: int, values: np.ndarray) -> np.ndarray:
        """``(SSR - SSR_min) / s^2`` with parameter ``index`` held at each value, walking out from the estimate."""
        whole = np.array([0])
        centre = int(np.argmin(np.abs(values - self.theta_hat[index])))
        out = np.full(len(values), np.nan)
        base = self._pack(self.theta_hat, self.x0_hat[:, None])
        free = np.ones(len(base), bool)
        free[index] = False
        for order in (range(centre, len(values)), range(centre, -1, -1)):
            u = base.copy()
            for i in order:
                u[index] = values[i]
                u = self._least_squares(u, whole, self.length - 1, False, free)
                ssr = float(np.sum(self.residuals(u, whole, self.length - 1, False) ** 2))
                out[i] = max(ssr - self.ssr_hat, 0.0) / self.s2
        return out


# --- option checks and statistics ----------------------------------------------------------------------
def _resolve_system(system: Any, learner: str = "mechanistic") -> Any:
    """The :class:`systems.System` that ``system`` (a name or a System) names, refusing SDEs."""
    from systems import System, get, names, register
    if system is None:  # data without a known system: a refusal for this data, like any learner's
        raise UnsupportedError(f"learner {learner!r} needs the system whose parameters it estimates, and this "
                               f"dataset names none", fix=f"use wb.fit(ds, {learner!r}, system='lotka_volterra') (a "
                               "catalog name or your own wb.System), or a black-box learner such as 'node'")
    if isinstance(system, System):
        # registered under its name, so that the run folder can name it and a reload in this process finds it
        return system if system.name in names() and get(system.name) is system else register(system)
    if not isinstance(system, str):
        raise BadParameterError(f"system must be a name or a System, got {type(system).__name__}")
    found = get(system)
    if found.kind != "ode":
        raise UnsupportedError(f"learner {learner!r} fits ODE systems; {system!r} is an SDE",
                               fix="use its deterministic counterpart, or learner='nsde'")
    return found


def _estimated_names(system: Any, estimate: Union[str, list[str]]) -> list[str]:
    names = list(system.params)
    if estimate == "all":
        chosen = names
    elif isinstance(estimate, (list, tuple)) and all(isinstance(e, str) for e in estimate):
        chosen = list(dict.fromkeys(estimate))
    else:
        raise BadParameterError(f"estimate must be 'all' or a list of parameter names, got {estimate!r}")
    unknown = [e for e in chosen if e not in names]
    if unknown:
        raise UnknownNameError(f"{system.name!r} has no parameter(s) {unknown}", fix=f"estimate some of {names}")
    if not names:
        raise UnsupportedError(f"learner 'mechanistic' estimates parameters, and {system.name!r} has none",
                               fix="use 'node' or 'sindy' to learn its flow, or give the system parameters")
    if not chosen:
        raise BadParameterError("estimate names no parameter", fix=f"estimate some of {names}")
    return chosen


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not math.isfinite(float(value)):
        raise BadParameterError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _fixed_values(system: Any, estimated: list[str], fixed: Optional[dict]) -> dict[str, float]:
    fixed = dict(fixed or {})
    unknown = [k for k in fixed if k not in system.params]
    if unknown:
        raise UnknownNameError(f"fixed names unknown parameter(s) {unknown}", fix=f"use some of {list(system.params)}")
    both = [k for k in fixed if k in estimated]
    if both:
        raise BadParameterError(f"{both} are both fixed and estimated", fix="leave them out of one of the two")
    return {k: _number(fixed.get(k, p.default), f"fixed[{k!r}]") for k, p in system.params.items()
            if k not in estimated}


def _start_values(system: Any, estimated: list[str], start: Optional[dict]) -> list[float]:
    start = dict(start or {})
    unknown = [k for k in start if k not in estimated]
    if unknown:
        raise UnknownNameError(f"start names parameter(s) {unknown} that are not estimated",
                               fix=f"give starts for some of {estimated}")
    return [_number(start.get(k, system.params[k].default), f"start[{k!r}]") for k in estimated]


def _bounds(estimated: list[str], start: list[float], bounds: Optional[dict]) -> tuple[np.ndarray, np.ndarray]:
    bounds = dict(bounds or {})
    unknown = [k for k in bounds if k not in estimated]
    if unknown:
        raise UnknownNameError(f"bounds name parameter(s) {unknown} that are not estimated",
                               fix=f"bound some of {estimated}")
    low, high = np.full(len(estimated), -np.inf), np.full(len(estimated), np.inf)
    for i, name in enumerate(estimated):
        if name not in bounds:
            continue
        pair = bounds[name]
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise BadParameterError(f"bounds[{name!r}] must be (low, high), got {pair!r}")
        lo, hi = (float(v) for v in pair)
        if not lo < hi:
            raise BadParameterError(f"bounds[{name!r}] = {pair!r} is empty", fix="give low < high")
        if not lo < start[i] < hi:
            raise BadParameterError(f"the start {start[i]:g} of {name!r} lies outside its bounds ({lo:g}, {hi:g})",
                                    fix=f"pass start={{'{name}': ...}} inside the bounds, or widen them")
        low[i], high[i] = lo, hi
    return low, high


def _parameter_covariance(fisher: np.ndarray, p: int, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The parameters' covariance with the initial states profiled out, and the flat directions.

    Returns:
        ``(cov (p, p), flat (p, p))``: ``flat[:, j]`` is a unit vector (in relative parameter units)
        along which the Fisher information is below ``FLAT_DIRECTION`` of its largest eigenvalue;
        zero columns elsewhere.
    """
    full_inverse = np.linalg.pinv(fisher, rcond=1e-13, hermitian=True)
    cov = full_inverse[:p, :p]
    a, b, c = fisher[:p, :p], fisher[:p, p:], fisher[p:, p:]
    schur = a - b @ np.linalg.pinv(c, rcond=1e-13, hermitian=True) @ b.T if c.size else a
    scale = np.maximum(np.abs(theta), 1e-12)
    relative = schur * np.outer(scale, scale)
    eigenvalues, vectors = np.linalg.eigh(relative)
    top = max(float(eigenvalues.max()), 1e-300)
    flat = np.zeros((p, p))
    for j in range(p):
        if eigenvalues[j] < FLAT_DIRECTION * top:
            flat[:, j] = vectors[:, j]
    return cov, flat


def _combinations(names: list[str], theta: np.ndarray, flat: np.ndarray) -> list[str]:
    """Products of powers of the non-identifiable parameters that the data do determine."""
    involved = np.flatnonzero((np.abs(flat) > 0.1).any(axis=1))
    if len(involved) < 2:
        return []
    null = flat[involved][:, (np.abs(flat[involved]) > 0).any(axis=0)]
    # directions orthogonal to the flat ones, in log-parameter space: the determined combinations
    basis = np.linalg.svd(null.T, full_matrices=True)[2][null.shape[1]:]
    out = []
    for row in basis:
        big = row[np.argmax(np.abs(row))]
        powers = row / big
        terms = [(names[i], powers[k]) for k, i in enumerate(involved) if abs(powers[k]) > 0.05]
        out.append(" * ".join(name if abs(power - 1) < 0.05 else f"{name}^{power:.2g}" for name, power in terms))
    return out


def _crossings(values: np.ndarray, statistic: np.ndarray, threshold: float, centre: float) -> tuple[float, float]:
    """Where the profile first rises above ``threshold`` on each side of the centre (NaN if never)."""
    def side(order: np.ndarray) -> float:
        previous = None
        for i in order:
            if np.isfinite(statistic[i]) and statistic[i] > threshold:
                if previous is None:
                    return float(values[i])
                v0, v1, s0, s1 = values[previous], values[i], statistic[previous], statistic[i]
                return float(v0 + (threshold - s0) * (v1 - v0) / (s1 - s0))
            previous = i
        return float("nan")

    below = np.flatnonzero(values <= centre)[::-1]
    above = np.flatnonzero(values >= centre)
    return side(below), side(above)

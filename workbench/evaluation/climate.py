"""Attractor-level scores: what a surrogate of a chaotic system keeps after it has lost the weather.

A good surrogate of a chaotic flow decorrelates from the truth after a few Lyapunov times, as the
truth itself does from a perturbed copy, but it should keep the attractor: the same growth rate of
small errors, the same invariant measure (the distribution of states along a long run), the same
time scales. This module measures those, each on plain arrays so the true system and any learned
model are scored by the same code:

* :func:`benettin` - the largest Lyapunov exponent of any map by two-trajectory renormalisation;
  :func:`flow_lyapunov` runs it on a vector field, :func:`system_lyapunov` on a catalog system and
  :func:`model_lyapunov` on a fitted model's own rollout (its vector field or map).
* :func:`measure_distance` - Wasserstein-1 per variable, histogram Kullback-Leibler divergence and
  Hellinger distance between the state distributions of two long runs (transients dropped).
* :func:`spectrum_error` - relative L1 error of the Welch power spectrum of each variable.
* :func:`correlation_dimension` - Grassberger-Procaccia correlation dimension of a point cloud.
* :func:`model_free_run` - a long run of a fitted model from given histories, in physical units.
* :func:`long_run` - the one recipe that puts these together for a model and a dataset (its defaults
  in :class:`LongRunRecipe`), and :func:`climate_scores`, the scores ``evaluate`` reports from it.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
import xarray as xr
from scipy.signal import welch
from scipy.spatial.distance import pdist

from systems import System

from . import metrics
from .truth import parameters_per_trajectory, true_system
from ..data.schema import select_split
from ..devices import thread_policy
from ..errors import BadParameterError, DatasetError, DivergenceError, SolverStallError, UnsupportedError
from ..safety import check_integer, check_real
from ..catalog import get_system
from ..simulate import simulate
from ..numerics import BatchField, integrate_batch

Advance = Callable[[torch.Tensor], torch.Tensor]


# --- Lyapunov exponents ----------------------------------------------------------------------------

def benettin(advance: Advance, state: torch.Tensor, tau: float, segments: int, d0: float = 1e-8,
             seed: int = 0, align: int = 0) -> np.ndarray:
    """Largest Lyapunov exponent of the map ``advance`` (one step of ``tau`` time units), per start state.

    A reference and a perturbed copy, ``d0`` apart, are advanced together (one batch); after every
    step the log stretch of their distance is accumulated and the perturbation rescaled back to
    ``d0`` along its current direction, which aligns it with the fastest-growing direction.

    Arguments:
        advance: maps states ``(2B, ...)`` to the states ``tau`` time units later; the trailing dims
            are the full state of the map (e.g. a delay history), all of it perturbed and measured.
        state: start states ``(B, ...)``, ideally on the attractor.
        tau: time per step, so the exponent comes out per time unit.
        segments: number of renormalisation steps; the averaging time is ``segments * tau``.
        d0: perturbation size (Euclidean norm over all trailing dims).
        seed: seeds the initial perturbation direction.
        align: extra steps run first and not counted, so the random initial direction has turned
            into the fastest-growing one before averaging starts (removes an O(1 / total) bias).

    Returns:
        ``(B,)`` exponent estimates (1 / time unit); NaN where the map produced non-finite values.

    References:
        Benettin, Galgani, Giorgilli, Strelcyn (1980), Meccanica 15, 9-20; Wolf, Swift, Swinney,
        Vastano (1985), Physica D 16, 285-317.
    """
    if not (tau > 0 and segments >= 1 and d0 > 0):
        raise BadParameterError(f"benettin needs tau > 0, segments >= 1 and d0 > 0; got tau={tau}, "
                                f"segments={segments}, d0={d0}")
    n = state.shape[0]
    gen = torch.Generator().manual_seed(seed)
    direction = torch.randn(state.shape, generator=gen, dtype=torch.float64).to(state)

    def norm(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).norm(dim=1).view(-1, *([1] * (x.ndim - 1)))

    ref, pert = state, state + d0 * direction / norm(direction)
    log_stretch = torch.zeros(n, dtype=torch.float64, device=state.device)
    tiny = torch.finfo(state.dtype).tiny  # a collapsed perturbation gives a very negative, not NaN, exponent
    for step in range(align + segments):
        out = advance(torch.cat([ref, pert]))
        ref, pert = out[:n], out[n:]
        dist = norm(pert - ref).clamp_min(tiny)
        if step >= align:
            log_stretch += torch.log(dist.flatten() / d0).double()
        pert = ref + (pert - ref) * (d0 / dist)
    return (log_stretch / (segments * tau)).cpu().numpy()


def flow_lyapunov(field: BatchField, x0: torch.Tensor, tau: float, total: float, d0: float = 1e-8,
                  tol: float = 1e-10, seed: int = 0) -> np.ndarray:
    """Largest Lyapunov exponent of ``dx/dt = field(t, x)`` by :func:`benettin`, per start state.

    Arguments:
        field: batched vector field ``field(t (B,), x (B, D)) -> (B, D)``.
        x0: start states ``(B, D)`` on the attractor (float64 for the default ``d0`` and ``tol``).
        tau: renormalisation interval in time units (about half a Lyapunov time works well).
        total: averaging time; the estimate's spread falls like ``1 / sqrt(total)``.
        d0: perturbation size; keep it far above the integration error ``tol``.
        tol: relative and absolute tolerance of the per-trajectory DOP853 solve.
        seed: seeds the perturbation direction.

    Returns:
        ``(B,)`` exponent estimates in 1 / time unit.
    """
    times = torch.tensor([0.0, tau], dtype=x0.dtype, device=x0.device)

    def advance(x: torch.Tensor) -> torch.Tensor:
        return integrate_batch(field, x, times, rtol=tol, atol=tol)[0][:, -1]

    return benettin(advance, x0, tau, max(1, int(round(total / tau))), d0, seed, align=4)


def system_lyapunov(system: Union[str, System], total: float, tau: float, n_ic: int = 8, d0: float = 1e-8,
                    transient: float = 50.0, tol: float = 1e-10, seed: int = 1) -> np.ndarray:
    """Largest Lyapunov exponent of a catalog system at its default parameters, per initial condition.

    The ``n_ic`` start states are the system's sampled initial conditions run for ``transient`` time
    units onto the attractor; see :func:`flow_lyapunov` for the other arguments.

    Arguments:
        system: a catalog name or :class:`~systems.System` (an ODE).

    Returns:
        ``(n_ic,)`` exponent estimates in 1 / time unit.
    """
    s = get_system(system) if isinstance(system, str) else system
    p = {k: torch.tensor(v, dtype=torch.float64) for k, v in s.defaults.items()}
    start = simulate(s, n=n_ic, times=[0.0, transient], seed=seed, split=None).state.values[:, -1]
    return flow_lyapunov(lambda t, y: s.drift(t, y, p), torch.from_numpy(start), tau, total, d0, tol, seed=0)


# --- a fitted model as a map on histories ----------------------------------------------------------

Run = Callable[[torch.Tensor, int], torch.Tensor]


def _model_runner(model, dt: float, dtype: torch.dtype = torch.float64) -> tuple[Run, int]:
    """``run(history, steps)``: the model's rollout from standardised histories ``(B, C + 1, D)``.

    The learner is copied in ``dtype`` (float64 by default, so a tiny perturbation is not lost to
    rounding) and rolled out through :meth:`~workbench.model.Model.rollout` as a model in its
    standardised coordinates (:meth:`~workbench.model.Model.standardised`, with the model's solver
    choice), so a run is the path ``model.predict`` gives from the same states (bit for bit for a
    model already in ``dtype``). A history holds the ``C`` context samples the learner's rollout needs
    (delays, a reservoir's washout) followed by the current state, so it is the full state of the
    learned map. ``run`` returns float64 ``(B, steps + 1, D)``, starting with the current state; a row
    whose history is not finite (its run left the finite numbers earlier) stays NaN.
    """
    from ..model import Model

    runner = Model.standardised(copy.deepcopy(model.learner).to(dtype), model.meta)
    context = int(runner.learner.capabilities().context)

    def run(history: torch.Tensor, steps: int) -> torch.Tensor:
        x = history.detach().cpu().double().numpy()
        out = np.full((x.shape[0], steps + 1, x.shape[2]), np.nan)
        finite = np.isfinite(x).all(axis=(1, 2))
        if finite.any():
            out[finite] = runner.rollout(x[finite], np.arange(steps + 1) * dt)[0]
        return torch.as_tensor(out, device=history.device)

    return run, context


def _histories(model, x: np.ndarray, context: int) -> torch.Tensor:
    """Standardised float64 histories from physical samples ``x (B, >= C + 1, D)`` (their last C + 1)."""
    if x.ndim != 3 or x.shape[1] < context + 1:
        raise BadParameterError(f"{model.name}: start histories must have shape (B, >= {context + 1}, D) "
                                f"(the learner needs {context} context samples), got {x.shape}")
    return torch.as_tensor(model.scaler.to_z(x[:, -(context + 1):]), dtype=torch.float64, device=model.device)


def _advance_history(run: Run, history: torch.Tensor, steps: int) -> torch.Tensor:
    """The history ``steps`` samples later (same length)."""
    return torch.cat([history, run(history, steps)[:, 1:]], dim=1)[:, -history.shape[1]:]


def model_free_run(model, start: np.ndarray, dt: float, n_steps: int, chunk: int = 2000) -> np.ndarray:
    """A long free run of a fitted deterministic model, in physical units.

    Arguments:
        model: a fitted :class:`~workbench.model.Model`.
        start: physical start histories ``(B, T0, D)`` sampled every ``dt``; the last ``C + 1`` samples
            are used (``C`` = the learner's context; 1 sample for Markov learners).
        dt: sample spacing of the run (the data's).
        n_steps: samples to produce after the start state.
        chunk: samples per rollout call, so memory and solver state stay bounded on long runs.

    Returns:
        ``(B, n_steps + 1, D)`` states, the first being the start state.

    Raises:
        DivergenceError or SolverStallError from the learner's rollout when the model blows up.
    """
    run, context = _model_runner(model, dt)
    history = _histories(model, np.asarray(start, dtype=np.float64), context)
    pieces, done = [history[:, -1:]], 0
    while done < n_steps:
        steps = min(chunk, n_steps - done)
        piece = run(history, steps)
        pieces.append(piece[:, 1:])
        history = torch.cat([history, piece[:, 1:]], dim=1)[:, -(context + 1):]
        done += steps
    z = torch.cat(pieces, dim=1).cpu().numpy()
    return z * model.scaler.std + model.scaler.mean


def model_lyapunov(model, start: np.ndarray, dt: float, tau: float, total: float, transient: float = 0.0,
                   d0: float = 1e-7, seed: int = 0) -> np.ndarray:
    """Largest Lyapunov exponent of a fitted deterministic model, by :func:`benettin` on its own rollout.

    The map is the model's prediction over ``tau`` time units: its vector field integrated by its
    rollout solver for continuous-time learners, its step iterated for discrete maps; learners with
    context (delays, reservoirs) are advanced as maps on histories of ``C + 1`` samples, all of which
    are perturbed and measured. Computed on a float64 copy in standardised coordinates (a diagonal
    rescaling leaves Lyapunov exponents unchanged).

    Arguments:
        model: a fitted :class:`~workbench.model.Model`.
        start: physical start histories ``(B, T0, D)`` sampled every ``dt`` (e.g. test trajectories).
        dt: sample spacing; ``tau`` and ``transient`` are rounded to whole samples.
        tau: renormalisation interval (about half a Lyapunov time).
        total: averaging time.
        transient: time run first from ``start`` to settle onto the model's own attractor.
        d0: perturbation size in standardised units (above the rollout solver's error).
        seed: seeds the perturbation direction.

    Returns:
        ``(B,)`` exponent estimates in 1 / time unit; NaN where the model's run was not finite.
    """
    run, context = _model_runner(model, dt)
    history = _histories(model, np.asarray(start, dtype=np.float64), context)
    steps = max(1, int(round(tau / dt)))
    if transient > 0:
        history = _advance_history(run, history, max(1, int(round(transient / dt))))
    return benettin(lambda h: _advance_history(run, h, steps), history, steps * dt,
                    max(1, int(round(total / (steps * dt)))), d0, seed, align=4)


# --- invariant measure, spectrum, dimension ---------------------------------------------------------

def _points(x: np.ndarray, role: str) -> np.ndarray:
    """Samples ``(..., D)`` flattened to ``(N, D)`` float64."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2 or x.shape[-1] < 1 or x.size == 0:
        raise BadParameterError(f"{role}: expected samples of shape (..., n_variables), got {x.shape}")
    return x.reshape(-1, x.shape[-1])


def _as_samples(x: np.ndarray) -> xr.DataArray:
    """``(N, D)`` samples as a ``state(trajectory, time, variable)`` with one time, for metrics.wasserstein1."""
    return xr.DataArray(x[:, None, :], dims=("trajectory", "time", "variable"), coords={"time": [0.0]})


def measure_distance(learned: np.ndarray, true: np.ndarray, bins: int = 64, alpha: float = 0.5,
                     variables: Optional[list[str]] = None) -> xr.Dataset:
    """Distances between the per-variable state distributions of two long runs (transients already dropped).

    * ``w1``: exact Wasserstein-1 distance of the two empirical marginals
      (:func:`workbench.evaluation.metrics.wasserstein1`), in the state's units.
    * ``kl``: ``KL(true || learned) = sum_i p_i log(p_i / q_i)`` of histograms on ``bins`` equal bins
      spanning both samples, each count raised by ``alpha`` (additive smoothing, so a bin the model
      never visits costs a finite amount).
    * ``hellinger``: ``H = sqrt(1 - sum_i sqrt(p_i q_i))`` of the unsmoothed histograms, in [0, 1]
      (1: disjoint supports).

    A non-finite learned sample (a diverged run) makes every distance of its variable infinite.

    Arguments:
        learned, true: samples ``(..., D)``, e.g. ``(trajectory, time, D)`` runs; pooled over all but the last axis.
        bins, alpha: histogram resolution and smoothing count.
        variables: names for the ``variable`` coordinate.

    Returns:
        Dataset with ``w1``, ``kl``, ``hellinger`` over ``variable``.

    References:
        Villani (2009), Optimal Transport; Le Cam & Yang (2000), Asymptotics in Statistics (Hellinger).
    """
    a, b = _points(learned, "learned"), _points(true, "true")
    if a.shape[1] != b.shape[1]:
        raise BadParameterError(f"measure_distance: learned has {a.shape[1]} variables, true {b.shape[1]}")
    if not np.isfinite(b).all():
        raise BadParameterError("measure_distance: the true samples must be finite")
    names = variables or [f"x{i}" for i in range(a.shape[1])]
    w1, kl, hell = (np.full(a.shape[1], np.inf) for _ in range(3))
    for v in range(a.shape[1]):
        if not np.isfinite(a[:, v]).all():
            continue
        w1[v] = float(metrics.wasserstein1(_as_samples(a[:, v:v + 1]), _as_samples(b[:, v:v + 1])).squeeze())
        lo, hi = min(a[:, v].min(), b[:, v].min()), max(a[:, v].max(), b[:, v].max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
        q_counts, p_counts = np.histogram(a[:, v], edges)[0], np.histogram(b[:, v], edges)[0]
        p, q = (p_counts + alpha) / (p_counts.sum() + alpha * bins), (q_counts + alpha) / (q_counts.sum() + alpha * bins)
        kl[v] = float(np.sum(p * np.log(p / q)))
        overlap = np.sum(np.sqrt(p_counts / p_counts.sum() * q_counts / q_counts.sum()))
        hell[v] = float(np.sqrt(max(0.0, 1.0 - overlap)))
    coords = {"variable": names}
    return xr.Dataset({
        "w1": xr.DataArray(w1, dims="variable", coords=coords,
                           attrs={"long_name": "Wasserstein-1 distance of the invariant marginals"}),
        "kl": xr.DataArray(kl, dims="variable", coords=coords,
                           attrs={"long_name": "histogram KL(true || learned) of the invariant marginals",
                                  "bins": bins, "alpha": alpha}),
        "hellinger": xr.DataArray(hell, dims="variable", coords=coords,
                                  attrs={"long_name": "histogram Hellinger distance of the invariant marginals",
                                         "bins": bins})})


def power_spectrum(x: np.ndarray, dt: float, nperseg: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Welch power spectral density of runs ``x (B, T, D)`` along time, averaged over runs.

    Returns:
        ``(frequencies (F,), psd (F, D))`` with frequencies in cycles per time unit.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise BadParameterError(f"power_spectrum: expected runs of shape (B, T, D), got {x.shape}")
    freq, psd = welch(x, fs=1.0 / dt, nperseg=min(nperseg, x.shape[1]), axis=1)
    return freq, psd.mean(axis=0)


def spectrum_error(learned: np.ndarray, true: np.ndarray, dt: float, nperseg: int = 512) -> np.ndarray:
    """Relative L1 error of each variable's power spectrum: ``sum_f |P_learned - P_true| / sum_f P_true``.

    Both runs ``(B, T, D)`` (run counts may differ) share ``dt`` and the Welch segment length. 0 for
    the same spectrum, 2 for equal power at disjoint frequencies, 1 for a model that settles to a
    fixed point; amplitude errors count (four times the power is an error of 3). Non-finite runs
    give ``inf``.

    Returns:
        ``(D,)`` errors, dimensionless.

    References:
        Welch (1967), IEEE Trans. Audio Electroacoust. 15, 70-73.
    """
    learned = np.asarray(learned, dtype=np.float64)
    if not np.isfinite(learned).all():
        return np.full(np.shape(learned)[-1], np.inf)
    _, p_learned = power_spectrum(learned, dt, nperseg)
    _, p_true = power_spectrum(true, dt, nperseg)
    return np.abs(p_learned - p_true).sum(0) / p_true.sum(0)


def correlation_dimension(points: np.ndarray, max_points: int = 2000, pair_range: tuple[float, float] = (1e-3, 3e-2),
                          seed: int = 0) -> float:
    """Grassberger-Procaccia correlation dimension of a point cloud.

    The correlation sum ``C(r)`` (share of point pairs closer than ``r``) scales like ``r^D2`` at small
    ``r``; ``D2`` is the least-squares slope of ``log C`` against ``log r`` for ``r`` between the
    ``pair_range`` quantiles of the pair distances. At most ``max_points`` points (drawn at random, which
    also breaks the time correlation of consecutive samples) keep it cheap: ``max_points^2 / 2`` distances.

    Arguments:
        points: ``(..., D)`` samples, e.g. a long run after its transient.
        max_points, pair_range, seed: subsample size, scaling range and its random draw.

    Returns:
        The dimension estimate (NaN for non-finite points).

    References:
        Grassberger & Procaccia (1983), Physica D 9, 189-208 (Lorenz-63: D2 = 2.05 +- 0.01).
    """
    x = _points(points, "correlation_dimension")
    if not np.isfinite(x).all():
        return float("nan")
    if len(x) > max_points:
        x = x[np.random.default_rng(seed).choice(len(x), max_points, replace=False)]
    dist = np.sort(pdist(x))
    dist = dist[dist > 0]
    r = np.quantile(dist, np.geomspace(*pair_range, 12))
    share = np.searchsorted(dist, r, side="right") / len(dist)
    return float(np.polyfit(np.log(r), np.log(share), 1)[0])


# --- the long run: one recipe for evaluate and the app ------------------------------------------------

@dataclass(frozen=True)
class LongRunRecipe:
    """How :func:`long_run` runs the model and the true system; the one set of defaults that
    :func:`~workbench.evaluation.evaluate.evaluate` and the app's Compare page share.

    Lengths are in Lyapunov times (``1 / lyapunov``, 1 time unit when the exponent is not known).
    The cost grows with the run length, hardly with the number of runs (they advance as one batch),
    so the runs are many and moderate.

    Attributes:
        n_runs: free runs, from the first ``n_runs`` held-out trajectories (fewer if there are fewer).
        run_lyapunov_times: length of each run after the transient.
        transient_lyapunov_times: length run first and dropped (at most a fifth of the run).
        max_steps: bound on the samples of a run at the data's spacing (the bound on the cost).
        lyapunov_starts: start states of the Lyapunov estimates (the first runs' starts).
        lyapunov_averaging: averaging time of each Lyapunov estimate.
        bins: histogram bins per variable of the plotted invariant densities.
    """
    n_runs: int = 32
    run_lyapunov_times: float = 20.0
    transient_lyapunov_times: float = 5.0
    max_steps: int = 5000
    lyapunov_starts: int = 16
    lyapunov_averaging: float = 20.0
    bins: int = 48

    def __post_init__(self) -> None:
        checks = {"n_runs": (1, 256), "max_steps": (100, 100_000), "lyapunov_starts": (1, 256), "bins": (4, 512)}
        for name, (lo, hi) in checks.items():
            check_integer(getattr(self, name), f"long run: {name}", lo, hi)
        for name in ("run_lyapunov_times", "transient_lyapunov_times", "lyapunov_averaging"):
            check_real(getattr(self, name), f"long run: {name} (Lyapunov times)",
                       0.0 if name == "transient_lyapunov_times" else 1e-3, 1e4)


def _recipe(options: dict[str, Any]) -> LongRunRecipe:
    unknown = sorted(set(options) - {f.name for f in fields(LongRunRecipe)})
    if unknown:
        raise BadParameterError(f"long run: unknown option(s) {unknown}",
                                fix=f"use options among {[f.name for f in fields(LongRunRecipe)]}")
    return LongRunRecipe(**options)


def long_run_refusal(model, ds: xr.Dataset) -> Optional[str]:
    """Why :func:`long_run` does not apply to ``model`` on ``ds``, or None when it does."""
    system = true_system(ds)
    if system is None or system.kind != "ode" or not system.facts.get("chaotic"):
        return ("the long-run comparison needs data from a chaotic catalog ODE (facts 'chaotic'); "
                "generate one on the Systems page or with workbench.simulate")
    if "hidden_state" in ds:
        return "the data observe only part of the system's state (hidden_state), and the long run compares all of it"
    if model.stochastic:
        return f"{model.name} is stochastic: compare its ensemble of paths instead (the Uncertainty page)"
    return None


@thread_policy
def long_run(model, ds: xr.Dataset, *, split: str = "test", seed: int = 0, threads: Optional[int] = None,
             **recipe: Any) -> xr.Dataset:
    """Learned vs true climate of a chaotic system: invariant marginals, power spectra, Lyapunov exponents.

    From the first ``n_runs`` trajectories of the ``split`` the model (:func:`model_free_run`) and the
    true system (DOP853 at 1e-7: a run's statistics do not need the generator's accuracy) each run
    freely for ``transient + run`` Lyapunov times at the data's spacing, at most ``max_steps``
    samples; the transient is dropped and the rest compared: histogram densities on bins spanning
    both runs, Welch spectra (:func:`power_spectrum`), :func:`measure_distance`,
    :func:`spectrum_error` and :func:`correlation_dimension`. The model's largest Lyapunov exponent is
    the mean of :func:`model_lyapunov` from the first ``lyapunov_starts`` starts (``tau`` half a
    Lyapunov time, after the transient); the true one is the catalog's published value, else the
    same Benettin estimate on the true flow (:func:`flow_lyapunov`) from the true runs' first states.
    :func:`climate_scores` condenses the result into the scores that ``evaluate`` reports.

    A model whose run leaves the finite numbers (or whose solver raises) has no attractor to measure:
    its plotted statistics are NaN, its exponent and correlation dimension NaN, every distance
    ``inf``, and the ``diverged`` attribute gives the reason (empty otherwise).

    Arguments:
        model: a fitted deterministic :class:`workbench.Model` with the dataset's variables.
        ds: dataset from a chaotic catalog ODE; its ``split`` trajectories start the runs (all of
            them when the split is empty or absent).
        split: which trajectories start the runs.
        seed: seeds the Lyapunov perturbations and the correlation-dimension subsample.
        threads: torch CPU threads (see :func:`workbench.evaluate`).
        recipe: fields of :class:`LongRunRecipe` (``n_runs``, ``run_lyapunov_times``, ...).

    Returns:
        Dataset with ``density_true`` / ``density_learned`` ``(variable, bin)`` (probability density, with
        ``bin_center(variable, bin)``), ``psd_true`` / ``psd_learned`` ``(frequency, variable)`` (frequency
        in cycles per time unit), ``w1`` (state units), ``kl``, ``hellinger``, ``spectrum_error`` and
        ``true_std`` over ``variable``, scalars ``lyapunov_true``, ``lyapunov_learned``,
        ``correlation_dimension_true`` and ``_learned``; attrs ``dt``, ``n_runs``, ``steps``,
        ``transient`` (samples dropped), ``lyapunov_time``, ``lyapunov_starts``, ``seed`` and ``diverged``.

    Raises:
        UnsupportedError: not a chaotic catalog ODE, partially observed, or a stochastic model
            (:func:`long_run_refusal`).
        DatasetError: the model's variables are not the dataset's.
    """
    options = _recipe(recipe)
    refusal = long_run_refusal(model, ds)
    if refusal:
        raise UnsupportedError(refusal)
    system = true_system(ds)
    variables = [str(v) for v in ds["variable"].values]
    if variables != list(model.variables):
        raise DatasetError(f"the model predicts {list(model.variables)} but the dataset holds {variables}",
                           fix="pick a dataset with the model's variables")
    test = select_split(ds, split)
    test = test if test.sizes["trajectory"] else ds
    test = test.isel(trajectory=slice(0, options.n_runs))
    return _run_and_compare(model, test, system, parameters_per_trajectory(test, system), system.lyapunov,
                            options, seed)


def _run_and_compare(model, test: xr.Dataset, system: System, params: dict[str, np.ndarray],
                     lyapunov: Optional[float], recipe: LongRunRecipe, seed: int) -> xr.Dataset:
    """:func:`long_run` on the start trajectories ``test`` with the true ``system`` at ``params``."""
    dt = float(test["time"].values[1] - test["time"].values[0])
    runs = min(recipe.n_runs, test.sizes["trajectory"])
    horizon = 1.0 / lyapunov if lyapunov else 1.0
    steps = min(recipe.max_steps, int(round((recipe.transient_lyapunov_times + recipe.run_lyapunov_times)
                                            * horizon / dt)))
    transient = min(int(round(recipe.transient_lyapunov_times * horizon / dt)), steps // 5)
    context = int(model.learner.capabilities().context)
    states = test["state"].values[:runs]
    p = {k: np.asarray(v)[:runs] for k, v in params.items()}
    true_run = simulate(system, n=runs, times=np.arange(steps + 1) * dt, x0=states[:, 0], params=p, split=None,
                        rtol=1e-7, atol=1e-7, progress=False)["state"].values[:, transient:]
    tau, averaging = max(dt, 0.5 * horizon), recipe.lyapunov_averaging * horizon
    starts = min(recipe.lyapunov_starts, runs)
    if lyapunov:
        lyapunov_true = float(lyapunov)
    else:  # benettin advances reference and perturbed copies in one batch of 2 * starts rows
        p_pairs = {k: torch.as_tensor(np.tile(v[:starts], 2), dtype=torch.float64) for k, v in p.items()}
        lyapunov_true = float(np.mean(flow_lyapunov(lambda t, y: system.drift(t, y, p_pairs),
                                                    torch.as_tensor(true_run[:starts, 0]), tau, averaging)))
    try:
        learned = model_free_run(model, states[:, :context + 1], dt, steps - context)[:, max(0, transient - context):]
        diverged = "" if np.isfinite(learned).all() else "the model's free run left the finite numbers"
        if not diverged:
            lyapunov_learned = float(np.mean(model_lyapunov(model, states[:starts, :context + 1], dt, tau, averaging,
                                                            transient=transient * dt, seed=seed)))
    except (DivergenceError, SolverStallError) as exc:
        diverged = str(exc)
    if diverged:  # no attractor to measure: nothing to draw, no exponent, every distance infinite
        learned, lyapunov_learned = np.full_like(true_run, np.nan), float("nan")
    variables = [str(v) for v in test["variable"].values]
    centers, density_true, density_learned = _marginals(true_run, learned, recipe.bins)
    frequency, psd_true = power_spectrum(true_run, dt)
    psd_learned = np.full_like(psd_true, np.nan) if diverged else power_spectrum(learned, dt)[1]
    measure = measure_distance(learned, true_run, variables=variables)
    out = xr.Dataset(
        {"density_true": (("variable", "bin"), density_true, {"long_name": "invariant density of the true system"}),
         "density_learned": (("variable", "bin"), density_learned, {"long_name": "invariant density of the model"}),
         "psd_true": (("frequency", "variable"), psd_true, {"long_name": "Welch power spectral density, true"}),
         "psd_learned": (("frequency", "variable"), psd_learned,
                         {"long_name": "Welch power spectral density, model"}),
         **measure.data_vars,
         "spectrum_error": ("variable", spectrum_error(learned, true_run, dt),
                            {"long_name": "relative L1 error of the power spectrum", "units": "1"}),
         "true_std": ("variable", true_run.reshape(-1, true_run.shape[-1]).std(0),
                      {"long_name": "standard deviation of the true long runs"}),
         "lyapunov_true": ((), lyapunov_true, {
             "long_name": "largest Lyapunov exponent of the true system", "units": "1 / time",
             "source": "catalog (published)" if lyapunov else "estimated (Benettin)"}),
         "lyapunov_learned": ((), lyapunov_learned, {"long_name": "largest Lyapunov exponent of the model",
                                                     "units": "1 / time"}),
         "correlation_dimension_true": ((), correlation_dimension(true_run, seed=seed),
                                        {"long_name": "correlation dimension of the true attractor"}),
         "correlation_dimension_learned": ((), correlation_dimension(learned, seed=seed),
                                           {"long_name": "correlation dimension of the model's attractor"})},
        coords={"variable": variables, "bin_center": (("variable", "bin"), centers),
                "frequency": ("frequency", frequency, {"units": "1 / time"})},
        attrs={"dt": dt, "n_runs": runs, "steps": steps, "transient": transient, "lyapunov_time": horizon,
               "lyapunov_starts": starts, "seed": seed, "diverged": diverged})
    return out


def _marginals(true_run: np.ndarray, learned: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-variable histogram densities of the runs ``(trajectory, time, variable)`` on shared bins
    spanning the finite samples of both: bin centres, true and learned densities (NaN for a learned
    run that is not finite)."""
    n_vars = true_run.shape[-1]
    flat_true, flat_learned = true_run.reshape(-1, n_vars), learned.reshape(-1, n_vars)
    finite = np.isfinite(flat_learned).all()
    centers, density_true, density_learned = (np.full((n_vars, bins), np.nan) for _ in range(3))
    for v in range(n_vars):
        both = np.r_[flat_true[:, v], flat_learned[:, v]] if finite else flat_true[:, v]
        edges = np.linspace(both.min(), max(both.max(), both.min() + 1e-12), bins + 1)
        centers[v] = 0.5 * (edges[1:] + edges[:-1])
        density_true[v] = np.histogram(flat_true[:, v], edges, density=True)[0]
        if finite:
            density_learned[v] = np.histogram(flat_learned[:, v], edges, density=True)[0]
    return centers, density_true, density_learned


def climate_scores(run: xr.Dataset) -> xr.Dataset:
    """The scores :func:`~workbench.evaluation.evaluate.evaluate` reports from a :func:`long_run` result.

    Returns:
        Scalars ``lyapunov_learned``, ``lyapunov_true``, ``attractor_w1`` (mean over variables of W1
        divided by the true standard deviation), ``attractor_kl``, ``attractor_hellinger``,
        ``spectrum_error`` (means over variables), ``correlation_dimension_learned`` and ``_true``,
        plus ``attractor_w1_variable(variable)`` in state units; the run's ``diverged`` reason is an
        attribute of ``lyapunov_learned`` and ``attractor_w1``.
    """
    diverged = run.attrs["diverged"]
    out = xr.Dataset()
    out["lyapunov_learned"] = run["lyapunov_learned"].assign_attrs(diverged=diverged)
    out["lyapunov_true"] = run["lyapunov_true"]
    out["attractor_w1"] = xr.DataArray(float((run["w1"] / run["true_std"]).mean()), attrs={
        "long_name": "W1 between invariant marginals / true std, mean over variables", "units": "1",
        "diverged": diverged})
    out["attractor_w1_variable"] = run["w1"]
    out["attractor_kl"] = run["kl"].mean().assign_attrs(run["kl"].attrs)
    out["attractor_hellinger"] = run["hellinger"].mean().assign_attrs(run["hellinger"].attrs)
    out["spectrum_error"] = run["spectrum_error"].mean().assign_attrs(
        long_name="relative L1 error of the power spectrum, mean over variables", units="1")
    out["correlation_dimension_learned"] = run["correlation_dimension_learned"]
    out["correlation_dimension_true"] = run["correlation_dimension_true"]
    return out


def attractor_scores(model, test: xr.Dataset, system: System, params: dict[str, np.ndarray],
                     lyapunov: Optional[float] = None, seed: int = 0, **recipe: Any) -> xr.Dataset:
    """:func:`climate_scores` of the :func:`long_run` of ``model`` from the trajectories ``test`` against
    ``system`` at each trajectory's ``params``, with the published exponent ``lyapunov`` if there is one.

    For data without the catalog's attributes (the system and parameters passed by hand); ``recipe``
    takes the fields of :class:`LongRunRecipe`.
    """
    return climate_scores(_run_and_compare(model, test, system, params, lyapunov, _recipe(recipe), seed))

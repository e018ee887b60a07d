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
"""
from __future__ import annotations

import copy
from typing import Callable, Optional, Union

import numpy as np
import torch
import xarray as xr
from scipy.signal import welch
from scipy.spatial.distance import pdist

from systems import System

from . import metrics
from ..errors import BadParameterError, DivergenceError, SolverStallError
from ..simulate import get_system, simulate
from ..numerics.solvers import BatchField, integrate_batch

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
    rounding). A history holds the ``C`` context samples the learner's rollout needs (delays, a
    reservoir's washout) followed by the current state, so it is the full state of the learned map.
    ``run`` returns ``(B, steps + 1, D)``, starting with the current state.
    """
    learner = copy.deepcopy(model.learner).to(dtype)
    learner.eval()
    context = int(learner.capabilities().context)

    def run(history: torch.Tensor, steps: int) -> torch.Tensor:
        t = torch.arange(steps + 1, dtype=dtype, device=history.device) * dt
        with torch.no_grad():
            kwargs = {"context": history[:, :-1]} if context else {}
            return learner.rollout(history[:, -1], t, 1, **kwargs)[0]

    return run, context


def _histories(model, x: np.ndarray, context: int) -> torch.Tensor:
    """Standardised float64 histories from physical samples ``x (B, >= C + 1, D)`` (their last C + 1)."""
    if x.ndim != 3 or x.shape[1] < context + 1:
        raise BadParameterError(f"{model.name}: start histories must have shape (B, >= {context + 1}, D) "
                                f"(the learner needs {context} context samples), got {x.shape}")
    z = (x[:, -(context + 1):] - model.scaler.mean) / model.scaler.std
    return torch.as_tensor(z, dtype=torch.float64, device=model.device)


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


# --- all of it for evaluate ---------------------------------------------------------------------------

def attractor_scores(model, test: xr.Dataset, system: System, params: dict[str, np.ndarray],
                     lyapunov: Optional[float] = None, n_runs: int = 32, run_lyapunov_times: float = 20.0,
                     transient_lyapunov_times: float = 5.0, max_steps: int = 20_000,
                     lyapunov_averaging: float = 40.0, seed: int = 0) -> xr.Dataset:
    """Climate scores of a deterministic model of a chaotic system, against the true system.

    From the first ``n_runs`` test trajectories, the model and the true system (DOP853 at 1e-7) each
    run freely for ``transient_lyapunov_times + run_lyapunov_times`` Lyapunov times (at most
    ``max_steps`` samples at the data's spacing); the transient is dropped and the rest compared.
    Many moderate runs rather than a few long ones: the cost grows with the run length, not the batch. The model's largest Lyapunov
    exponent comes from :func:`model_lyapunov` on up to 16 of those starts (``tau`` half a Lyapunov time,
    ``lyapunov_averaging`` Lyapunov times); the true one is ``lyapunov`` (the catalog's published
    value) or, when there is none, :func:`flow_lyapunov` on the true system with the same settings.
    The Lyapunov time is ``1 / lyapunov`` (1 time unit when no exponent is known).

    Arguments:
        model: a fitted deterministic :class:`~workbench.model.Model`.
        test: held-out trajectories (their first ``C + 1`` samples start the model's runs).
        system, params: the true system and each test trajectory's parameter values.
        lyapunov: the true largest exponent, if published.

    Returns:
        Scalars ``lyapunov_learned``, ``lyapunov_true``, ``attractor_w1`` (mean over variables of W1
        divided by the true standard deviation), ``attractor_kl``, ``attractor_hellinger``,
        ``spectrum_error`` (means over variables), ``correlation_dimension_learned`` and
        ``_true``, plus ``attractor_w1_variable(variable)`` in state units. A model whose runs
        diverge scores ``inf`` (and NaN exponent), with the reason in the ``diverged`` attribute.
    """
    dt = float(test["time"].values[1] - test["time"].values[0])
    context = int(model.learner.capabilities().context)
    runs = min(n_runs, test.sizes["trajectory"])
    horizon = 1.0 / lyapunov if lyapunov else 1.0
    transient = int(round(transient_lyapunov_times * horizon / dt))
    n_steps = min(max_steps, transient + int(round(run_lyapunov_times * horizon / dt)))
    transient = min(transient, n_steps // 5)
    states = test["state"].values[:runs]
    tau = max(dt, 0.5 * horizon)
    x0 = states[:, 0]
    p = {k: np.asarray(v)[:runs] for k, v in params.items()}
    # statistics of a chaotic run do not need the generator's 1e-10 accuracy: 1e-7 takes ~3x fewer steps
    true_run = simulate(system, n=runs, times=np.arange(n_steps + 1) * dt, x0=x0, params=p, split=None,
                        rtol=1e-7, atol=1e-7, progress=False)["state"].values[:, transient:]
    if lyapunov:
        true_exponent = float(lyapunov)
    else:
        # benettin advances reference and perturbed copies in one batch of 2B rows
        p_tensor = {k: torch.as_tensor(np.tile(v[:16], 2), dtype=torch.float64) for k, v in p.items()}
        start = torch.as_tensor(true_run[:16, 0])
        true_exponent = float(np.mean(flow_lyapunov(lambda t, y: system.drift(t, y, p_tensor), start, tau,
                                                    lyapunov_averaging * horizon)))
    names = [str(v) for v in test["variable"].values]
    scale = true_run.reshape(-1, true_run.shape[-1]).std(0)
    out = xr.Dataset()
    try:
        learned = model_free_run(model, states[:, : context + 1], dt, n_steps - context)[:, max(0, transient - context):]
        exponent = float(np.mean(model_lyapunov(model, states[:16, : context + 1], dt, tau,
                                                lyapunov_averaging * horizon, transient=transient * dt, seed=seed)))
        diverged = ""
    except (DivergenceError, SolverStallError) as exc:
        learned, exponent, diverged = np.full_like(true_run, np.inf), float("nan"), str(exc)
    measure = measure_distance(learned, true_run, variables=names)
    out["lyapunov_learned"] = xr.DataArray(exponent, attrs={"long_name": "largest Lyapunov exponent of the model",
                                                            "units": "1 / time", "diverged": diverged})
    out["lyapunov_true"] = xr.DataArray(true_exponent, attrs={
        "long_name": "largest Lyapunov exponent of the true system", "units": "1 / time",
        "source": "catalog (published)" if lyapunov else "estimated (Benettin)"})
    out["attractor_w1"] = xr.DataArray(float(np.mean(measure["w1"].values / scale)), attrs={
        "long_name": "W1 between invariant marginals / true std, mean over variables", "units": "1",
        "diverged": diverged})
    out["attractor_w1_variable"] = measure["w1"]
    out["attractor_kl"] = measure["kl"].mean().assign_attrs(measure["kl"].attrs)
    out["attractor_hellinger"] = measure["hellinger"].mean().assign_attrs(measure["hellinger"].attrs)
    out["spectrum_error"] = xr.DataArray(float(np.mean(spectrum_error(learned, true_run, dt))), attrs={
        "long_name": "relative L1 error of the power spectrum, mean over variables", "units": "1"})
    out["correlation_dimension_learned"] = xr.DataArray(correlation_dimension(learned, seed=seed),
                                                        attrs={"long_name": "correlation dimension of the model's attractor"})
    out["correlation_dimension_true"] = xr.DataArray(correlation_dimension(true_run, seed=seed),
                                                     attrs={"long_name": "correlation dimension of the true attractor"})
    return out

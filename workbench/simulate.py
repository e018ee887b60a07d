"""Ground-truth trajectories from catalog (or user) systems, in one batched float64 solve."""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import torch
import xarray as xr

from systems import System

from .catalog import SystemLike, get_system
from .data.schema import SPLITS, make_dataset
from .devices import DeviceLike, resolve_device, thread_policy
from .errors import (BadParameterError, DivergenceError, ResourceLimitError, SolverStallError, UnknownNameError,
                     UnsupportedError)
from .progress import progress_bar
from .safety import as_float_array, check_allocation, check_integer, check_real
from .numerics import Solver, integrate_batch, solver, solvers
from .numerics.sde import BrownianIncrements, TorchsdeProblem

# what an instrument records: variable names, a read-out matrix (k, dim), or {name: {variable: coefficient}}
Observe = Union[Sequence[str], np.ndarray, Mapping[str, Mapping[str, float]]]
DEFAULT_SPLIT = (0.8, 0.1, 0.1)
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed's range


@dataclass(frozen=True)
class Runtime:
    """How a :func:`simulate` call runs, apart from what it computes.

    Attributes:
        device: where the solve runs (``device=``: ``"cpu"``, ``"cuda"`` or ``None`` for automatic).
        max_steps: step budget per trajectory before a :class:`SolverStallError`.
        max_seconds: wall-clock budget of an ODE solve before a :class:`SolverStallError`
            (``None``: none). Independently of it, ``dop853``/``dopri5`` refuse a stiff problem
            (step sizes held by stability, see :func:`workbench.numerics.integrate_batch`) after
            1,000 steps with a pointer to ``method="radau"``, and stop at once on a non-finite
            initial state or derivative.
        progress: show a progress bar (default: only on a terminal).
        compile: ODEs with ``dop853``/``dopri5``: run each solver step through ``torch.compile``
            (``True``), never (``False``), or decide before solving from the problem's size
            (``None``: where this process compiled the step already, or where trajectories x
            variables x expected steps reach ``workbench.numerics.adaptive.COMPILE_MIN_WORK``; a
            compile started that way is logged as a warning). ``WORKBENCH_COMPILE=0`` in the
            environment turns compiling off for good. A compile is paid once per process and
            system; benchmarks/bench_generate.py measures when it pays.

    The thread count (``threads=``) is scoped around the whole call by
    :func:`workbench.devices.thread_policy`: ``WORKBENCH_THREADS``, else 1 on a small CPU, and the
    caller's count is restored afterwards (see :func:`workbench.devices.torch_threads`).
    """

    device: torch.device
    max_steps: int
    max_seconds: Optional[float]
    progress: Optional[bool]
    compile: Optional[bool]


@dataclass(frozen=True)
class Recording:
    """What the instrument records of the solution.

    Attributes:
        obs_noise: standard deviation of Gaussian observation noise added to ``state``.
        obs_noise_kind: ``"absolute"`` or ``"relative"`` (a multiple of each variable's std).
        missing: fraction of samples (after the first) dropped at random per trajectory;
            recorded in ``mask`` and set to NaN in ``state``: irregular sampling.
        derivative: also store the true drift at the (noise-free) samples as ``derivative``.
        observe: what is measured (default: every variable). Variable names (``["x"]``) keep those
            in ``state``; a read-out matrix ``(k, dim)`` or ``{"name": {"x": 1, "y": 1}}`` records
            linear combinations (sensors that mix variables). The system variables not recorded
            as themselves go, noise-free and at every sample, to ``hidden_state(trajectory, time,
            hidden_variable)``: for scoring only, learners never see it. Noise and ``missing``
            apply to the observations; ``derivative`` is read out the same way.
        split: fractions for train/val/test by trajectory, or ``None`` for no split. Validation
            and test each get the nearest whole number of trajectories (halves round up), at least
            one each where their fraction is positive and ``n >= 3``; training gets the rest (at
            least one where its fraction is positive). The default (0.8, 0.1, 0.1) gives
            n = 10: 8/1/1, 16: 12/2/2, 32: 26/3/3, 100: 80/10/10. The attributes record the
            counts (``split_counts``), the fractions realised (``split``) and those asked for
            (``split_requested``).
    """

    obs_noise: float
    obs_noise_kind: str
    missing: float
    derivative: bool
    observe: Optional[Observe]
    split: Optional[Sequence[float]]


@thread_policy
def simulate(system: SystemLike, n: int = 16, t_end: Optional[float] = None, dt: Optional[float] = None, *,
             times: Optional[Sequence[float]] = None, seed: int = 0,
             params: Optional[Mapping[str, Any]] = None,
             sample_params: Union[Sequence[str], Mapping[str, Sequence[float]], None] = None,
             x0: Optional[Any] = None, obs_noise: float = 0.0, obs_noise_kind: str = "absolute",
             missing: float = 0.0, derivative: bool = False, observe: Optional[Observe] = None,
             split: Optional[Sequence[float]] = DEFAULT_SPLIT,
             method: Optional[str] = None, rtol: float = 1e-10, atol: float = 1e-10,
             sde_dt: Optional[float] = None, scheme: Optional[str] = None, brownian: Any = None,
             max_steps: int = 200_000, max_seconds: Optional[float] = None, device: DeviceLike = None,
             options: Optional[Mapping[str, int]] = None,
             progress: Optional[bool] = None, threads: Optional[int] = None,
             compile: Optional[bool] = None) -> xr.Dataset:
    """Integrate ``n`` trajectories of a system and return them as a labelled dataset.

    Arguments:
        system: catalog name (see :func:`workbench.systems`) or a :class:`System`.
        n: number of trajectories.
        t_end, dt: time span ``[0, t_end]`` and sampling step (defaults: the system's).
        times: explicit increasing sample times (overrides ``t_end``/``dt``).
        seed: seeds initial conditions, sampled parameters, noise, masks and splits.
        params: fixed values ``{name: value}`` or per-trajectory arrays of length ``n``.
        sample_params: parameters drawn uniformly per trajectory: names (from the declared range)
            or ``{name: (low, high)}``.
        x0: initial states, shape ``(n, dim)`` or ``(dim,)``; default: the system's sampler.
        obs_noise, obs_noise_kind, missing, derivative, observe, split: what is recorded of the
            solution: observation noise (absolute or relative), a fraction of missing samples, the
            true derivative, a read-out of some variables or combinations (the rest goes to
            ``hidden_state``), and train/val/test fractions by trajectory; see :class:`Recording`.
        method: ODEs: a name of :func:`workbench.numerics.solvers` (``kind="ode"``): ``"dop853"``
            (default; per-trajectory step control), ``"dopri5"``, a torchdiffeq method (e.g.
            ``"dopri8"``, ``"rk4"``; fixed steps of a tenth of the sampling step) or
            ``"radau"``/``"bdf"``/``"lsoda"`` (scipy, per trajectory; ``radau`` is the default for
            stiff systems).
        rtol, atol: ODE tolerances (defaults serve as truth).
        sde_dt: SDE integration step (default ``dt / 10``); ``scheme``: ``euler``, ``milstein``
            or ``srk`` (torchsde's names; default: the one correct for the noise, see :func:`default_scheme`).
        brownian: a torchsde Brownian motion of size ``(n, noise_dim)`` to drive an SDE (default:
            :class:`workbench.numerics.sde.BrownianIncrements` seeded by ``seed``); pass a
            ``torchsde.BrownianTree`` to refine ``sde_dt`` on one fixed path.
        max_steps, max_seconds, device, progress, threads, compile: how the call runs: the step
            budget per trajectory, a wall-clock budget, ``"cpu"``/``"cuda"``/``None``
            (automatic), a progress bar (default: on a terminal), torch CPU threads, and whether
            the solver step is compiled (``None``: decided from the problem's size); see
            :class:`Runtime`.
        options: structural options, e.g. ``{"dim": 10}`` for ``lorenz96``.

    Returns:
        ``xarray.Dataset`` in the workbench schema, float64.

    Raises:
        WorkbenchError: unknown names, bad parameters, divergence or solver stalls (naming the
        system, its parameters and the trajectory index).
    """
    if options is not None and not isinstance(options, Mapping):
        raise BadParameterError(f"options must be a mapping such as {{'dim': 10}}, got {options!r}")
    sys_ = get_system(system, **dict(options or {}))
    n = check_integer(n, "n (the number of trajectories)", 1)
    seed = check_integer(seed, "seed", 0, MAX_SEED)
    integrator = _integrator(sys_, method, scheme)
    run = _runtime(device, max_steps, max_seconds, progress, compile)
    recording = _recording(obs_noise, obs_noise_kind, missing, derivative, observe, split)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    t = _sample_times(sys_, t_end, dt, times)
    check_allocation(_memory_estimate(n, len(t), sys_.dim, recording.obs_noise, recording.missing, recording.derivative),
                     f"{n} trajectories x {len(t)} samples x {sys_.dim} variables")
    values = _parameter_values(sys_, n, params, sample_params, rng)
    y0 = _initial_states(sys_, n, x0, gen)
    p = {k: torch.as_tensor(v, dtype=torch.float64, device=run.device) for k, v in values.items()}
    tt = torch.tensor(t, dtype=torch.float64, device=run.device)
    try:
        if sys_.kind == "ode":
            states, info = _solve_ode(sys_, y0.to(run.device), tt, p, integrator, rtol, atol, run)
        else:
            states, info = _solve_sde(sys_, y0.to(run.device), tt, p, sde_dt, integrator, seed, brownian, run)
    except (DivergenceError, SolverStallError) as exc:
        raise _naming_trajectory(exc, sys_, values, y0) from None
    return _record(sys_, states.cpu().numpy(), t, tt, p, values, recording, rng, seed, info)


def _integrator(sys_: System, method: Optional[str], scheme: Optional[str]) -> Solver:
    """The :class:`Solver` a system is integrated with: ``method`` for an ODE (default ``radau``
    for stiff systems, else ``dop853``), ``scheme`` for an SDE (default :func:`default_scheme`).

    Raises:
        UnknownSolverError: a name no solver of the system's kind has.
        UnsupportedError: an SDE scheme that is not correct for the system's noise.
    """
    if sys_.kind == "ode":
        return solver(method or ("radau" if sys_.stiff else "dop853"))
    chosen = solver(scheme or default_scheme(sys_), kind="sde")
    if sys_.noise_type not in chosen.noise_types:
        supported = [s.name for s in solvers("sde") if sys_.noise_type in s.noise_types]
        raise UnsupportedError(f"scheme {chosen.name!r} does not support the {sys_.noise_type} noise of {sys_.name}; "
                               f"use {' or '.join(map(repr, supported))}")
    return chosen


def _runtime(device: DeviceLike, max_steps: Any, max_seconds: Any, progress: Optional[bool],
             compile: Optional[bool]) -> Runtime:
    """The checked :class:`Runtime` of a call."""
    max_steps = check_integer(max_steps, "max_steps", 1)
    if max_seconds is not None:
        max_seconds = check_real(max_seconds, "max_seconds", 0.0, low_open=True)
    return Runtime(resolve_device(device), max_steps, max_seconds, progress, compile)


def _recording(obs_noise: Any, kind: Any, missing: Any, derivative: Any, observe: Optional[Observe],
               split: Optional[Sequence[float]]) -> Recording:
    """The checked :class:`Recording` of a call (``observe`` and ``split`` are checked where they
    are used, against the system and the number of trajectories)."""
    noise = check_real(obs_noise, "obs_noise", 0.0)
    missing = check_real(missing, "missing (a fraction of samples)", 0.0, 1.0)
    if missing == 1.0:
        raise BadParameterError("missing must be below 1: every trajectory keeps at least its first sample")
    if kind not in ("absolute", "relative"):
        raise BadParameterError(f"obs_noise_kind must be 'absolute' or 'relative', got {kind!r}")
    if not isinstance(derivative, bool):
        raise BadParameterError(f"derivative must be True or False, got {derivative!r}")
    return Recording(noise, kind, missing, derivative, observe, split)


def _record(sys_: System, full: np.ndarray, t: np.ndarray, tt: torch.Tensor, p: Mapping[str, torch.Tensor],
            values: Mapping[str, Any], recording: Recording, rng: np.random.Generator, seed: int,
            integrator: Mapping[str, Any]) -> xr.Dataset:
    """The dataset of a solve: what ``recording`` observes of the states ``full`` (trajectory,
    time, variable) at times ``t`` (``tt`` on the solve's device), the hidden rest, the inputs, the
    split, and attributes saying how it was made (``integrator``: the solver's own)."""
    n = full.shape[0]
    deriv = _derivative(sys_, tt, torch.from_numpy(full).to(tt.device), p) if recording.derivative else None
    readout = observation_readout(sys_, recording.observe)
    clean = full if readout is None else full @ readout.matrix.T
    deriv = deriv if deriv is None or readout is None else deriv @ readout.matrix.T
    observed, mask = _observe(clean, recording.obs_noise, recording.obs_noise_kind, recording.missing, rng)
    split_labels, split_attrs = _split_labels(n, recording.split, rng)
    attrs = {
        "title": f"{sys_.name} trajectories", "system": sys_.name, "kind": sys_.kind,
        "params": {k: float(np.asarray(v).ravel()[0]) for k, v in values.items() if np.ndim(v) == 0},
        "options": dict(sys_.options), "generator": "workbench.simulate", "seed": int(seed),
        "obs_noise": float(recording.obs_noise), "obs_noise_kind": recording.obs_noise_kind,
        "missing": float(recording.missing), "reference": sys_.reference, "facts": sys_.facts, **integrator,
        **split_attrs,
    }
    per_traj = {f"param_{k}": np.asarray(v, dtype=np.float64) for k, v in values.items() if np.ndim(v) == 1}
    names, units = (sys_.state_names, sys_.state_units) if readout is None else (readout.names, readout.units)
    hidden = None if readout is None else full[..., readout.hidden]
    if readout is not None:
        attrs["observe"] = {name: {v: float(c) for v, c in zip(sys_.state_names, row) if c}
                            for name, row in zip(readout.names, readout.matrix)}
    return make_dataset(observed, t, names, units=units, time_units=sys_.time_units,
                        mask=mask, derivative=deriv, inputs=_inputs(sys_, tt, p, n), input_names=sys_.inputs,
                        per_trajectory=per_traj, split=split_labels, attrs=attrs, hidden_state=hidden,
                        hidden_names=None if readout is None else [sys_.state_names[i] for i in readout.hidden],
                        hidden_units=None if readout is None else [sys_.state_units[i] for i in readout.hidden])


@dataclass(frozen=True)
class Readout:
    """A linear observation of a system's state: ``observed = state @ matrix.T``.

    Attributes:
        matrix: ``(k, dim)`` coefficients.
        names, units: one per observed channel.
        hidden: indices of the system variables not observed as themselves (kept for scoring).
    """

    matrix: np.ndarray
    names: list[str]
    units: list[str]
    hidden: list[int]


def observation_readout(sys_: System, observe: Optional[Observe]) -> Optional[Readout]:
    """The :class:`Readout` that ``observe`` asks for, or ``None`` to observe the whole state.

    Raises:
        UnknownNameError: a variable the system does not have.
        BadParameterError: nothing observed, repeated names, a matrix of the wrong shape or with
            non-finite entries, or a read-out that records nothing (an all-zero row).
    """
    if observe is None:
        return None
    names = list(sys_.state_names)
    if isinstance(observe, Mapping):
        rows = [_readout_row(sys_, str(label), combination) for label, combination in observe.items()]
        labels = [str(label) for label in observe]
    elif isinstance(observe, str) or (isinstance(observe, (list, tuple)) and all(isinstance(v, str) for v in observe)):
        chosen = [observe] if isinstance(observe, str) else list(observe)
        rows = [_readout_row(sys_, v, {v: 1.0}) for v in chosen]
        labels = chosen
    else:
        matrix = as_float_array(observe, "observe (a read-out matrix)")
        if matrix.ndim != 2 or matrix.shape[1] != sys_.dim or not np.isfinite(matrix).all():
            raise BadParameterError(f"observe as a matrix must be finite with shape (k, {sys_.dim}) for "
                                    f"{sys_.name} (one column per variable {names}), got shape {matrix.shape}",
                                    fix="pass variable names, e.g. observe=['x'], or a (k, dim) matrix")
        rows, labels = list(matrix), [f"y{i}" for i in range(matrix.shape[0])]
    if not rows:
        raise BadParameterError(f"observe={observe!r} observes nothing",
                                fix=f"name at least one of {names}, e.g. observe=[{names[0]!r}]")
    if len(set(labels)) != len(labels):
        raise BadParameterError(f"observe names a channel twice: {labels}", fix="name each observed channel once")
    matrix = np.stack(rows)
    if (np.abs(matrix).sum(1) == 0).any():
        raise BadParameterError("observe has a read-out with all coefficients zero (it records nothing)",
                                fix="give each observed channel a non-zero coefficient")
    # a channel named after a variable that reads exactly that variable observes it; the rest is hidden
    unit_rows = np.eye(sys_.dim)
    direct = {names.index(label) for row, label in zip(matrix, labels)
              if label in names and np.array_equal(row, unit_rows[names.index(label)])}
    units = []
    for row in matrix:
        used = {sys_.state_units[i] for i in np.flatnonzero(row)}
        units.append(used.pop() if len(used) == 1 else "1")
    return Readout(matrix, labels, units, [i for i in range(sys_.dim) if i not in direct])


def _readout_row(sys_: System, label: str, combination: Any) -> np.ndarray:
    """One read-out row from ``{variable: coefficient}``; unknown variables are refused by name."""
    names = list(sys_.state_names)
    if not isinstance(combination, Mapping) or not combination:
        raise BadParameterError(f"observe[{label!r}] must map variables to coefficients, e.g. "
                                f"{{{names[0]!r}: 1.0}}, got {combination!r}")
    row = np.zeros(sys_.dim)
    for variable, coefficient in combination.items():
        if variable not in names:
            close = get_close_matches(str(variable), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UnknownNameError(f"{sys_.name} has no variable {variable!r}{hint} to observe",
                                   fix=f"observe some of its variables {names}")
        row[names.index(variable)] = check_real(coefficient, f"observe coefficient of {variable!r}")
    return row


# Peak memory of a call, in float64 (trajectory, time, variable) arrays beyond what the process held
# before it: measured with ru_maxrss in fresh processes (Lorenz-63 defaults, 2,001 samples) as 1.17,
# 1.18 and 1.16 arrays at n = 256, 4,096 and 16,384 (14, 222 and 867 MiB); the solver's output is
# the dataset's array (numpy and xarray share it), the rest is the solver's state and outputs of a step.
BASE_ARRAYS = 1.25
# each option adds arrays: noise (the normals and the noisy copy), the derivative, the NaN-masked copy
NOISE_ARRAYS, DERIVATIVE_ARRAYS, MISSING_ARRAYS = 2.0, 1.0, 1.0


def _memory_estimate(n: int, samples: int, dim: int, obs_noise: float, missing: float, derivative: bool) -> int:
    """Bytes a :func:`simulate` call adds at its peak, from the size of one state array and the options."""
    arrays = (BASE_ARRAYS + (NOISE_ARRAYS if obs_noise else 0.0) + (MISSING_ARRAYS if missing else 0.0)
              + (DERIVATIVE_ARRAYS if derivative is True else 0.0))
    return int(arrays * n * samples * dim * 8)


def _naming_trajectory(exc: Exception, sys_: System, values: Mapping[str, Any], y0: torch.Tensor) -> Exception:
    """The solver's DivergenceError or SolverStallError again, naming the system, the failing
    trajectory's parameters and start, and what to change."""
    row = getattr(exc, "row", None)
    problem = getattr(exc, "problem", str(exc)).removeprefix(f"trajectory {row}: ")
    fix = getattr(exc, "fix", "") or "shorten t_end, pick parameters inside the attractor's range, or raise max_steps"
    return type(exc)(f"{sys_.name}: trajectory {row} with parameters {_row_params(values, row)} "
                     f"and x0={_fmt(y0[row].tolist()) if row is not None else '?'}: {problem}", fix=fix, row=row)


def _fmt(values: Any) -> str:
    return json.dumps(values, default=float)


def _row_params(values: Mapping[str, Any], row: Optional[int]) -> str:
    return _fmt({k: float(np.asarray(v)[row] if np.ndim(v) else v) for k, v in values.items()})


def _sample_times(sys_: System, t_end: Optional[float], dt: Optional[float],
                  times: Optional[Sequence[float]]) -> np.ndarray:
    if times is not None:
        t = as_float_array(times, "times")
        if t.ndim != 1 or t.size < 1 or not np.isfinite(t).all() or (np.diff(t) <= 0).any():
            raise BadParameterError("times must be a 1-D, finite, strictly increasing sequence")
        return t
    t_end = sys_.t_end if t_end is None else check_real(t_end, "t_end", 0.0, low_open=True)
    dt = sys_.dt if dt is None else check_real(dt, "dt", 0.0, low_open=True)
    if not (np.isfinite(t_end) and t_end > 0 and np.isfinite(dt) and 0 < dt <= t_end):
        raise BadParameterError(f"need 0 < dt <= t_end, got t_end={t_end}, dt={dt}")
    steps = int(round(t_end / dt))
    if abs(steps * dt - t_end) > 1e-9 * max(1.0, t_end):
        raise BadParameterError(f"t_end={t_end} is not a whole number of dt={dt} steps; adjust one of them")
    if steps > 10_000_000:
        raise BadParameterError(f"{steps} samples per trajectory is too many; use a larger dt")
    return np.linspace(0.0, t_end, steps + 1)


def _parameter_values(sys_: System, n: int, params: Optional[Mapping[str, Any]],
                      sample_params: Union[Sequence[str], Mapping[str, Sequence[float]], None],
                      rng: np.random.Generator) -> dict[str, Any]:
    if params is not None and not isinstance(params, Mapping):
        raise BadParameterError(f"params must be a mapping {{name: value}}, got {params!r}; "
                                f"e.g. params={{{next(iter(sys_.params), 'name')!r}: 1.0}}")
    given = {key: as_float_array(value, f"parameter {key!r}") for key, value in (params or {}).items()}
    sys_.check_params(given)
    values: dict[str, Any] = dict(sys_.defaults)
    for key, arr in given.items():
        if arr.ndim == 1 and arr.size != n:
            raise BadParameterError(f"parameter {key!r} has {arr.size} values for {n} trajectories; give one or n")
        if arr.ndim > 1:
            raise BadParameterError(f"parameter {key!r} must be a number or a 1-D array of length n")
        values[key] = arr if arr.ndim == 1 else float(arr)
    if isinstance(sample_params, str):
        sample_params = [sample_params]
    ranges = sample_params if isinstance(sample_params, Mapping) else {k: None for k in (sample_params or ())}
    for key, bounds in ranges.items():
        if key not in sys_.params:
            sys_.check_params({key: 0.0})  # raises the unknown-name error
        spec = sys_.params[key]
        if bounds is not None and as_float_array(bounds, f"sample_params[{key!r}]").shape != (2,):
            raise BadParameterError(f"sample_params[{key!r}] must be (low, high), got {bounds!r}")
        low, high = (spec.low, spec.high) if bounds is None else map(float, bounds)
        sys_.check_params({key: [low, high]})
        values[key] = rng.uniform(low, high, size=n)
    return values


def _initial_states(sys_: System, n: int, x0: Any, gen: torch.Generator) -> torch.Tensor:
    if x0 is None:
        return sys_.sample_x0(n, gen)
    y0 = torch.tensor(as_float_array(x0, "x0"))
    if y0.ndim == 1:
        y0 = y0.expand(n, -1)
    if y0.shape != (n, sys_.dim):
        raise BadParameterError(f"x0 must have shape ({n}, {sys_.dim}) or ({sys_.dim},) for {sys_.name}, got {tuple(y0.shape)}")
    if not torch.isfinite(y0).all():
        raise BadParameterError("x0 must be finite")
    if bool((y0.abs() > sys_.bound).any()):
        # such a state would only be rejected step after step until the step size underflows
        raise BadParameterError(f"x0 has values beyond {sys_.bound:g}, the bound past which {sys_.name} counts as "
                                "diverged; start from a state of moderate size")
    return y0.clone()


def _solve_ode(sys_: System, y0: torch.Tensor, t: torch.Tensor, p: Mapping[str, torch.Tensor], method: Solver,
               rtol: float, atol: float, run: Runtime) -> tuple[torch.Tensor, dict[str, Any]]:
    """The states of an ODE solve, (trajectory, time, variable), and the attributes naming the
    integrator, by the method's backend: the workbench's batched solver, scipy or torchdiffeq."""
    rtol, atol = check_real(rtol, "rtol", 0.0, 1.0, low_open=True), check_real(atol, "atol", 0.0, 1.0, low_open=True)
    if not (0 < rtol < 1 and 0 < atol < 1):
        raise BadParameterError(f"rtol and atol must lie in (0, 1), got rtol={rtol}, atol={atol}")
    info = {"integrator": method.name, "rtol": float(rtol), "atol": float(atol)}
    if method.backend == "workbench":
        bar = progress_bar(1.0, f"{sys_.name}: integrating {y0.shape[0]} trajectories", run.progress)
        with bar:
            # the catalog's module-level drift with the parameters as an argument: a compiled step is reused
            out, stats = integrate_batch(sys_.drift, y0, t, args=(p,), method=method.name, rtol=rtol, atol=atol,
                                         max_steps=run.max_steps, max_seconds=run.max_seconds, bound=sys_.bound,
                                         compile=run.compile,
                                         progress=lambda f: bar.update(f - bar.n))
        info.update(integrator=f"{method.name} (workbench, per-trajectory step control"
                               f"{', compiled' if stats.compiled else ''})", nfe=stats.nfe)
        return out, info
    if method.backend == "scipy":
        return _solve_scipy(sys_, y0, t, p, method, rtol, atol, run), info
    return _solve_torchdiffeq(sys_, y0, t, p, method, rtol, atol, run.max_steps), info


def _solve_torchdiffeq(sys_: System, y0: torch.Tensor, t: torch.Tensor, p: Mapping[str, torch.Tensor],
                       method: Solver, rtol: float, atol: float, max_steps: int) -> torch.Tensor:
    """One torchdiffeq solve of the whole batch: fixed-step methods take a tenth of the first
    sampling step; adaptive ones control each trajectory's error (see the norm below)."""
    import torchdiffeq

    if method.adaptive:
        # torchdiffeq's default error norm is an RMS over the whole batch; the max over trajectories of
        # each trajectory's RMS makes every trajectory meet the tolerance.
        options = {"norm": lambda r: r.pow(2).mean(-1).sqrt().max(), "max_num_steps": max_steps}
    else:
        options = {"step_size": float(t[1] - t[0]) / 10 if len(t) > 1 else 1e-3}
        steps = float(t[-1] - t[0]) / options["step_size"]
        if steps > max_steps:
            raise ResourceLimitError(f"{sys_.name}: fixed-step {method.name} takes {steps:.3g} steps, more than "
                                     f"max_steps={max_steps}; use fewer samples (larger dt), or raise max_steps")
    try:
        out = torchdiffeq.odeint(lambda tt, y: sys_.drift(tt.expand(y.shape[0]), y, p), y0, t, rtol=rtol, atol=atol,
                                 method=method.name, options={**method.backend_options, **options})
    except AssertionError as exc:
        raise SolverStallError(f"{sys_.name}: torchdiffeq {method.name} stopped: {exc}; loosen rtol/atol, "
                               "use method='dop853', or raise max_steps") from None
    out = out.transpose(0, 1)
    _check_finite(out, sys_.bound)
    return out


def _solve_scipy(sys_: System, y0: torch.Tensor, t: torch.Tensor, p: Mapping[str, torch.Tensor], method: Solver,
                 rtol: float, atol: float, run: Runtime) -> torch.Tensor:
    """Implicit route for stiff systems: one scipy solve per trajectory (stiff steps differ wildly)."""
    from scipy.integrate import solve_ivp

    max_steps, max_seconds = run.max_steps, run.max_seconds
    t_np = t.cpu().numpy()
    out = np.empty((y0.shape[0], len(t_np), y0.shape[1]))
    # implicit steps evaluate the field about (dim + 1) times for the Jacobian plus a few Newton iterations
    budget = max_steps * (y0.shape[1] + 8)
    deadline = math.inf if max_seconds is None else time.perf_counter() + max_seconds
    bar = progress_bar(y0.shape[0], f"{sys_.name}: {method.name} per trajectory", run.progress, "traj")
    for row in range(y0.shape[0]):
        p_row = {k: (v[row] if v.ndim else v).cpu() for k, v in p.items()}

        def rhs(tt: float, y: np.ndarray) -> np.ndarray:
            calls[0] += 1
            if calls[0] > budget or time.perf_counter() > deadline:  # solve_ivp has no cap of its own
                raise _OverBudget
            return sys_.drift(torch.tensor(tt, dtype=torch.float64),
                              torch.from_numpy(y.T), p_row).numpy().T

        calls = [0]
        try:
            sol = solve_ivp(rhs, (t_np[0], t_np[-1]), y0[row].cpu().numpy(), t_eval=t_np, rtol=rtol, atol=atol,
                            vectorized=True, **method.backend_options)
        except _OverBudget:
            raise SolverStallError(f"scipy {method.name} exceeded the budget of {max_steps} steps ({budget} field "
                                   f"evaluations) or of {max_seconds} s", row=row) from None
        if not sol.success or sol.y.shape[1] != len(t_np):
            raise SolverStallError(f"scipy {method.name} failed: {sol.message}", row=row)
        out[row] = sol.y.T
        bar.update(1)
    bar.close()
    result = torch.from_numpy(out).to(y0.device)
    _check_finite(result, sys_.bound)
    return result


class _OverBudget(Exception):
    """Raised inside scipy's right-hand side to stop a solve past its step budget."""


def _check_finite(states: torch.Tensor, bound: float) -> None:
    # one min/max pass (NaN fails it too); only a failed solve pays for the masks that locate the sample
    low, high = (float(v) for v in torch.aminmax(states))
    if math.isfinite(low) and math.isfinite(high) and -bound <= low and high <= bound:
        return
    bad = ~torch.isfinite(states).all(-1) | (states.abs() > bound).any(-1)
    if bool(bad.any()):
        row, step = (int(i) for i in bad.nonzero()[0])
        raise DivergenceError(f"state became non-finite or exceeded the bound {bound:g} at sample {step}",
                              row=row, step=step)


def default_scheme(sys_: System) -> str:
    """The torchsde scheme that is correct for the system's noise structure.

    Milstein (strong order 1) for diagonal and additive noise; SRK (Rößler 2010, derivative-free,
    strong order 1) for scalar noise, where torchsde's Milstein adds ``J^T g`` instead of ``J g`` (wrong
    unless the Jacobian is symmetric; it broke S + I + R in ``stochastic_sir``); Euler-Maruyama for
    general noise, the one scheme there that needs no Lévy areas.
    """
    return {"diagonal": "milstein", "additive": "milstein", "scalar": "srk"}.get(sys_.noise_type, "euler")


def _solve_sde(sys_: System, y0: torch.Tensor, t: torch.Tensor, p: Mapping[str, torch.Tensor],
               sde_dt: Optional[float], scheme: Solver, seed: int, bm: Any,
               run: Runtime) -> tuple[torch.Tensor, dict[str, Any]]:
    """The states of a fixed-step torchsde solve, (trajectory, time, variable), and the attributes
    naming the scheme and its step."""
    import torchsde

    max_steps = run.max_steps
    step = float(t[1] - t[0]) if len(t) > 1 else 1.0
    sde_dt = step / 10 if sde_dt is None else check_real(sde_dt, "sde_dt", 0.0, low_open=True)
    if not 0 < sde_dt <= step + 1e-12:
        raise BadParameterError(f"sde_dt must be positive and no larger than the sampling step {step:g}, got {sde_dt}")
    # fixed steps: the work is known before the first one, so refuse rather than run for hours
    steps = float(t[-1] - t[0]) / sde_dt
    if steps > max_steps:
        raise ResourceLimitError(
            f"{sys_.name}: sde_dt={sde_dt:g} over [{float(t[0]):g}, {float(t[-1]):g}] takes {steps:.3g} steps per "
            f"trajectory ({steps * y0.shape[0]:.3g} in all), more than max_steps={max_steps}; use a larger sde_dt "
            f"(>= {float(t[-1] - t[0]) / max_steps:.3g}), a shorter t_end, or raise max_steps")
    adapter = TorchsdeProblem(lambda tt, y: sys_.drift(tt, y, p), lambda tt, y: sys_.diffusion(tt, y, p),
                              sys_.noise_type)
    m = sys_.dim if sys_.noise_type == "additive" else sys_.noise_dim
    if bm is not None and not isinstance(bm, torchsde.BaseBrownian):
        raise BadParameterError(f"brownian must be a torchsde Brownian motion (BrownianInterval, BrownianTree...), "
                                f"got {type(bm).__name__}")
    if bm is None:
        # The fixed steps query the path in order, so increments drawn step by step suffice. The seed's
        # child stream keeps them independent of the observation noise and splits, drawn from the seed itself.
        bm = BrownianIncrements(float(t[0]), (y0.shape[0], m), y0.dtype, y0.device,
                                np.random.SeedSequence(seed).spawn(1)[0], space_time=scheme.name == "srk")
    with progress_bar(1, f"{sys_.name}: {scheme.name} SDE, dt={sde_dt:g}", run.progress), torch.no_grad():
        out = torchsde.sdeint(adapter, y0, t, bm=bm, method=scheme.name, dt=sde_dt, adaptive=False)
    out = out.transpose(0, 1).contiguous()  # a reduction over the strided view cost 15x the copy
    _check_finite(out, sys_.bound)
    return out, {"integrator": f"torchsde {scheme.name}", "dt_sde": sde_dt, "sde_type": "ito"}


def _per_sample(t: torch.Tensor, p: Mapping[str, torch.Tensor], n: int) -> tuple[torch.Tensor, dict]:
    """Times and parameters repeated for every (trajectory, time) sample, flattened."""
    steps = len(t)
    p_flat = {k: (v[:, None].expand(n, steps).reshape(-1) if v.ndim else v) for k, v in p.items()}
    return t[None].expand(n, steps).reshape(-1), p_flat


def _derivative(sys_: System, t: torch.Tensor, states: torch.Tensor, p: Mapping[str, torch.Tensor]) -> np.ndarray:
    """The true drift at every sample: ``(trajectory, time, variable)``."""
    n, steps, _ = states.shape
    tt, p_flat = _per_sample(t, p, n)
    with torch.no_grad():
        f = sys_.drift(tt, states.reshape(n * steps, -1), p_flat)
    return f.reshape(n, steps, -1).cpu().numpy()


def _inputs(sys_: System, t: torch.Tensor, p: Mapping[str, torch.Tensor], n: int) -> Optional[np.ndarray]:
    """A forced system's inputs at every sample: ``(trajectory, time, input_variable)``."""
    if sys_.forcing is None:
        return None
    tt, p_flat = _per_sample(t, p, n)
    with torch.no_grad():
        u = sys_.forcing(tt, p_flat)
    return u.reshape(n, len(t), -1).cpu().numpy()


def _observe(clean: np.ndarray, noise: float, kind: str, missing: float,
             rng: np.random.Generator) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """What an instrument records: ``clean`` plus Gaussian noise (``noise`` absolute, or relative to
    each variable's std), with a ``missing`` fraction of samples after the first dropped to NaN;
    returns the observations and the mask of kept samples (``None`` when nothing is dropped)."""
    observed = clean
    if noise:
        scale = noise * (clean.reshape(-1, clean.shape[-1]).std(0) if kind == "relative" else 1.0)
        observed = clean + rng.standard_normal(clean.shape) * scale
    if not missing:
        return observed, None
    mask = rng.random(observed.shape[:2]) >= missing
    mask[:, 0] = True
    return np.where(mask[..., None], observed, np.nan), mask


def _split_labels(n: int, split: Optional[Sequence[float]],
                  rng: np.random.Generator) -> tuple[Optional[list[str]], dict[str, Any]]:
    """Assign whole trajectories to train/val/test by :func:`_split_counts`, in random order.

    Returns:
        The labels (``None`` for ``split=None``) and the attributes that record the split done.
    """
    if split is None:
        return None, {}
    fractions = as_float_array(split, "split")
    if fractions.shape != (3,) or (fractions < 0).any() or not np.isclose(fractions.sum(), 1.0):
        raise BadParameterError(f"split must be three fractions (train, val, test) summing to 1, got {split}")
    counts = _split_counts(n, fractions)
    labels = np.repeat(np.array(SPLITS), counts)
    attrs = {"split": {name: float(c) / n for name, c in zip(SPLITS, counts)},
             "split_counts": {name: int(c) for name, c in zip(SPLITS, counts)},
             "split_requested": {name: float(f) for name, f in zip(SPLITS, fractions)}}
    return list(labels[rng.permutation(n)]), attrs


def _split_counts(n: int, fractions: np.ndarray) -> np.ndarray:
    """Trajectories per (train, val, test): validation and test get the nearest whole count of
    ``fraction * n`` (halves up), at least one each where the fraction is positive and ``n >= 3``;
    training gets the rest. Where rounding up leaves no training trajectory that the fractions ask
    for, the larger held-out count gives one back."""
    held = np.floor(fractions[1:] * n + 0.5).astype(int)
    if n >= 3:
        held = np.where((fractions[1:] > 0) & (held == 0), 1, held)
    keep = 1 if fractions[0] > 0 else 0
    while held.sum() > n - keep:
        held[int(np.argmax(held))] -= 1
    return np.array([n - held.sum(), *held])

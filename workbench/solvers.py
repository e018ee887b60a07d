"""Batched ODE integration with per-trajectory step-size control.

torchdiffeq takes one step size for the whole batch and measures error by an RMS over every
component, so single trajectories drift past the tolerance. Here each trajectory keeps its own
time, step size and accept/reject decision inside one vectorised loop (the approach of diffrax's
``vmap``); outputs are read off each step's continuous extension of the method's own order.

Tableaux are scipy's (``scipy.integrate.DOP853`` / ``RK45`` class attributes); the error norms and
the step-size controller follow Hairer, Norsett & Wanner, *Solving ODEs I*, Sec. II.4 and II.10.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import scipy.integrate
import torch

from .errors import BadParameterError, DivergenceError, SolverStallError

BatchField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

SAFETY, MIN_FACTOR, MAX_FACTOR = 0.9, 0.2, 10.0


@dataclass(frozen=True)
class Tableau:
    """An explicit embedded Runge-Kutta method with FSAL error estimate and dense output.

    Dense output is either a polynomial in the step fraction (``dense_p``, Dormand-Prince) or the
    DOP853 interpolant built from ``extra_stages`` more evaluations (``extra_a``, ``extra_c``,
    ``dense_d``).
    """

    name: str
    order: int
    error_order: int
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    e_high: np.ndarray
    e_low: Optional[np.ndarray] = None  # DOP853's extra 3rd-order estimator
    dense_p: Optional[np.ndarray] = None
    extra_a: Optional[np.ndarray] = None
    extra_c: Optional[np.ndarray] = None
    dense_d: Optional[np.ndarray] = None

    @property
    def extra_stages(self) -> int:
        return 0 if self.extra_c is None else len(self.extra_c)


_D = scipy.integrate.DOP853
_R = scipy.integrate.RK45
DOP853 = Tableau("dop853", 8, 7, _D.A, _D.B, _D.C, _D.E5, _D.E3,
                 extra_a=_D.A_EXTRA, extra_c=_D.C_EXTRA, dense_d=_D.D)
DOPRI5 = Tableau("dopri5", 5, 4, _R.A, _R.B, _R.C, _R.E, dense_p=_R.P)
TABLEAUX = {t.name: t for t in (DOP853, DOPRI5)}
# torchdiffeq's public method names (its registry lives in a private module)
FIXED_STEP_METHODS = ("euler", "midpoint", "rk4", "explicit_adams", "implicit_adams", "heun2", "heun3")
ADAPTIVE_METHODS = ("dopri8", "dopri5", "bosh3", "fehlberg2", "adaptive_heun")
TORCHDIFFEQ_METHODS = FIXED_STEP_METHODS + ADAPTIVE_METHODS


# Packed per-row solver state, one tensor (batch, 5 + 2 dim): a compiled step then has few inputs
# to check, and eager and compiled steps share one layout. Columns: time, step size, index of the
# next output time, steps taken, steps rejected, the state y, and f(t, y) (first-same-as-last).
_T, _H, _NEXT, _STEPS, _REJECTED, _Y = range(6)
# Dense outputs read per step at most; a step is shortened so it passes no more output times than
# this, which keeps every tensor's shape fixed (a compiled step needs that).
OUTPUTS_PER_STEP = 16
# Row status after a step, reduced with max() into one host synchronisation per step.
_DONE, _RUNNING, _DIVERGED, _UNDERFLOW, _OVER_BUDGET = range(5)
# The "auto" compile rule: compile once the eager solve still has this many seconds to go, or at
# once where a compiled step already exists in the process. Compiling the DOP853 step for
# Lorenz-63 took 30-51 s on a 2-core CPU with an empty inductor cache and 6-14 s with a warm one;
# the compiled step then ran 4-5x faster, so switching pays beyond about a minute of eager work.
COMPILE_WHEN_REMAINING_S = 60.0


class _Weights:
    """One row of Butcher coefficients, as Python floats and as a tensor (see :class:`_Stages`)."""

    def __init__(self, values: np.ndarray, dtype: torch.dtype, device: torch.device):
        nonzero = np.flatnonzero(values)
        self.length = 0 if len(nonzero) == 0 else int(nonzero[-1]) + 1
        self.values = tuple(float(v) for v in values[: self.length])
        self.tensor = torch.as_tensor(values[: self.length], dtype=dtype, device=device)


class _Stages:
    """The stage derivatives of one step and their weighted sums.

    Eager mode keeps them in one preallocated buffer, so a weighted sum is one matrix product over
    a view; a compiled step keeps a list and sums scalar-weighted terms, which the compiler fuses
    into one loop (matrix products there became library calls that cost more than the arithmetic).
    """

    def __init__(self, first: torch.Tensor, capacity: int):
        self.items = [first]
        self.buffer: Optional[torch.Tensor] = None
        if not torch.compiler.is_compiling():
            self.buffer = first.new_empty(capacity, *first.shape)
            self.buffer[0] = first

    def append(self, value: torch.Tensor) -> None:
        if self.buffer is not None:
            self.buffer[len(self.items)] = value
        self.items.append(value)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.items[i]

    def combine(self, w: _Weights) -> torch.Tensor:
        """``sum_j w_j k_j`` over the first ``w.length`` stages."""
        first = self.items[0]
        if self.buffer is None:
            total = torch.zeros_like(first)
            for value, term in zip(w.values, self.items):
                if value != 0.0:
                    total = total + value * term
            return total
        if w.length == 0:
            return torch.zeros_like(first)
        return (w.tensor @ self.buffer[: w.length].view(w.length, -1)).view_as(first)


class _Method:
    """A tableau's coefficients as :class:`_Weights`, built once per solve."""

    def __init__(self, tab: Tableau, dtype: torch.dtype, device: torch.device):
        def weights(rows: Optional[np.ndarray]) -> list[_Weights]:
            return [] if rows is None else [_Weights(np.asarray(r, dtype=float), dtype, device) for r in rows]

        self.tab = tab
        # plain Python numbers: read inside a compiled step, tableau arrays would become graph inputs
        self.stages, self.extra_stages = len(tab.b), tab.extra_stages
        self.polynomial_dense = tab.dense_p is not None
        self.a = weights(tab.a)
        self.b, self.e_high = weights([tab.b])[0], weights([tab.e_high])[0]
        self.e_low = None if tab.e_low is None else weights([tab.e_low])[0]
        self.c = tuple(float(v) for v in tab.c)
        self.extra_a = weights(tab.extra_a)
        self.extra_c = () if tab.extra_c is None else tuple(float(v) for v in tab.extra_c)
        self.dense = weights(tab.dense_d if tab.dense_d is not None else
                             None if tab.dense_p is None else np.asarray(tab.dense_p).T)


def _dense_coefficients(m: _Method, f: Callable[..., torch.Tensor], args: tuple, k: _Stages,
                        t: torch.Tensor, hb: torch.Tensor, y: torch.Tensor, y_new: torch.Tensor) -> list[torch.Tensor]:
    """Coefficients of the continuous extension on ``[t, t + h]``, in ``_interpolate``'s form.

    DOP853: the 7th-order interpolant of Hairer et al. (three extra stages, scipy's coefficients);
    dopri5: the 4th-order interpolant of Dormand & Prince (Shampine 1986), as in scipy's RK45.
    """
    if m.polynomial_dense:
        return [hb * k.combine(row) for row in m.dense]
    for row, c in zip(m.extra_a, m.extra_c):
        k.append(f(t + c * hb[:, 0], y + hb * k.combine(row), *args))
    delta, f_old, f_new = y_new - y, k[0], k[m.stages]
    return [delta, hb * f_old - delta, 2 * delta - hb * (f_new + f_old)] + [hb * k.combine(row) for row in m.dense]


def _interpolate(m: _Method, coeffs: list[torch.Tensor], y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The continuous extension at step fractions ``x`` (batch, m, 1): (batch, m, dim)."""
    if m.polynomial_dense:  # y + sum_i q_i x^(i+1), by Horner
        poly = torch.zeros_like(x)
        for q in reversed(coeffs):
            poly = (poly + q[:, None]) * x
        return y[:, None] + poly
    value = torch.zeros_like(x)  # DOP853's alternating x, (1 - x) nesting
    for i, coeff in enumerate(reversed(coeffs)):
        value = (value + coeff[:, None]) * (x if i % 2 == 0 else 1 - x)
    return value + y[:, None]


@dataclass
class SolveStats:
    """What one batched solve cost: steps and function evaluations of the hardest trajectory."""

    iterations: int = 0
    nfe: int = 0
    rejected: int = 0
    compiled: bool = False


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean(-1).sqrt()


def _initial_step(f: BatchField, t0: torch.Tensor, y0: torch.Tensor, f0: torch.Tensor,
                  order: int, rtol: float, atol: float) -> torch.Tensor:
    """Per-row starting step (Hairer et al., Sec. II.4, the algorithm scipy also uses)."""
    scale = atol + y0.abs() * rtol
    d0, d1 = _rms(y0 / scale), _rms(f0 / scale)
    h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6), 0.01 * d0 / d1)
    f1 = f(t0 + h0, y0 + h0[:, None] * f0)
    d2 = _rms((f1 - f0) / scale) / h0
    big = torch.maximum(d1, d2)
    h1 = torch.where(big <= 1e-15, torch.maximum(torch.full_like(h0, 1e-6), h0 * 1e-3),
                     (0.01 / big) ** (1.0 / (order + 1)))
    return torch.minimum(100 * h0, h1)


def _error_norm(m: _Method, k: _Stages, h: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Per-row scaled error of a step, from its stages ``k`` including the FSAL stage."""
    err_high = k.combine(m.e_high) / scale
    if m.e_low is None:
        return h * _rms(err_high)
    err_low = k.combine(m.e_low) / scale
    high2, low2 = err_high.pow(2).sum(-1), err_low.pow(2).sum(-1)
    denom = (high2 + 0.01 * low2).clamp_min(1e-300)
    return torch.where(high2 == 0, torch.zeros_like(h), h * high2 / (denom * scale.shape[-1]).sqrt())


def _make_step(f: Callable[..., torch.Tensor], m: _Method, dim: int) -> Callable[..., tuple[torch.Tensor, ...]]:
    """One step of every row: ``step(state, times, limits, args) -> (state, values, where, status)``.

    ``limits`` is ``[rtol, atol, bound, max_steps]`` (a tensor, so new tolerances need no new
    compilation); ``values`` (batch, OUTPUTS_PER_STEP, dim) are the dense outputs the step passed,
    ``where`` their flat positions in the (batch * T) output rows, or batch * T (a spare row) for
    none; ``status`` is each row's ``_DONE`` ... ``_OVER_BUDGET``.
    """
    stages, expo = m.stages, -1.0 / (m.tab.error_order + 1)

    def step(state: torch.Tensor, times: torch.Tensor, limits: torch.Tensor,
             args: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        n, n_out = state.shape[0], times.shape[0]
        rtol, atol, bound, max_steps = limits[0], limits[1], limits[2], limits[3]
        t, h, next_out = state[:, _T], state[:, _H], state[:, _NEXT].long()
        y, fy = state[:, _Y:_Y + dim], state[:, _Y + dim:]
        active = next_out < n_out
        stop = times[(next_out + (OUTPUTS_PER_STEP - 1)).clamp(max=n_out - 1)]
        h_step = torch.where(active, torch.minimum(h, stop - t), torch.zeros_like(h))
        hb = h_step[:, None]
        k = _Stages(fy, stages + 1 + m.extra_stages)
        for s in range(1, stages):
            k.append(f(t + m.c[s] * h_step, y + hb * k.combine(m.a[s]), *args))
        y_new = y + hb * k.combine(m.b)
        f_new = f(t + h_step, y_new, *args)
        k.append(f_new)
        scale = atol + torch.maximum(y.abs(), y_new.abs()) * rtol
        err = _error_norm(m, k, h_step, scale)
        finite = torch.isfinite(err) & torch.isfinite(y_new).all(-1)
        accept = active & finite & (err <= 1.0)
        factor = torch.where(err == 0, torch.full_like(err, MAX_FACTOR), SAFETY * err.clamp_min(1e-300) ** expo)
        factor = torch.where(finite, factor.clamp(MIN_FACTOR, MAX_FACTOR), torch.full_like(factor, MIN_FACTOR))
        factor = torch.where(accept, factor, factor.clamp(max=1.0))  # no growth after a rejection (II.4)
        t_new = torch.where(h_step >= stop - t, stop, t + h_step)
        count = torch.where(accept, torch.searchsorted(times, t_new, right=True) - next_out, 0)

        # compiled: a fixed width; eager: only as many outputs as the furthest row passed
        width = OUTPUTS_PER_STEP if torch.compiler.is_compiling() else max(1, int(count.max()))
        offsets = torch.arange(width, device=state.device)
        index = (next_out[:, None] + offsets).clamp(max=n_out - 1)
        x = (times[index] - t[:, None]) / torch.where(h_step > 0, h_step, 1.0)[:, None]
        values = _interpolate(m, _dense_coefficients(m, f, args, k, t, hb, y, y_new), y, x[..., None])
        rows = torch.arange(n, device=state.device)[:, None]
        where = torch.where(offsets < count[:, None], rows * n_out + index, n * n_out)

        steps = state[:, _STEPS] + active.to(state.dtype)
        t_next = torch.where(accept, t_new, t)
        status = torch.where(next_out + count < n_out, _RUNNING, _DONE)
        status = torch.where(h_step.abs() <= 10 * torch.finfo(state.dtype).eps * t.abs().clamp_min(1.0),
                             torch.where(active, _UNDERFLOW, status), status)
        status = torch.where(steps > max_steps, _OVER_BUDGET, status)
        status = torch.where(accept & (y_new.abs() > bound).any(-1), _DIVERGED, status)
        acc = accept[:, None]
        new_state = torch.cat([t_next[:, None], torch.where(active, h_step * factor, h)[:, None],
                               (next_out + count).to(state.dtype)[:, None], steps[:, None],
                               (state[:, _REJECTED] + (active & ~accept).to(state.dtype))[:, None],
                               torch.where(acc, y_new, y), torch.where(acc, f_new, fy)], 1)
        return new_state, values, where, status

    return step


_COMPILED: dict[tuple, Optional[Callable[..., tuple[torch.Tensor, ...]]]] = {}


def _compiler_errors() -> tuple[type, ...]:
    """What torch.compile raises when it, not the vector field, fails (imported late: inductor is heavy)."""
    from torch._inductor.exc import CppCompileError, InvalidCxxCompiler

    return torch._dynamo.exc.TorchDynamoException, InvalidCxxCompiler, CppCompileError


class _Stepper:
    """Runs the step eagerly or compiled, and decides when to compile (``compile=None``).

    A step is compiled once per process for each (field, method, dimension, device, dtype), with
    inductor's C++ wrapper: with a Python wrapper, launching the step's kernels cost more than the
    arithmetic (0.56 s vs 0.28 s for 256 Lorenz-63 trajectories on one CPU thread). After a solve's
    first compiled call has checked every guard, the rest skip all but the differentiating ones:
    every later call of the solve passes tensors of the same shapes, dtypes and devices.
    """

    def __init__(self, f: Callable[..., torch.Tensor], m: _Method, dim: int, device: torch.device,
                 dtype: torch.dtype, compile: Optional[bool]):
        self.key = (f, m.tab.name, dim, device.type, dtype)
        self.eager = _make_step(f, m, dim)
        self.compiled: Optional[Callable[..., tuple[torch.Tensor, ...]]] = None
        self.checked = False
        self.auto = compile is None
        if compile or (self.auto and self.key in _COMPILED):
            self.compile()

    def compile(self) -> None:
        if self.key not in _COMPILED:
            # one code object serves every field's step: room for more than dynamo's default 8 entries
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
            _COMPILED[self.key] = torch.compile(self.eager, fullgraph=True, options={"cpp_wrapper": True})
        self.compiled = _COMPILED[self.key]

    def __call__(self, *inputs: Any) -> tuple[torch.Tensor, ...]:
        if self.compiled is None:
            return self.eager(*inputs)
        if not self.checked:
            # any batch size and number of outputs share one compiled step (Python floats, such as
            # the tableau's weights, stay compile-time constants, which dynamic=True would not keep);
            # marked here, not in integrate_batch, so that eager solves never import dynamo (1-3 s)
            state, times = inputs[:2]
            torch._dynamo.mark_dynamic(state, 0)
            torch._dynamo.mark_dynamic(times, 0)
        try:
            with torch.compiler.set_stance("default", skip_guard_eval_unsafe=self.checked):
                result = self.compiled(*inputs)
        except _compiler_errors() as exc:
            # the compiler failed, not the field: the eager step computes the same thing
            warnings.warn(f"torch.compile of the {self.key[1]} step failed ({type(exc).__name__}: {exc}); "
                          "continuing in eager mode", RuntimeWarning, stacklevel=3)
            _COMPILED[self.key] = self.compiled = None
            return self.eager(*inputs)
        self.checked = True
        return result

    def consider_compiling(self, elapsed: float, covered: float) -> None:
        """Under ``compile=None``, compile once the eager solve has ``COMPILE_WHEN_REMAINING_S`` to go."""
        if self.auto and self.compiled is None and self.key not in _COMPILED and covered > 0 \
                and elapsed * (1 - covered) / covered > COMPILE_WHEN_REMAINING_S:
            self.compile()


def integrate_batch(f: Callable[..., torch.Tensor], y0: torch.Tensor, times: torch.Tensor, *,
                    args: tuple = (), method: str = "dop853", rtol: float = 1e-10, atol: float = 1e-10,
                    max_steps: int = 1_000_000, bound: float = float("inf"),
                    progress: Optional[Callable[[float], None]] = None,
                    compile: Optional[bool] = False) -> tuple[torch.Tensor, SolveStats]:
    """Integrate ``dy/dt = f(t, y, *args)`` for a batch of initial states, each with its own step size.

    Arguments:
        f: vector field ``f(t, y, *args)``; ``t`` has shape ``(batch,)``, ``y`` shape ``(batch, dim)``.
        y0: initial states, shape ``(batch, dim)``.
        times: increasing output times, shape ``(T,)``; ``times[0]`` is the initial time.
        args: extra arguments of ``f`` (tensors, or dicts of tensors), passed through unchanged.
        method: ``"dop853"`` (8th order, 7th-order dense output; default) or ``"dopri5"``.
        rtol, atol: per-trajectory tolerances on each component (mixed error test).
        max_steps: step budget per trajectory; exceeding it raises :class:`SolverStallError`.
        bound: a trajectory whose state exceeds this in absolute value raises :class:`DivergenceError`.
        progress: called with the fraction of the time span the slowest trajectory has covered.
        compile: ``True`` runs the step through ``torch.compile`` (one fused kernel per step; falls
            back to eager mode with a warning where compilation fails, e.g. without a C++ compiler),
            ``False`` runs it eagerly, ``None`` decides: compiled where this process already
            compiled the same step, or once the eager solve has ``COMPILE_WHEN_REMAINING_S`` left.
            Pass a long-lived ``f`` (a module-level function, parameters in ``args``) so the
            compiled step is reused.

    Returns:
        ``(states, stats)`` with ``states`` of shape ``(batch, T, dim)``, read off each step's
        continuous extension at ``times``. Rows do not interact: each row's result is the same
        whatever the batch around it.

    Errors carry the offending row in their ``row`` attribute.
    """
    if method not in TABLEAUX:
        raise BadParameterError(f"unknown batched method {method!r}; use one of {sorted(TABLEAUX)}")
    dtype, device = y0.dtype, y0.device
    outside = ~torch.isfinite(y0).all(-1) | (y0.abs() > bound).any(-1)
    if bool(outside.any()):  # fail at once: such a row would be rejected until its step underflows
        row = int(outside.nonzero()[0, 0])
        raise _row_error(DivergenceError, row, f"the initial state is non-finite or beyond the divergence bound {bound:g}")
    n, n_out, dim = y0.shape[0], times.shape[0], y0.shape[1]
    m = _Method(TABLEAUX[method], dtype, device)
    out = torch.empty(n * n_out + 1, dim, dtype=dtype, device=device)  # + a spare row for unused outputs
    out[:-1].view(n, n_out, dim)[:, 0] = y0
    stats = SolveStats()
    if n_out == 1:
        return out[:-1].view(n, n_out, dim), stats

    t0 = times[0].expand(n).clone()
    fy = f(t0, y0, *args)
    h = _initial_step(lambda tt, yy: f(tt, yy, *args), t0, y0, fy, m.tab.order, rtol, atol)
    zero = torch.zeros(n, 1, dtype=dtype, device=device)
    state = torch.cat([t0[:, None], h[:, None], zero + 1, zero, zero, y0, fy], 1)
    limits = torch.tensor([rtol, atol, bound, float(max_steps)], dtype=dtype, device=device)
    times = times.clone()  # a compiled step marks it dynamic: our copy, not the caller's tensor
    step = _Stepper(f, m, dim, device, dtype, compile)
    args = _one_element(args)
    span, started = float(times[-1] - times[0]), time.perf_counter()
    while True:
        state, values, where, status = step(state, times, limits, args)
        out.index_copy_(0, where.view(-1), values.reshape(-1, dim))
        stats.iterations += 1
        code = int(status.max())
        if code == _DONE:
            break
        if code > _RUNNING:
            _raise_row_status(status, code, state, bound, max_steps)
        if stats.iterations % 50 == 0:
            covered = float((state[:, _T][state[:, _NEXT] < n_out] - times[0]).min()) / span
            if progress is not None:
                progress(covered)
            step.consider_compiling(time.perf_counter() - started, covered)
    if progress is not None:
        progress(1.0)
    stats.compiled = step.compiled is not None
    stats.rejected = int(state[:, _REJECTED].sum())
    stats.nfe = 2 + stats.iterations * (m.stages + m.extra_stages)
    return out[:-1].view(n, n_out, dim), stats


def _one_element(args: tuple) -> tuple:
    """0-d tensors in ``args`` (or in dicts there) reshaped to one element, which broadcasts alike:
    the compiler reads a 0-d CPU tensor as a Python number and traces the step twice over it."""
    def fix(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.ndim == 0:
            return value.reshape(1)
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        return value
    return tuple(fix(a) for a in args)


def _raise_row_status(status: torch.Tensor, code: int, state: torch.Tensor, bound: float, max_steps: int) -> None:
    row = int((status == code).nonzero()[0, 0])
    t = float(state[row, _T])
    if code == _DIVERGED:
        raise _row_error(DivergenceError, row, f"|state| exceeded the divergence bound {bound:g} at t={t:.6g}")
    if code == _UNDERFLOW:
        raise _row_error(SolverStallError, row, f"step size underflowed at t={t:.6g} "
                                                "(the solution may blow up or the problem may be stiff)")
    raise _row_error(SolverStallError, row, f"exceeded the budget of {max_steps} steps at t={t:.6g}")


def _row_error(cls: type, row: int, message: str) -> Exception:
    return cls(message, row=row)


FUSED_METHODS = {"euler": ((), (1.0,), ()), "midpoint": ((0.5,), (0.0, 1.0), ((0.5,),)),
                 "rk4": ((0.5, 0.5, 1.0), (1 / 6, 1 / 3, 1 / 3, 1 / 6), ((0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)))}
IntervalStep = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _increment(y: torch.Tensor, weights: tuple[float, ...], k: list[torch.Tensor], h: torch.Tensor) -> torch.Tensor:
    """``y + h * sum(w * k)`` as one fused multiply-add per nonzero weight (no host read of ``h``)."""
    for w, kj in zip(weights, k):
        if w:
            y = torch.addcmul(y, kj, h, value=w)
    return y


def fixed_steps(f: BatchField, t: torch.Tensor, y: torch.Tensor, h: torch.Tensor, substeps: int,
                method: str = "rk4") -> torch.Tensor:
    """``substeps`` explicit Runge-Kutta steps of size ``h`` from ``(t, y)``: one output interval of
    :func:`fixed_step_solve`, and the unit that continuous-time learners compile.

    Arguments:
        f: vector field ``f(t, y)`` with ``t`` a scalar tensor and ``y`` (batch, dim).
        t, h: start time and step size, scalar tensors.
        y: states (batch, dim).
        substeps: number of steps.
        method: a key of ``FUSED_METHODS`` (``"euler"``, ``"midpoint"``, ``"rk4"``).

    Returns:
        The states at ``t + substeps * h``, shape of ``y``.
    """
    c, b, a = FUSED_METHODS[method]
    for _ in range(substeps):
        k = [f(t, y)]
        for ci, row in zip(c, a):
            k.append(f(torch.add(t, h, alpha=ci), _increment(y, row, k, h)))
        y = _increment(y, b, k, h)
        t = t + h
    return y


def fixed_step_solve(f: BatchField, y0: torch.Tensor, times: torch.Tensor, substeps: int,
                     method: str = "rk4", interval: Optional[IntervalStep] = None) -> torch.Tensor:
    """Explicit fixed-step Runge-Kutta (Euler, midpoint, classic RK4) with ``substeps`` equal steps
    between consecutive output times; differentiable, no step control, no interpolation.

    The training windows of continuous-time learners use it: without the bookkeeping of a
    general solver, the stage updates are the whole per-step cost (Hairer, Norsett & Wanner,
    Solving ODEs I, sec. II.1). Step sizes stay tensors, so a solve reads nothing back from the
    device, and each stage update is one ``addcmul``.

    Arguments:
        f: vector field ``f(t, y)`` with ``t`` a scalar tensor and ``y`` (batch, dim).
        y0: initial states (batch, dim).
        times: output times (T,), increasing.
        substeps: steps per output interval.
        method: ``"euler"``, ``"midpoint"`` or ``"rk4"``.
        interval: ``(t, y, h) -> y`` doing :func:`fixed_steps` of ``f`` for one output interval, in
            its place; e.g. a ``torch.compile``-d one. ``None`` runs :func:`fixed_steps` eagerly.

    Returns:
        States at ``times``, shape (T, batch, dim) (torchdiffeq's layout).
    """
    step = interval or (lambda t, y, h: fixed_steps(f, t, y, h, substeps, method))
    h = (times[1:] - times[:-1]) / substeps
    out = [y0]
    for i in range(len(times) - 1):
        out.append(step(times[i], out[-1], h[i]))
    return torch.stack(out)

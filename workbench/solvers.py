"""Batched ODE integration with per-trajectory step-size control.

torchdiffeq takes one step size for the whole batch and measures error by an RMS over every
component, so single trajectories drift past the tolerance. Here each trajectory keeps its own
time, step size and accept/reject decision inside one vectorised loop (the approach of diffrax's
``vmap``); outputs are read off each step's continuous extension of the method's own order.

Tableaux are scipy's (``scipy.integrate.DOP853`` / ``RK45`` class attributes); the error norms and
the step-size controller follow Hairer, Norsett & Wanner, *Solving ODEs I*, Sec. II.4 and II.10.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

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

    def tensors(self, dtype: torch.dtype, device: torch.device) -> dict[str, Optional[torch.Tensor]]:
        """Every coefficient array as a tensor, converted once per solve rather than once per step."""
        names = ("a", "b", "c", "e_high", "e_low", "dense_p", "extra_a", "dense_d")
        return {name: None if getattr(self, name) is None else
                torch.as_tensor(getattr(self, name), dtype=dtype, device=device) for name in names}


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


def _dense_output(tab: Tableau, coef: dict[str, Optional[torch.Tensor]], f: "BatchField", k: torch.Tensor,
                  t_old: torch.Tensor, h: torch.Tensor, y_old: torch.Tensor,
                  y_new: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """Continuous extension on ``[t_old, t_old + h]`` as a function of ``x = (t - t_old) / h``.

    The returned function takes ``x`` of shape ``(batch, m)`` and returns ``(batch, m, dim)``.

    DOP853: the 7th-order interpolant of Hairer et al. (three extra stages, scipy's coefficients);
    dopri5: the 4th-order interpolant of Dormand & Prince (Shampine 1986), as in scipy's RK45.
    """
    hb = h[:, None]
    flat = k.reshape(k.shape[0], -1)
    if coef["dense_p"] is not None:
        p = coef["dense_p"]
        q = (p.T @ flat[: p.shape[0]]).reshape(p.shape[1], *k.shape[1:])

        def at(x: torch.Tensor) -> torch.Tensor:
            xb = x[..., None]
            poly = xb * (q[0, :, None] + xb * (q[1, :, None] + xb * (q[2, :, None] + xb * q[3, :, None])))
            return y_old[:, None] + hb[:, None] * poly
        return at
    stages = torch.cat([k, torch.empty(tab.extra_stages, *k.shape[1:], dtype=k.dtype, device=k.device)])
    flat = stages.reshape(stages.shape[0], -1)
    for i, c in enumerate(tab.extra_c):
        s = k.shape[0] + i
        dy = (coef["extra_a"][i, :s] @ flat[:s]).reshape(k.shape[1:])
        stages[s] = f(t_old + c * h, y_old + hb * dy)
    delta = y_new - y_old
    f_old, f_new = stages[0], stages[len(tab.b)]
    coeffs = [delta, hb * f_old - delta, 2 * delta - hb * (f_new + f_old)]
    coeffs += [hb * row for row in (coef["dense_d"] @ flat).reshape(-1, *k.shape[1:])]

    def at(x: torch.Tensor) -> torch.Tensor:
        xb = x[..., None]
        y = torch.zeros(1, dtype=k.dtype, device=k.device)
        for i, coeff in enumerate(reversed(coeffs)):
            y = (y + coeff[:, None]) * (xb if i % 2 == 0 else 1 - xb)
        return y + y_old[:, None]
    return at


@dataclass
class SolveStats:
    """What one batched solve cost: steps and function evaluations of the hardest trajectory."""

    iterations: int = 0
    nfe: int = 0
    rejected: int = 0


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


def _error_norm(flat: torch.Tensor, e_high: torch.Tensor, e_low: Optional[torch.Tensor], h: torch.Tensor,
                scale: torch.Tensor) -> torch.Tensor:
    """Per-row scaled error; ``flat`` is (stages + 1, batch * dim) including the FSAL stage."""
    err_high = (e_high @ flat).view_as(scale) / scale
    if e_low is None:
        return h * _rms(err_high)
    err_low = (e_low @ flat).view_as(scale) / scale
    high2, low2 = err_high.pow(2).sum(-1), err_low.pow(2).sum(-1)
    denom = (high2 + 0.01 * low2).clamp_min(1e-300)
    return torch.where(high2 == 0, torch.zeros_like(h), h * high2 / (denom * scale.shape[-1]).sqrt())


def integrate_batch(f: BatchField, y0: torch.Tensor, times: torch.Tensor, *, method: str = "dop853",
                    rtol: float = 1e-10, atol: float = 1e-10, max_steps: int = 1_000_000,
                    bound: float = float("inf"), progress: Optional[Callable[[float], None]] = None,
                    ) -> tuple[torch.Tensor, SolveStats]:
    """Integrate ``dy/dt = f(t, y)`` for a batch of initial states, each with its own step size.

    Arguments:
        f: vector field ``f(t, y)``; ``t`` has shape ``(batch,)``, ``y`` shape ``(batch, dim)``.
        y0: initial states, shape ``(batch, dim)``.
        times: increasing output times, shape ``(T,)``; ``times[0]`` is the initial time.
        method: ``"dop853"`` (8th order, 7th-order dense output; default) or ``"dopri5"``.
        rtol, atol: per-trajectory tolerances on each component (mixed error test).
        max_steps: step budget per trajectory; exceeding it raises :class:`SolverStallError`.
        bound: a trajectory whose state exceeds this in absolute value raises :class:`DivergenceError`.
        progress: called with the fraction of the time span the slowest trajectory has covered.

    Returns:
        ``(states, stats)`` with ``states`` of shape ``(batch, T, dim)``, read off each step's
        continuous extension at ``times``.

    Errors carry the offending row in their ``row`` attribute.
    """
    if method not in TABLEAUX:
        raise BadParameterError(f"unknown batched method {method!r}; use one of {sorted(TABLEAUX)}")
    tab = TABLEAUX[method]
    dtype, device = y0.dtype, y0.device
    outside = ~torch.isfinite(y0).all(-1) | (y0.abs() > bound).any(-1)
    if bool(outside.any()):  # fail at once: such a row would be rejected until its step underflows
        row = int(outside.nonzero()[0, 0])
        raise _row_error(DivergenceError, row, f"the initial state is non-finite or beyond the divergence bound {bound:g}")
    n, n_out = y0.shape[0], times.shape[0]
    coef = tab.tensors(dtype, device)
    a, b, c, e_high, e_low = coef["a"], coef["b"], coef["c"], coef["e_high"], coef["e_low"]
    stages = len(tab.b)
    out = torch.empty(n, n_out, y0.shape[1], dtype=dtype, device=device)
    out[:, 0] = y0
    stats = SolveStats()
    if n_out == 1:
        return out, stats

    t_final = times[-1]
    t = times[0].expand(n).clone()
    y = y0.clone()
    next_out = torch.ones(n, dtype=torch.long, device=device)
    fy = f(t, y)
    stats.nfe += 2
    h = _initial_step(f, t, y, fy, tab.order, rtol, atol)
    steps = torch.zeros(n, dtype=torch.long, device=device)
    span = float(t_final - times[0])
    eps = torch.finfo(dtype).eps
    k = torch.empty(stages + 1, n, y0.shape[1], dtype=dtype, device=device)
    flat = k.view(stages + 1, -1)
    rows = torch.arange(n, device=device)
    while True:
        active = next_out < n_out
        if not bool(active.any()):
            break
        h_step = torch.where(active, torch.minimum(h, t_final - t), torch.zeros_like(h))
        hb = h_step[:, None]
        k[0] = fy
        for s in range(1, stages):
            k[s] = f(t + c[s] * h_step, y + hb * (a[s, :s] @ flat[:s]).view_as(y))
        y_new = y + hb * (b @ flat[:stages]).view_as(y)
        f_new = f(t + h_step, y_new)
        k[stages] = f_new
        stats.nfe += stages
        scale = atol + torch.maximum(y.abs(), y_new.abs()) * rtol
        err = _error_norm(flat, e_high, e_low, h_step, scale)
        finite = torch.isfinite(err) & torch.isfinite(y_new).all(-1)
        accept = active & finite & (err <= 1.0)
        factor = torch.where(err == 0, torch.full_like(err, MAX_FACTOR),
                             SAFETY * err.clamp_min(1e-300) ** (-1.0 / (tab.error_order + 1)))
        factor = torch.where(finite, factor.clamp(MIN_FACTOR, MAX_FACTOR), torch.full_like(factor, MIN_FACTOR))
        # after a rejection the step must not grow (Hairer et al. II.4)
        factor = torch.where(accept, factor, factor.clamp(max=1.0))
        h = torch.where(active, h_step * factor, h)
        t_new = torch.where(h_step >= t_final - t, t_final, t + h_step)
        count = torch.where(accept, torch.searchsorted(times, t_new, right=True) - next_out, 0)
        most = int(count.max())
        if most > 0:
            interpolate = _dense_output(tab, coef, f, k, t, h_step, y, y_new)
            stats.nfe += tab.extra_stages
            offsets = torch.arange(most, device=device)
            index = (next_out[:, None] + offsets).clamp(max=n_out - 1)
            wanted = offsets < count[:, None]
            x = (times[index] - t[:, None]) / torch.where(h_step > 0, h_step, 1.0)[:, None]
            out[rows[:, None].expand_as(index)[wanted], index[wanted]] = interpolate(x)[wanted]
            next_out = next_out + count
        t = torch.where(accept, t_new, t)
        y = torch.where(accept[:, None], y_new, y)
        fy = torch.where(accept[:, None], f_new, fy)
        steps = steps + active.long()
        stats.iterations += 1
        stats.rejected += int((active & ~accept).sum())
        too_big = accept & (y.abs() > bound).any(-1)
        if bool(too_big.any()):
            row = int(too_big.nonzero()[0, 0])
            raise _row_error(DivergenceError, row, f"|state| exceeded the divergence bound {bound:g} at t={float(t[row]):.6g}")
        tiny = active & (h_step.abs() <= 10 * eps * t.abs().clamp_min(1.0))
        if bool(tiny.any()):
            row = int(tiny.nonzero()[0, 0])
            raise _row_error(SolverStallError, row, f"step size underflowed at t={float(t[row]):.6g} "
                                                    "(the solution may blow up or the problem may be stiff)")
        if bool((steps > max_steps).any()):
            row = int((steps > max_steps).nonzero()[0, 0])
            raise _row_error(SolverStallError, row, f"exceeded the budget of {max_steps} steps at t={float(t[row]):.6g}")
        if progress is not None and stats.iterations % 50 == 0:
            progress(float((t[active] - times[0]).min()) / span)
    if progress is not None:
        progress(1.0)
    return out, stats


def _row_error(cls: type, row: int, message: str) -> Exception:
    return cls(message, row=row)


FUSED_METHODS = {"euler": ((), (1.0,), ()), "midpoint": ((0.5,), (0.0, 1.0), ((0.5,),)),
                 "rk4": ((0.5, 0.5, 1.0), (1 / 6, 1 / 3, 1 / 3, 1 / 6), ((0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)))}


def fixed_step_solve(f: BatchField, y0: torch.Tensor, times: torch.Tensor, substeps: int,
                     method: str = "rk4") -> torch.Tensor:
    """Explicit fixed-step Runge-Kutta (Euler, midpoint, classic RK4) with ``substeps`` equal steps
    between consecutive output times; differentiable, no step control, no interpolation.

    The training windows of continuous-time learners use it: without the bookkeeping of a
    general solver, the stage updates are the whole per-step cost (Hairer, Norsett & Wanner,
    Solving ODEs I, sec. II.1).

    Arguments:
        f: vector field ``f(t, y)`` with ``t`` a scalar tensor and ``y`` (batch, dim).
        y0: initial states (batch, dim).
        times: output times (T,), increasing.
        substeps: steps per output interval.
        method: ``"euler"``, ``"midpoint"`` or ``"rk4"``.

    Returns:
        States at ``times``, shape (T, batch, dim) (torchdiffeq's layout).
    """
    c, b, a = FUSED_METHODS[method]
    out, y = [y0], y0
    for i in range(len(times) - 1):
        h = (times[i + 1] - times[i]) / substeps
        t = times[i]
        for _ in range(substeps):
            k = [f(t, y)]
            for ci, row in zip(c, a):
                k.append(f(t + ci * h, y + h * sum(w * kj for w, kj in zip(row, k) if w)))
            y = y + h * sum(w * kj for w, kj in zip(b, k) if w)
            t = t + h
        out.append(y)
    return torch.stack(out)

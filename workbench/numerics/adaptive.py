"""Batched ODE integration with per-trajectory step-size control.

torchdiffeq takes one step size for the whole batch and measures error by an RMS over every
component, so single trajectories drift past the tolerance. Here each trajectory keeps its own
time, step size and accept/reject decision inside one vectorised loop (the approach of diffrax's
``vmap``); outputs are read off each step's continuous extension of the method's own order.

The tableaux are in :mod:`workbench.numerics.tableaux`; the error norms and the step-size
controller follow Hairer, Norsett & Wanner, *Solving ODEs I*, Sec. II.4 and II.10.
"""
from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import torch

from ..errors import BadParameterError, DivergenceError, SolverStallError
from .fixed import BatchField
from .tableaux import TABLEAUX, Tableau, dense_rows, with_state

SAFETY, MIN_FACTOR, MAX_FACTOR = 0.9, 0.2, 10.0


# Packed per-row solver state, one tensor (batch, 7 + 2 dim): a compiled step then has few inputs
# to check, and eager and compiled steps share one layout. Columns: time, step size, index of the
# next output time, steps taken, steps rejected, accepted steps that looked stiff (since the last
# calm spell), consecutive accepted steps that did not, the state y, and f(t, y) (first-same-as-last).
_T, _H, _NEXT, _STEPS, _REJECTED, _STIFF, _CALM, _Y = range(8)
# Dense outputs read per step at most; a step is shortened so it passes no more output times than
# this, which keeps every tensor's shape fixed (a compiled step needs that).
OUTPUTS_PER_STEP = 16
# Row status after a step, reduced with max() into one host synchronisation per step. A row's status
# is its highest condition in this order (a divergence overrides a stiffness refusal, ...).
_DONE, _RUNNING, _UNDERFLOW, _OVER_BUDGET, _STIFF_ROW, _DIVERGED = range(6)
# which failure is reported when rows fail in different ways on the same step
_REPORTED_FIRST = (_STIFF_ROW, _OVER_BUDGET, _UNDERFLOW, _DIVERGED)
# Stiffness test of Hairer's DOP853/DOPRI5 codes (Hairer & Wanner, Solving ODEs II, Sec. IV.2):
# |h lambda| estimated from the two last stages beyond the method's stability boundary on this many
# consecutive accepted steps means the step size is held by stability, not accuracy.
STIFF_STEPS = 15
# ... and, as there, only this many consecutive accepted steps within the boundary reset the count
# (single steps after a rejection often fall inside it while the problem stays stiff)
CALM_STEPS = 6
# A stiff row is refused once it has taken this many steps: a short stiff solve still finishes, a
# long one (Robertson, Lotka-Volterra from a negative state) would take minutes of tiny steps.
STIFF_MIN_STEPS = 1000
# The "auto" compile rule, decided before the first step from the problem's size: compile where
# trajectories x dimension x expected steps reach this. An eager step pays a fixed cost per step (its
# thousand-odd small torch operations) plus a part that grows with trajectories x variables; a
# compiled step fuses them into one kernel call, but compiling takes tens of seconds once per process
# (several times that with an empty inductor cache). The threshold sits where the eager work saved
# is about as large as one cold compile, so "auto" compiles only problems big enough that it cannot
# lose much; benchmarks/bench_generate.py measures both sides and the README keeps the numbers.
COMPILE_MIN_WORK = 1e8
# WORKBENCH_COMPILE=0 never compiles (compile=True included); =1 compiles wherever compile=None
COMPILE_ENV = "WORKBENCH_COMPILE"
_log = logging.getLogger(__name__)


class _Weights:
    """Rows of Butcher coefficients over the stage rows ``[y, h k_0, h k_1, ...]`` (see :class:`_Stages`),
    as Python floats (a compiled step's constants) and as a (rows, length) tensor (an eager step's
    matrix product); trailing columns that are zero in every row are left off."""

    def __init__(self, rows: np.ndarray, dtype: torch.dtype, device: torch.device):
        rows = np.atleast_2d(np.asarray(rows, dtype=float))
        nonzero = np.flatnonzero(np.any(rows != 0, axis=0))
        self.length = 0 if len(nonzero) == 0 else int(nonzero[-1]) + 1
        self.values = tuple(tuple(float(v) for v in row[: self.length]) for row in rows)
        self.tensor = torch.as_tensor(rows[:, : self.length], dtype=dtype, device=device)


class _StageBuffer:
    """An eager solve's stage rows, allocated once: (capacity, batch, dim), with the row views and
    the flattened prefixes that :meth:`_Stages.combine` multiplies precomputed (no slicing per step),
    and one slot per stage for the stage states, which the matrix products write into directly."""

    def __init__(self, capacity: int, like: torch.Tensor):
        self.rows = like.new_empty(capacity, *like.shape)
        self.row = list(self.rows.unbind(0))
        flat = self.rows.view(capacity, -1)
        self.prefix = [flat[:length] for length in range(capacity + 1)]
        states = like.new_empty(capacity, *like.shape)
        self.state = list(states.unbind(0))
        self.state_flat = list(states.view(capacity, 1, -1).unbind(0))


class _Stages:
    """The stage rows of one step, ``[y, h k_0, h k_1, ...]``, and their weighted sums.

    With ``y`` as row 0 and each derivative scaled by the row's step, every stage state, the new
    state, the error estimates, the stiffness test's differences and all dense-output coefficients
    are fixed linear combinations of the rows: eager mode keeps them in a :class:`_StageBuffer` and
    takes each set of combinations as one matrix product; a compiled step keeps a list and sums
    scalar-weighted terms, which the compiler fuses into one loop (matrix products there became
    library calls that cost more than the arithmetic).
    """

    def __init__(self, y: torch.Tensor, buffer: Optional[_StageBuffer]):
        self.buffer = buffer
        self.items = [y if buffer is None else buffer.row[0].copy_(y)]

    def append(self, h: torch.Tensor, k: torch.Tensor) -> None:
        """Add the stage derivative ``k`` (batch, dim), scaled by the per-row step ``h`` (batch, 1)."""
        if self.buffer is None:
            self.items.append(h * k)
        else:
            self.items.append(torch.mul(h, k, out=self.buffer.row[len(self.items)]))

    def combine(self, w: _Weights) -> torch.Tensor:
        """``sum_j w_j row_j`` for a one-row ``w``: (batch, dim), the state of the next stage (eager:
        written into that stage's slot, valid until the next step)."""
        if self.buffer is not None:
            slot = len(self.items)
            torch.mm(w.tensor, self.buffer.prefix[w.length], out=self.buffer.state_flat[slot])
            return self.buffer.state[slot]
        return self.combine_rows(w)[0]

    def combine_rows(self, w: _Weights) -> torch.Tensor:
        """``sum_j w_ij row_j`` for every row ``i`` of ``w``: (rows, batch, dim)."""
        first = self.items[0]
        if self.buffer is not None:
            return torch.mm(w.tensor, self.buffer.prefix[w.length]).view(-1, *first.shape)
        sums = []
        for row in w.values:
            total = torch.zeros_like(first)
            for value, term in zip(row, self.items):
                if value != 0.0:
                    total = total + value * term
            sums.append(total)
        return torch.stack(sums)


class _Method:
    """A tableau's coefficients as :class:`_Weights` over the stage rows, and the step's other
    constants, built once per solve."""

    def __init__(self, tab: Tableau, dim: int, dtype: torch.dtype, device: torch.device):
        def weights(rows: Optional[np.ndarray]) -> _Weights:
            return _Weights(rows, dtype, device)

        self.tab = tab
        # plain Python numbers: read inside a compiled step, tableau arrays would become graph inputs
        self.stages, self.extra_stages = len(tab.b), tab.extra_stages
        # stage s's state y + sum_j a_sj h k_j, and the new state y + sum_j b_j h k_j
        self.a = [None] + [weights(with_state(np.asarray(tab.a[s][:s]), 1.0)) for s in range(1, self.stages)]
        self.b = weights(with_state(tab.b, 1.0))
        self.extra_a = [weights(with_state(row, 1.0)) for row in ([] if tab.extra_a is None else tab.extra_a)]
        # the times of the stages, the first-same-as-last stage (t + h) and DOP853's extra stages
        self.c = tuple(float(v) for v in tab.c) + (1.0,) + (() if tab.extra_c is None else
                                                             tuple(float(v) for v in tab.extra_c))
        self.c_tensor = torch.as_tensor(self.c, dtype=dtype, device=device)
        self.stability = tab.stability
        self.two_errors = tab.e_low is not None
        self.checks = weights(_check_rows(tab, dim))
        self.dense = weights(_dense_rows_with_state(tab))
        # y(t + x h) = sum_i Q_i B_i(x), B_i the product of the first i + 1 factors a_i + b_i x:
        # 1, then x, 1 - x, x, ... (DOP853's alternating nesting) or x, x, ... (dopri5's powers)
        terms = self.dense.tensor.shape[0]
        one_minus = [tab.dense_p is None and i % 2 == 1 for i in range(terms - 1)]
        self.factor_a = torch.as_tensor([1.0] + [float(o) for o in one_minus], dtype=dtype, device=device)
        self.factor_b = torch.as_tensor([0.0] + [-1.0 if o else 1.0 for o in one_minus], dtype=dtype, device=device)
        self.slots = torch.arange(OUTPUTS_PER_STEP, device=device)
        self.ones = torch.ones(dim, dtype=dtype, device=device)
        self.ranks = torch.arange(_RUNNING, _DIVERGED + 1, device=device)[:, None]


def _check_rows(tab: Tableau, dim: int) -> np.ndarray:
    """The rows over ``[y, h k_0, ..., h k_last]`` (the last the first-same-as-last stage) whose
    sums every step's control needs, taken as one product: the error estimates, scaled so that
    their squared sums are Hairer's norms without further arithmetic (by ``1/sqrt(dim)``, DOP853's
    3rd-order estimate also by 0.1, its weight 0.01 in the norm squared), then ``y_new - y_last``
    and ``h f(y_new) - h f(y_last)``, the states and scaled derivatives of the two last stages
    taken at ``t + h``, whose ratio is the stiffness test's ``h |lambda|``."""
    stages = len(tab.b)
    width = stages + 2
    errors = [tab.e_high] + ([] if tab.e_low is None else [0.1 * np.asarray(tab.e_low)])
    errors = with_state(np.vstack(errors), 0.0) / np.sqrt(dim)
    last = max(i for i in range(1, stages) if tab.c[i] == 1.0)
    spread, slope = np.zeros(width), np.zeros(width)
    spread[:stages + 1] += with_state(tab.b, 1.0)[0]
    spread[:last + 1] -= with_state(np.asarray(tab.a[last][:last]), 1.0)[0]
    slope[stages + 1], slope[last + 1] = 1.0, -1.0
    return np.vstack([np.pad(errors, ((0, 0), (0, width - errors.shape[1]))), spread, slope])


def _dense_rows_with_state(tab: Tableau) -> np.ndarray:
    """The continuous extension's coefficients (:func:`dense_rows`) over the stage rows, after a
    first row that is ``y`` itself: the interpolant is then one product of factors and rows."""
    rows = with_state(dense_rows(tab), 0.0)
    first = np.zeros((1, rows.shape[1]))
    first[0, 0] = 1.0
    return np.vstack([first, rows])


def _dense_coefficients(m: _Method, f: Callable[..., torch.Tensor], args: tuple, k: _Stages,
                        t_stage: list, hb: torch.Tensor) -> torch.Tensor:
    """Coefficients ``Q`` of the continuous extension on ``[t, t + h]``: (terms, batch, dim); DOP853's
    extra stages are evaluated here, so only for steps that pass an output time."""
    for i, row in enumerate(m.extra_a):
        k.append(hb, f(t_stage[m.stages + 1 + i], k.combine(row), *args))
    return k.combine_rows(m.dense)


def _interpolate(m: _Method, coeffs: torch.Tensor, x: torch.Tensor, eager: bool) -> torch.Tensor:
    """The continuous extension ``sum_i Q_i B_i(x)`` at step fractions ``x`` (batch, m), from
    coefficients (terms, batch, dim): (batch, m, dim). ``B_i`` is the product of the first ``i + 1``
    factors of ``1, x, 1 - x, x, ...`` (DOP853's alternating nesting; ``Q_0 = y``) or ``1, x, x, ...``
    (dopri5's polynomial)."""
    basis = torch.addcmul(m.factor_a, x[..., None], m.factor_b).cumprod(-1)
    if eager:
        return torch.bmm(basis, coeffs.transpose(0, 1))
    # compiled: products and sums the compiler fuses (see _Stages)
    return (basis[..., None] * coeffs.transpose(0, 1)[:, None]).sum(2)


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


def _make_step(f: Callable[..., torch.Tensor], m: _Method, dim: int,
               differentiable: bool = False) -> Callable[..., tuple[torch.Tensor, ...]]:
    """One step of every row: ``step(state, times, limits, args) -> (state, values, where, status)``.

    An eager step writes its stages into one buffer kept across steps, which would cut autograd's
    graph: ``differentiable=True`` (a field or state that requires grad) builds fresh tensors instead.

    ``limits`` is ``[rtol, atol, bound, max_steps, stiff_min_steps]`` (a tensor, so new tolerances
    need no new compilation; ``inf`` turns the stiffness refusal off); ``values`` are the dense
    outputs the step passed and ``where`` their flat positions in the (batch * T) output rows:
    eager, (passed, 1, dim) and (passed,); compiled, (batch, OUTPUTS_PER_STEP, dim) and (batch,
    OUTPUTS_PER_STEP) with batch * T (a spare row) for the slots no output fell in; ``status`` is
    each row's ``_DONE`` ... ``_DIVERGED``.
    """
    capacity = 1 + m.stages + 1 + m.extra_stages  # y, the stages, the FSAL stage, DOP853's extra stages
    buffers: dict[int, _StageBuffer] = {}  # eager: one per batch size, reused by every step

    def step(state: torch.Tensor, times: torch.Tensor, limits: torch.Tensor,
             args: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        n, n_out = state.shape[0], times.shape[0]
        eager = not torch.compiler.is_compiling()
        rtol, atol, bound, max_steps, stiff_min = limits.unbind()
        t, h, next_at, steps, rejections, stiff, calm = state[:, :_Y].unbind(1)
        next_out = next_at.long()
        y, fy = state[:, _Y:_Y + dim], state[:, _Y + dim:]
        stop = times[(next_out + (OUTPUTS_PER_STEP - 1)).clamp(max=n_out - 1)]
        # a running row lies before its next output time (gap > 0); a finished one at or past its
        # last (gap <= 0), where its step is zero
        gap = stop - t
        active = gap > 0
        h_step = torch.minimum(h, gap).clamp_min(0.0)
        reuse = eager and not differentiable
        if reuse and n not in buffers:
            buffers[n] = _StageBuffer(capacity, y)
        k = _Stages(y, buffers[n] if reuse else None)
        hb = h_step[:, None]
        k.append(hb, fy)
        # every stage's time at once in an eager step (one operation instead of two per stage)
        t_stage = torch.addcmul(t[:, None], hb, m.c_tensor).unbind(1) if eager else [t + c * h_step for c in m.c]
        y_new, f_new = _take_stages(f, m, args, k, t_stage, hb)
        accept, factor, looks_stiff, y_max = _step_control(m, k, y, y_new, rtol, atol, active, eager)
        t_new = torch.where(h_step >= gap, stop, t + h_step)
        next_new = torch.where(accept, torch.searchsorted(times, t_new, right=True), next_out)
        values, where = _dense_outputs(f, m, args, k, t_stage, t, h_step, next_out, next_new - next_out, times,
                                       eager)
        steps = steps + active
        rejected = active ^ accept  # accept implies active
        stiff, calm = _stiff_counts(stiff, calm, accept, looks_stiff)
        h_next = torch.where(active, h_step * factor, h)
        status = _row_status(m, t, h_next, next_new < n_out, active, rejected, steps, stiff,
                             accept & (y_max > bound), max_steps, stiff_min)
        control = torch.stack([torch.where(accept, t_new, t), h_next, next_new.to(state.dtype), steps,
                               rejections + rejected, stiff, calm], 1)
        new_state = torch.cat([control, torch.where(accept[:, None], torch.cat([y_new, f_new], 1), state[:, _Y:])], 1)
        return new_state, values, where, status

    return step


def _take_stages(f: Callable[..., torch.Tensor], m: _Method, args: tuple, k: _Stages, t_stage: list,
                 hb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The step's stages after ``h f(t, y)`` into ``k``, the FSAL stage last.

    Returns:
        ``(y_new, f_new)``: the new state and the field there.
    """
    for s in range(1, m.stages):
        k.append(hb, f(t_stage[s], k.combine(m.a[s]), *args))
    y_new = k.combine(m.b)
    f_new = f(t_stage[m.stages], y_new, *args)
    k.append(hb, f_new)
    return y_new, f_new


def _squared_norms(m: _Method, x: torch.Tensor, eager: bool) -> torch.Tensor:
    """``sum(x^2)`` over the last (state) dimension. Eager, as a product with ones: torch's CPU
    reduction over a short last dimension is slow (4,096 x 3 values: 255 us against 29 us)."""
    return x.square() @ m.ones if eager else x.square().sum(-1)


def _step_control(m: _Method, k: _Stages, y: torch.Tensor, y_new: torch.Tensor, rtol: torch.Tensor,
                  atol: torch.Tensor, active: torch.Tensor, eager: bool) -> tuple[torch.Tensor, ...]:
    """Accept or reject each row's step by its error estimate, the factor for its next step size
    (Hairer et al., Sec. II.4), and the stiffness test (Hairer & Wanner, Sec. IV.2), from one
    product of the stage rows (see :func:`_check_rows`).

    Returns:
        ``(accept, factor, looks_stiff, y_max)``, each (batch,): ``looks_stiff`` where ``h |lambda|``
        lies beyond the method's stability boundary, ``y_max`` the new state's largest magnitude.
    """
    y_abs = y_new.abs()
    scale = torch.addcmul(atol, torch.maximum(y.abs(), y_abs), rtol)
    checks = k.combine_rows(m.checks)
    checks[:-2].div_(scale)  # the error estimates only (a fresh tensor: in place saves a copy)
    norms = _squared_norms(m, checks, eager).unbind()
    spread, slope = norms[-2:]
    if m.two_errors:
        # DOP853's norm |e5|^2 / sqrt(|e5|^2 + 0.01 |e3|^2) (Hairer's code), zero where e5 is (the
        # floor keeps 0 / 0 away in float32 too)
        high, low = norms[0], norms[1]
        err = high / (high + low).clamp_min(torch.finfo(high.dtype).tiny).sqrt()
    else:
        err = norms[0].sqrt()
    y_max = y_abs.amax(-1)
    # a non-finite new state (times 0: NaN) or estimate counts as an infinite error: rejected, and
    # the next step as short as allowed
    err = (err + y_max * 0.0).nan_to_num(nan=float("inf"), posinf=float("inf"))
    accept = active & (err <= 1.0)
    # a zero error gives MAX_FACTOR through the clamp (its power is infinite), an infinite one MIN_FACTOR
    factor = (SAFETY * err ** (-1.0 / (m.tab.error_order + 1))).clamp(MIN_FACTOR, MAX_FACTOR)
    factor = torch.where(accept, factor, factor.clamp(max=1.0))  # no growth after a rejection (II.4)
    looks_stiff = (spread > 0) & (slope > m.stability ** 2 * spread.clamp_min(1e-300))
    return accept, factor, looks_stiff, y_max


def _dense_outputs(f: Callable[..., torch.Tensor], m: _Method, args: tuple, k: _Stages, t_stage: list,
                   t: torch.Tensor, h_step: torch.Tensor, next_out: torch.Tensor, count: torch.Tensor,
                   times: torch.Tensor, eager: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The outputs each row's step passed (``count`` of them from ``next_out``), read off the
    continuous extension: ``(values, where)`` as :func:`_make_step` describes them."""
    n, n_out = t.shape[0], times.shape[0]
    passed = m.slots < count[:, None]
    if eager:
        # only the (row, output) pairs the step passed: one to three of a row's outputs on most
        # steps, and on a step that passes none no dense output (DOP853: 3 evaluations saved)
        # (index_select: a third of advanced indexing's time for a few thousand rows)
        rows, column = passed.nonzero().unbind(1)
        index = next_out.index_select(0, rows) + column
        where = rows * n_out + index
        # a row that passed an output has h > 0
        x = ((times.index_select(0, index) - t.index_select(0, rows)) / h_step.index_select(0, rows))[:, None]
    else:
        # compiled: fixed shapes, every row's OUTPUTS_PER_STEP slots, the unused ones to the spare row
        rows = torch.arange(n, device=t.device)[:, None]
        index = (next_out[:, None] + m.slots).clamp(max=n_out - 1)
        where = torch.where(passed, rows * n_out + index, n * n_out)
        x = (times[index] - t[:, None]) / torch.where(h_step > 0, h_step, 1.0)[:, None]
    if not where.numel():
        return t.new_empty(0, 1, k.items[0].shape[1]), where
    coeffs = _dense_coefficients(m, f, args, k, t_stage, h_step[:, None])
    return _interpolate(m, coeffs.index_select(1, rows) if eager else coeffs, x, eager), where


def _stiff_counts(stiff: torch.Tensor, calm: torch.Tensor, accept: torch.Tensor,
                  looks_stiff: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The stiff and calm step counts after this step from those before: ``(stiff, calm)``;
    ``CALM_STEPS`` calm steps in a row reset the stiff count, one stiff step resets the calm count."""
    stiff_step = accept & looks_stiff
    calm = (calm + (accept ^ stiff_step)).masked_fill(stiff_step, 0.0)
    stiff = (stiff + stiff_step).masked_fill(calm >= CALM_STEPS, 0.0)
    return stiff, calm


def _row_status(m: _Method, t: torch.Tensor, h_next: torch.Tensor, running: torch.Tensor, active: torch.Tensor,
                rejected: torch.Tensor, steps: torch.Tensor, stiff: torch.Tensor, diverged: torch.Tensor,
                max_steps: torch.Tensor, stiff_min: torch.Tensor) -> torch.Tensor:
    """Each row's ``_DONE`` ... ``_DIVERGED`` after this step: its highest condition."""
    # only a rejected step can underflow: an accepted tiny step (a zero field's first, in float32) just grows
    underflow = rejected & (h_next <= 10 * torch.finfo(t.dtype).eps * t.abs().clamp_min(1.0))
    stiff_row = active & (stiff >= STIFF_STEPS) & (steps >= stiff_min)
    conditions = torch.stack([running, underflow, steps > max_steps, stiff_row, diverged])
    return (conditions * m.ranks).amax(0)


_COMPILED: dict[tuple, Optional[Callable[..., tuple[torch.Tensor, ...]]]] = {}


def _compiler_errors() -> tuple[type, ...]:
    """What torch.compile raises when it, not the vector field, fails (imported late: inductor is heavy)."""
    from torch._inductor.exc import CppCompileError, InvalidCxxCompiler

    return torch._dynamo.exc.TorchDynamoException, InvalidCxxCompiler, CppCompileError


def compile_setting(compile: Optional[bool]) -> Optional[bool]:
    """``compile`` after the ``WORKBENCH_COMPILE`` environment variable: ``0`` turns every compile
    off (``compile=True`` included), ``1`` makes ``None`` mean ``True``; unset leaves ``compile``.

    Raises:
        BadParameterError: ``WORKBENCH_COMPILE`` set to anything but 0 or 1.
    """
    raw = os.environ.get(COMPILE_ENV, "").strip()
    if not raw:
        return compile
    if raw not in ("0", "1"):
        raise BadParameterError(f"{COMPILE_ENV}={raw!r} is not understood", fix=(
            f"set {COMPILE_ENV}=0 to never compile solver steps, =1 to always, or unset it to decide by size"))
    return False if raw == "0" else (True if compile is None else compile)


def should_compile(n: int, dim: int, expected_steps: float, compile: Optional[bool], compiled_before: bool) -> bool:
    """Whether a solve runs its step through ``torch.compile``, decided before the first step.

    A pure function of the problem's size: never of wall-clock time, which on a busy machine turned
    a 2.7 s solve into 712 s by starting a compile halfway.

    Arguments:
        n, dim: trajectories and state dimension.
        expected_steps: steps the solve is expected to take (span over the median initial step).
        compile: ``True``/``False`` decide; ``None`` compiles where the same step was compiled
            before in this process, or where ``n * dim * expected_steps >= COMPILE_MIN_WORK``.
        compiled_before: whether this process already holds the compiled step.

    Returns:
        True to compile.
    """
    if compile is not None:
        return bool(compile)
    return compiled_before or n * dim * expected_steps >= COMPILE_MIN_WORK


class _Stepper:
    """Runs the step eagerly or compiled.

    A step is compiled once per process for each (field, method, dimension, device, dtype), with
    inductor's C++ wrapper: with a Python wrapper, launching the step's kernels cost more than the
    arithmetic (benchmarks/bench_generate.py). After a solve's
    first compiled call has checked every guard, the rest skip all but the differentiating ones:
    every later call of the solve passes tensors of the same shapes, dtypes and devices.
    """

    def __init__(self, f: Callable[..., torch.Tensor], m: _Method, dim: int, device: torch.device,
                 dtype: torch.dtype, compile: bool, differentiable: bool = False):
        self.key = (f, m.tab.name, dim, device.type, dtype)
        self.method = m
        self.eager = _make_step(f, m, dim, differentiable)
        self.compiled: Optional[Callable[..., tuple[torch.Tensor, ...]]] = None
        self.checked = False
        if compile:
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
            # marked here, not in integrate_batch, so that eager solves never import dynamo (slow to import)
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


def integrate_batch(f: Callable[..., torch.Tensor], y0: torch.Tensor, times: torch.Tensor, *,
                    args: tuple = (), method: str = "dop853", rtol: float = 1e-10, atol: float = 1e-10,
                    max_steps: int = 1_000_000, max_seconds: Optional[float] = None,
                    bound: float = float("inf"), refuse_stiff: bool = True,
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
        max_seconds: wall-clock budget of the whole solve (``None``: none); past it,
            :class:`SolverStallError` names the trajectory that is furthest behind.
        bound: a trajectory whose state exceeds this in absolute value raises :class:`DivergenceError`.
        refuse_stiff: raise :class:`SolverStallError` pointing to ``method="radau"`` for a trajectory
            whose steps are held by stability (Hairer's stiffness test: ``|h lambda|`` beyond the
            method's stability boundary on ``STIFF_STEPS`` consecutive steps) once it has taken
            ``STIFF_MIN_STEPS`` steps.
        progress: called with the fraction of the time span the slowest trajectory has covered.
        compile: ``True`` runs the step through ``torch.compile`` (one fused kernel per step; falls
            back to eager mode with a warning where compilation fails, e.g. without a C++ compiler),
            ``False`` runs it eagerly, ``None`` decides before the first step with
            :func:`should_compile` (from the problem's size), and logs a warning when that starts a
            compile this process has not done before. ``WORKBENCH_COMPILE=0`` turns compiling off
            for good (see :func:`compile_setting`). Pass a long-lived ``f`` (a module-level
            function, parameters in ``args``) so the compiled step is reused.

    Returns:
        ``(states, stats)`` with ``states`` of shape ``(batch, T, dim)``, read off each step's
        continuous extension at ``times``. Rows do not interact: each row's result is the same
        whatever the batch around it.

    Raises:
        DivergenceError: a non-finite initial state or initial derivative (at once), or a state
            beyond ``bound``.
        SolverStallError: step budget, time budget, step-size underflow, or a stiff trajectory.

    Errors carry the offending row in their ``row`` attribute.
    """
    if method not in TABLEAUX:
        raise BadParameterError(f"unknown batched method {method!r}; use one of {sorted(TABLEAUX)}")
    setting = compile_setting(compile)
    _check_start(y0, bound)
    n, n_out, dim = y0.shape[0], times.shape[0], y0.shape[1]
    m = _Method(TABLEAUX[method], dim, y0.dtype, y0.device)
    out = torch.empty(n * n_out + 1, dim, dtype=y0.dtype, device=y0.device)  # + a spare row for unused outputs
    out[:-1].view(n, n_out, dim)[:, 0] = y0
    stats = SolveStats()
    if n_out == 1:
        return out[:-1].view(n, n_out, dim), stats
    state, differentiable = _initial_state(f, args, y0, times[0], m, rtol, atol)
    limits = torch.tensor([rtol, atol, bound, float(max_steps), STIFF_MIN_STEPS if refuse_stiff else float("inf")],
                          dtype=y0.dtype, device=y0.device)
    times = times.clone()  # a compiled step marks it dynamic: our copy, not the caller's tensor
    use = _decide_compile(f, method, state, times, max_steps, setting)
    step = _Stepper(f, m, dim, y0.device, y0.dtype, use, differentiable=differentiable)
    state = _march(step, state, times, limits, _one_element(args), out, stats, bound, max_steps, max_seconds,
                   progress)
    if progress is not None:
        progress(1.0)
    stats.compiled = step.compiled is not None
    stats.rejected = int(state[:, _REJECTED].sum())
    stats.nfe += 2  # the initial derivative and the initial step's trial evaluation
    return out[:-1].view(n, n_out, dim), stats


def _check_start(y0: torch.Tensor, bound: float) -> None:
    """Refuse at once a start that is non-finite or beyond ``bound``: such a row would be rejected
    step after step until its step size underflows."""
    outside = ~torch.isfinite(y0).all(-1) | (y0.abs() > bound).any(-1)
    if bool(outside.any()):
        raise _row_error(DivergenceError, _first(outside),
                         f"the initial state is non-finite or beyond the divergence bound {bound:g}")


def _initial_state(f: Callable[..., torch.Tensor], args: tuple, y0: torch.Tensor, t0: torch.Tensor, m: _Method,
                   rtol: float, atol: float) -> tuple[torch.Tensor, bool]:
    """The packed per-row state before the first step (see ``_T`` ... ``_Y``), with the initial
    derivative and Hairer's initial step; and whether the solve must keep autograd's graph.

    Raises:
        DivergenceError: a non-finite initial derivative (every step would be rejected until the
            step size underflows).
    """
    n = y0.shape[0]
    t0 = t0.expand(n).clone()
    fy = f(t0, y0, *args)
    not_finite = ~torch.isfinite(fy).all(-1)
    if bool(not_finite.any()):
        raise _row_error(DivergenceError, _first(not_finite), "the vector field is non-finite at the initial state")
    h = _initial_step(lambda tt, yy: f(tt, yy, *args), t0, y0, fy, m.tab.order, rtol, atol)
    h = torch.where(torch.isfinite(h) & (h > 0), h, torch.full_like(h, 1e-6))
    zero = torch.zeros(n, 1, dtype=y0.dtype, device=y0.device)
    state = torch.cat([t0[:, None], h[:, None], zero + 1, zero, zero, zero, zero, y0, fy], 1)
    return state, fy.requires_grad or y0.requires_grad


def _decide_compile(f: Callable[..., torch.Tensor], method: str, state: torch.Tensor, times: torch.Tensor,
                    max_steps: int, setting: Optional[bool]) -> bool:
    """Whether this solve's step runs compiled (:func:`should_compile` on the problem's size); a
    compile that ``compile=None`` starts for the first time in this process is logged as a warning."""
    n, dim = state.shape[0], (state.shape[1] - _Y) // 2
    key = (f, method, dim, state.device.type, state.dtype)
    span = float(times[-1] - times[0])
    # the initial step is Hairer's estimate of a step meeting the tolerance; a stiff or blowing-up
    # start makes it tiny, so the budget caps the estimate
    expected_steps = min(span / max(float(state[:, _H].detach().median()), 1e-300), float(max_steps))
    use = should_compile(n, dim, expected_steps, setting, key in _COMPILED)
    if use and setting is None and key not in _COMPILED:
        _log.warning("compiling the %s step for %d trajectories x %d variables (about %.3g steps expected): "
                     "tens of seconds once per process; set %s=0 or compile=False to never compile",
                     method, n, dim, expected_steps, COMPILE_ENV)
    return use


def _march(step: "_Stepper", state: torch.Tensor, times: torch.Tensor, limits: torch.Tensor, args: tuple,
           out: torch.Tensor, stats: SolveStats, bound: float, max_steps: int, max_seconds: Optional[float],
           progress: Optional[Callable[[float], None]]) -> torch.Tensor:
    """Step every row until all have passed their last output time, writing the dense outputs into
    ``out`` and counting steps and evaluations into ``stats``; returns the final state.

    Raises:
        DivergenceError, SolverStallError: the first row that failed (see :func:`integrate_batch`).
    """
    n_out, dim, m = times.shape[0], out.shape[1], step.method
    span = float(times[-1] - times[0])
    started = time.perf_counter()
    while True:
        state, values, where, status = step(state, times, limits, args)
        out.index_copy_(0, where.view(-1), values.reshape(-1, dim))
        stats.iterations += 1
        # DOP853's extra stages run only on steps that pass an output time (always when compiled)
        stats.nfe += m.stages + (m.extra_stages if values.numel() else 0)
        code = int(status.max())
        if code == _DONE:
            return state
        if code > _RUNNING:
            _raise_row_status(status, state, bound, max_steps, m.tab.name)
        if max_seconds is not None and time.perf_counter() - started > max_seconds:
            _raise_over_time(state, n_out, max_seconds)
        if progress is not None and stats.iterations % 50 == 0:
            progress(float((state[:, _T][state[:, _NEXT] < n_out] - times[0]).min()) / span)


def _first(rows: torch.Tensor) -> int:
    """Index of the first True in a (batch,) mask."""
    return int(rows.nonzero()[0, 0])


def _raise_over_time(state: torch.Tensor, n_out: int, max_seconds: float) -> None:
    """SolverStallError for the unfinished row that is furthest behind, once the wall budget is spent."""
    t = torch.where(state[:, _NEXT] < n_out, state[:, _T], torch.full_like(state[:, _T], float("inf")))
    row = int(t.argmin())
    raise SolverStallError(f"trajectory {row}: the solve ran past its time budget of {max_seconds:g} s at "
                           f"t={float(t[row]):.6g} after {int(state[row, _STEPS])} steps",
                           fix="raise max_seconds, shorten t_end, loosen rtol/atol, or use method='radau' "
                               "if the problem is stiff", row=row)


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


def _raise_row_status(status: torch.Tensor, state: torch.Tensor, bound: float, max_steps: int,
                      method: str) -> None:
    code = next(code for code in _REPORTED_FIRST if bool((status == code).any()))
    row = _first(status == code)
    t = float(state[row, _T])
    if code == _DIVERGED:
        raise _row_error(DivergenceError, row, f"|state| exceeded the divergence bound {bound:g} at t={t:.6g}")
    if code == _UNDERFLOW:
        raise _row_error(SolverStallError, row, f"step size underflowed at t={t:.6g} "
                                                "(the solution may blow up or the problem may be stiff)")
    if code == _STIFF_ROW:
        raise SolverStallError(
            f"trajectory {row}: the problem looks stiff: {method}'s step size is held by stability, "
            f"not accuracy, at t={t:.6g} "
            f"after {int(state[row, _STEPS])} steps (h = {float(state[row, _H]):.3g})",
            fix="use method='radau' (or 'bdf'), an implicit method made for stiff problems", row=row)
    raise _row_error(SolverStallError, row, f"exceeded the budget of {max_steps} steps at t={t:.6g}")


def _row_error(cls: type, row: int, message: str) -> Exception:
    """``cls`` naming trajectory ``row``; the fix says what to change for its kind of failure."""
    fix = ("check the vector field (a model's weights, the system's parameters) for NaN or inf values, and start "
           "from a state where it is finite" if cls is DivergenceError else
           "loosen rtol/atol, raise max_steps, or use method='radau' if the problem is stiff")
    return cls(f"trajectory {row}: {message}", fix=fix, row=row)



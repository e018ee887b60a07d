"""Fixed-step explicit Runge-Kutta solves (Euler, midpoint, classic RK4): the training windows of
continuous-time learners and the unit they compile.

Without the bookkeeping of a general solver, the stage updates are the whole per-step cost
(Hairer, Norsett & Wanner, *Solving ODEs I*, Sec. II.1). Step sizes stay tensors, so a solve reads
nothing back from the device, and each stage update is one ``addcmul``.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from .tableaux import FUSED_METHODS

BatchField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
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

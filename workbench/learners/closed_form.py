"""Shared machinery of closed-form learners (SINDy, NVAR, ESN): ridge regression from accumulated
normal equations, and the validation score every closed-form fit reports."""
from __future__ import annotations

from typing import Optional

import torch

from ..errors import BadParameterError, UnsupportedError
from .base import Learner

VALIDATION_HORIZON = 16  # samples per validation window, as the gradient learners' default window
VALID_STEPS_HORIZON = 1000  # longest closed-loop validation run (Lorenz-63 at dt 0.01: 9 Lyapunov times)


class NormalEquations:
    """Accumulates ``X^T X`` and ``X^T Y`` in float64 over chunks of rows, so the design matrix of a
    long reservoir run never has to exist at once; :meth:`solve` gives the ridge solution."""

    def __init__(self) -> None:
        self.xtx: Optional[torch.Tensor] = None
        self.xty: Optional[torch.Tensor] = None
        self.yty, self.count = 0.0, 0

    def add(self, features: torch.Tensor, targets: torch.Tensor) -> None:
        """Add rows ``features (M, F)`` with ``targets (M, D)``."""
        x, y = features.double(), targets.double()
        xtx, xty = x.T @ x, x.T @ y
        self.xtx = xtx if self.xtx is None else self.xtx + xtx
        self.xty = xty if self.xty is None else self.xty + xty
        self.yty += float((y * y).sum())
        self.count += y.numel()

    def mean_squared_residual(self, weights: torch.Tensor) -> float:
        """``mean (X W - Y)^2`` over every target entry added, from the accumulated sums."""
        w = weights.double()
        total = self.yty - 2 * float((w * self.xty).sum()) + float((w * (self.xtx @ w)).sum())
        return max(total, 0.0) / max(self.count, 1)

    def solve(self, ridge: float) -> torch.Tensor:
        """``W (F, D)`` minimising ``||X W - Y||^2 + ridge ||W||^2`` (Tikhonov 1963; Hoerl & Kennard 1970)."""
        eye = torch.eye(self.xtx.shape[0], dtype=self.xtx.dtype, device=self.xtx.device)
        try:
            return torch.linalg.solve(self.xtx + ridge * eye, self.xty)
        except torch.linalg.LinAlgError:
            raise BadParameterError(f"the ridge regression is singular (ridge={ridge:g}, {self.xtx.shape[0]} features, "
                                    f"{self.count} targets); raise ridge or use more data") from None


def complete(split, learner: Learner) -> None:
    """Refuse training data with missing samples: closed-form fits need every sample of a trajectory."""
    if not bool(split.mask.all()):
        raise UnsupportedError(f"learner {learner.name!r} fits whole, regularly sampled trajectories, but the data "
                               "has missing samples; use 'node' for irregular or masked data")


def validation_loss(learner: Learner, split, times: torch.Tensor, horizon: int = VALIDATION_HORIZON) -> float:
    """Mean squared standardised error of rollouts over the first ``horizon`` samples after each
    validation trajectory's context: the closed-form learners' ``val_loss``. Gradient learners
    average windows tiling each trajectory instead (:func:`workbench.windows.evaluation_starts`);
    here every window would need its own context run, which for the ESN (a 100-sample washout per
    window, for each of 27 ridge candidates) would cost more than the fit."""
    context = learner.capabilities().context
    end = min(split.z.shape[1], context + horizon)
    if end <= context + 1:
        return float("nan")
    z = split.z[:, context:end]
    with torch.no_grad():
        pred = learner.rollout(z[:, 0], times[context:end], 1,
                               context=split.z[:, :context] if context else None)[0]
    return float(((pred - z) ** 2).mean())


def validation_valid_steps(learner: Learner, split, times: torch.Tensor, threshold: float = 0.4,
                           horizon: int = VALID_STEPS_HORIZON) -> float:
    """Median over the validation trajectories of the closed-loop steps after the context before the
    normalised error (as :func:`workbench.metrics.normalized_error`, in standardised units) first
    exceeds ``threshold``, ``horizon`` (or the whole trajectory, if shorter) when it never does: the
    valid prediction time in samples (Pathak et al. 2018). A rollout that leaves the finite numbers
    is invalid from there on."""
    context = learner.capabilities().context
    z = split.z[:, context:context + horizon]
    if z.shape[1] < 2:
        return float("nan")
    with torch.no_grad():
        pred = learner.rollout(z[:, 0], times[context:context + z.shape[1]], 1,
                               context=split.z[:, :context] if context else None)[0]
    scale = z.reshape(-1, z.shape[-1]).var(0, unbiased=False).sum().sqrt()
    error = ((pred - z) ** 2).sum(-1).sqrt() / scale
    exceeded = ~(error <= threshold)  # NaN and inf count as exceeded
    steps = torch.where(exceeded.any(1), exceeded.int().argmax(1), z.shape[1])
    return float(steps.double().median())

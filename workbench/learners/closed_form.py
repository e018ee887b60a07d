"""Shared machinery of closed-form learners (SINDy, NVAR, ESN): ridge regression from accumulated
normal equations, and the validation score every closed-form fit reports."""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import torch

from ..errors import BadParameterError, ResourceLimitError, UnsupportedError
from ..safety import check_allocation, format_bytes
from .base import Learner

VALIDATION_HORIZON = 16  # samples per validation window, as the gradient learners' default window
VALID_STEPS_HORIZON = 1000  # longest closed-loop validation run (Lorenz-63 at dt 0.01: 9 Lyapunov times)
# bytes of feature rows built at once: the design matrix of a long run never exists whole
CHUNK_BYTES = 128 * 2**20


def monomial_count(n: int, degree: int) -> float:
    """Monomials of total degree ``0..degree`` in ``n`` variables, ``C(n + degree, degree)``; a float
    from log-gamma when exact integers would be huge, so a hostile option costs no time to size."""
    if n < 0 or degree < 0:
        return 0.0
    log_count = math.lgamma(n + degree + 1) - math.lgamma(n + 1) - math.lgamma(degree + 1)
    return float(math.comb(n + degree, degree)) if log_count < 40 else math.exp(min(log_count, 700.0))


def largest_within(count: Callable[[int], float], ceiling: float, start: int = 1) -> int:
    """The largest ``v >= start`` with ``count(v) <= ceiling`` for a ``count`` that grows with ``v``;
    ``start - 1`` when even ``start`` is over the ceiling."""
    value = start - 1
    while count(value + 1) <= ceiling:
        value += 1
    return value


def check_work(learner: str, setting: str, what: str, count: float, ceiling: float, nbytes: float,
               operations: float, fix: str) -> None:
    """Refuse work declared by options before anything is allocated.

    Arguments:
        learner: the learner's name, for the message.
        setting: the options that size the work, e.g. ``"delays=10000, degree=2"``.
        what: what ``count`` counts, e.g. ``"features"``.
        count, ceiling: the size the options ask for and the largest allowed.
        nbytes, operations: estimates of the memory and floating-point operations the work needs.
        fix: the largest allowed option values, as advice.

    Raises:
        ResourceLimitError: ``count > ceiling``, or ``nbytes`` over the memory budget.
    """
    amount = f"{int(count):,}" if count < 1e12 else f"{count:.3g}"
    if count > ceiling:
        raise ResourceLimitError(f"{learner}: {setting} asks for {amount} {what} (about {format_bytes(nbytes)} "
                                 f"and {operations:.3g} operations), over the ceiling of {int(ceiling)} {what}",
                                 fix=fix)
    check_allocation(int(nbytes), f"{learner} with {setting} ({amount} {what})")


def rows_per_chunk(bytes_per_row: float) -> int:
    """Feature rows built at once so that a chunk stays within :data:`CHUNK_BYTES`."""
    return max(1, int(CHUNK_BYTES // max(bytes_per_row, 1.0)))


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
                               "has missing samples; fill them with fill_gaps=True (linear interpolation inside "
                               "each series), or use 'node' for irregular or masked data")


def validation_rollout(learner: Learner, split, times: torch.Tensor, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Closed-loop rollouts over the first ``horizon`` samples after each validation trajectory's context.

    They go through :meth:`workbench.Model.rollout` like every other rollout, on the learner as a model
    in its standardised coordinates (:meth:`workbench.Model.standardised`: the data's model does not exist
    yet), so validation scores in standardised units and its paths are those :meth:`workbench.Model.predict`
    gives from the same samples.

    Arguments:
        learner: the fitted learner.
        split: the validation :class:`~workbench.training.prepare.Split` (standardised states ``z``).
        times: the split's time axis.
        horizon: samples per rollout, the start included (fewer where the trajectories are shorter).

    Returns:
        Predicted and observed standardised states, both float64 ``(N, T, D)``.
    """
    from ..model import Model  # model.py builds on the learners package

    context = learner.capabilities().context
    target = split.z[:, context:context + horizon].double().cpu().numpy()
    history = split.z[:, :context + 1].double().cpu().numpy()
    t = times[context:context + target.shape[1]].double().cpu().numpy()
    return Model.standardised(learner).rollout(history, t)[0], target


def validation_loss(learner: Learner, split, times: torch.Tensor, horizon: int = VALIDATION_HORIZON) -> float:
    """Mean squared standardised error of rollouts over the first ``horizon`` samples after each
    validation trajectory's context (:func:`validation_rollout`): the closed-form learners' ``val_loss``.
    Gradient learners average windows tiling each trajectory instead (:func:`workbench.training.prepare.evaluation_starts`);
    here every window would need its own context run, which for the ESN (a 100-sample washout per
    window, for each of 27 ridge candidates) would cost more than the fit."""
    context = learner.capabilities().context
    if min(split.z.shape[1], context + horizon) <= context + 1:
        return float("nan")
    pred, z = validation_rollout(learner, split, times, horizon)
    with np.errstate(over="ignore", invalid="ignore"):
        return float(((pred - z) ** 2).mean())


def validation_valid_steps(learner: Learner, split, times: torch.Tensor, threshold: float = 0.4,
                           horizon: int = VALID_STEPS_HORIZON) -> float:
    """Median over the validation trajectories of the closed-loop steps after the context before the
    normalised error (as :func:`workbench.evaluation.metrics.normalized_error`, in standardised units) first
    exceeds ``threshold``, ``horizon`` (or the whole trajectory, if shorter) when it never does: the
    valid prediction time in samples (Pathak et al. 2018). A rollout that leaves the finite numbers
    is invalid from there on. The median of an even count is the lower middle value (torch's)."""
    context = learner.capabilities().context
    if min(split.z.shape[1] - context, horizon) < 2:
        return float("nan")
    pred, z = (torch.from_numpy(a) for a in validation_rollout(learner, split, times, horizon))
    scale = z.reshape(-1, z.shape[-1]).var(0, unbiased=False).sum().sqrt()
    error = ((pred - z) ** 2).sum(-1).sqrt() / scale
    exceeded = ~(error <= threshold)  # NaN and inf count as exceeded
    steps = torch.where(exceeded.any(1), exceeded.int().argmax(1), z.shape[1])
    return float(steps.double().median())

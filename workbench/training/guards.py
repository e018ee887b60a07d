"""Guards that keep a run from silently going wrong: non-finite losses and runaway growth."""
from __future__ import annotations

import copy
import math

import torch

from ..errors import DivergenceError

MAX_RESTARTS = 5
GROWTH_LIMIT = 1e4  # a loss this far above its best so far (relative, at least 1) counts as divergence


class DivergenceGuard:
    """Restart from the last good weights with a halved learning rate when a step's loss or
    gradient is non-finite, or the loss grows by more than ``GROWTH_LIMIT * max(|best|, 1)``;
    raise :class:`DivergenceError` after ``MAX_RESTARTS`` restarts in a row.

    ``lr_scale`` (the product of the halvings) is part of the run's state and survives resume.
    """

    def __init__(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer, learner: str):
        self.module, self.optimizer, self.learner = module, optimizer, learner
        self.lr_scale, self.restarts, self.best_loss = 1.0, 0, math.inf
        self.good_state = copy.deepcopy(module.state_dict())

    def remember(self) -> None:
        """The current weights are good (their validation loss was finite)."""
        self.good_state = copy.deepcopy(self.module.state_dict())

    def accept(self, loss: float, grad_norm: float) -> bool:
        """True if the step may be taken; otherwise the weights are restored and lr halved."""
        finite = math.isfinite(loss) and math.isfinite(grad_norm)
        # losses may be negative (likelihoods), so growth is measured against max(|best|, 1)
        if finite and (self.best_loss == math.inf or loss - self.best_loss <= GROWTH_LIMIT * max(abs(self.best_loss), 1.0)):
            self.best_loss = min(self.best_loss, loss)
            self.restarts = 0
            return True
        self.restarts += 1
        if self.restarts > MAX_RESTARTS:
            what = "non-finite" if not finite else f"{loss:.3g} against a best of {self.best_loss:.3g}"
            raise DivergenceError(f"training {self.learner} diverged: the loss became {what} and stayed so after "
                                  f"{MAX_RESTARTS} restarts from the last good weights with halved learning rates; "
                                  "lower lr, shorten window, or check the data for outliers")
        self.module.load_state_dict(self.good_state)
        self.lr_scale *= 0.5
        for group in self.optimizer.param_groups:
            group["lr"] *= 0.5
        self.optimizer.state.clear()
        return False

    def state(self) -> dict[str, float]:
        return {"lr_scale": self.lr_scale, "restarts": self.restarts, "best_loss": self.best_loss}

    def load(self, state: dict[str, float]) -> None:
        self.lr_scale, self.restarts = float(state["lr_scale"]), int(state["restarts"])
        self.best_loss = float(state["best_loss"])
        self.remember()

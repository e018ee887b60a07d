"""One epoch at a time: the gradient training loop shared by every gradient-style learner.

Adam with a cosine or plateau learning-rate schedule, gradient clipping, a horizon curriculum
over multiple-shooting windows, early stopping on the validation split, the divergence guard and
a time budget, with the training step compiled where ``TrainConfig.compile`` asks. Everything
that shapes the rest of a run (epoch, elapsed time, schedule position, learning-rate scale, RNG,
optimiser and scheduler state) is in :meth:`Trainer.state`, so a resumed run continues exactly
where the saved one stopped.
"""
from __future__ import annotations

import copy
import math
import time
import warnings
from typing import Any, Optional

import numpy as np
import torch

from ..learners import Learner
from ..model import check_scaler
from .prepare import Prepared, WindowSampler
from .config import TrainConfig
from .guards import DivergenceGuard

DEFAULT_WINDOW = {"trajectory": 16, "derivative": 8, "likelihood": 16}
PLATEAU_PATIENCE = 4


class Trainer:
    """Trains ``module`` on ``data`` by gradient descent, one :meth:`epoch` per call.

    Arguments:
        module: a gradient-style learner, already on its device and dtype.
        data: the prepared dataset.
        config: the run's :class:`TrainConfig`.
        objective: the learner's resolved objective.
    """

    def __init__(self, module: Learner, data: Prepared, config: TrainConfig, objective: str):
        check_scaler(data.scaler, "state")  # before the run, not after it: such a model could not be loaded
        self.module, self.config, self.objective = module, config, objective
        self.generator = torch.Generator().manual_seed(config.seed)
        self.train_windows = WindowSampler(data.train, data.times, config.window or DEFAULT_WINDOW[objective],
                                           self.generator)
        self.length = self.train_windows.length
        self.val_windows = WindowSampler(data.val if data.val is not None else data.train, data.times,
                                         self.length, self.generator).fixed()
        self.optimizer = torch.optim.Adam(module.parameters(), lr=config.lr)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, factor=0.5,
                                                                    patience=PLATEAU_PATIENCE)
        self.guard = DivergenceGuard(module, self.optimizer, module.name)
        self.epoch, self.elapsed, self.stale = 0, 0.0, 0
        self.best_val, self.best_state = math.inf, copy.deepcopy(module.state_dict())
        self.history: list[dict[str, Any]] = []
        self._clock: Optional[float] = None
        self.compiled, self.compile_seconds = False, 0.0

    # --- one epoch ---------------------------------------------------------------------------------
    def validation_loss(self, horizon: Optional[int] = None) -> float:
        """Mean loss per window over the fixed validation windows, at ``horizon`` samples (default: the full window)."""
        self.module.eval()
        with torch.no_grad():
            losses = torch.stack([self.module.loss(b, horizon or self.length, self.objective)
                                  for b in self.val_windows]).double()
        self.module.train()
        windows = torch.tensor([len(b.z) for b in self.val_windows], dtype=torch.float64, device=losses.device)
        return float((losses * windows).sum() / windows.sum())

    def progress(self) -> float:
        """Fraction of the run done, by epochs or by the time budget; drives schedule and curriculum."""
        c = self.config
        if c.time_budget is not None:
            return min(1.0, self.elapsed_now() / c.time_budget)
        return self.epoch / max(1, c.epochs - 1)

    def elapsed_now(self) -> float:
        return self.elapsed + (time.perf_counter() - self._clock if self._clock is not None else 0.0)

    def horizon(self, frac: float) -> int:
        """Curriculum: trajectory windows grow from 2 samples to the full window over half the run."""
        if self.objective != "trajectory" or not self.config.curriculum:
            return self.length
        return max(2, min(self.length, 2 + round((self.length - 2) * frac / 0.5)))

    def start(self) -> None:
        """Score the initial weights (epoch 0) unless resuming, start the clock, and compile the
        training step where the configuration asks for it (its time counts against the budget)."""
        if not self.history:
            self.best_val = self.validation_loss()
            self.best_state = copy.deepcopy(self.module.state_dict())
            self.history.append({"epoch": 0, "train_loss": None, "val_loss": self.best_val,
                                 "val_loss_at_horizon": self.validation_loss(2) if self.objective == "trajectory"
                                 else self.best_val, "lr": self.config.lr, "horizon": 2, "elapsed": 0.0})
        self._clock = time.perf_counter()
        if self.config.compiles:
            self.compiled = self._compile()
            self.compile_seconds = time.perf_counter() - self._clock

    def _compile(self) -> bool:
        # compile_training warns and stays eager where the compiler fails
        if self.module.compilable:
            return self.module.compile_training(self.config.batch_size)
        if self.config.compile is True:
            warnings.warn(f"compile=True: {self.module.name} trains eagerly with these options (compiling covers "
                          "steps of at least 4 network evaluations: rknet, and continuous-time learners but hnn "
                          "with a fixed-step solver, e.g. rk4, and no exogenous inputs)", RuntimeWarning, stacklevel=3)
        return False

    def _autocast(self) -> torch.autocast:
        """bfloat16 matrix products under ``precision="mixed"`` (validation stays float32)."""
        device = next(self.module.parameters()).device.type
        return torch.autocast(device, dtype=torch.bfloat16, enabled=self.config.precision == "mixed")

    def out_of_time(self) -> bool:
        return self.config.time_budget is not None and self.elapsed_now() >= self.config.time_budget

    def epoch_step(self) -> dict[str, Any]:
        """Run one epoch of ``steps_per_epoch`` optimiser steps, validate, and record it."""
        c = self.config
        frac = self.progress()
        if c.schedule == "cosine":
            for group in self.optimizer.param_groups:
                group["lr"] = c.lr * self.guard.lr_scale * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * frac)))
        horizon = self.horizon(frac)
        losses = []
        for _ in range(c.steps_per_epoch):
            with self._autocast():
                loss = self.module.loss(self.train_windows.sample(c.batch_size), horizon, self.objective)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()  # a non-finite loss gives non-finite gradients, which the guard refuses
            norm = torch.nn.utils.clip_grad_norm_(self.module.parameters(), c.clip)
            # the step's one host read: the guard must judge loss and gradient before the update
            loss_value, norm_value = torch.stack((loss.detach(), norm.to(loss.dtype))).tolist()
            if not self.guard.accept(loss_value, norm_value):
                continue
            self.optimizer.step()
            losses.append(loss_value)
            if self.out_of_time():
                break
        val_loss = self.validation_loss()
        if not math.isfinite(val_loss):
            self.module.load_state_dict(self.guard.good_state)
            val_loss = self.validation_loss()
        else:
            self.guard.remember()
        if c.schedule == "plateau":
            self.scheduler.step(val_loss)
        if val_loss < self.best_val:
            self.best_val, self.best_state, self.stale = val_loss, copy.deepcopy(self.module.state_dict()), 0
        elif horizon == self.length:  # validation is on full windows: shorter curriculum epochs do not count
            self.stale += 1
        self.epoch += 1
        now = time.perf_counter()
        self.elapsed += now - self._clock
        self._clock = now
        record = {"epoch": self.epoch, "train_loss": float(np.mean(losses)) if losses else None,
                  "val_loss": val_loss,
                  "val_loss_at_horizon": self.validation_loss(horizon) if horizon != self.length else val_loss,
                  "lr": self.optimizer.param_groups[0]["lr"], "horizon": horizon, "elapsed": self.elapsed}
        self.history.append(record)
        return record

    def finished(self) -> bool:
        """Out of epochs, out of patience, or the last recorded epoch ended past the budget."""
        c = self.config
        spent = c.time_budget is not None and self.elapsed >= c.time_budget
        return self.epoch >= c.epochs or spent or self.stale >= c.patience

    # --- state for checkpoints ------------------------------------------------------------------
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Tensors and JSON that restore this run exactly (weights, optimiser, RNG, clocks, schedule)."""
        tensors = {f"model.{k}": v for k, v in self.module.state_dict().items()}
        tensors.update({f"best.{k}": v for k, v in self.best_state.items()})
        opt_state = self.optimizer.state_dict()
        for index, values in opt_state["state"].items():
            for key, value in values.items():
                tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).reshape(-1) if key == "step" else value
        tensors["generator"] = self.generator.get_state()
        scheduler = {k: v for k, v in self.scheduler.state_dict().items() if isinstance(v, (int, float, str, list))}
        meta = {"epoch": self.epoch, "elapsed": self.elapsed_now(), "best_val": self.best_val, "stale": self.stale,
                "guard": self.guard.state(), "param_groups": opt_state["param_groups"], "scheduler": scheduler}
        return tensors, meta

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any], history: list[dict[str, Any]]) -> None:
        """Continue from :meth:`state` output and the run's history."""
        self.module.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        self.best_state = {k[5:]: v.clone() for k, v in tensors.items() if k.startswith("best.")}
        opt_state: dict[str, Any] = {"state": {}, "param_groups": meta["param_groups"]}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                opt_state["state"].setdefault(int(index), {})[name] = value.reshape(()) if name == "step" else value
        self.optimizer.load_state_dict(opt_state)
        self.scheduler.load_state_dict({**self.scheduler.state_dict(), **meta["scheduler"]})
        self.generator.set_state(tensors["generator"])
        self.guard.load(meta["guard"])
        self.epoch, self.elapsed = int(meta["epoch"]), float(meta["elapsed"])
        self.best_val, self.stale = float(meta["best_val"]), int(meta["stale"])
        self.history = [dict(h) for h in history if h["epoch"] <= self.epoch]

"""The validated, JSON-serialisable description of one training run."""
from __future__ import annotations

import math
import numbers
import re
from dataclasses import asdict, dataclass, fields
from typing import Any, Optional, Union

import numpy as np
import torch

from ..errors import BadParameterError

DEFAULT_EPOCHS = 40
SCHEDULES = ("cosine", "plateau")
PRECISIONS = ("float32", "float64", "mixed")
MAX_BATCH = 65_536
MAX_STEPS_PER_EPOCH = 100_000
# The "auto" compile rule (see TrainConfig.compiles). Measured on the neural ODE of
# benchmarks/bench_train.py (MLP 3-128-128-3, RK4 x2, windows of 20, batch 128), one CPU thread: the
# compiled step ran 1.2-1.7x eager (pinned to a quiet core 21.4 vs 17.8 steps/s, unpinned 23.3 vs 13.9)
# and took 32-37 s to compile with an empty inductor cache (1-5 s warm): it pays back after 1,100-3,700
# steps from an empty cache, a few hundred from a warm one. The thresholds keep short runs (the tests,
# quick app fits) starting at once.
AUTO_COMPILE_STEPS = 5_000
AUTO_COMPILE_BUDGET_S = 300.0


def parse_duration(value: Union[None, float, int, str]) -> Optional[float]:
    """Seconds from a number or a string such as ``"90s"``, ``"5m"``, ``"1.5h"``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadParameterError(f"a time budget must be a number of seconds or a string like '5m', got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", str(value))
        if not match:
            raise BadParameterError(f"cannot read the duration {value!r}; write e.g. 90, '90s', '5m' or '1h'")
        seconds = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    if not (math.isfinite(seconds) and seconds > 0):
        raise BadParameterError(f"a time budget must be positive and finite, got {value!r}")
    return seconds


def _shown(value: Any) -> str:
    """``value`` for a message: a numpy scalar as its plain number (``0``, not ``np.int64(0)``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _integer(name: str, value: Any, low: int, high: int) -> int:
    """``value`` as an int in [low, high]; numpy integers count, bools do not."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise BadParameterError(f"{name} must be an integer in [{low}, {high:,}], got {_shown(value)}")
    return int(value)


def _number(name: str, value: Any, low: float, high: float) -> float:
    """``value`` as a finite float in (low, high]; numpy numbers count, bools do not."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or not low < value <= high:
        raise BadParameterError(f"{name} must be a finite number in ({low:g}, {high:g}], got {_shown(value)}")
    return float(value)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that shapes a training run besides the learner and the data.

    Attributes:
        epochs: epochs of ``steps_per_epoch`` optimiser steps (default 40 unless only a
            ``time_budget`` is given, which then ends the run).
        time_budget: wall-clock seconds for the whole run, across resumes.
        batch_size, lr, clip: minibatch size, Adam learning rate, gradient-norm clip.
        window: samples per training window (the curriculum grows the horizon up to it);
            ``None`` picks 16 for trajectory and likelihood objectives, 8 for derivatives.
        curriculum: grow trajectory windows from 2 samples to ``window`` over the first half of
            the run (multiple shooting with a horizon curriculum); ``False`` trains on full windows.
        steps_per_epoch: optimiser steps between validations and checkpoints.
        patience: epochs on full windows without validation improvement before stopping (epochs
            of the curriculum's shorter windows do not count).
        schedule: ``"cosine"`` (annealed to 1% over the epochs or the budget; default with a
            budget) or ``"plateau"`` (halved after 4 epochs without improvement).
        precision: ``"float32"``, ``"float64"``, or ``"mixed"``: float32 weights, states and
            validation, with the training loss's matrix products in bfloat16 under
            ``torch.autocast`` (for GPUs with bfloat16 units; the solver's state updates stay
            float32, since bfloat16's 8-bit mantissa would swamp an ODE's small increments).
        seed: seeds initialisation and batch sampling (CPU runs are reproducible).
        compile: ``torch.compile`` the training step where the learner can (``rknet``, and
            continuous-time learners with a fixed-step solver and no inputs): ``True``, ``False`` or ``"auto"``
            (see :attr:`compiles`). Where compiling fails, training warns and runs eagerly. A
            speed setting only: it is left out of :meth:`to_json`, so a run resumes under any.
    """

    epochs: Optional[int] = None
    time_budget: Optional[float] = None
    batch_size: int = 64
    lr: float = 3e-3
    window: Optional[int] = None
    curriculum: bool = True
    steps_per_epoch: int = 25
    patience: int = 15
    clip: float = 1.0
    schedule: Optional[str] = None
    precision: str = "float32"
    seed: int = 0
    compile: Union[bool, str] = "auto"

    def __post_init__(self) -> None:
        budget = parse_duration(self.time_budget)
        object.__setattr__(self, "time_budget", budget)
        epochs = self.epochs if self.epochs is not None else (10 ** 9 if budget is not None else DEFAULT_EPOCHS)
        object.__setattr__(self, "epochs", _integer("epochs", epochs, 1, 10 ** 9))
        # stored converted, so numpy scalars never reach the run's JSON
        for name, low, high in (("batch_size", 1, MAX_BATCH), ("steps_per_epoch", 1, MAX_STEPS_PER_EPOCH),
                                ("patience", 1, 10 ** 9), ("seed", 0, 2 ** 63 - 1)):
            object.__setattr__(self, name, _integer(name, getattr(self, name), low, high))
        if self.window is not None:
            object.__setattr__(self, "window", _integer("window", self.window, 2, 10 ** 7))
        object.__setattr__(self, "lr", _number("lr", self.lr, 0.0, 1.0))
        if not isinstance(self.curriculum, bool):
            raise BadParameterError(f"curriculum must be True or False, got {self.curriculum!r}")
        object.__setattr__(self, "clip", _number("clip", self.clip, 0.0, 1e6))
        schedule = self.schedule or ("cosine" if budget is not None else "plateau")
        if schedule not in SCHEDULES:
            raise BadParameterError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        object.__setattr__(self, "schedule", schedule)
        if self.precision not in PRECISIONS:
            raise BadParameterError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not (isinstance(self.compile, bool) or self.compile == "auto"):
            raise BadParameterError(f"compile must be True, False or 'auto', got {self.compile!r}")

    @property
    def compiles(self) -> bool:
        """Whether to compile the training step: as chosen, or under ``"auto"`` only for long runs,
        a time budget of at least ``AUTO_COMPILE_BUDGET_S`` or at least ``AUTO_COMPILE_STEPS``
        planned optimiser steps, where the compile time pays back (numbers above the constants).
        Short runs, like the test suite's, stay eager and start at once; the rule reads only the
        configuration, so the same call decides the same on every machine."""
        if self.compile != "auto":
            return bool(self.compile)
        if self.time_budget is not None:
            return self.time_budget >= AUTO_COMPILE_BUDGET_S
        return self.epochs * self.steps_per_epoch >= AUTO_COMPILE_STEPS

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the weights and data (float32 under ``"mixed"``)."""
        return torch.float64 if self.precision == "float64" else torch.float32

    def to_json(self) -> dict[str, Any]:
        """The run's description, without the speed-only ``compile`` setting."""
        data = asdict(self)
        del data["compile"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# TrainConfig's fields, which fit also takes as keywords
TRAIN_OPTIONS: tuple[str, ...] = tuple(f.name for f in fields(TrainConfig))

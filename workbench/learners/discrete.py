"""Discrete flow maps: networks as time-stepping schemes (the survey's discretisation family).

- ``resnet``: x_{k+1} = x_k + h f_theta(x_k), a ResNet block as forward Euler (He et al. 2016;
  E 2017; Haber & Ruthotto 2017).
- ``rknet``: one classic RK4 step of f_theta per sample (Runge-Kutta networks; Wang & Lin 1998).
- ``lmnet``: the linear two-step LM-ResNet x_{k+1} = (1 - k) x_k + k x_{k-1} + h f_theta(x_k) with a
  learned k (Lu, Zhong, Li & Dong, "Beyond Finite Layer Neural Networks", ICML 2018).
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch

from .base import (MIN_COMPILED_EVALUATIONS, Batch, Capabilities, InputSignal, Learner, compile_with_trial, masked_mse,
                   mlp, step_indices)

MapStep = Callable[["DiscreteMap", torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]], torch.Tensor]


def _map_step(learner: "DiscreteMap", z: torch.Tensor, previous: Optional[torch.Tensor],
              u: Optional[torch.Tensor]) -> torch.Tensor:
    return learner.step(z, previous, u)


class DiscreteMap(Learner):
    """Base of map learners: learn one sampling step, roll out by iterating it.

    Exogenous inputs enter as ``u_k``, the input at the start of each step, beside the state.
    """

    supports = Capabilities(kinds=("ode",), irregular=False, objectives=("trajectory",), inputs=True)
    defaults = {"hidden": 64, "depth": 2, "activation": "tanh", "objective": "trajectory", "dt": 1.0}
    stages = 1  # evaluations of f per map step

    def __init__(self, dim: int, n_inputs: int = 0, **options):
        super().__init__(dim, n_inputs, **options)
        o = self.options
        self.net = mlp(dim + self.n_inputs, dim, o["hidden"], o["depth"], o["activation"])
        self.h = float(o["dt"])
        self._compiled: Optional[MapStep] = None  # set by compile_training

    def f(self, z: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.net(torch.cat([z, u], dim=-1) if self.n_inputs else z)

    def drift(self, z: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        if u is None and self.n_inputs:  # standardised inputs at their training mean
            u = torch.zeros(z.shape[0], self.n_inputs, dtype=z.dtype, device=z.device)
        return self.f(z, u)

    def step(self, z: torch.Tensor, previous: Optional[torch.Tensor], u: Optional[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    @property
    def compilable(self) -> bool:
        """Multi-stage maps only (``rknet``): a step of ``MIN_COMPILED_EVALUATIONS`` or more network
        evaluations gains from compiling, a one-evaluation step runs faster eagerly."""
        return self.stages >= MIN_COMPILED_EVALUATIONS

    def compile_training(self, batch_size: int) -> bool:
        """Compile one map step (forward and backward) with ``torch.compile``; training windows
        iterate it from then on. A trial on zeros meets every specialisation training will (a first
        step without history or gradient, a later one with both), so a failing compiler shows here:
        a warning, and training stays eager with the same results.

        Arguments:
            batch_size: windows per training batch (the compiled step is specialised to it).

        Returns:
            Whether training now runs compiled (False where not :attr:`compilable`).
        """
        if not self.compilable:
            return False

        def trial(step: MapStep, like: dict[str, Any]) -> torch.Tensor:
            z = torch.zeros(batch_size, self.dim, **like)
            u = torch.zeros(batch_size, self.n_inputs, **like) if self.n_inputs else None
            return step(self, step(self, z, None, u), z, u)

        self._compiled = compile_with_trial(self, _map_step, trial)
        return self._compiled is not None

    def iterate(self, z0: torch.Tensor, steps: int, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        """States after 0..steps map applications, shape (B, steps + 1, D); ``u`` (B, >= steps, U)."""
        compiled = self._compiled if self.training and torch.is_grad_enabled() else None
        if compiled is None:
            step = self.step
        else:  # contiguous: batch slices are strided, and strides are part of what was compiled
            def step(z: torch.Tensor, previous: Optional[torch.Tensor], uk: Optional[torch.Tensor]) -> torch.Tensor:
                return compiled(self, z.contiguous(), previous, None if uk is None else uk.contiguous())
        states, previous = [z0], None
        for k in range(steps):
            nxt = step(states[-1], previous, None if u is None else u[:, k])
            previous = states[-1]
            states.append(nxt)
        return torch.stack(states, dim=1)

    def loss(self, batch: Batch, horizon: int, objective: str) -> torch.Tensor:
        pred = self.iterate(batch.z[:, 0], horizon - 1, batch.u)
        return masked_mse(pred, batch.z[:, :horizon], batch.mask[:, :horizon])

    def rollout(self, z0: torch.Tensor, t: torch.Tensor, n_samples: int = 1,
                generator: Optional[torch.Generator] = None, inputs: Optional[InputSignal] = None,
                context: Optional[torch.Tensor] = None) -> torch.Tensor:
        index = step_indices(t, self.h, self.name)
        u = None
        if inputs is not None:  # the input at every map step, read off the signal on the step grid
            grid = torch.arange(int(index[-1]) + 1, dtype=inputs.times.dtype, device=z0.device) * self.h
            u = torch.stack([inputs.at(tk) for tk in grid], dim=1)
        path = self.iterate(z0, int(index[-1]), u)
        self.last_nfe = int(index[-1]) * self.stages
        return path[:, index].unsqueeze(0).expand(n_samples, -1, -1, -1)


class ResNetMap(DiscreteMap):
    name = "resnet"
    reference = "He et al. 2016; Haber & Ruthotto 2017, Stable architectures for deep neural networks"

    def step(self, z: torch.Tensor, previous: Optional[torch.Tensor], u: Optional[torch.Tensor]) -> torch.Tensor:
        return z + self.h * self.f(z, u)


class RungeKuttaMap(DiscreteMap):
    name = "rknet"
    stages = 4
    reference = "Wang & Lin 1998, Runge-Kutta neural network for identification of dynamical systems"

    def step(self, z: torch.Tensor, previous: Optional[torch.Tensor], u: Optional[torch.Tensor]) -> torch.Tensor:
        h = self.h  # the input is held at u_k over the step (zero-order hold)
        k1 = self.f(z, u)
        k2 = self.f(z + 0.5 * h * k1, u)
        k3 = self.f(z + 0.5 * h * k2, u)
        k4 = self.f(z + h * k3, u)
        return z + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)


class LinearMultistepMap(DiscreteMap):
    name = "lmnet"
    reference = "Lu et al. 2018, Beyond Finite Layer Neural Networks (LM-ResNet), ICML"

    def __init__(self, dim: int, n_inputs: int = 0, **options):
        super().__init__(dim, n_inputs, **options)
        self.k = torch.nn.Parameter(torch.zeros(()))

    def step(self, z: torch.Tensor, previous: Optional[torch.Tensor], u: Optional[torch.Tensor]) -> torch.Tensor:
        if previous is None:  # start-up: one Euler step supplies the second history value
            return z + self.h * self.f(z, u)
        return (1 - self.k) * z + self.k * previous + self.h * self.f(z, u)

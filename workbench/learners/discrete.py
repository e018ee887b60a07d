"""Discrete flow maps: networks as time-stepping schemes (the survey's discretisation family).

- ``resnet``: x_{k+1} = x_k + h f_theta(x_k), a ResNet block as forward Euler (He et al. 2016;
  E 2017; Haber & Ruthotto 2017).
- ``rknet``: one classic RK4 step of f_theta per sample (Runge-Kutta networks; Wang & Lin 1998).
- ``lmnet``: the linear two-step LM-ResNet x_{k+1} = (1 - k) x_k + k x_{k-1} + h f_theta(x_k) with a
  learned k (Lu, Zhong, Li & Dong, "Beyond Finite Layer Neural Networks", ICML 2018).
"""
from __future__ import annotations

from typing import Optional

import torch

from ..errors import UnsupportedError
from .base import Batch, Learner, Supports, masked_mse, mlp


class DiscreteMap(Learner):
    """Base of map learners: learn one sampling step, roll out by iterating it."""

    supports = Supports(kinds=("ode",), irregular=False, objectives=("trajectory",))
    defaults = {"hidden": 64, "depth": 2, "activation": "tanh", "objective": "trajectory", "dt": 1.0}
    stages = 1  # evaluations of f per map step

    def __init__(self, dim: int, **options):
        super().__init__(dim, **options)
        o = self.options
        self.f = mlp(dim, dim, o["hidden"], o["depth"], o["activation"])
        self.h = float(o["dt"])

    def drift(self, z: torch.Tensor) -> torch.Tensor:
        return self.f(z)

    def step(self, z: torch.Tensor, previous: Optional[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def iterate(self, z0: torch.Tensor, steps: int) -> torch.Tensor:
        """States after 0..steps map applications, shape (B, steps + 1, D)."""
        states, previous = [z0], None
        for _ in range(steps):
            nxt = self.step(states[-1], previous)
            previous = states[-1]
            states.append(nxt)
        return torch.stack(states, dim=1)

    def loss(self, batch: Batch, horizon: int, objective: str) -> torch.Tensor:
        pred = self.iterate(batch.z[:, 0], horizon - 1)
        return masked_mse(pred, batch.z[:, :horizon], batch.mask[:, :horizon])

    def rollout(self, z0: torch.Tensor, t: torch.Tensor, n_samples: int = 1,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        steps = (t.double() - t.double()[0]) / self.h  # float32 times would blur long step counts
        index = torch.round(steps)
        if ((steps - index).abs() > 1e-4 * steps.clamp_min(1.0)).any():
            raise UnsupportedError(f"{self.name} is a map with step {self.h:g}: it predicts only at multiples of that "
                                   "step from the start; ask for such times or use a continuous-time learner")
        path = self.iterate(z0, int(index[-1]))
        self.last_nfe = int(index[-1]) * self.stages
        return path[:, index.long()].unsqueeze(0).expand(n_samples, -1, -1, -1)


class ResNetMap(DiscreteMap):
    name = "resnet"
    reference = "He et al. 2016; Haber & Ruthotto 2017, Stable architectures for deep neural networks"

    def step(self, z: torch.Tensor, previous: Optional[torch.Tensor]) -> torch.Tensor:
        return z + self.h * self.f(z)


class RungeKuttaMap(DiscreteMap):
    name = "rknet"
    stages = 4
    reference = "Wang & Lin 1998, Runge-Kutta neural network for identification of dynamical systems"

    def step(self, z: torch.Tensor, previous: Optional[torch.Tensor]) -> torch.Tensor:
        h = self.h
        k1 = self.f(z)
        k2 = self.f(z + 0.5 * h * k1)
        k3 = self.f(z + 0.5 * h * k2)
        k4 = self.f(z + h * k3)
        return z + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)


class LinearMultistepMap(DiscreteMap):
    name = "lmnet"
    reference = "Lu et al. 2018, Beyond Finite Layer Neural Networks (LM-ResNet), ICML"

    def __init__(self, dim: int, **options):
        super().__init__(dim, **options)
        self.k = torch.nn.Parameter(torch.zeros(()))

    def step(self, z: torch.Tensor, previous: Optional[torch.Tensor]) -> torch.Tensor:
        if previous is None:  # start-up: one Euler step supplies the second history value
            return z + self.h * self.f(z)
        return (1 - self.k) * z + self.k * previous + self.h * self.f(z)

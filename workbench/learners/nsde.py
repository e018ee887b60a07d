"""Neural SDE dx = f_theta(x) dt + g_phi(x) dW with diagonal positive diffusion, fitted by the
Euler-Maruyama transition likelihood and rolled out with torchsde.

Likelihood: x_{k+1} | x_k ~ N(x_k + f dt, diag(g^2) dt) (Kloeden & Platen 1992, Sec. 10.2; used for
neural SDEs e.g. by Dietrich et al. 2023, "Learning effective SDEs from microscopic simulations").
It needs no solver in the loop and learns the diffusion directly, where latent-SDE ELBOs and
SDE-GANs tend to shrink the noise.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torchsde
from torch import nn

from ..numerics.sde import TorchsdeProblem
from .base import Batch, Capabilities, InputSignal, Learner, mlp


class NeuralSDE(Learner):
    """Options: ``hidden``, ``depth``, ``activation``; ``min_diffusion`` floors g; ``substeps`` is
    the number of Euler-Maruyama steps per sampling interval in rollouts."""

    name = "nsde"
    reference = "Kidger et al. 2021 (neural SDEs); Euler-Maruyama transition likelihood"
    supports = Capabilities(kinds=("sde", "ode"), stochastic=True, objectives=("likelihood",))
    defaults = {"hidden": 64, "depth": 2, "activation": "tanh", "objective": "likelihood",
                "min_diffusion": 1e-4, "substeps": 4}

    def __init__(self, dim: int, n_inputs: int = 0, **options):
        super().__init__(dim, n_inputs, **options)
        o = self.options
        self.f = mlp(dim, dim, o["hidden"], o["depth"], o["activation"])
        self.g = mlp(dim, dim, o["hidden"], o["depth"], o["activation"])

    def drift(self, z: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.f(z)

    def diffusion(self, z: torch.Tensor) -> torch.Tensor:
        """Diagonal diffusion in standardised units, shape (B, D), positive."""
        return nn.functional.softplus(self.g(z)) + self.options["min_diffusion"]

    def loss(self, batch: Batch, horizon: int, objective: str) -> torch.Tensor:
        z, t, mask = batch.z, batch.t, batch.mask
        x0, x1 = z[:, :-1].reshape(-1, self.dim), z[:, 1:].reshape(-1, self.dim)
        dt = (t[:, 1:] - t[:, :-1]).reshape(-1, 1)
        both = (mask[:, :-1] & mask[:, 1:]).reshape(-1)
        var = self.diffusion(x0) ** 2 * dt
        resid = x1 - x0 - self.drift(x0) * dt
        nll = 0.5 * (resid ** 2 / var + torch.log(2 * math.pi * var)).sum(-1)
        return (nll * both).sum() / both.sum().clamp_min(1)

    def rollout(self, z0: torch.Tensor, t: torch.Tensor, n_samples: int = 1,
                generator: Optional[torch.Generator] = None, inputs: Optional[InputSignal] = None,
                context: Optional[torch.Tensor] = None) -> torch.Tensor:
        batch = z0.repeat(n_samples, 1)
        step = float((t[1:] - t[:-1]).min()) / self.options["substeps"] if len(t) > 1 else 1.0
        entropy = int(torch.randint(0, 2 ** 31 - 1, (1,), generator=generator)) if generator is not None else None
        bm = torchsde.BrownianInterval(t0=float(t[0]), t1=float(t[-1]) if len(t) > 1 else float(t[0]) + 1.0,
                                       size=batch.shape, dtype=batch.dtype, device=batch.device,
                                       entropy=entropy, dt=step)
        problem = TorchsdeProblem(lambda tt, y: self.drift(y), lambda tt, y: self.diffusion(y), "diagonal")
        path = torchsde.sdeint(problem, batch, t, bm=bm, method="euler", dt=step)
        self.last_nfe = 2 * int(round(float(t[-1] - t[0]) / step))  # one drift and one diffusion call per step
        return path.transpose(0, 1).reshape(n_samples, z0.shape[0], len(t), self.dim)

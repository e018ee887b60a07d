"""Augmented neural ODE: the flow lives in R^(d+a), starting from (x, 0). Dupont, Doucet & Teh,
"Augmented Neural ODEs", NeurIPS 2019."""
from __future__ import annotations

from typing import Optional

import torch

from .base import Capabilities, mlp
from .continuous import ContinuousLearner


class AugmentedNODE(ContinuousLearner):
    """Neural ODE on a state padded with ``augment`` zero-initialised dimensions, so trajectories
    of the data may cross in projection (a plain neural ODE's flow cannot represent that).

    The augmented dimensions see no data, so nothing in the loss holds them in place: with the
    paper's free field ``da/dt = g(x, a)`` they wander during long rollouts into values never met
    on the short training windows, where the learned ``dx/dt`` is an extrapolation (Lorenz-63,
    48 trajectories, 30 s budget: rollout RMSE at t = 20 of 585, states up to 1230, where ``node``
    gives 12.9 and 40). By default (``bounded=True``) they relax quickly towards a bounded target,
    ``da/dt = (tanh(g(x, a)) - a) / (relax * dt)``: from ``a(0) = 0`` this keeps ``|a| <= 1`` for
    all time, and a relaxation time of ``relax = 2`` samples lets the short training windows see the
    same (x, a) pairs as a long rollout (same setting: RMSE 11.9, states up to 42; ``relax = 20``
    gives 17.5 and 68; the bound alone, relaxation time 1, 91 and 159). The output rows of ``g``
    start at zero, so an untrained ANODE is a neural ODE with ``a = 0``. ``dt`` is the data's.
    """

    name = "anode"
    reference = "Dupont et al. 2019, Augmented Neural ODEs, NeurIPS"
    supports = Capabilities(kinds=("ode",), objectives=("trajectory",), inputs=True)
    defaults = {"hidden": 64, "depth": 2, "activation": "tanh", "augment": 2, "bounded": True, "relax": 2.0, "dt": 1.0,
                "objective": "trajectory", **ContinuousLearner.solver_defaults}

    def __init__(self, dim: int, n_inputs: int = 0, **options):
        super().__init__(dim, n_inputs, **options)
        o = self.options
        width = dim + o["augment"]
        self.net = mlp(width + self.n_inputs, width, o["hidden"], o["depth"], o["activation"])
        if o["bounded"]:
            last = self.net[-1]
            with torch.no_grad():
                last.weight[dim:].zero_()
                last.bias[dim:].zero_()

    def lift(self, z: torch.Tensor) -> torch.Tensor:
        pad = torch.zeros(*z.shape[:-1], self.options["augment"], dtype=z.dtype, device=z.device)
        return torch.cat([z, pad], dim=-1)

    def project(self, y: torch.Tensor) -> torch.Tensor:
        return y[..., : self.dim]

    def field(self, t: torch.Tensor, z: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        out = self.net(torch.cat([z, u], dim=-1) if self.n_inputs else z)
        if not self.options["bounded"]:
            return self.rate * out
        relax = 1.0 / (self.options["relax"] * self.options["dt"])
        augmented = relax * (torch.tanh(out[..., self.dim:]) - z[..., self.dim:])
        return torch.cat([self.rate * out[..., : self.dim], augmented], dim=-1)

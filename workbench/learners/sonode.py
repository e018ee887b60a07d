"""Second-order neural ODE: d^2q/dt^2 = f_theta(q, dq/dt). Norcliffe, Bodnar, Day, Simidjievski &
Lio, "On Second Order Behaviour in Augmented Neural ODEs", NeurIPS 2020."""
from __future__ import annotations

from typing import Optional

import torch

from .base import Capabilities, mlp
from .continuous import ContinuousLearner


class SecondOrderNODE(ContinuousLearner):
    """The state is (q, v) with v = dq/dt exactly; only the acceleration is learned.

    The kinematic half is written in standardised units: dz_q/dt = (scale_v z_v + offset_v) / scale_q.
    """

    name = "sonode"
    reference = "Norcliffe et al. 2020, On Second Order Behaviour in Augmented Neural ODEs, NeurIPS"
    supports = Capabilities(kinds=("ode",), needs_even_dim=True, objectives=("trajectory", "derivative"), inputs=True)
    defaults = {"hidden": 64, "depth": 2, "activation": "tanh", "objective": "trajectory",
                **ContinuousLearner.solver_defaults}

    def __init__(self, dim: int, n_inputs: int = 0, **options):
        super().__init__(dim, n_inputs, **options)
        o = self.options
        self.half = dim // 2
        self.net = mlp(dim + self.n_inputs, self.half, o["hidden"], o["depth"], o["activation"])

    def field(self, t: torch.Tensor, z: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = self.half
        velocity = (self.scale[h:] * z[..., h:] + self.offset[h:]) / self.scale[:h]
        acceleration = self.rate * self.net(torch.cat([z, u], dim=-1) if self.n_inputs else z)
        return torch.cat([velocity, acceleration], dim=-1)

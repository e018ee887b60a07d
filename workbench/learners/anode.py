"""Augmented neural ODE: the flow lives in R^(d+a), starting from (x, 0). Dupont, Doucet & Teh,
"Augmented Neural ODEs", NeurIPS 2019."""
from __future__ import annotations

from typing import Optional

import torch

from .base import Capabilities, mlp
from .continuous import ContinuousLearner


class AugmentedNODE(ContinuousLearner):
    """Neural ODE on a state padded with ``augment`` zero-initialised dimensions, so trajectories
    of the data may cross in projection (a plain neural ODE's flow cannot represent that)."""

    name = "anode"
    reference = "Dupont et al. 2019, Augmented Neural ODEs, NeurIPS"
    supports = Capabilities(kinds=("ode",), objectives=("trajectory",), inputs=True)
    defaults = {"hidden": 64, "depth": 2, "activation": "tanh", "augment": 2, "objective": "trajectory",
                **ContinuousLearner.solver_defaults}

    def __init__(self, dim: int, n_inputs: int = 0, **options):
        super().__init__(dim, n_inputs, **options)
        o = self.options
        width = dim + o["augment"]
        self.net = mlp(width + self.n_inputs, width, o["hidden"], o["depth"], o["activation"])

    def lift(self, z: torch.Tensor) -> torch.Tensor:
        pad = torch.zeros(*z.shape[:-1], self.options["augment"], dtype=z.dtype, device=z.device)
        return torch.cat([z, pad], dim=-1)

    def project(self, y: torch.Tensor) -> torch.Tensor:
        return y[..., : self.dim]

    def field(self, t: torch.Tensor, z: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.net(torch.cat([z, u], dim=-1) if self.n_inputs else z)

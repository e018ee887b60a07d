"""Neural ODE: dx/dt = f_theta(x) (or f_theta(t, x)). Chen, Rubanova, Bettencourt & Duvenaud,
"Neural Ordinary Differential Equations", NeurIPS 2018."""
from __future__ import annotations

import torch

from .base import Supports, mlp
from .continuous import ContinuousLearner


class NeuralODE(ContinuousLearner):
    """An MLP vector field integrated by an ODE solver.

    Options: ``hidden``, ``depth``, ``activation`` of the MLP; ``time_dependent`` feeds ``t`` to
    the field; ``objective`` ``"trajectory"`` (multiple shooting on windows), ``"derivative"``
    (regress the stored true vector field: the unconstrained baseline of the HNN paper) or ``"auto"``.
    """

    name = "node"
    reference = "Chen et al. 2018, Neural Ordinary Differential Equations, NeurIPS"
    supports = Supports(kinds=("ode",), objectives=("trajectory", "derivative"))
    defaults = {"hidden": 64, "depth": 2, "activation": "tanh", "time_dependent": False,
                "objective": "trajectory", **ContinuousLearner.solver_defaults}

    def __init__(self, dim: int, **options):
        super().__init__(dim, **options)
        o = self.options
        self.net = mlp(dim + int(o["time_dependent"]), dim, o["hidden"], o["depth"], o["activation"])

    def field(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if self.options["time_dependent"]:
            z = torch.cat([z, t.reshape(-1, 1).expand(z.shape[0], 1).to(z.dtype)], dim=-1)
        return self.net(z)

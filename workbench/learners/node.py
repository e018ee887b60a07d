"""Neural ODE: dx/dt = f_theta(x) (or f_theta(t, x)). Chen, Rubanova, Bettencourt & Duvenaud,
"Neural Ordinary Differential Equations", NeurIPS 2018."""
from __future__ import annotations

import torch

from typing import Optional

from .base import Capabilities, mlp
from .continuous import ContinuousLearner


class NeuralODE(ContinuousLearner):
    """An MLP vector field integrated by an ODE solver.

    Options: ``hidden``, ``depth``, ``activation`` of the MLP; ``time_dependent`` feeds ``t`` to
    the field; exogenous inputs ``u(t)`` (interpolated between samples) are fed to the field when the
    data has them; ``objective`` ``"trajectory"`` (multiple shooting on windows), ``"derivative"``
    (regress the stored true vector field: the unconstrained baseline of the HNN paper) or ``"auto"``.
    """

    name = "node"
    reference = "Chen et al. 2018, Neural Ordinary Differential Equations, NeurIPS"
    supports = Capabilities(kinds=("ode",), objectives=("trajectory", "derivative"), inputs=True)
    defaults = {"hidden": 64, "depth": 2, "activation": "tanh", "time_dependent": False,
                "objective": "trajectory", **ContinuousLearner.solver_defaults}

    def __init__(self, dim: int, n_inputs: int = 0, **options):
        super().__init__(dim, n_inputs, **options)
        o = self.options
        self.net = mlp(dim + int(o["time_dependent"]) + self.n_inputs, dim, o["hidden"], o["depth"], o["activation"])

    def field(self, t: torch.Tensor, z: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        parts = [z]
        if self.options["time_dependent"]:
            parts.append(t.reshape(-1, 1).expand(z.shape[0], 1).to(z.dtype))
        if self.n_inputs:
            parts.append(u)
        return self.net(torch.cat(parts, dim=-1) if len(parts) > 1 else z)

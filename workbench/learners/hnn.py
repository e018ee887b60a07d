"""Hamiltonian neural network: learn H_theta(q, p); dynamics are its symplectic gradient.
Greydanus, Dzamba & Yosinski, "Hamiltonian Neural Networks", NeurIPS 2019."""
from __future__ import annotations

from typing import Optional

import torch

from .base import Capabilities, mlp
from .continuous import ContinuousLearner


class HamiltonianNN(ContinuousLearner):
    """dq/dt = dH/dp, dp/dt = -dH/dq with a scalar MLP H_theta.

    In standardised coordinates the symplectic form picks up the factor 1/(scale_q scale_p) per
    canonical pair, applied here so the learned H stays a true Hamiltonian up to a constant factor.
    Trained on the stored derivatives when the dataset has them (as in the paper), else by
    trajectory matching; rollouts use the adaptive high-order solver.
    """

    name = "hnn"
    reference = "Greydanus et al. 2019, Hamiltonian Neural Networks, NeurIPS"
    supports = Capabilities(kinds=("ode",), needs_qp=True, objectives=("trajectory", "derivative"))
    defaults = {"hidden": 200, "depth": 2, "activation": "tanh", "objective": "auto",
                "q": None, "p": None, **ContinuousLearner.solver_defaults}

    def __init__(self, dim: int, n_inputs: int = 0, **options):
        super().__init__(dim, n_inputs, **options)
        o = self.options
        self.net = mlp(dim, 1, o["hidden"], o["depth"], o["activation"])
        q, p = o["q"], o["p"]
        self.register_buffer("q_index", torch.tensor(q if q is not None else list(range(dim // 2))))
        self.register_buffer("p_index", torch.tensor(p if p is not None else list(range(dim // 2, dim))))

    @property
    def compilable(self) -> bool:
        """False: the field is a gradient of H, so training differentiates twice, which torch.compile's
        autograd does not support (a compiled trial raised, then trained eagerly after a warning)."""
        return False

    def hamiltonian(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(-1)

    def field(self, t: torch.Tensor, z: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        # the field is a gradient even in no-grad rollouts; keep the graph only when training needs it
        keep_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            if not z.requires_grad:
                z = z.detach().requires_grad_(True)
            grad = torch.autograd.grad(self.hamiltonian(z).sum(), z, create_graph=keep_graph)[0]
        coupling = self.rate / (self.scale[self.q_index] * self.scale[self.p_index])
        out = torch.empty_like(grad)
        out[..., self.q_index] = coupling * grad[..., self.p_index]
        out[..., self.p_index] = -coupling * grad[..., self.q_index]
        return out

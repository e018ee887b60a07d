"""Hamiltonian neural network: learn H_theta(q, p); dynamics are its symplectic gradient.
Greydanus, Dzamba & Yosinski, "Hamiltonian Neural Networks", NeurIPS 2019."""
from __future__ import annotations

from typing import Any, Optional

import torch

from ..errors import BadParameterError
from .base import Capabilities, mlp
from .continuous import ContinuousLearner


def canonical_split(q: Any, p: Any, dim: int) -> tuple[list[int], list[int]]:
    """The positions of the coordinates ``q`` and momenta ``p`` in a ``dim``-variable state.

    Arguments:
        q, p: variable positions (the data's names are turned into positions before the learner is
            built), or both ``None`` for the first and second half of the state.
        dim: number of state variables.

    Returns:
        ``(q, p)`` as lists of ints: of equal length, disjoint, together every variable once.

    Raises:
        BadParameterError: any other split (the symplectic gradient pairs q[i] with p[i] and must
            give every variable a derivative).
    """
    if q is None and p is None:
        # no split declared: the fit's capability check refuses such data (needs_qp) with its own advice
        return list(range(dim // 2)), list(range(dim // 2, dim))
    try:
        q, p = [int(i) for i in q], [int(i) for i in p]
    except (TypeError, ValueError):
        raise BadParameterError(f"hnn: q and p must be lists of variables, got q={q!r}, p={p!r}",
                                fix="pass both, e.g. q=['x'], p=['y'], or neither") from None
    if len(q) != len(p) or sorted(q + p) != list(range(dim)):
        raise BadParameterError(
            f"hnn: q has {len(q)} and p {len(p)} variables (positions {q} and {p}); a Hamiltonian network needs "
            f"canonical pairs: q and p of equal length that together name each of the {dim} variables once",
            fix="pair each coordinate with its momentum, e.g. q=['x'], p=['y'] for a 2-variable state; systems "
                "with an odd number of variables have no canonical split: use node or sonode")
    return q, p


class HamiltonianNN(ContinuousLearner):
    """dq/dt = dH/dp, dp/dt = -dH/dq with a scalar MLP H_theta.

    In standardised coordinates the symplectic form picks up the factor 1/(scale_q scale_p) per
    canonical pair, applied here so the learned H stays a true Hamiltonian up to a constant factor.
    Trained on the stored derivatives when the dataset has them (as in the paper), else by
    trajectory matching; rollouts use the solver it trained with.
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
        q, p = canonical_split(o["q"], o["p"], dim)
        self.register_buffer("q_index", torch.tensor(q))
        self.register_buffer("p_index", torch.tensor(p))

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

"""Deep ensembles: K independently initialised members of a deterministic learner, trained on the
same batches; their spread is the epistemic uncertainty. Lakshminarayanan, Pritzel & Blundell,
"Simple and Scalable Predictive Uncertainty Estimation using Deep Ensembles", NeurIPS 2017."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..errors import BadParameterError
from .base import Batch, DataInfo, Learner, Supports


class Ensemble(Learner):
    """Options: ``members`` (K), ``base`` (a deterministic learner name) and ``base_options``."""

    name = "ensemble"
    reference = "Lakshminarayanan et al. 2017, Deep Ensembles, NeurIPS"
    supports = Supports(kinds=("ode",), stochastic=True, objectives=("trajectory", "derivative", "auto"))
    defaults = {"members": 5, "base": "node", "base_options": {}, "objective": "trajectory"}

    def __init__(self, dim: int, **options):
        from . import get_learner

        super().__init__(dim, **options)
        o = self.options
        base = get_learner(o["base"])
        if base.supports.stochastic or base is Ensemble:
            raise BadParameterError(f"an ensemble's base must be a deterministic learner, not {o['base']!r}")
        if int(o["members"]) < 2:
            raise BadParameterError(f"an ensemble needs at least 2 members, got {o['members']}")
        base_options = {"objective": o["objective"], **dict(o["base_options"])}
        self.members = nn.ModuleList(base(dim, **base_options) for _ in range(int(o["members"])))

    @classmethod
    def check_data(cls, info: DataInfo, options: Optional[dict] = None) -> None:
        from . import get_learner

        get_learner((options or {}).get("base", cls.defaults["base"])).check_data(info)

    def set_scaling(self, offset: torch.Tensor, scale: torch.Tensor) -> None:
        super().set_scaling(offset, scale)
        for member in self.members:
            member.set_scaling(offset, scale)

    def objective(self, has_derivative: bool) -> str:
        return self.members[0].objective(has_derivative)

    def loss(self, batch: Batch, horizon: int, objective: str) -> torch.Tensor:
        return torch.stack([m.loss(batch, horizon, objective) for m in self.members]).mean()

    def drift(self, z: torch.Tensor) -> torch.Tensor:
        return torch.stack([m.drift(z) for m in self.members]).mean(0)

    def member_drifts(self, z: torch.Tensor) -> torch.Tensor:
        return torch.stack([m.drift(z) for m in self.members])

    def rollout(self, z0: torch.Tensor, t: torch.Tensor, n_samples: int = 1,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """One path per member (``n_samples`` is the member count)."""
        paths = torch.cat([m.rollout(z0, t, 1) for m in self.members])
        self.last_nfe = sum(getattr(m, "last_nfe", 0) for m in self.members)
        return paths

"""Deep ensembles: K independently initialised members of a deterministic learner, trained on the
same batches; their spread is the epistemic uncertainty. Lakshminarayanan, Pritzel & Blundell,
"Simple and Scalable Predictive Uncertainty Estimation using Deep Ensembles", NeurIPS 2017."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Optional

import torch
from torch import nn

from ..errors import BadParameterError
from .base import Batch, Capabilities, DataInfo, InputSignal, Learner

MAX_MEMBERS = 64


class Ensemble(Learner):
    """Options: ``members`` (K), ``base`` (a deterministic learner name) and ``base_options``.

    Declares what its base declares, made stochastic (one path per member).
    """

    name = "ensemble"
    reference = "Lakshminarayanan et al. 2017, Deep Ensembles, NeurIPS"
    supports = Capabilities(kinds=("ode",), stochastic=True, objectives=("trajectory", "derivative"), inputs=True)
    defaults = {"members": 5, "base": "node", "base_options": {}, "objective": "auto"}

    def __init__(self, dim: int, n_inputs: int = 0, **options: Any):
        from . import get_learner

        super().__init__(dim, n_inputs, **options)
        o = self.options
        base = get_learner(o["base"])
        members = o["members"]
        if isinstance(members, bool) or not isinstance(members, int) or not 2 <= members <= MAX_MEMBERS:
            raise BadParameterError(f"an ensemble needs an integer number of members in [2, {MAX_MEMBERS}], "
                                    f"got {members!r}")
        if not isinstance(o["base_options"], Mapping):
            raise BadParameterError(f"base_options must be a dict of the base learner's options, got {o['base_options']!r}")
        base_options = {"objective": o["objective"], **dict(o["base_options"])}
        self.members = nn.ModuleList(base(dim, self.n_inputs, **base_options) for _ in range(members))
        base_caps = self.members[0].capabilities()
        if base_caps.stochastic or base_caps.training != "gradient" or base is Ensemble:
            raise BadParameterError(f"an ensemble's base must be a deterministic gradient-trained learner, "
                                    f"not {o['base']!r}")

    def capabilities(self) -> Capabilities:
        return replace(self.members[0].capabilities(), stochastic=True)

    @classmethod
    def options_from_data(cls, info: DataInfo, options: Mapping[str, Any]) -> dict[str, Any]:
        from . import get_learner

        options = dict(options)
        base = get_learner(options.get("base", cls.defaults["base"]))
        options["base_options"] = base.options_from_data(info, dict(options.get("base_options", {})))
        return options

    def set_scaling(self, offset: torch.Tensor, scale: torch.Tensor, rate: float = 1.0) -> None:
        super().set_scaling(offset, scale, rate)
        for member in self.members:
            member.set_scaling(offset, scale, rate)

    def objective(self, has_derivative: bool) -> str:
        return self.members[0].objective(has_derivative)

    def loss(self, batch: Batch, horizon: int, objective: str) -> torch.Tensor:
        return torch.stack([m.loss(batch, horizon, objective) for m in self.members]).mean()

    def drift(self, z: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.member_drifts(z, u).mean(0)

    def member_drifts(self, z: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        return torch.stack([m.drift(z, u) for m in self.members])

    @property
    def solver_options(self) -> tuple[str, ...]:
        """The base learner's (its members roll out with their solver)."""
        return self.members[0].solver_options

    def rollout(self, z0: torch.Tensor, t: torch.Tensor, n_samples: int = 1,
                generator: Optional[torch.Generator] = None, inputs: Optional[InputSignal] = None,
                context: Optional[torch.Tensor] = None, solver: Optional[Mapping[str, Any]] = None) -> torch.Tensor:
        """One path per member (``n_samples`` is the member count); ``solver`` goes to each member."""
        extra = {"solver": solver} if solver else {}
        paths = torch.cat([m.rollout(z0, t, 1, inputs=inputs, context=context, **extra) for m in self.members])
        self.last_nfe = sum(m.last_nfe or 0 for m in self.members)
        return paths

"""The one adapter between workbench drift/diffusion functions and torchsde's SDE interface."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

TimeField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class TorchsdeProblem(nn.Module):
    """An Ito SDE ``dy = f(t, y) dt + g(t, y) dW`` in the form ``torchsde.sdeint`` expects.

    Arguments:
        drift: ``f(t, y)`` with ``y`` of shape (batch, dim).
        diffusion: ``g(t, y)``: (batch, dim) for diagonal, additive and scalar noise (the
            additive case is one independent Brownian motion per state), (batch, dim, m) for
            general noise.
        noise_type: ``"diagonal"``, ``"additive"``, ``"scalar"`` or ``"general"``.
    """

    sde_type = "ito"

    def __init__(self, drift: TimeField, diffusion: TimeField, noise_type: str):
        super().__init__()
        self.drift, self.diffusion, self.noise_type = drift, diffusion, noise_type

    def f(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.drift(t, y)

    def g(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        g = self.diffusion(t, y)
        if self.noise_type == "additive":
            return torch.diag_embed(g)
        if self.noise_type == "scalar":
            return g.unsqueeze(-1)
        return g

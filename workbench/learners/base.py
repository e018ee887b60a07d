"""What every learner is: a torch module that declares what it supports, a loss and a rollout.

Learners work in standardised coordinates ``z = (x - mean) / std`` (the fit loop owns the
conversion); ``set_scaling`` tells those that need physical structure (HNN's symplectic form,
second-order kinematics) the per-variable scales.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Optional

import torch
from torch import nn

from ..errors import BadParameterError, UnsupportedError


@dataclass(frozen=True)
class Supports:
    """A learner's declaration of the data it can fit.

    Attributes:
        kinds: system kinds whose data it models (``"ode"``, ``"sde"``).
        stochastic: rollouts are random (``predict(n_samples=K)`` gives K different paths).
        irregular: copes with missing samples (a ``mask``) and non-uniform time grids.
        needs_qp: needs a declared canonical (q, p) split of the state.
        needs_even_dim: state must be (positions, velocities) of equal size.
        objectives: training objectives it can use; the first is the default.
    """

    kinds: tuple[str, ...] = ("ode",)
    stochastic: bool = False
    irregular: bool = True
    needs_qp: bool = False
    needs_even_dim: bool = False
    objectives: tuple[str, ...] = ("trajectory",)


@dataclass
class Batch:
    """Windows of standardised data: ``z`` (B, L, D), ``t`` (B, L) times, ``mask`` (B, L), ``dz`` optional."""

    z: torch.Tensor
    t: torch.Tensor
    mask: torch.Tensor
    dz: Optional[torch.Tensor] = None


ACTIVATIONS = {"tanh": nn.Tanh, "softplus": nn.Softplus, "silu": nn.SiLU, "gelu": nn.GELU, "relu": nn.ReLU}


def mlp(n_in: int, n_out: int, hidden: int, depth: int, activation: str, zero_last: bool = False) -> nn.Sequential:
    """A plain MLP; ``zero_last`` starts it as the zero function (a near-identity flow at init)."""
    if activation not in ACTIVATIONS:
        raise BadParameterError(f"unknown activation {activation!r}; use one of {sorted(ACTIVATIONS)}")
    if hidden < 1 or depth < 1:
        raise BadParameterError(f"hidden and depth must be >= 1, got hidden={hidden}, depth={depth}")
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
        width = hidden
    last = nn.Linear(width, n_out)
    if zero_last:
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


class Learner(nn.Module):
    """Base class: subclasses set ``name``, ``supports``, ``defaults`` and implement the methods below."""

    name: ClassVar[str] = ""
    supports: ClassVar[Supports] = Supports()
    defaults: ClassVar[Mapping[str, Any]] = {}
    reference: ClassVar[str] = ""

    def __init__(self, dim: int, **options: Any):
        super().__init__()
        unknown = set(options) - set(self.defaults)
        if unknown:
            raise BadParameterError(f"learner {self.name!r} has no option(s) {sorted(unknown)}; "
                                    f"its options are {sorted(self.defaults)}")
        self.dim = dim
        self.options = {**self.defaults, **options}
        objective = self.options.get("objective", self.supports.objectives[0])
        if objective not in self.supports.objectives + ("auto",):
            raise BadParameterError(f"learner {self.name!r} cannot train on objective {objective!r}; "
                                    f"it supports {self.supports.objectives}")
        self.register_buffer("scale", torch.ones(dim))
        self.register_buffer("offset", torch.zeros(dim))

    @classmethod
    def check_data(cls, info: "DataInfo", options: Optional[Mapping[str, Any]] = None) -> None:
        """Refuse data this learner cannot fit, with a message that says why and what to use instead."""
        s = cls.supports
        if info.kind not in s.kinds:
            alternative = "nsde" if info.kind == "sde" else "node"
            raise UnsupportedError(f"learner {cls.name!r} fits {'/'.join(s.kinds)} data, but this dataset comes from "
                                   f"a{'n' if info.kind == 'ode' else 'n'} {info.kind.upper()}; use {alternative!r} "
                                   "(or 'ensemble' for epistemic uncertainty)")
        if not s.irregular and not info.regular:
            raise UnsupportedError(f"learner {cls.name!r} is a discrete map and needs regularly sampled data without "
                                   "missing samples; use 'node' for irregular or masked data")
        if s.needs_qp and info.qp_split is None:
            raise UnsupportedError(f"learner {cls.name!r} needs canonical coordinates: the dataset must declare a (q, p) "
                                   "split (catalog Hamiltonian systems do; otherwise pass q=[...], p=[...])")
        if s.needs_even_dim and info.dim % 2:
            raise UnsupportedError(f"learner {cls.name!r} needs a state of positions then velocities (even size), "
                                   f"got {info.dim} variables")

    def set_scaling(self, offset: torch.Tensor, scale: torch.Tensor) -> None:
        """Receive the standardisation ``z = (x - offset) / scale`` used for this learner."""
        self.offset.copy_(offset)
        self.scale.copy_(scale)

    def objective(self, has_derivative: bool) -> str:
        chosen = self.options.get("objective", self.supports.objectives[0])
        if chosen == "auto":
            return "derivative" if has_derivative and "derivative" in self.supports.objectives \
                else self.supports.objectives[0]
        return chosen

    def loss(self, batch: Batch, horizon: int, objective: str) -> torch.Tensor:
        """Training loss on a batch; ``horizon`` is the curriculum's current window length in samples."""
        raise NotImplementedError

    def rollout(self, z0: torch.Tensor, t: torch.Tensor, n_samples: int = 1,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Predicted standardised states, shape ``(n_samples, batch, len(t), dim)``."""
        raise NotImplementedError

    def drift(self, z: torch.Tensor) -> torch.Tensor:
        """The learned vector field ``dz/dt`` at standardised states ``z`` (B, D)."""
        raise NotImplementedError


@dataclass
class DataInfo:
    """What the fit loop learned about a dataset, for learners' checks and construction."""

    kind: str
    dim: int
    regular: bool
    dt: float
    has_derivative: bool
    qp_split: Optional[tuple[list[int], list[int]]] = None
    names: list[str] = field(default_factory=list)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over observed samples; ``mask`` has the shape of ``pred`` without the last dim."""
    weight = mask.unsqueeze(-1).to(pred.dtype)
    return ((pred - target) ** 2 * weight).sum() / (weight.sum() * pred.shape[-1]).clamp_min(1.0)

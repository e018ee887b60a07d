"""The declarative description of one dynamical system."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Optional, Sequence

import torch

from .errors import BadParameterError, UnknownNameError

Params = Mapping[str, torch.Tensor]
Field = Callable[[torch.Tensor, torch.Tensor, Params], torch.Tensor]
StateFunction = Callable[[torch.Tensor, Params], torch.Tensor]
Forcing = Callable[[torch.Tensor, Params], torch.Tensor]
Moment = Callable[[torch.Tensor, torch.Tensor, Params], torch.Tensor]

KINDS = ("ode", "sde")
NOISE_TYPES = ("diagonal", "additive", "general", "scalar")


@dataclass(frozen=True)
class Param:
    """One parameter: its default, the range it may be sampled from, and what it means."""

    default: float
    low: float
    high: float
    description: str = ""

    def __post_init__(self) -> None:
        if not (self.low <= self.default <= self.high):
            raise BadParameterError(
                f"parameter default {self.default} lies outside its range [{self.low}, {self.high}]; "
                "widen the range or fix the default")


@dataclass(frozen=True)
class System:
    """A known ODE or SDE, with everything needed to simulate it and check the result.

    Arguments:
        name: snake_case catalog name.
        kind: ``"ode"`` or ``"sde"``.
        state_names: one name per state variable.
        drift: ``f(t, x, p)``; ``x`` has shape ``(batch, dim)`` and every ``p[name]`` is a tensor
            broadcastable against ``x[..., 0]`` (a scalar or one value per trajectory).
        params: name -> :class:`Param` (default and valid range).
        x0_low, x0_high: box from which default initial conditions are drawn uniformly.
        t_end, dt: default time span ``[0, t_end]`` and sampling step.
        reference: literature source of the equations and parameter values.
        equations: LaTeX of the right-hand side, one line per state.
        units: one unit string per state (``"1"`` for dimensionless).
        diffusion: SDEs only: ``g(t, x, p)``, shape ``(batch, dim)`` for diagonal/additive/scalar
            noise, ``(batch, dim, brownian_dim)`` for general noise.
        noise_type: SDEs only, one of ``diagonal``, ``additive``, ``general``, ``scalar``.
        brownian_dim: number of Brownian motions (``dim`` unless the noise is general or scalar).
        x0_sampler: optional ``(n, generator) -> (n, dim)`` float64 tensor replacing the box.
        lyapunov: largest Lyapunov exponent at the default parameters (chaotic systems).
        chaotic: declare chaos where no published exponent is known (default: ``lyapunov > 0``).
        facts_source: where ``lyapunov`` and other numbers come from.
        regime: how the behaviour depends on energy or parameters where one ``chaotic`` flag and one
            exponent cannot say it (e.g. mixed regular/chaotic Hamiltonian systems).
        energy: conserved energy ``H(x, p)`` with ``x`` of shape ``(..., dim)``.
        qp_split: ``(q_indices, p_indices)`` of the canonical coordinates for Hamiltonian systems.
        invariants: other conserved quantities, name -> ``I(x, p)``.
        stiff: integrate with an implicit method by default.
        mean, variance: linear SDEs only: analytic ``E[x_t]`` and ``Var[x_t]`` given ``x0``
            (shape ``(batch, dim)``) as functions ``m(t, x0, p)``.
        bound: a state whose absolute value exceeds this is treated as divergence.
        description: one sentence for tables.
        time_units: unit of the time axis.
        inputs: names of exogenous inputs (forcing) the drift reads through ``forcing``.
        forcing: ``u(t, p)`` with ``t`` of shape (batch,), returning (batch, len(inputs)); the
            drift calls it, and :func:`workbench.simulate` records it as the dataset's ``input``.
        options, builder: structural options (e.g. ``{"dim": 10}``) and the function that builds
            the variant for other values (see :meth:`with_options`).
    """

    name: str
    kind: str
    state_names: tuple[str, ...]
    drift: Field
    params: Mapping[str, Param]
    x0_low: Sequence[float]
    x0_high: Sequence[float]
    t_end: float
    dt: float
    reference: str
    equations: str
    description: str = ""
    units: Optional[tuple[str, ...]] = None
    diffusion: Optional[Field] = None
    noise_type: Optional[str] = None
    brownian_dim: Optional[int] = None
    x0_sampler: Optional[Callable[[int, torch.Generator], torch.Tensor]] = None
    lyapunov: Optional[float] = None
    chaotic: Optional[bool] = None
    facts_source: str = ""
    regime: str = ""
    energy: Optional[StateFunction] = None
    qp_split: Optional[tuple[tuple[int, ...], tuple[int, ...]]] = None
    invariants: Mapping[str, StateFunction] = field(default_factory=dict)
    stiff: bool = False
    mean: Optional[Moment] = None
    variance: Optional[Moment] = None
    bound: float = 1e6
    time_units: str = "1"
    inputs: tuple[str, ...] = ()
    forcing: Optional[Forcing] = None
    options: Mapping[str, int] = field(default_factory=dict)
    builder: Optional[Callable[..., "System"]] = None

    def __post_init__(self) -> None:
        problems = []
        if not self.name or not self.name.replace("_", "a").isalnum() or self.name != self.name.lower():
            problems.append(f"name {self.name!r} is not snake_case")
        if self.kind not in KINDS:
            problems.append(f"kind {self.kind!r} is not one of {KINDS}")
        if len(self.state_names) == 0 or len(set(self.state_names)) != len(self.state_names):
            problems.append("state_names must be non-empty and unique")
        if len(self.x0_low) != self.dim or len(self.x0_high) != self.dim:
            problems.append(f"x0_low/x0_high need {self.dim} entries, one per state")
        if self.units is not None and len(self.units) != self.dim:
            problems.append(f"units need {self.dim} entries, one per state")
        if self.kind == "sde":
            if self.diffusion is None:
                problems.append("an SDE needs a diffusion g(t, x, p)")
            if self.noise_type not in NOISE_TYPES:
                problems.append(f"noise_type {self.noise_type!r} is not one of {NOISE_TYPES}")
        elif self.diffusion is not None:
            problems.append("an ODE has no diffusion; use kind='sde'")
        if not (self.t_end > 0 and 0 < self.dt <= self.t_end):
            problems.append(f"need 0 < dt <= t_end, got dt={self.dt}, t_end={self.t_end}")
        if self.qp_split is not None:
            q, p = self.qp_split
            if len(q) != len(p) or sorted(q + p) != list(range(self.dim)):
                problems.append("qp_split must split the state into equally long q and p index lists")
        if bool(self.inputs) != (self.forcing is not None):
            problems.append("a forced system declares both its input names and its forcing u(t, p)")
        if problems:
            raise BadParameterError(f"system {self.name!r} is malformed: " + "; ".join(problems))

    @property
    def dim(self) -> int:
        return len(self.state_names)

    @property
    def defaults(self) -> dict[str, float]:
        """Default parameter values, name -> float."""
        return {k: v.default for k, v in self.params.items()}

    @property
    def state_units(self) -> tuple[str, ...]:
        return self.units if self.units is not None else ("1",) * self.dim

    @property
    def noise_dim(self) -> int:
        if self.brownian_dim is not None:
            return self.brownian_dim
        return 1 if self.noise_type == "scalar" else self.dim

    @property
    def lyapunov_time(self) -> Optional[float]:
        return None if not self.lyapunov else 1.0 / self.lyapunov

    @property
    def facts(self) -> dict[str, object]:
        """Known facts as plain JSON-friendly values (for tables, files and the app)."""
        facts: dict[str, object] = {
            "stiff": self.stiff,
            "chaotic": self.chaotic if self.chaotic is not None else bool(self.lyapunov and self.lyapunov > 0),
        }
        if self.lyapunov is not None:
            facts["max_lyapunov_exponent"] = self.lyapunov
            facts["lyapunov_time"] = self.lyapunov_time
        if self.energy is not None:
            facts["conserved"] = ["energy", *self.invariants]
        elif self.invariants:
            facts["conserved"] = list(self.invariants)
        if self.qp_split is not None:
            q, p = self.qp_split
            facts["q"] = [self.state_names[i] for i in q]
            facts["p"] = [self.state_names[i] for i in p]
        if self.kind == "sde":
            facts["noise_type"] = self.noise_type
            facts["analytic_moments"] = self.mean is not None
        if self.inputs:
            facts["inputs"] = list(self.inputs)
        if self.regime:
            facts["regime"] = self.regime
        if self.facts_source:
            facts["source"] = self.facts_source
        return facts

    def check_params(self, values: Mapping[str, object]) -> None:
        """Raise :class:`UnknownNameError` for unknown names, :class:`BadParameterError` for values outside the range."""
        for key, value in values.items():
            if key not in self.params:
                raise UnknownNameError(
                    f"system {self.name!r} has no parameter {key!r}; its parameters are "
                    f"{sorted(self.params) or 'none'}")
            spec = self.params[key]
            arr = torch.as_tensor(value, dtype=torch.float64)
            shown = arr.tolist()  # numbers as numbers (99.0), never array(99.) or np.float64(99.0)
            if not torch.isfinite(arr).all():
                raise BadParameterError(f"parameter {key!r} of {self.name!r} must be finite, got {shown}")
            if (arr < spec.low).any() or (arr > spec.high).any():
                raise BadParameterError(
                    f"parameter {key}={shown} of {self.name!r} is outside its valid range "
                    f"[{spec.low}, {spec.high}]; choose a value inside it")

    def sample_x0(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Draw ``n`` default initial conditions, float64, shape ``(n, dim)``."""
        if self.x0_sampler is not None:
            return self.x0_sampler(n, generator).to(torch.float64)
        low = torch.tensor(self.x0_low, dtype=torch.float64)
        high = torch.tensor(self.x0_high, dtype=torch.float64)
        return low + (high - low) * torch.rand(n, self.dim, generator=generator, dtype=torch.float64)

    def with_options(self, **options: int) -> "System":
        """Return the variant with different structural options (e.g. ``dim`` of ``lorenz96``)."""
        if not options:
            return self
        unknown = set(options) - set(self.options)
        if unknown or self.builder is None:
            raise UnknownNameError(
                f"system {self.name!r} has no structural option {sorted(unknown or options)}; "
                f"its options are {sorted(self.options) or 'none'}")
        return self.builder(**{**self.options, **options})

    def renamed(self, name: str) -> "System":
        return replace(self, name=name)


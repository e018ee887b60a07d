"""What every learner is: a torch module that declares what it can fit, and how it is trained.

Learners work in standardised coordinates ``z = (x - offset) / scale`` (the fit loop owns the
conversion); :meth:`Learner.set_scaling` gives those that need physical structure (HNN's
symplectic form, second-order kinematics, equations in physical units) the per-variable scales.

Two training styles share :func:`workbench.fit`: ``"gradient"`` learners give a differentiable
:meth:`Learner.loss` on windows of data, ``"closed_form"`` learners fit once in
:meth:`Learner.fit_closed_form` (ridge or sparse regression). Each instance declares its
:class:`Capabilities`; the fit loop checks them against the data before any computation.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Optional

import torch
from torch import nn

from ..errors import BadParameterError, UnsupportedError

TRAINING_STYLES = ("gradient", "closed_form")


@dataclass(frozen=True)
class Capabilities:
    """What a learner instance can fit and how it is trained.

    Attributes:
        kinds: system kinds whose data it models (``"ode"``, ``"sde"``).
        stochastic: rollouts are random (``predict(n_samples=K)`` gives K different paths).
        irregular: copes with missing samples (a ``mask``) and non-uniform time grids.
        needs_qp: needs a declared canonical (q, p) split of the state.
        needs_even_dim: state must be (positions, velocities) of equal size.
        objectives: training objectives it can use; the first is the default.
        inputs: accepts exogenous inputs (forcing, control, covariates) beside the state.
        training: ``"gradient"`` or ``"closed_form"``.
        context: samples before the start state that a rollout needs (0 for Markov models).
        has_vector_field: :meth:`Learner.drift` gives a vector field (maps on histories have none).
        has_equations: :meth:`Learner.equations` gives readable equations.
    """

    kinds: tuple[str, ...] = ("ode",)
    stochastic: bool = False
    irregular: bool = True
    needs_qp: bool = False
    needs_even_dim: bool = False
    objectives: tuple[str, ...] = ("trajectory",)
    inputs: bool = False
    training: str = "gradient"
    context: int = 0
    has_vector_field: bool = True
    has_equations: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    inputs: list[str] = field(default_factory=list)
    length: int = 0  # samples per trajectory
    system: Optional[str] = None  # the catalog system the data says it comes from (simulated data)


def refusal(caps: Capabilities, info: DataInfo, name: str) -> Optional[str]:
    """Why a learner with ``caps`` cannot fit data described by ``info`` (and what to do), or None."""
    if info.kind not in caps.kinds:
        alternative = "nsde" if info.kind == "sde" else "node"
        return (f"learner {name!r} fits {'/'.join(caps.kinds)} data, but this dataset comes from an "
                f"{info.kind.upper()}; use {alternative!r}")
    if not caps.irregular and not info.regular:
        return (f"learner {name!r} needs regularly sampled data without missing samples; fill the gaps with "
                f"wb.fit(ds, {name!r}, fill_gaps=True) (linear interpolation inside each series) after "
                "wb.split_time(ds) (its pieces are laid on a regular step, calendar months included), or use "
                "'node' for irregular or masked data")
    if caps.needs_qp and info.qp_split is None:
        return (f"learner {name!r} needs canonical coordinates: the dataset must declare a (q, p) split "
                "(catalog Hamiltonian systems do; otherwise pass q=[...] and p=[...] to fit); use 'node' for "
                "data that is not Hamiltonian")
    if caps.needs_even_dim and info.dim % 2:
        return (f"learner {name!r} needs a state of positions then velocities (even size), got {info.dim} "
                "variables; use 'node' or 'anode'")
    if caps.context and info.length < caps.context + 2:
        return (f"learner {name!r} needs trajectories longer than its context of {caps.context} samples plus 2, "
                f"got {info.length}; use longer trajectories or a learner option with less context")
    if info.inputs and not caps.inputs:
        return (f"learner {name!r} does not accept exogenous inputs, but the dataset has {info.inputs}; use 'node' "
                "(or drop them with ds.drop_vars('input') to fit an autonomous model)")
    return None


@dataclass
class Batch:
    """Windows of standardised data: ``z`` (B, L, D), ``t`` (B, L), ``mask`` (B, L); optional
    ``dz`` (B, L, D) true derivatives and ``u`` (B, L, U) standardised inputs."""

    z: torch.Tensor
    t: torch.Tensor
    mask: torch.Tensor
    dz: Optional[torch.Tensor] = None
    u: Optional[torch.Tensor] = None

    def inputs(self, length: Optional[int] = None) -> Optional["InputSignal"]:
        """The inputs of the first ``length`` samples as a signal on times relative to the window start."""
        if self.u is None:
            return None
        t = self.t[:, :length] if length else self.t
        return InputSignal(t[0] - t[0, 0], self.u[:, : t.shape[1]])


class InputSignal:
    """Exogenous inputs sampled at ``times`` (T,) with ``values`` (B, T, U).

    Continuous-time learners read :meth:`at` (piecewise linear or cubic Hermite interpolation
    between samples, constant outside them); discrete maps read ``values`` on the sample grid.
    """

    METHODS = ("linear", "hermite")

    def __init__(self, times: torch.Tensor, values: torch.Tensor, method: str = "linear"):
        if method not in self.METHODS:
            raise BadParameterError(f"unknown input interpolation {method!r}; use one of {self.METHODS}")
        self.times, self.values, self.method = times, values, method
        if method == "hermite" and len(times) > 1:
            # Catmull-Rom-like slopes: centred differences inside, one-sided at the ends
            dt = (times[1:] - times[:-1]).reshape(1, -1, 1)
            secant = (values[:, 1:] - values[:, :-1]) / dt
            inner = 0.5 * (secant[:, 1:] + secant[:, :-1])
            self.slopes = torch.cat([secant[:, :1], inner, secant[:, -1:]], dim=1)

    def repeat(self, n: int) -> "InputSignal":
        """The same signal for ``n`` stacked copies of the batch (for sample paths)."""
        return InputSignal(self.times, self.values.repeat(n, 1, 1), self.method)

    def at(self, t: torch.Tensor) -> torch.Tensor:
        """Inputs at time ``t``: a scalar tensor, or one time per batch row (B,); shape (B, U)."""
        times, values = self.times, self.values
        batch = values.shape[0]
        if len(times) == 1:
            return values[:, 0]
        t = t.reshape(-1).to(times.dtype).expand(batch).clamp(times[0], times[-1])
        i = (torch.searchsorted(times, t.contiguous(), right=True) - 1).clamp(0, len(times) - 2)
        rows = torch.arange(batch, device=values.device)
        h = times[i + 1] - times[i]
        s = ((t - times[i]) / h)[:, None]
        u0, u1 = values[rows, i], values[rows, i + 1]
        if self.method == "linear":
            return u0 + s * (u1 - u0)
        m0, m1, h = self.slopes[rows, i], self.slopes[rows, i + 1], h[:, None]
        s2, s3 = s * s, s * s * s
        return ((2 * s3 - 3 * s2 + 1) * u0 + (s3 - 2 * s2 + s) * h * m0
                + (-2 * s3 + 3 * s2) * u1 + (s3 - s2) * h * m1)


ACTIVATIONS = {"tanh": nn.Tanh, "softplus": nn.Softplus, "silu": nn.SiLU, "gelu": nn.GELU, "relu": nn.ReLU}
MAX_PARAMETERS = 50_000_000


def mlp(n_in: int, n_out: int, hidden: int, depth: int, activation: str, zero_last: bool = False) -> nn.Sequential:
    """A plain MLP; ``zero_last`` starts it as the zero function (a near-identity flow at init)."""
    if activation not in ACTIVATIONS:
        raise BadParameterError(f"unknown activation {activation!r}; use one of {sorted(ACTIVATIONS)}")
    for label, value in (("hidden", hidden), ("depth", depth)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BadParameterError(f"{label} must be an integer >= 1, got {value!r}")
    size = (n_in + 1) * hidden + (depth - 1) * (hidden + 1) * hidden + (hidden + 1) * n_out
    if depth > 64 or size > MAX_PARAMETERS:
        raise BadParameterError(f"an MLP with hidden={hidden}, depth={depth} has {size:,} parameters (limit "
                                f"{MAX_PARAMETERS:,}, depth <= 64); choose a smaller network")
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
    """Base class: subclasses set ``name``, ``supports``, ``defaults``, ``reference`` and implement
    :meth:`rollout` plus :meth:`loss` (gradient style) or :meth:`fit_closed_form` (closed form).

    Arguments:
        dim: number of state variables.
        n_inputs: number of exogenous input variables (0 for autonomous data).
        options: the learner's own options (see its ``defaults``).
    """

    name: ClassVar[str] = ""
    supports: ClassVar[Capabilities] = Capabilities()
    defaults: ClassVar[Mapping[str, Any]] = {}
    reference: ClassVar[str] = ""
    # options a rollout's ``solver=`` may set apart from the trained ones (an ODE solver's); none here
    solver_options: tuple[str, ...] = ()

    def __init__(self, dim: int, n_inputs: int = 0, **options: Any):
        super().__init__()
        unknown = set(options) - set(self.defaults)
        if unknown:
            raise BadParameterError(f"learner {self.name!r} has no option(s) {sorted(unknown)}; "
                                    f"its options are {sorted(self.defaults)}")
        self.dim, self.n_inputs = dim, int(n_inputs)
        self.options = {**self.defaults, **options}
        objective = self.options.get("objective", "auto")
        if objective != "auto" and objective not in self.supports.objectives:
            raise BadParameterError(f"learner {self.name!r} cannot train on objective {objective!r}; "
                                    f"it supports {self.supports.objectives} or 'auto'")
        self.register_buffer("scale", torch.ones(dim))
        self.register_buffer("offset", torch.zeros(dim))
        self.register_buffer("rate", torch.ones(()))
        self.last_nfe: Optional[int] = None  # vector-field evaluations of the last rollout, where counted
        self.time_budget: Optional[float] = None  # seconds a closed-form fit may take (set by fit), if it iterates

    # --- declarations --------------------------------------------------------------------------
    def capabilities(self) -> Capabilities:
        """This instance's declaration (an ensemble's follows its base learner)."""
        return self.supports

    @classmethod
    def options_from_data(cls, info: DataInfo, options: Mapping[str, Any]) -> dict[str, Any]:
        """Options the data decides unless the user did: a map's step ``dt``, HNN's ``q``/``p``."""
        options = dict(options)
        if "dt" in cls.defaults:
            options.setdefault("dt", info.dt)
        if "q" in cls.defaults and info.qp_split is not None:
            options.setdefault("q", info.qp_split[0])
            options.setdefault("p", info.qp_split[1])
        return options

    @classmethod
    def saved_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """A model file's options, completed with the values it was trained with where it predates
        an option whose default differs from them (none here; learners that changed a default say so)."""
        return dict(options)

    def objective(self, has_derivative: bool) -> str:
        """The training objective: the chosen one, or for ``"auto"`` the stored derivatives when
        the data has them and the learner can use them, else the learner's first objective."""
        chosen = self.options.get("objective", "auto")
        objectives = self.capabilities().objectives
        if chosen == "auto":
            return "derivative" if has_derivative and "derivative" in objectives else objectives[0]
        if chosen == "derivative" and not has_derivative:
            raise UnsupportedError(f"learner {self.name!r}: objective 'derivative' needs a 'derivative' variable in "
                                   "the dataset (simulate(..., derivative=True)); use objective='trajectory'")
        return chosen

    def set_scaling(self, offset: torch.Tensor, scale: torch.Tensor, rate: float = 1.0) -> None:
        """Receive the standardisation ``z = (x - offset) / scale`` used for this learner and the
        data's rate of change of ``z`` per unit time (``windows.characteristic_rate``), by which
        continuous-time learners scale their networks' outputs."""
        self.offset.copy_(offset)
        self.scale.copy_(scale)
        self.rate.fill_(rate)

    # --- training --------------------------------------------------------------------------------
    def loss(self, batch: Batch, horizon: int, objective: str) -> torch.Tensor:
        """Gradient style: loss on a batch; ``horizon`` is the curriculum's window length in samples."""
        raise NotImplementedError(f"{type(self).__name__} trains in closed form")

    def fit_closed_form(self, train: Any, val: Optional[Any], times: torch.Tensor) -> dict[str, float]:
        """Closed-form style: fit from whole training trajectories (a ``training.Split``); returns
        named scores (e.g. the validation loss) recorded in the history."""
        raise NotImplementedError(f"{type(self).__name__} trains by gradient descent")

    def after_fit(self, model: Any, ds: Any) -> None:
        """Called once with the fitted model and the data it was fitted on (schema dataset, after the
        series recipe), before the run folder's final files are written: for a calibration on the
        validation split. Nothing by default."""

    # --- use ----------------------------------------------------------------------------------------
    def rollout(self, z0: torch.Tensor, t: torch.Tensor, n_samples: int = 1,
                generator: Optional[torch.Generator] = None, inputs: Optional[InputSignal] = None,
                context: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Predicted standardised states, shape ``(n_samples, batch, len(t), dim)``.

        ``inputs`` carries the exogenous inputs over ``t`` (relative to ``t[0]``); ``context``
        (B, C, D) the samples before ``z0`` for learners that declare ``context = C``. Learners with
        :attr:`solver_options` also take ``solver``, a dict of those options for this rollout.
        Users go through :meth:`workbench.Model.rollout`, which converts physical units.
        """
        raise NotImplementedError

    def drift(self, z: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The learned vector field ``dz/dt`` at standardised states ``z`` (B, D) and inputs ``u``."""
        raise UnsupportedError(f"learner {self.name!r} has no vector field")

    def member_drifts(self, z: torch.Tensor) -> torch.Tensor:
        """Each ensemble member's drift, shape (K, B, D); K = 1 for a single model."""
        return self.drift(z)[None]

    def diffusion(self, z: torch.Tensor) -> torch.Tensor:
        """Diagonal diffusion g(z) (B, D); only stochastic differential learners have one."""
        raise UnsupportedError(f"learner {self.name!r} has no diffusion; only 'nsde' learns one")

    def equations(self, names: list[str], latex: bool = False) -> list[str]:
        """Discovered equations, one per state variable; only equation-discovery learners have them."""
        raise UnsupportedError(f"learner {self.name!r} does not produce equations; use 'sindy'")

    @property
    def compilable(self) -> bool:
        """Whether :meth:`compile_training` can compile this learner's training step."""
        return False

    def compile_training(self, batch_size: int) -> bool:
        """Compile the training step with ``torch.compile``; returns whether training now runs
        compiled. Learners that cannot (see :attr:`compilable`) train eagerly."""
        return False


# inductor's C++ wrapper: with the Python one the neural ODE's training interval gained 2% over
# eager, not 6% (MLP 3-128-128-3, batch 128, one CPU thread)
COMPILE_OPTIONS = {"cpp_wrapper": True}
# A compiled call pays for its dispatch only when it covers several evaluations of the network: on
# benchmarks/bench_train.py's setting (hidden 128, batch 128, windows of 20, one CPU thread) a compiled
# one-evaluation map step ran 0.50x (resnet) and 0.82x (lmnet) eager, a four-stage RK4 map step 1.55x,
# and a neural ODE interval of two RK4 steps (8 evaluations) 1.68x.
MIN_COMPILED_EVALUATIONS = 4
Compiled = Callable[..., torch.Tensor]
# one compiled function per module-level function and process, shared by every learner instance: the
# parameters are its inputs, not constants baked into it
_compiled: dict[Callable[..., torch.Tensor], Compiled] = {}


def compile_with_trial(learner: Learner, function: Compiled,
                       trial: Callable[[Compiled, dict[str, Any]], torch.Tensor]) -> Optional[Compiled]:
    """``torch.compile`` of a training computation, once a trial run through it works forward and backward.

    Arguments:
        learner: the learner whose parameters the trial differentiates.
        function: a module-level function of the learner and tensors (compiled once per process).
        trial: ``trial(compiled, like)`` runs the compiled function on zeros made with ``like`` (the
            parameters' dtype and device) and shaped like a training batch, in every specialisation
            training will meet, and returns an output to differentiate.

    Returns:
        The compiled function, or ``None`` after a warning where compiling failed (no C compiler, an
        op the compiler does not support): the eager computation gives the same results.
    """
    reference = next(learner.parameters())
    try:
        if function not in _compiled:
            _compiled[function] = torch.compile(function, dynamic=False, options=COMPILE_OPTIONS)
        output = trial(_compiled[function], {"dtype": reference.dtype, "device": reference.device})
        torch.autograd.grad(output.sum(), [p for p in learner.parameters() if p.requires_grad])
    except Exception as exc:  # noqa: BLE001 -- any compiler failure: the eager path gives the same result
        _compiled.pop(function, None)
        warnings.warn(f"{learner.name}: torch.compile of the training step failed ({type(exc).__name__}: {exc}); "
                      "training eagerly", RuntimeWarning, stacklevel=3)
        return None
    return _compiled[function]


def step_indices(t: torch.Tensor, h: float, name: str) -> torch.Tensor:
    """Indices of the times ``t`` on the map's grid ``t[0] + k h``; other times are refused."""
    steps = (t.double() - t.double()[0]) / h
    index = torch.round(steps)
    if ((steps - index).abs() > 1e-4 * steps.clamp_min(1.0)).any():
        raise UnsupportedError(f"{name} is a map with step {h:g}: it predicts only at multiples of that step from "
                               "the start; ask for such times or use a continuous-time learner")
    return index.long()


def rk4_step(field: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], t: torch.Tensor, y: torch.Tensor,
             h: torch.Tensor) -> torch.Tensor:
    """One classical Runge-Kutta step of ``dy/dt = field(t, y)`` from times ``t`` (B,) over steps ``h``
    (B,), each batch row with its own time and step (irregular samples, shooting segments)."""
    hh = h[:, None]
    k1 = field(t, y)
    k2 = field(t + h / 2, y + hh / 2 * k1)
    k3 = field(t + h / 2, y + hh / 2 * k2)
    k4 = field(t + h, y + hh * k3)
    return y + hh / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over observed samples; ``mask`` has the shape of ``pred`` without the last dim."""
    weight = mask.unsqueeze(-1).to(pred.dtype)
    return ((pred - target) ** 2 * weight).sum() / (weight.sum() * pred.shape[-1]).clamp_min(1.0)

"""Universal differential equations: the terms a scientist knows plus a neural network for the rest.

Rackauckas et al. 2020, "Universal Differential Equations for Scientific Machine Learning": the drift
is ``dx/dt = known(x, t; theta) + NN(x)``. The fit follows the paper's pipeline, full batch:

1. **Multiple shooting** (Adam): the network, the known part's unknown constants ``theta`` and the
   start state of every segment of a few samples are trained together, the segments tied by
   continuity penalties, so a poor early model cannot drive a long solve away from the data.
2. **Single shooting refinement** (L-BFGS, the paper's second-order stage after ADAM): the network,
   ``theta`` and each trajectory's initial state minimise the misfit of the whole trajectories,
   down to the noise.
3. **The residual as equations** (:mod:`.ude_discovery`): SINDy's sequentially thresholded least
   squares on the network evaluated along the fitted trajectories proposes term sets from a
   polynomial library; each is re-fitted to the data with the known part, and an information
   criterion chooses (Mangan et al. 2017).

The network starts as the zero function (zero last layer), so training starts from the known model.
Predictions use the known part plus the discovered terms (``predict_with="equations"``, what
extrapolates beyond the states the data visited) or plus the network (``"network"``).

How to say what is known (the ``known`` option):

* ``"system"``: the whole right-hand side of ``system`` (a catalog or registered system); the
  network learns what the equations miss.
* a list of expressions, one per state variable in order, or a dict ``{variable: expression}``
  (variables left out have no known term): arithmetic in the system's state and parameter names,
  ``t``, numbers and ``sin cos tan exp log sqrt tanh abs``. This is how to keep *a subset of the
  system's terms*: for Lotka-Volterra (``prey' = alpha prey - beta prey predator``,
  ``predator' = delta prey predator - gamma predator``) the linear terms are
  ``known={"prey": "alpha*prey", "predator": "-gamma*predator"}``. Expressions are stored in the
  run folder, so such a model reloads anywhere.
* a torch function ``known(x, t, params)`` with ``x`` (B, D) physical states, ``t`` (B,) times since
  the start of the trajectory (of the segment while shooting, of the rollout when predicting), and
  ``params`` a dict of name -> 0-d tensor, returning (B, D).
  Its parameters are the system's (with ``system=``) or those named in ``start={name: value}``.
  The function is kept in this process's registry (:func:`register_known`) under its qualified
  name; a saved model reloads where that name is registered again.

``estimate`` names the constants to train (default ``"all"``: every parameter the known part uses,
for a function every parameter); the others are held at ``fixed`` or the system's defaults. Beside
a network that could imitate their terms, the constants are determined by stage 3's re-fit, where
the residual is a few named terms; those are the values :meth:`UniversalDE.equations` reports.
"""
from __future__ import annotations

import ast
import itertools
import math
import operator
import time
from types import SimpleNamespace
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn

from ..errors import BadParameterError, DatasetError, UnknownNameError, UnsupportedError
from ..safety import check_integer, check_real
from .base import Capabilities, DataInfo, mlp
from .continuous import ContinuousLearner
from .mechanistic import CONTINUITY_WEIGHT, _bounds, _fixed_values, _resolve_system, _rk4_segments, _start_values
from .ude_discovery import (REFIT_ITERATIONS, RESOLUTION, Candidate, choose, redundant_terms, starting_point,
                            stlsq_supports)

KnownFunction = Callable[[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]
MAX_EXPRESSION_CHARS = 2000
CALLABLE_PREFIX = "callable:"
PREDICT_WITH = ("equations", "network")
MAX_TERMS = 1000  # of the residual's polynomial library (as SINDy's own ceiling)
# samples per trajectory below which no window has an interval to match after its start and one more
MIN_SAMPLES = 4
_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sin": torch.sin, "cos": torch.cos, "tan": torch.tan, "exp": torch.exp, "log": torch.log,
    "sqrt": torch.sqrt, "tanh": torch.tanh, "abs": torch.abs}
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Pow: operator.pow}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_KNOWN: dict[str, KnownFunction] = {}


def register_known(function: KnownFunction, name: Optional[str] = None) -> str:
    """Make a known-part function findable by name (what a saved UDE stores), and return the name.

    Arguments:
        function: ``known(x, t, params) -> (B, D)``.
        name: the name to store (default: the function's module and qualified name).

    Returns:
        The name under which a saved model finds the function again.
    """
    if not callable(function):
        raise BadParameterError(f"known must be callable, got {type(function).__name__}")
    name = name or f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', repr(function))}"
    _KNOWN[name] = function
    return name


class _Parameters:
    """The known part's parameter names and defaults, shaped like a system for the shared option checks."""

    def __init__(self, name: str, defaults: dict[str, float]):
        self.name = name
        self.params = {k: SimpleNamespace(default=v, description="parameter of the known function")
                       for k, v in defaults.items()}


def _names_in(expression: str) -> set[str]:
    return {node.id for node in ast.walk(ast.parse(expression, mode="eval")) if isinstance(node, ast.Name)}


def _check_expression(expression: Any, allowed: set[str], where: str) -> str:
    """Parse ``expression`` and refuse anything but arithmetic on ``allowed`` names and known functions."""
    if not isinstance(expression, str) or not expression.strip() or len(expression) > MAX_EXPRESSION_CHARS:
        raise BadParameterError(f"known[{where}] must be a non-empty expression string of at most "
                                f"{MAX_EXPRESSION_CHARS} characters, got {str(expression)[:80]!r}")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise BadParameterError(f"known[{where}] = {expression!r} is not an expression ({exc.msg})",
                                fix="write arithmetic such as 'alpha*prey'") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS or node.keywords \
                    or len(node.args) != 1:
                raise BadParameterError(f"known[{where}] = {expression!r} calls something other than one of "
                                        f"{sorted(_FUNCTIONS)} with one argument")
        elif isinstance(node, ast.Name):
            if node.id not in allowed and node.id not in _FUNCTIONS:
                raise UnknownNameError(f"known[{where}] = {expression!r} uses {node.id!r}, which is neither a "
                                       "state variable, a parameter nor t", fix=f"use names from {sorted(allowed)}")
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise BadParameterError(f"known[{where}] = {expression!r} holds a non-number constant")
        elif not isinstance(node, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Load, *_BINARY, *_UNARY)):
            raise BadParameterError(f"known[{where}] = {expression!r} uses {type(node).__name__}; only + - * / **, "
                                    f"numbers, names and {sorted(_FUNCTIONS)} are allowed")
    return expression.strip()


def _evaluate(node: ast.AST, values: dict[str, Any]) -> Any:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, values)
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_evaluate(node.left, values), _evaluate(node.right, values))
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_evaluate(node.operand, values))
    if isinstance(node, ast.Call):
        return _FUNCTIONS[node.func.id](torch.as_tensor(_evaluate(node.args[0], values)))
    if isinstance(node, ast.Name):
        return values[node.id]
    return float(node.value)


def polynomial_powers(dim: int, degree: int) -> np.ndarray:
    """Exponents (P, dim) of every monomial of degree 0..``degree``, in scikit-learn's (and PySINDy's)
    order: ``1, x, y, x^2, x y, y^2, ...`` (built here: importing pysindy costs a second and more)."""
    rows = []
    for d in range(degree + 1):
        for combination in itertools.combinations_with_replacement(range(dim), d):
            rows.append(np.bincount(np.array(combination, dtype=int), minlength=dim))
    return np.array(rows, dtype=np.int64).reshape(-1, dim)


def _expression_function(expressions: list[Optional[str]], states: list[str]) -> KnownFunction:
    """A known-part function from one checked expression (or None: no known term) per state variable."""
    trees = [None if e is None else ast.parse(e, mode="eval") for e in expressions]

    def known(x: torch.Tensor, t: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        values = {**params, "t": t, **{name: x[:, i] for i, name in enumerate(states)}}
        zero = torch.zeros_like(x[:, 0])
        return torch.stack([zero if tree is None else zero + _evaluate(tree, values) for tree in trees], dim=-1)

    return known


class UniversalDE(ContinuousLearner):
    """``dx/dt = known(x, t; theta) + NN(x)``, fitted in three stages (see the module docstring).

    Options:
        system: catalog or registered system (default: the one a simulated dataset names); needed
            for ``known="system"`` and expressions, optional for a function with ``start=``.
        known: ``"system"``, expressions (a list, one per variable, or a dict by variable), or a
            function ``known(x, t, params)``.
        estimate: constants of the known part to train, or ``"all"`` (those it uses).
        start, fixed, bounds: starting values, held values and ``(low, high)`` bounds of parameters.
        hidden, depth, activation: the residual network (an MLP of the standardised state).
        iterations, learning_rate: Adam steps and step size of the multiple-shooting stage.
        refine_iterations: L-BFGS iterations of the single-shooting stage (0: none).
        segment: samples per shooting segment (default: a tenth of a trajectory, at least 4).
        sindy_degree: the degree of the polynomial library the residual's equations are drawn from.
        predict_with: ``"equations"`` (known part plus the discovered terms, which is what
            extrapolates beyond the data) or ``"network"`` (known part plus the network).
        substeps: RK4 steps per sample interval in training.
        variables: the dataset's variable names (set by ``fit``).

    ``wb.fit``'s ``epochs``, ``lr``, ``window`` and ``batch_size`` do not apply: the fit is full batch
    with the options above; ``time_budget`` ends each stage early.
    """

    name = "ude"
    reference = ("Rackauckas et al. 2020, Universal Differential Equations for Scientific Machine Learning; "
                 "Mangan et al. 2017 (sparse model selection by information criteria)")
    supports = Capabilities(kinds=("ode",), objectives=("trajectory",), training="closed_form", has_equations=True)
    defaults = {"system": None, "known": "system", "estimate": "all", "start": None, "fixed": None, "bounds": None,
                "hidden": 32, "depth": 2, "activation": "tanh", "iterations": 500, "learning_rate": 1e-2,
                "refine_iterations": 300, "segment": None, "sindy_degree": 2, "predict_with": "equations",
                "variables": None, "objective": "trajectory", **ContinuousLearner.solver_defaults}

    def __init__(self, dim: int, n_inputs: int = 0, **options: Any):
        super().__init__(dim, n_inputs, **options)
        o = self.options
        self.variables = list(o["variables"] or [f"x{i}" for i in range(dim)])
        if o["start"] is not None and not isinstance(o["start"], dict):
            raise BadParameterError(f"start must be a dict of name -> value, got {type(o['start']).__name__}")
        check_integer(o["iterations"], "iterations", 0, 1_000_000)
        check_integer(o["refine_iterations"], "refine_iterations", 0, 1_000_000)
        check_real(o["learning_rate"], "learning_rate", 0.0, 1.0, low_open=True)
        check_integer(o["sindy_degree"], "sindy_degree", 1, 5)
        if math.comb(dim + o["sindy_degree"], dim) > MAX_TERMS:
            raise BadParameterError(f"ude: a degree-{o['sindy_degree']} library of {dim} variables has "
                                    f"{math.comb(dim + o['sindy_degree'], dim):,} terms (limit {MAX_TERMS:,})",
                                    fix="pass a lower sindy_degree=")
        if o["segment"] is not None:
            check_integer(o["segment"], "segment", 1, 100_000)
        if o["predict_with"] not in PREDICT_WITH:
            raise BadParameterError(f"predict_with must be one of {PREDICT_WITH}, got {o['predict_with']!r}")
        known, used = self._known_function(o["known"])
        self.known_function = known
        space = self._parameter_space(used)
        self.estimated = self._estimated(space, used)
        self.fixed_values = _fixed_values(space, self.estimated, o["fixed"])
        # without a system, start= also declares held parameters: only estimated ones start anywhere
        start = _start_values(space, self.estimated, {k: v for k, v in (o["start"] or {}).items()
                                                      if k in self.estimated or self.system is not None})
        low, high = _bounds(self.estimated, start, o["bounds"])
        self.register_buffer("theta_start", torch.tensor(start, dtype=torch.float32))
        self.register_buffer("theta_low", torch.as_tensor(low, dtype=torch.float32))
        self.register_buffer("theta_high", torch.as_tensor(high, dtype=torch.float32))
        # relative steps: the optimiser moves every constant by about the same fraction of itself
        self.theta_raw = nn.Parameter(torch.zeros(len(start)))
        self.net = mlp(dim, dim, o["hidden"], o["depth"], o["activation"], zero_last=True)
        powers = polynomial_powers(dim, int(o["sindy_degree"]))
        self.register_buffer("powers", torch.as_tensor(powers, dtype=torch.float32))
        # the discovered equations (physical units) and the known part's constants re-fitted with them
        self.register_buffer("support", torch.zeros(dim, len(powers)))
        self.register_buffer("coefficients", torch.zeros(dim, len(powers)))
        self.register_buffer("network_coefficients", torch.zeros(dim, len(powers)))
        self.register_buffer("theta_raw_equations", torch.zeros(len(start)))
        self._with_network = o["predict_with"] == "network"
        self.selection: list[dict[str, Any]] = []  # the scored candidates of the last fit (not saved)
        self._probe(torch.ones(4, dim, dtype=torch.float64) * 0.5 + torch.arange(4, dtype=torch.float64)[:, None])

    # --- construction --------------------------------------------------------------------------------
    def _system(self) -> Any:
        return _resolve_system(self.options["system"], "ude") if self.options["system"] is not None else None

    def _known_function(self, known: Any) -> tuple[KnownFunction, Optional[set[str]]]:
        """The known part as a function, and the parameter names it uses (None: whichever it reads)."""
        system = self._system()
        if system is not None:
            self.options["system"] = system.name
            if list(system.state_names) != self.variables:
                raise UnsupportedError(f"ude: the dataset's variables {self.variables} are not the states "
                                       f"{list(system.state_names)} of {system.name!r}",
                                       fix="rename the variables (ds.assign_coords(variable=[...])) or pass the "
                                           "matching system=")
        self.system = system
        if callable(known):
            self.options["known"] = CALLABLE_PREFIX + register_known(known)
            return known, None
        if isinstance(known, str) and known.startswith(CALLABLE_PREFIX):
            name = known[len(CALLABLE_PREFIX):]
            if name not in _KNOWN:
                raise UnsupportedError(f"ude: the known function {name!r} of this model is not registered in this "
                                       "process", fix="call workbench.learners.ude.register_known(your_function) "
                                                      "before loading the model")
            return _KNOWN[name], None
        if known == "system":
            if system is None:
                raise UnsupportedError("ude: known='system' needs system=", fix="pass system='lotka_volterra' "
                                       "(a catalog name or your own wb.System), or known=expressions or a function")
            return (lambda x, t, p: system.drift(t, x, p)), set(system.params)
        return self._expressions(known, system)

    def _expressions(self, known: Any, system: Any) -> tuple[KnownFunction, set[str]]:
        if isinstance(known, (list, tuple)):
            if len(known) != self.dim:
                raise BadParameterError(f"ude: known lists {len(known)} expressions for {self.dim} variables "
                                        f"{self.variables}", fix="give one per variable ('0' for none), or a dict")
            by_variable = dict(zip(self.variables, known))
        elif isinstance(known, dict):
            by_variable = dict(known)
            unknown = [k for k in by_variable if k not in self.variables]
            if unknown:
                raise UnknownNameError(f"ude: known names variable(s) {unknown}", fix=f"use some of {self.variables}")
        else:
            raise BadParameterError(f"ude: known must be 'system', expressions (list or dict) or a function, got "
                                    f"{type(known).__name__}")
        params = set(system.params) if system is not None else set((self.options["start"] or {}))
        allowed = set(self.variables) | params | {"t"}
        checked = {k: _check_expression(v, allowed, repr(k)) for k, v in by_variable.items()}
        self.options["known"] = checked
        used = set().union(*(_names_in(e) for e in checked.values())) & params if checked else set()
        return _expression_function([checked.get(v) for v in self.variables], self.variables), used

    def _parameter_space(self, used: Optional[set[str]]) -> Any:
        if self.system is not None:
            return self.system
        return _Parameters("known", dict(self.options["start"] or {}))

    def _estimated(self, space: Any, used: Optional[set[str]]) -> list[str]:
        names = list(space.params)
        estimate = self.options["estimate"]
        if estimate == "all":
            return [n for n in names if used is None or n in used]
        if not isinstance(estimate, (list, tuple)) or not all(isinstance(e, str) for e in estimate):
            raise BadParameterError(f"estimate must be 'all' or a list of parameter names, got {estimate!r}")
        unknown = [e for e in estimate if e not in names]
        if unknown:
            where = f"system {space.name!r}" if self.system is not None else "the known part (named in start=)"
            raise UnknownNameError(f"ude: {where} has no parameter(s) {unknown}", fix=f"estimate some of {names}")
        unused = [e for e in estimate if used is not None and e not in used]
        if unused:
            raise BadParameterError(f"ude: {unused} do not appear in the known part, so the data cannot estimate them",
                                    fix=f"estimate some of {sorted(used or [])}, or add the terms that use them")
        return list(dict.fromkeys(estimate))

    @classmethod
    def options_from_data(cls, info: DataInfo, options: dict[str, Any]) -> dict[str, Any]:
        options = dict(super().options_from_data(info, options))
        if 0 < info.length < MIN_SAMPLES:
            raise DatasetError(f"ude: trajectories of {info.length} samples are too short to estimate a residual "
                               f"network and constants (at least {MIN_SAMPLES})",
                               fix="give longer trajectories (more samples), or use learner='mechanistic'")
        options.setdefault("variables", list(info.names))
        from systems import names
        if options.get("system") is None and info.system in names() and not callable(options.get("known")):
            options["system"] = info.system
        return options

    # --- the known part ------------------------------------------------------------------------------
    def theta(self, raw: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The known part's estimated constants, within their bounds (``raw``: the unconstrained
        values, by default the network model's; the equations' are ``theta_raw_equations``)."""
        raw = self.theta_raw if raw is None else raw
        start = self.theta_start.to(raw.dtype)
        value = start + start.abs().clamp_min(1.0) * raw
        return torch.maximum(torch.minimum(value, self.theta_high.to(value.dtype)), self.theta_low.to(value.dtype))

    def params(self, raw: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """Every constant of the known part: held values and the current estimates (see :meth:`theta`)."""
        theta = self.theta(raw)
        values = {k: torch.as_tensor(v, dtype=theta.dtype, device=theta.device) for k, v in self.fixed_values.items()}
        values.update({name: theta[i] for i, name in enumerate(self.estimated)})
        return values

    def known_part(self, t: torch.Tensor, x: torch.Tensor, params: Optional[dict[str, torch.Tensor]] = None
                   ) -> torch.Tensor:
        """The known drift at physical states ``x`` (B, D) and times ``t`` (B,)."""
        return self.known_function(x, t, self.params() if params is None else params)

    def _probe(self, x: torch.Tensor) -> None:
        """Call the known part once on ``x`` (B, D) and refuse a wrong shape or non-finite values before training."""
        params = {k: v.detach().double() for k, v in self.params().items()}
        try:
            with torch.no_grad():
                out = self.known_part(torch.zeros(x.shape[0], dtype=x.dtype), x, params)
        except (TypeError, ValueError, RuntimeError, IndexError, KeyError, AttributeError) as exc:
            raise BadParameterError(f"ude: the known part fails on states of shape {tuple(x.shape)} "
                                    f"({type(exc).__name__}: {exc})",
                                    fix="known(x, t, params) takes x (B, D), t (B,), a dict of 0-d tensors") from None
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(x.shape):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise BadParameterError(f"ude: the known part returned {shape} for states of shape {tuple(x.shape)}",
                                    fix=f"return a tensor (B, {self.dim}): one derivative per state variable")
        if not torch.isfinite(out).all():
            raise BadParameterError(f"ude: the known part is not finite at states {x[~torch.isfinite(out).all(-1)][0].tolist()}",
                                    fix="guard divisions and logarithms, or check the parameters' start values")

    def set_scaling(self, offset: torch.Tensor, scale: torch.Tensor, rate: float = 1.0) -> None:
        """Receive the data's standardisation, then check the known part on states the data holds."""
        super().set_scaling(offset, scale, rate)
        corners = torch.tensor(np.array(np.meshgrid(*[[-1.0, 0.0, 1.0]] * self.dim)).reshape(self.dim, -1).T[:64])
        self._probe(offset.double().cpu() + corners * scale.double().cpu())

    # --- the model -----------------------------------------------------------------------------------
    def residual(self, z: torch.Tensor) -> torch.Tensor:
        """The network's part of ``dz/dt`` at standardised states ``z`` (B, D)."""
        return self.rate * self.net(z)

    def drift_parts(self, t: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The drift's parts at physical states ``x`` (B, D) and times ``t`` (B,), in physical units:
        ``known`` (the known terms with the constants the equations use), ``learned`` (the network's
        residual) and ``discovered`` (the sparse equations found for it)."""
        return {"known": self.known_part(t, x, self.params(self.theta_raw_equations)),
                "learned": self.residual((x - self.offset) / self.scale) * self.scale,
                "discovered": self.library(x) @ self.coefficients.T.to(x.dtype)}

    def library(self, x: torch.Tensor) -> torch.Tensor:
        """The polynomial terms (B, P) of the residual's equations at physical states ``x`` (B, D)."""
        return torch.prod(x.unsqueeze(1) ** self.powers.to(x.dtype), dim=-1)

    def _equations_field(self, coefficients: torch.Tensor, raw: torch.Tensor
                         ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``dz/dt`` of the known part (constants from ``raw``) plus sparse terms (D, P) in physical units."""
        params = self.params(raw)  # once per solve, not per stage: the constants do not change within it

        def field(t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            x = z * self.scale + self.offset
            drift = self.known_part(t.expand(z.shape[0]).to(z.dtype), x, params)
            return (drift + self.library(x) @ coefficients.T) / self.scale
        return field

    def _network_field(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``dz/dt`` of the known part plus the network."""
        params = self.params()

        def field(t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            x = z * self.scale + self.offset
            return self.known_part(t.expand(z.shape[0]).to(z.dtype), x, params) / self.scale + self.residual(z)
        return field

    def predict_with(self, which: str) -> None:
        """Choose the residual that predictions use: ``"equations"`` or ``"network"`` (the option of the
        same name, switched after the fit; both are kept in the model)."""
        if which not in PREDICT_WITH:
            raise BadParameterError(f"predict_with must be one of {PREDICT_WITH}, got {which!r}")
        self.options["predict_with"] = which
        self._with_network = which == "network"

    def field(self, t: torch.Tensor, z: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self._with_network:
            return self._network_field()(t, z)
        return self._equations_field(self.coefficients, self.theta_raw_equations)(t, z)

    # --- the fit -------------------------------------------------------------------------------------
    def fit_closed_form(self, train: Any, val: Optional[Any], times: torch.Tensor) -> dict[str, float]:
        """Shooting with Adam, L-BFGS on the whole trajectories, then the residual's equations.

        Training and validation trajectories are fitted together (nothing is chosen on the
        validation ones; the equations are chosen by an information criterion on all the data).
        The fit runs in float64 whatever the model's precision, then returns to it.

        Returns:
            ``val_loss`` (mean squared standardised misfit of the model that predicts),
            ``network_loss`` (that of known part plus network) and ``bic`` of the chosen equations.
        """
        z = train.z if val is None else torch.cat([train.z, val.z])
        mask = train.mask if val is None else torch.cat([train.mask, val.mask])
        if not mask.any(dim=1).all():
            raise DatasetError("ude: some trajectories have no observed sample",
                               fix="drop them (ds.isel(trajectory=...)) before fitting")
        dtype, started = self.scale.dtype, time.perf_counter()
        budget = self.time_budget

        def out_of_time() -> bool:
            return budget is not None and time.perf_counter() - started > budget

        self.double()
        self._with_network = True
        try:
            data = _Data(z.double(), mask.bool(), (times - times[0]).double())
            x0 = self._shooting(data, out_of_time)
            network_loss = self._refine(data, x0, out_of_time) / data.n_observations
            chosen = self._discover(data, x0, out_of_time)
        finally:
            self._with_network = self.options["predict_with"] == "network"
            self.to(dtype)
        equations_loss = chosen.ssr / data.n_observations
        return {"val_loss": network_loss if self._with_network else equations_loss, "network_loss": network_loss,
                "equations_loss": equations_loss, "bic": chosen.bic}

    def _shooting(self, data: "_Data", out_of_time: Callable[[], bool]) -> torch.Tensor:
        """Multiple shooting (Adam): segment start states are unknowns tied by continuity penalties.

        Returns:
            The fitted start states of the trajectories (N, D), standardised.
        """
        n, length, dim = data.z.shape
        segment = min(self.options["segment"] or max(4, (length - 1) // 10), length - 1)
        starts = np.arange(0, length - 1, segment)
        ahead = starts[:, None] + np.arange(segment + 1)
        index = torch.as_tensor(np.minimum(ahead, length - 1))
        grid = data.t[index]
        t0, steps = grid[:, 0].repeat(n), (grid[:, 1:] - grid[:, :-1]).repeat(n, 1)
        target = data.z[:, index]
        weight = (data.mask[:, index] & torch.as_tensor(ahead <= length - 1)).unsqueeze(-1).double()
        states = nn.Parameter(data.filled()[:, starts].clone())
        substeps = int(self.options["substeps"])

        def loss() -> torch.Tensor:
            pred = _rk4_segments(self._network_field(), states.reshape(-1, dim), t0, steps, substeps)
            pred = pred.reshape(n, len(starts), segment + 1, dim)
            misfit = ((pred - target) ** 2 * weight).sum()
            gaps = ((pred[:, :-1, -1] - states[:, 1:]) ** 2).sum()
            return (misfit + CONTINUITY_WEIGHT * gaps) / data.n_observations

        unknowns = [*self.parameters(), states]
        optimiser = torch.optim.Adam(unknowns, lr=float(self.options["learning_rate"]))
        best = _Best(unknowns)
        mark, since = math.inf, 0
        for _ in range(int(self.options["iterations"])):
            if out_of_time() or since >= PATIENCE:
                break
            optimiser.zero_grad()
            value = loss()
            if not best.offer(value):
                break  # diverged: back to the best point below
            if best.value < mark * (1 - PROGRESS):
                mark, since = best.value, 0
            since += 1
            value.backward()
            optimiser.step()
        if self.options["iterations"]:
            best.offer(loss().detach())
        best.restore()
        return states[:, 0].detach()

    def _refine(self, data: "_Data", x0: torch.Tensor, out_of_time: Callable[[], bool]) -> float:
        """L-BFGS on the whole trajectories from their fitted initial states (updated in place);
        returns the sum of squared standardised misfits."""
        start = nn.Parameter(x0)
        misfit = lambda: data.misfit(self._network_field(), start, int(self.options["substeps"]))  # noqa: E731
        value = _lbfgs([*self.parameters(), start], misfit, int(self.options["refine_iterations"]), out_of_time)
        x0.copy_(start.detach())
        return value

    def _discover(self, data: "_Data", x0: torch.Tensor, out_of_time: Callable[[], bool]) -> Candidate:
        """The residual's equations (see :mod:`.ude_discovery`), stored in the model's buffers."""
        n, length, dim = data.z.shape
        substeps = int(self.options["substeps"])
        with torch.no_grad():
            fine = ((data.t[1:] - data.t[:-1]) / DENSE).repeat_interleave(DENSE).expand(n, -1)
            z = _rk4_segments(self._network_field(), x0, torch.zeros(n, dtype=x0.dtype, device=x0.device), fine,
                              max(1, math.ceil(substeps / DENSE))).reshape(-1, dim)
            t = torch.cat([torch.zeros(n, 1, dtype=fine.dtype, device=fine.device), fine.cumsum(1)], 1).reshape(-1)
            x = z * self.scale + self.offset
            library = self.library(x).cpu().numpy()
            target = (self.residual(z) * self.scale).cpu().numpy()
        raw_network = self.theta_raw.detach().clone()
        sensitivity = torch.autograd.functional.jacobian(
            lambda raw: self.known_part(t, x, self.params(raw)),
            raw_network).reshape(len(x), dim, -1).cpu().numpy()
        finite = np.isfinite(library).all(1) & np.isfinite(target).all(1) & np.isfinite(sensitivity).all((1, 2))
        library, target, sensitivity = library[finite], target[finite], sensitivity[finite]
        size = float(np.sqrt(((target / self.scale.cpu().numpy()) ** 2).mean())) if len(target) else 0.0
        if size < RESOLUTION * float(self.rate):  # the network stayed (near) zero: the known part suffices
            supports = [np.zeros((dim, library.shape[1]), bool)]
        else:
            supports = stlsq_supports(library, target, ~redundant_terms(library, sensitivity), sensitivity)

        def refit(support: np.ndarray, start_coefficients: np.ndarray, shift: np.ndarray
                  ) -> Optional[tuple[np.ndarray, np.ndarray, torch.Tensor, float]]:
            where = torch.as_tensor(support, device=x0.device)
            active = nn.Parameter(torch.as_tensor(start_coefficients, dtype=x0.dtype, device=x0.device)[where])
            raw = nn.Parameter(raw_network + torch.as_tensor(shift, dtype=x0.dtype, device=x0.device))
            begin = nn.Parameter(x0.clone())

            def field(t: torch.Tensor, zz: torch.Tensor) -> torch.Tensor:
                coefficients = torch.zeros(where.shape, dtype=zz.dtype, device=zz.device).masked_scatter(where, active)
                return self._equations_field(coefficients, raw)(t, zz)

            ssr = _lbfgs([active, raw, begin], lambda: data.misfit(field, begin, substeps), REFIT_ITERATIONS,
                         out_of_time)
            full = np.zeros(support.shape)
            full[support] = active.detach().cpu().numpy()
            return full, raw.detach().cpu().numpy(), begin.detach(), ssr

        scored = choose(supports, library, target, sensitivity, refit, data.n_observations,
                        n * dim + len(self.estimated),
                        out_of_time)
        chosen = scored[0]
        with torch.no_grad():
            self.support.copy_(torch.as_tensor(chosen.support))
            self.coefficients.copy_(torch.as_tensor(chosen.coefficients))
            self.theta_raw_equations.copy_(torch.as_tensor(chosen.theta))
            network = starting_point(chosen.support, library, target, sensitivity)[0]
            self.network_coefficients.copy_(torch.as_tensor(network))
        names = self.term_names(self.variables)
        self.selection = [{"terms": [[names[j] for j in np.flatnonzero(row)] for row in c.support],
                           "coefficients": [row[row != 0].round(4).tolist() for row in c.coefficients],
                           "ssr": c.ssr, "bic": c.bic} for c in scored]
        return chosen

    # --- equations -----------------------------------------------------------------------------------
    def term_names(self, names: list[str]) -> list[str]:
        """The library's terms for variables ``names`` (``"1"``, ``"x"``, ``"x y"``, ``"x^2"``)."""
        return [" ".join(n if p == 1 else f"{n}^{p}" for n, p in zip(names, row) if p) or "1"
                for row in self.powers.long().tolist()]

    def residual_equations(self, names: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """The residual's equations chosen at fit time.

        Returns:
            ``(coefficients, network_coefficients, terms)``: the terms' coefficients (D, P) in
            physical units re-fitted to the data, the same terms' least-squares coefficients on
            the network's residual (beside shifts of the estimated constants), and the term names (P).
        """
        return (self.coefficients.double().cpu().numpy(), self.network_coefficients.double().cpu().numpy(),
                self.term_names(names))

    def equations(self, names: list[str], latex: bool = False) -> list[str]:
        """One line per variable: the known terms, ``+ [`` the residual's sparse equation ``]``, and the
        constants (those re-fitted with the equations)."""
        coefficients, _, terms = self.residual_equations(names)
        known = self.options["known"]
        values = {k: float(v.detach()) for k, v in self.params(self.theta_raw_equations).items()}
        lines = []
        for i, name in enumerate(names):
            if known == "system":
                parts = [p.strip() for p in self.system.equations.split(r"\\")]
                text = parts[i] if len(parts) == len(names) else self.system.equations
            elif isinstance(known, dict):
                text = f"d{name}/dt = {known.get(name, '0')}"
            else:
                text = f"d{name}/dt = {known}(x, t)[{i}]"
            found = " + ".join(f"{c:.4g} {term}" for c, term in zip(coefficients[i], terms) if c != 0) or "0"
            lines.append(f"{text} + [{found}]")
        given = ", ".join(f"{k} = {v:.4g}" for k, v in values.items())
        return [f"{line}   with {given}" if given else line for line in lines]


# the shooting stage stops after PATIENCE steps without a PROGRESS (relative) improvement: where the
# known part already fits the data, Adam only jitters a network that should stay zero
PATIENCE = 100
PROGRESS = 1e-3
# samples of the fitted trajectories per data interval at which the network's residual is regressed
DENSE = 4


class _Data:
    """The standardised data of one fit: states (N, T, D), mask (N, T), times from the start (T,)."""

    def __init__(self, z: torch.Tensor, mask: torch.Tensor, t: torch.Tensor):
        self.z, self.mask, self.t = z, mask, t
        self.n_observations = int(mask.sum()) * z.shape[-1]
        self.weight = mask.unsqueeze(-1).to(z.dtype)
        self.steps = (t[1:] - t[:-1]).expand(z.shape[0], -1)

    def filled(self) -> torch.Tensor:
        """The states with missing samples linearly interpolated in time (starting states of segments)."""
        z, t = self.z.cpu().numpy().copy(), self.t.cpu().numpy()
        for i, seen in enumerate(self.mask.cpu().numpy()):
            for v in range(z.shape[-1]):
                z[i, :, v] = np.interp(t, t[seen], z[i, seen, v])
        return torch.as_tensor(z, device=self.z.device)

    def misfit(self, field: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x0: torch.Tensor,
               substeps: int) -> torch.Tensor:
        """Sum of squared standardised misfits of the trajectories of ``field`` from ``x0`` (N, D)."""
        pred = _rk4_segments(field, x0, torch.zeros(x0.shape[0], dtype=x0.dtype, device=x0.device), self.steps,
                             substeps)
        return ((pred - self.z) ** 2 * self.weight).sum()


class _Stop(Exception):
    """A non-finite loss or the end of the time budget (the optimiser goes back to its best point)."""


class _Best:
    """The lowest finite loss seen over some parameters, and their values there."""

    def __init__(self, parameters: list[torch.Tensor]):
        self.parameters, self.value, self.values = parameters, math.inf, None

    def offer(self, loss: torch.Tensor) -> bool:
        """Record ``loss`` at the current values; False where it is not finite."""
        value = float(loss.detach())
        if not math.isfinite(value):
            return False
        if value < self.value:
            self.value, self.values = value, [p.detach().clone() for p in self.parameters]
        return True

    def restore(self) -> None:
        if self.values is not None:
            with torch.no_grad():
                for p, v in zip(self.parameters, self.values):
                    p.copy_(v)


def _lbfgs(parameters: list[torch.Tensor], loss: Callable[[], torch.Tensor], iterations: int,
           out_of_time: Callable[[], bool]) -> float:
    """Full-batch L-BFGS with a strong-Wolfe line search (the paper's second-order stage); ends at the
    best point evaluated, whatever stopped it, and returns its loss."""
    best = _Best(parameters)
    with torch.no_grad():
        best.offer(loss())
    if iterations:
        optimiser = torch.optim.LBFGS(parameters, lr=1.0, max_iter=iterations, history_size=50,
                                      line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

        def closure() -> torch.Tensor:
            if out_of_time():
                raise _Stop
            optimiser.zero_grad()
            value = loss()
            if not best.offer(value):
                raise _Stop
            value.backward()
            return value

        try:
            optimiser.step(closure)
        except _Stop:
            pass
    best.restore()
    return best.value


__all__ = ["UniversalDE", "register_known"]

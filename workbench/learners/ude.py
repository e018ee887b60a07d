"""Universal differential equations: the terms a scientist knows plus a neural network for the rest.

Rackauckas et al. 2020, "Universal Differential Equations for Scientific Machine Learning": the drift
is ``dx/dt = known(x, t; theta) + NN(x)``. The known part's unknown constants ``theta`` are trained
jointly with the network (both as ``nn.Parameter``) by trajectory matching on multiple-shooting
windows (the shared :class:`~workbench.training.trainer.Trainer`, as every continuous-time learner).
The network starts as the zero function (zero last layer), so training starts from the known model.
Afterwards the learned residual is turned into equations: SINDy (sequentially thresholded least
squares on a degree-2 polynomial library, Brunton et al. 2016) regressed on the network evaluated at
the training states: the UDE-then-SINDy pipeline of the paper.

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
  the start of the window or rollout, and ``params`` a dict of name -> 0-d tensor, returning (B, D).
  Its parameters are the system's (with ``system=``) or those named in ``start={name: value}``.
  The function is kept in this process's registry (:func:`register_known`) under its qualified
  name; a saved model reloads where that name is registered again.

``estimate`` names the constants to train (default ``"all"``: every parameter the known part uses,
for a function every parameter); the others are held at ``fixed`` or the system's defaults.
"""
from __future__ import annotations

import ast
import operator
from types import SimpleNamespace
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn

from ..errors import BadParameterError, DatasetError, UnknownNameError, UnsupportedError
from .base import Batch, Capabilities, DataInfo, mlp
from .continuous import ContinuousLearner
from .mechanistic import _bounds, _fixed_values, _resolve_system, _start_values

KnownFunction = Callable[[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]
# states kept (a ring buffer of observed training states) for the SINDy regression on the residual
SEEN_STATES = 2048
MAX_EXPRESSION_CHARS = 2000
CALLABLE_PREFIX = "callable:"
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


def _expression_function(expressions: list[Optional[str]], states: list[str]) -> KnownFunction:
    """A known-part function from one checked expression (or None: no known term) per state variable."""
    trees = [None if e is None else ast.parse(e, mode="eval") for e in expressions]

    def known(x: torch.Tensor, t: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        values = {**params, "t": t, **{name: x[:, i] for i, name in enumerate(states)}}
        zero = torch.zeros_like(x[:, 0])
        return torch.stack([zero if tree is None else zero + _evaluate(tree, values) for tree in trees], dim=-1)

    return known


class UniversalDE(ContinuousLearner):
    """``dx/dt = known(x, t; theta) + NN(x)``, trained by multiple shooting (see the module docstring).

    Options:
        system: catalog or registered system (default: the one a simulated dataset names); needed
            for ``known="system"`` and expressions, optional for a function with ``start=``.
        known: ``"system"``, expressions (a list, one per variable, or a dict by variable), or a
            function ``known(x, t, params)``.
        estimate: constants of the known part to train, or ``"all"`` (those it uses).
        start, fixed, bounds: starting values, held values and ``(low, high)`` bounds of parameters.
        hidden, depth, activation: the residual network (an MLP of the standardised state).
        sindy_threshold: STLSQ threshold of the residual's equations, relative to the largest
            coefficient of each equation; sindy_degree: the polynomial library's degree.
        variables: the dataset's variable names (set by ``fit``).
    """

    name = "ude"
    reference = "Rackauckas et al. 2020, Universal Differential Equations for Scientific Machine Learning"
    supports = Capabilities(kinds=("ode",), objectives=("trajectory",), has_equations=True)
    defaults = {"system": None, "known": "system", "estimate": "all", "start": None, "fixed": None, "bounds": None,
                "hidden": 32, "depth": 2, "activation": "tanh", "sindy_threshold": 0.1, "sindy_degree": 2,
                "variables": None, "objective": "trajectory", **ContinuousLearner.solver_defaults}

    def __init__(self, dim: int, n_inputs: int = 0, **options: Any):
        super().__init__(dim, n_inputs, **options)
        o = self.options
        self.variables = list(o["variables"] or [f"x{i}" for i in range(dim)])
        if o["start"] is not None and not isinstance(o["start"], dict):
            raise BadParameterError(f"start must be a dict of name -> value, got {type(o['start']).__name__}")
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
        self.register_buffer("seen", torch.zeros(SEEN_STATES, dim))
        self.register_buffer("n_seen", torch.zeros((), dtype=torch.int64))
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
    def theta(self) -> torch.Tensor:
        """The known part's estimated constants, within their bounds."""
        start = self.theta_start.to(self.theta_raw.dtype)
        value = start + start.abs().clamp_min(1.0) * self.theta_raw
        return torch.maximum(torch.minimum(value, self.theta_high.to(value.dtype)), self.theta_low.to(value.dtype))

    def params(self) -> dict[str, torch.Tensor]:
        """Every constant of the known part: held values and the current estimates."""
        theta = self.theta()
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

    def field(self, t: torch.Tensor, z: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = z * self.scale + self.offset
        return self.known_part(t.expand(z.shape[0]).to(z.dtype), x) / self.scale + self.residual(z)

    def loss(self, batch: Batch, horizon: int, objective: str) -> torch.Tensor:
        if self.training:
            self._remember(batch.z[batch.mask.bool()])
        return super().loss(batch, horizon, objective)

    @torch.no_grad()
    def _remember(self, z: torch.Tensor) -> None:
        """Keep observed training states (a ring buffer) for the residual's equations."""
        z = z.reshape(-1, self.dim)[-SEEN_STATES:]
        start = int(self.n_seen) % SEEN_STATES
        index = (start + torch.arange(len(z), device=z.device)) % SEEN_STATES
        self.seen[index] = z.to(self.seen.dtype)
        self.n_seen += len(z)

    # --- equations -----------------------------------------------------------------------------------
    def residual_equations(self, names: list[str]) -> tuple[np.ndarray, list[str]]:
        """SINDy on the residual: STLSQ coefficients (D, terms) in physical units, and the term names.

        The network is evaluated at the remembered training states; each equation's threshold is
        ``sindy_threshold`` times its largest least-squares coefficient.
        """
        import pysindy as ps
        count = min(int(self.n_seen), SEEN_STATES)
        if count < 2:
            raise UnsupportedError("ude: the model kept no training states to find the residual's equations on",
                                   fix="fit it with wb.fit(ds, 'ude', ...) first")
        z = self.seen[:count]
        scale, offset = self.scale.double().cpu().numpy(), self.offset.double().cpu().numpy()
        with torch.no_grad():
            y = self.residual(z).double().cpu().numpy() * scale
        x = z.double().cpu().numpy() * scale + offset
        library = ps.PolynomialLibrary(degree=int(self.options["sindy_degree"])).fit(x)
        theta = library.transform(x)
        terms = library.get_feature_names(names)
        coefficients = np.zeros((self.dim, theta.shape[1]))
        for i in range(self.dim):
            dense = np.linalg.lstsq(theta, y[:, i], rcond=None)[0]
            cut = float(self.options["sindy_threshold"]) * float(np.abs(dense).max())
            optimizer = ps.STLSQ(threshold=max(cut, 1e-12), alpha=0.0)
            optimizer.fit(theta, y[:, i:i + 1])
            coefficients[i] = optimizer.coef_[0]
        return coefficients, terms

    def equations(self, names: list[str], latex: bool = False) -> list[str]:
        """One line per variable: the known terms, ``+`` the residual's sparse equation, and the constants."""
        coefficients, terms = self.residual_equations(names)
        known = self.options["known"]
        values = {k: float(v.detach()) for k, v in self.params().items()}
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


__all__ = ["UniversalDE", "register_known"]

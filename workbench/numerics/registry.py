"""Solver objects: every integration method the workbench runs, with what it declares.

Each :class:`Solver` says its order, whether it adapts its step, whether gradients flow through a
solve, and which implementations run it (torchsde's methods declare ``strong_order`` and
``noise_types`` the same way). ``simulate`` resolves its ``method=`` and ``scheme=`` here and
learners their ``solver=``, so one name means one method everywhere, and an unknown name is
refused with the close matches.
"""
from __future__ import annotations

from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any, Optional

from ..errors import BadParameterError, UnknownSolverError

KINDS = ("ode", "sde")
# who runs a method: the workbench's own batched solvers (numerics.adaptive, numerics.fixed),
# torchdiffeq, scipy.integrate.solve_ivp, torchsde
BACKENDS = ("workbench", "torchdiffeq", "scipy", "torchsde")
NOISE_TYPES = ("diagonal", "additive", "scalar", "general")


@dataclass(frozen=True)
class Solver:
    """One integration method and what it declares.

    Attributes:
        name: the name ``simulate(method=...)``, ``simulate(scheme=...)`` or a learner's
            ``solver=`` takes.
        order: global order of convergence (strong order for an SDE scheme); for variable-order
            methods (``bdf``, ``lsoda``) the highest order they use.
        adaptive: the step size follows an error estimate (``rtol``/``atol``); otherwise the step
            is fixed by the caller.
        differentiable: gradients flow through a solve (backpropagation through its steps), so
            a learner can train through it.
        stochastic: an SDE scheme (``kind`` is then ``"sde"``).
        backends: the implementations that run it (see ``BACKENDS``); ``simulate`` uses the first.
        implicit: solves an equation per step (suited to stiff problems).
        stages: field evaluations per step of an explicit one-step method (``None`` otherwise).
        noise_types: the noise structures an SDE scheme is correct for.
        options: backend options the workbench always passes with it, as ``(name, value)`` pairs.
        reference: where the method is defined.
    """

    name: str
    order: float
    adaptive: bool
    differentiable: bool
    stochastic: bool = False
    backends: tuple[str, ...] = ("torchdiffeq",)
    implicit: bool = False
    stages: Optional[int] = None
    noise_types: tuple[str, ...] = ()
    options: tuple[tuple[str, Any], ...] = ()
    reference: str = ""

    @property
    def kind(self) -> str:
        """``"sde"`` for an SDE scheme, else ``"ode"``."""
        return "sde" if self.stochastic else "ode"

    @property
    def backend(self) -> str:
        """The implementation ``simulate`` runs it with."""
        return self.backends[0]

    @property
    def backend_options(self) -> dict[str, Any]:
        """:attr:`options` as keyword arguments."""
        return dict(self.options)


_HNW = "Hairer, Norsett & Wanner, Solving ODEs I"
# torchdiffeq's Adams methods by default raise their order up to 12 after an RK4 start: its
# Adams-Bashforth is then stable only for |h lambda| below about 0.005 and diverges on a harmonic
# oscillator at any step a sampling grid would give, and the corrector's fixed-point iteration
# stops converging. Capped at max_order=4 they are the 3-step Adams-Bashforth and the 4th-order
# Adams-Bashforth-Moulton pair, whose orders tests/test_numerics_registry.py measures.
_ADAMS = (("max_order", 4),)
_SOLVERS = (
    Solver("dop853", 8, True, True, backends=("workbench",), stages=12,
           reference=f"Dormand & Prince 8(5,3) with 7th-order dense output; {_HNW}, Sec. II.10"),
    Solver("dopri5", 5, True, True, backends=("workbench", "torchdiffeq"), stages=6,
           reference="Dormand & Prince (1980), J. Comput. Appl. Math. 6:19-26"),
    Solver("dopri8", 8, True, True, reference="Prince & Dormand (1981), J. Comput. Appl. Math. 7:67-75"),
    Solver("bosh3", 3, True, True, reference="Bogacki & Shampine (1989), Appl. Math. Lett. 2:321-325"),
    Solver("fehlberg2", 2, True, True, reference="Fehlberg (1969), NASA TR R-315 (RKF 2(1))"),
    Solver("adaptive_heun", 2, True, True, reference=f"Heun's method with an Euler error estimate; {_HNW}, Sec. II.4"),
    Solver("euler", 1, False, True, backends=("torchdiffeq", "workbench"), stages=1, reference=f"{_HNW}, Sec. I.7"),
    Solver("midpoint", 2, False, True, backends=("torchdiffeq", "workbench"), stages=2,
           reference=f"{_HNW}, Sec. II.1"),
    # torchdiffeq's rk4 is Kutta's 3/8 rule, the workbench's the classic tableau: same order and stages
    Solver("rk4", 4, False, True, backends=("torchdiffeq", "workbench"), stages=4, reference=f"{_HNW}, Sec. II.1"),
    Solver("heun2", 2, False, True, stages=2, reference=f"{_HNW}, Sec. II.1"),
    Solver("heun3", 3, False, True, stages=3, reference=f"{_HNW}, Sec. II.1"),
    Solver("explicit_adams", 3, False, True, options=_ADAMS, reference=f"Adams-Bashforth; {_HNW}, Sec. III.1"),
    Solver("implicit_adams", 4, False, True, implicit=True, options=_ADAMS,
           reference=f"Adams-Bashforth-Moulton predictor-corrector; {_HNW}, Sec. III.1"),
    Solver("radau", 5, True, False, backends=("scipy",), implicit=True, options=(("method", "Radau"),),
           reference="Radau IIA; Hairer & Wanner, Solving ODEs II, Sec. IV.8"),
    Solver("bdf", 5, True, False, backends=("scipy",), implicit=True, options=(("method", "BDF"),),
           reference="Shampine & Reichelt (1997), SIAM J. Sci. Comput. 18:1-22 (NDF/BDF orders 1-5)"),
    Solver("lsoda", 12, True, False, backends=("scipy",), implicit=True, options=(("method", "LSODA"),),
           reference="Petzold (1983), SIAM J. Sci. Stat. Comput. 4:136-148 (Adams 1-12 / BDF 1-5)"),
    Solver("euler", 0.5, False, True, stochastic=True, backends=("torchsde",), noise_types=NOISE_TYPES,
           reference="Euler-Maruyama; Kloeden & Platen (1992), Sec. 10.2"),
    Solver("milstein", 1.0, False, True, stochastic=True, backends=("torchsde",),
           noise_types=("diagonal", "additive", "scalar"), reference="Kloeden & Platen (1992), Sec. 10.3"),
    # torchsde's SRK: Rößler's SRID2 (diagonal and scalar noise, with the space-time Lévy area) and SRA1
    # (additive noise), both declared strong order 1.5 there
    Solver("srk", 1.5, False, True, stochastic=True, backends=("torchsde",),
           noise_types=("diagonal", "additive", "scalar"),
           reference="Rößler (2010), SIAM J. Numer. Anal. 48:922-952 (derivative-free stochastic Runge-Kutta)"),
)


def solvers(kind: Optional[str] = None, backend: Optional[str] = None) -> list[Solver]:
    """Every registered solver, optionally of one ``kind`` (``"ode"``/``"sde"``) and run by one
    ``backend`` (see ``BACKENDS``), in a fixed order.

    Raises:
        BadParameterError: an unknown ``kind`` or ``backend``.
    """
    if kind is not None and kind not in KINDS:
        raise BadParameterError(f"kind must be one of {KINDS}, got {kind!r}")
    if backend is not None and backend not in BACKENDS:
        raise BadParameterError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return [s for s in _SOLVERS if (kind is None or s.kind == kind) and (backend is None or backend in s.backends)]


def solver(name: str, *, kind: str = "ode", backend: Optional[str] = None, what: Optional[str] = None) -> Solver:
    """The :class:`Solver` called ``name``.

    Arguments:
        name: a method name, e.g. ``"dop853"``, ``"rk4"``, ``"radau"``; for ``kind="sde"`` a
            torchsde scheme (``"euler"``, ``"milstein"``, ``"srk"``).
        kind: ``"ode"`` or ``"sde"`` (``"euler"`` names one of each).
        backend: only solvers that this implementation runs (e.g. ``"torchdiffeq"`` for a
            learner that trains through ``torchdiffeq.odeint``).
        what: how the refusal names the argument (default ``"ODE method"`` / ``"SDE scheme"``).

    Returns:
        The solver.

    Raises:
        UnknownSolverError: (an :class:`UnknownNameError` and a :class:`BadParameterError`) no
            such solver among those ``kind`` and ``backend`` allow; the message lists close matches.
    """
    candidates = solvers(kind, backend)
    for s in candidates:
        if s.name == name:
            return s
    names = [s.name for s in candidates]
    what = what or ("SDE scheme" if kind == "sde" else "ODE method")
    close = get_close_matches(str(name), names, n=3)
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
    where = f" that {backend} runs" if backend else ""
    raise UnknownSolverError(f"unknown {what} {name!r}{hint}", fix=f"use one of {names}{where}")

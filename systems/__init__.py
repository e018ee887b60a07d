"""The catalog of known dynamical systems.

Each :class:`System` declares an ODE or SDE (drift, diffusion, parameters with valid ranges,
default initial-condition box, time span) together with what is known about it: literature
reference, LaTeX equations, conserved quantities, canonical coordinates, analytic moments and
the largest Lyapunov exponent with its source. Importing this package registers the built-in
systems; ``names()`` lists them and ``get(name)`` returns one.

The catalog depends on torch only and never imports the engine (``workbench``).

Modules:
    mechanics:   oscillators, pendula, Hénon-Heiles, Kepler, the neural-ODE spiral.
    chaotic:     Lorenz-63/84/96, Rössler, Chen, Chua, Thomas, Halvorsen, Hindmarsh-Rose.
    populations: Lotka-Volterra, SIR, FitzHugh-Nagumo, Brusselator, Robertson (stiff).
    forced:      Duffing and van der Pol oscillators driven by a recorded input u(t).
    stochastic:  Ornstein-Uhlenbeck, geometric Brownian motion, CIR, double well, Langevin
                 oscillator, stochastic Lorenz, van der Pol and SIR.
"""
from ._registry import get, names, register
from ._system import Param, System
from .errors import BadParameterError, UnknownNameError, WorkbenchError
from . import mechanics, chaotic, populations, stochastic, forced  # noqa: F401  (registers the catalog)

__all__ = ["System", "Param", "WorkbenchError", "UnknownNameError", "BadParameterError", "register", "get", "names"]

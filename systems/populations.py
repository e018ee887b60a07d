"""Population, epidemic, excitable-cell and chemical-kinetics models (states are non-negative)."""
from __future__ import annotations

import torch

from ._registry import register
from ._system import Param, Params, System


def _lotka_volterra_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    prey, pred = x.unbind(-1)
    return torch.stack([p["alpha"] * prey - p["beta"] * prey * pred,
                        p["delta"] * prey * pred - p["gamma"] * pred], dim=-1)


def _lotka_volterra_integral(x: torch.Tensor, p: Params) -> torch.Tensor:
    prey, pred = x.unbind(-1)
    return (p["delta"] * prey - p["gamma"] * torch.log(prey)
            + p["beta"] * pred - p["alpha"] * torch.log(pred))


lotka_volterra = register(System(
    name="lotka_volterra", kind="ode", state_names=("prey", "predator"),
    drift=_lotka_volterra_drift,
    params={"alpha": Param(1.5, 0.5, 3.0, "prey growth rate"),
            "beta": Param(1.0, 0.5, 2.0, "predation rate"),
            "delta": Param(1.0, 0.5, 2.0, "predator growth per prey eaten"),
            "gamma": Param(3.0, 0.5, 4.0, "predator death rate")},
    x0_low=(0.5, 0.5), x0_high=(3.0, 3.0), t_end=20.0, dt=0.02,
    reference="Lotka (1925), Elements of Physical Biology; Volterra (1926), Fluctuations in the "
              "abundance of a species considered mathematically, Nature 118:558-560",
    equations=(r"\dot{x} = \alpha x - \beta x y \\ \dot{y} = \delta x y - \gamma y"),
    description="Predator-prey cycles; closed orbits around the coexistence point.",
    invariants={"first_integral": _lotka_volterra_integral},
))


def sir_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    """Kermack-McKendrick SIR in population fractions (also the drift of ``stochastic_sir``)."""
    s, i, _ = x.unbind(-1)
    infection, recovery = p["beta"] * s * i, p["gamma"] * i
    return torch.stack([-infection, infection - recovery, recovery], dim=-1)


def state_sum(x: torch.Tensor, p: Params) -> torch.Tensor:
    """Sum of all states: the conserved total of SIR-type and closed-reaction models."""
    return x.sum(-1)


def sir_sampler(n: int, generator: torch.Generator) -> torch.Tensor:
    """Early-epidemic fractions on the simplex: I in [0.001, 0.05], R in [0, 0.1], S the rest."""
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    i = 0.001 + 0.049 * u[:, 0]
    r = 0.1 * u[:, 1]
    return torch.stack([1 - i - r, i, r], dim=-1)


sir = register(System(
    name="sir", kind="ode", state_names=("S", "I", "R"),
    drift=sir_drift,
    params={"beta": Param(0.3, 0.1, 1.0, "transmission rate per day"),
            "gamma": Param(0.1, 0.05, 0.5, "recovery rate per day")},
    x0_low=(0.85, 0.001, 0.0), x0_high=(0.999, 0.05, 0.1), x0_sampler=sir_sampler,
    t_end=160.0, dt=0.5,
    reference="Kermack & McKendrick (1927), A contribution to the mathematical theory of epidemics, "
              "Proc. R. Soc. Lond. A 115:700-721",
    equations=(r"\dot{S} = -\beta S I \\ \dot{I} = \beta S I - \gamma I \\ \dot{R} = \gamma I"),
    description="Epidemic in a closed population, as fractions susceptible/infected/recovered.",
    units=("1", "1", "1"), time_units="day",
    invariants={"total": state_sum},
))


def _fitzhugh_nagumo_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    v, w = x.unbind(-1)
    return torch.stack([v - v ** 3 / 3 - w + p["I"],
                        (v + p["a"] - p["b"] * w) / p["tau"]], dim=-1)


fitzhugh_nagumo = register(System(
    name="fitzhugh_nagumo", kind="ode", state_names=("v", "w"),
    drift=_fitzhugh_nagumo_drift,
    params={"a": Param(0.7, 0.5, 0.9, "recovery offset"),
            "b": Param(0.8, 0.5, 1.0, "recovery self-coupling"),
            "tau": Param(12.5, 5.0, 20.0, "recovery time scale"),
            "I": Param(0.5, 0.0, 1.5, "constant applied current (oscillates for ~0.33 < I < ~1.4)")},
    x0_low=(-2.0, -1.0), x0_high=(2.0, 2.0), t_end=200.0, dt=0.2,
    reference="FitzHugh (1961), Impulses and physiological states in theoretical models of nerve "
              "membrane, Biophys. J. 1(6):445-466; Nagumo, Arimoto & Yoshizawa (1962), Proc. IRE",
    equations=(r"\dot{v} = v - v^3/3 - w + I \\ \dot{w} = (v + a - b w) / \tau"),
    description="Excitable-membrane caricature with a relaxation limit cycle at constant current.",
))


def _brusselator_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    u, v = x.unbind(-1)
    autocatalysis = u ** 2 * v
    return torch.stack([p["A"] + autocatalysis - (p["B"] + 1) * u,
                        p["B"] * u - autocatalysis], dim=-1)


brusselator = register(System(
    name="brusselator", kind="ode", state_names=("x", "y"),
    drift=_brusselator_drift,
    params={"A": Param(1.0, 0.5, 1.5, "feed concentration A"),
            "B": Param(3.0, 1.0, 4.0, "feed concentration B (limit cycle when B > 1 + A^2)")},
    x0_low=(0.5, 0.5), x0_high=(3.0, 4.0), t_end=50.0, dt=0.05,
    reference="Prigogine & Lefever (1968), Symmetry breaking instabilities in dissipative systems "
              "II, J. Chem. Phys. 48:1695-1700",
    equations=(r"\dot{x} = A + x^2 y - (B + 1) x \\ \dot{y} = B x - x^2 y"),
    description="Autocatalytic reaction scheme with a Hopf bifurcation at B = 1 + A^2.",
))


def _robertson_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    y1, y2, y3 = x.unbind(-1)
    r1, r2, r3 = p["k1"] * y1, p["k2"] * y2 ** 2, p["k3"] * y2 * y3
    return torch.stack([-r1 + r3, r1 - r2 - r3, r2], dim=-1)


robertson = register(System(
    name="robertson", kind="ode", state_names=("y1", "y2", "y3"),
    drift=_robertson_drift,
    params={"k1": Param(0.04, 0.01, 0.1, "slow reaction rate"),
            "k2": Param(3e7, 1e7, 1e8, "very fast reaction rate"),
            "k3": Param(1e4, 1e3, 1e5, "fast reaction rate")},
    x0_low=(0.9, 0.0, 0.0), x0_high=(1.0, 1e-5, 0.1), t_end=40.0, dt=0.04,
    reference="Robertson (1966), The solution of a set of reaction rate equations, in Walsh (ed.), "
              "Numerical Analysis: An Introduction, Academic Press; Hairer & Wanner (1996), "
              "Solving ODEs II, sec. IV.1",
    equations=(r"\dot{y}_1 = -k_1 y_1 + k_3 y_2 y_3 \\ "
               r"\dot{y}_2 = k_1 y_1 - k_2 y_2^2 - k_3 y_2 y_3 \\ \dot{y}_3 = k_2 y_2^2"),
    description="Stiff autocatalytic kinetics with rate constants spanning nine decades.",
    stiff=True, bound=10.0,
    invariants={"total": state_sum},
))

"""Dissipative chaotic flows: Lorenz-type, Rössler, circuits, lattice and neuron models."""
from __future__ import annotations

import torch

from ._registry import register
from ._system import Param, Params, System
from .errors import BadParameterError


def lorenz63_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    """Lorenz (1963) right-hand side (also the drift of ``stochastic_lorenz``)."""
    u, v, w = x.unbind(-1)
    return torch.stack([p["sigma"] * (v - u),
                        u * (p["rho"] - w) - v,
                        u * v - p["beta"] * w], dim=-1)


lorenz63 = register(System(
    name="lorenz63", kind="ode", state_names=("x", "y", "z"),
    drift=lorenz63_drift,
    params={"sigma": Param(10.0, 5.0, 15.0, "Prandtl number"),
            "rho": Param(28.0, 24.0, 40.0, "Rayleigh number (strange attractor above ~24.06)"),
            "beta": Param(8.0 / 3.0, 1.0, 4.0, "aspect-ratio factor")},
    x0_low=(-15.0, -20.0, 5.0), x0_high=(15.0, 20.0, 40.0), t_end=20.0, dt=0.01,
    reference="Lorenz (1963), Deterministic nonperiodic flow, J. Atmos. Sci. 20(2):130-141",
    equations=r"\dot{x} = \sigma (y - x) \\ \dot{y} = x(\rho - z) - y \\ \dot{z} = xy - \beta z",
    description="Truncated Rayleigh-Bénard convection; the butterfly attractor.",
    lyapunov=0.9056,
    facts_source="Sprott (2003), Chaos and Time-Series Analysis, Oxford UP, Appendix A "
                 "(exponents 0.9056, 0, -14.5723)",
))


def _rossler_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    u, v, w = x.unbind(-1)
    return torch.stack([-v - w, u + p["a"] * v, p["b"] + w * (u - p["c"])], dim=-1)


rossler = register(System(
    name="rossler", kind="ode", state_names=("x", "y", "z"),
    drift=_rossler_drift,
    params={"a": Param(0.2, 0.1, 0.25, "linear feedback on y"),
            "b": Param(0.2, 0.1, 0.4, "constant injection into z"),
            "c": Param(5.7, 5.0, 8.0, "threshold of the z excursions")},
    x0_low=(-9.0, -9.0, 0.0), x0_high=(11.0, 7.0, 1.0), t_end=100.0, dt=0.05,
    reference="Rössler (1976), An equation for continuous chaos, Phys. Lett. A 57(5):397-398",
    equations=r"\dot{x} = -y - z \\ \dot{y} = x + a y \\ \dot{z} = b + z (x - c)",
    description="Spiral-type chaos with a single folded band.",
    lyapunov=0.0714,
    facts_source="Sprott (2003), Chaos and Time-Series Analysis, Oxford UP, Appendix A "
                 "(exponents 0.0714, 0, -5.3943)",
))


def _chen_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    u, v, w = x.unbind(-1)
    a, b, c = p["a"], p["b"], p["c"]
    return torch.stack([a * (v - u), (c - a) * u - u * w + c * v, u * v - b * w], dim=-1)


chen = register(System(
    name="chen", kind="ode", state_names=("x", "y", "z"),
    drift=_chen_drift,
    params={"a": Param(35.0, 32.0, 38.0, "coupling rate"),
            "b": Param(3.0, 2.5, 3.5, "dissipation of z"),
            "c": Param(28.0, 25.0, 29.0, "feedback gain")},
    x0_low=(-20.0, -20.0, 10.0), x0_high=(20.0, 20.0, 40.0), t_end=10.0, dt=0.005,
    reference="Chen & Ueta (1999), Yet another chaotic attractor, Int. J. Bifurcation Chaos "
              "9(7):1465-1466",
    equations=(r"\dot{x} = a (y - x) \\ \dot{y} = (c - a) x - xz + cy \\ "
               r"\dot{z} = xy - bz"),
    description="Lorenz-like double scroll found by chaos anti-control.",
    lyapunov=2.0232,
    facts_source="Lyapunov-spectrum catalogue https://sites.google.com/view/lyapunov-spectrum "
                 "(Chen equations, RK4 + Gram-Schmidt: 2.0232, -0.0005, -12.0227); dysts metadata "
                 "(Gilpin 2021) gives 2.047; a Benettin estimate for this catalog gave 2.01",
))


def _chua_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    u, v, w = x.unbind(-1)
    m0, m1 = p["m0"], p["m1"]
    # Chua's diode: slope m0 inside |x| < 1, m1 outside, written without branches.
    diode = m1 * u + 0.5 * (m0 - m1) * (torch.abs(u + 1) - torch.abs(u - 1))
    return torch.stack([p["alpha"] * (v - u - diode), u - v + w, -p["beta"] * v], dim=-1)


chua = register(System(
    name="chua", kind="ode", state_names=("x", "y", "z"),
    drift=_chua_drift,
    params={"alpha": Param(15.6, 15.0, 16.0, "capacitance ratio C2/C1"),
            "beta": Param(28.0, 26.0, 30.0, "C2 R^2 / L"),
            "m0": Param(-8.0 / 7.0, -1.2, -1.1, "inner slope of Chua's diode"),
            "m1": Param(-5.0 / 7.0, -0.75, -0.68, "outer slope of Chua's diode")},
    # Wider boxes reach the divergent outer region of the piecewise-linear circuit; starting
    # near the origin (an unstable equilibrium) every trajectory lands on the double scroll.
    x0_low=(-0.5, -0.1, -0.5), x0_high=(0.5, 0.1, 0.5), t_end=50.0, dt=0.025,
    reference="Chua, Komuro & Matsumoto (1986), The double scroll family, IEEE Trans. Circuits "
              "Syst. 33(11):1072-1118; dimensionless parameters as in dysts (Gilpin 2021)",
    equations=(r"\dot{x} = \alpha (y - x - f(x)) \\ \dot{y} = x - y + z \\ \dot{z} = -\beta y"),
    description="Chua's circuit double scroll, f(x) = m1 x + (m0 - m1)(|x + 1| - |x - 1|)/2.",
    lyapunov=0.426,
    facts_source="Benettin estimate on this catalog's generator, benchmarks/bench_lyapunov.py "
                 "(8 orbits x 1000 time units, d0 = 1e-6: 0.426 +- 0.015 spread over orbits); the "
                 "variational equation with the exact piecewise Jacobian (scipy DOP853) gave 0.432 and "
                 "0.449 on two orbits, an independent Benettin estimate 0.434; dysts metadata (Gilpin "
                 "2021) lyapunov_spectrum_estimated[0] = 0.4605 is 8% higher and its "
                 "maximum_lyapunov_estimated (1.23) disagrees with both",
))


def _thomas_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    u, v, w = x.unbind(-1)
    b = p["b"]
    return torch.stack([torch.sin(v) - b * u, torch.sin(w) - b * v, torch.sin(u) - b * w], dim=-1)


thomas = register(System(
    name="thomas", kind="ode", state_names=("x", "y", "z"),
    drift=_thomas_drift,
    # b = 0.208186 is where the period-doubling cascade ends: chaotic but only weakly (a
    # Benettin estimate for this catalog gave a largest exponent of ~0.006, unpublished).
    params={"b": Param(0.208186, 0.1, 0.25, "friction (chaotic below ~0.208186)")},
    x0_low=(-3.0, -3.0, -3.0), x0_high=(3.0, 3.0, 3.0), t_end=200.0, dt=0.1,
    reference="Thomas (1999), Deterministic chaos seen in terms of feedback circuits: analysis, "
              "synthesis, 'labyrinth chaos', Int. J. Bifurcation Chaos 9(10):1889-1905",
    equations=(r"\dot{x} = \sin y - b x \\ \dot{y} = \sin z - b y \\ \dot{z} = \sin x - b z"),
    description="Cyclically symmetric attractor of a damped particle in a periodic force lattice.",
    chaotic=True,
))


def _halvorsen_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    u, v, w = x.unbind(-1)
    a = p["a"]
    return torch.stack([-a * u - 4 * (v + w) - v ** 2,
                        -a * v - 4 * (w + u) - w ** 2,
                        -a * w - 4 * (u + v) - u ** 2], dim=-1)


halvorsen = register(System(
    name="halvorsen", kind="ode", state_names=("x", "y", "z"),
    drift=_halvorsen_drift,
    params={"a": Param(1.4, 1.3, 2.0, "linear damping")},
    # Some states with positive coordinates escape to infinity; the negative octant box does not.
    x0_low=(-8.0, -8.0, -8.0), x0_high=(0.0, 0.0, 0.0), t_end=50.0, dt=0.025,
    reference="Sprott (2010), Elegant Chaos: Algebraically Simple Chaotic Flows, World Scientific "
              "(Halvorsen's cyclically symmetric flow); a = 1.4 as in dysts (Gilpin 2021)",
    equations=(r"\dot{x} = -a x - 4y - 4z - y^2 \\ \dot{y} = -a y - 4z - 4x - z^2 \\ "
               r"\dot{z} = -a z - 4x - 4y - x^2"),
    description="Cyclically symmetric three-lobed attractor with quadratic nonlinearity.",
    lyapunov=0.674,
    facts_source="Benettin estimate on this catalog's generator, benchmarks/bench_lyapunov.py "
                 "(8 orbits x 1000 time units: 0.674 +- 0.009 spread over orbits); earlier runs "
                 "(16 orbits x 4000) gave 0.678 and an independent Benettin estimate 0.671; dysts "
                 "metadata (Gilpin 2021), Halvorsen (a = 1.4, b = 4), maximum_lyapunov_estimated "
                 "0.6964 is 3.3% higher",
))


def _lorenz96_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    # Cyclic indices: x_{i+1}, x_{i-2}, x_{i-1} via rolls along the state axis.
    advection = (torch.roll(x, -1, dims=-1) - torch.roll(x, 2, dims=-1)) * torch.roll(x, 1, dims=-1)
    # F is per trajectory; as a column it must follow x's dtype and device explicitly.
    forcing = torch.as_tensor(p["F"], dtype=x.dtype, device=x.device).unsqueeze(-1)
    return advection - x + forcing


def make_lorenz96(dim: int = 10) -> System:
    """Lorenz-96 with ``dim`` cyclically coupled variables ``x1..x{dim}`` (``dim >= 4``)."""
    if int(dim) != dim or dim < 4:
        raise BadParameterError(f"lorenz96 needs an integer dim >= 4 for its cyclic stencil, got {dim!r}")
    dim = int(dim)
    return System(
        name="lorenz96", kind="ode", state_names=tuple(f"x{i}" for i in range(1, dim + 1)),
        drift=_lorenz96_drift,
        params={"F": Param(8.0, 6.0, 12.0, "constant forcing (chaotic for F >~ 6 at dim 10)")},
        x0_low=(-3.0,) * dim, x0_high=(8.0,) * dim, t_end=20.0, dt=0.01,
        reference="Lorenz (1996), Predictability: a problem partly solved, Proc. ECMWF Seminar on "
                  "Predictability, vol. 1, pp. 1-18",
        equations=r"\dot{x}_i = (x_{i+1} - x_{i-2}) x_{i-1} - x_i + F, \quad i = 1..N \text{ (cyclic)}",
        description=f"Lorenz-96 toy atmosphere with {dim} sites on a ring.",
        options={"dim": dim}, builder=make_lorenz96, chaotic=dim >= 5,
    )


# The catalog default is dim = 10: chaotic at F = 8 and still small enough to plot and fit.
# No published largest exponent was found for dim 10 (a Benettin estimate here gave ~1.17),
# so `lyapunov` stays unset.
lorenz96 = register(make_lorenz96(10))


def _lorenz84_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    u, v, w = x.unbind(-1)
    a, b = p["a"], p["b"]
    return torch.stack([-v ** 2 - w ** 2 - a * u + a * p["F"],
                        u * v - b * u * w - v + p["G"],
                        b * u * v + u * w - w], dim=-1)


# No published exponent found for these parameters (a Benettin estimate here gave ~0.165).
lorenz84 = register(System(
    name="lorenz84", kind="ode", state_names=("x", "y", "z"),
    drift=_lorenz84_drift,
    params={"a": Param(0.25, 0.2, 0.3, "damping of the westerly wind"),
            "b": Param(4.0, 3.5, 4.5, "displacement of eddies by the wind"),
            "F": Param(8.0, 6.0, 10.0, "symmetric thermal forcing"),
            "G": Param(1.0, 0.5, 1.5, "asymmetric thermal forcing")},
    x0_low=(-0.5, -2.0, -2.0), x0_high=(2.5, 2.0, 2.0), t_end=100.0, dt=0.05,
    reference="Lorenz (1984), Irregularity: a fundamental property of the atmosphere, Tellus A "
              "36(2):98-110",
    equations=(r"\dot{x} = -y^2 - z^2 - a x + a F \\ \dot{y} = xy - bxz - y + G \\ "
               r"\dot{z} = bxy + xz - z"),
    description="Low-order model of the westerly jet and a travelling eddy.",
    chaotic=True,
))


def _hindmarsh_rose_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    u, v, w = x.unbind(-1)
    return torch.stack([v - p["a"] * u ** 3 + p["b"] * u ** 2 - w + p["I"],
                        p["c"] - p["d"] * u ** 2 - v,
                        p["r"] * (p["s"] * (u - p["x_rest"]) - w)], dim=-1)


# No published exponent found for these parameters (a Benettin estimate here gave ~0.014).
hindmarsh_rose = register(System(
    name="hindmarsh_rose", kind="ode", state_names=("x", "y", "z"),
    drift=_hindmarsh_rose_drift,
    params={"a": Param(1.0, 0.9, 1.1, "cubic coefficient"),
            "b": Param(3.0, 2.5, 3.5, "quadratic coefficient"),
            "c": Param(1.0, 0.9, 1.1, "recovery offset"),
            "d": Param(5.0, 4.5, 5.5, "recovery gain"),
            "r": Param(0.006, 0.001, 0.01, "slow adaptation rate"),
            "s": Param(4.0, 3.5, 4.5, "adaptation coupling"),
            "x_rest": Param(-1.6, -1.8, -1.4, "resting potential of the slow variable"),
            "I": Param(3.25, 1.0, 4.0, "applied current (chaotic bursting near 3.25)")},
    x0_low=(-1.5, -10.0, 2.8), x0_high=(1.5, 0.0, 3.4), t_end=500.0, dt=0.25,
    reference="Hindmarsh & Rose (1984), A model of neuronal bursting using three coupled first "
              "order differential equations, Proc. R. Soc. Lond. B 221:87-102",
    equations=(r"\dot{x} = y - a x^3 + b x^2 - z + I \\ \dot{y} = c - d x^2 - y \\ "
               r"\dot{z} = r (s (x - x_R) - z)"),
    description="Bursting neuron: fast spiking (x, y) modulated by slow adaptation z.",
    chaotic=True,
))

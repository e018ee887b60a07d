"""Mechanical oscillators and Hamiltonian systems: springs, pendula, central forces."""
from __future__ import annotations

import math
from typing import Callable

import torch

from ._registry import register
from ._system import Param, Params, System

Sampler = Callable[[int, torch.Generator], torch.Tensor]


def _radial_sampler(r_low: float, r_high: float) -> Sampler:
    """Points of the (q, p) plane at a uniform angle and a radius drawn from [r_low, r_high].

    This is how the HNN paper (Greydanus et al. 2019) draws its initial conditions: the radius
    sets the energy, so a box would over-represent the corners.
    """
    def sample(n: int, generator: torch.Generator) -> torch.Tensor:
        u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
        radius = r_low + (r_high - r_low) * u[:, 0]
        angle = 2 * math.pi * u[:, 1]
        return torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=-1)
    return sample


# --- linear and weakly nonlinear oscillators -------------------------------------------------

def damped_oscillator_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    """``q' = v``, ``v' = -omega^2 q - gamma v`` (also the drift of ``langevin_oscillator``)."""
    q, v = x.unbind(-1)
    return torch.stack([v, -p["omega"] ** 2 * q - p["gamma"] * v], dim=-1)


def _harmonic_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    q, v = x.unbind(-1)
    return torch.stack([v, -p["omega"] ** 2 * q], dim=-1)


def _harmonic_energy(x: torch.Tensor, p: Params) -> torch.Tensor:
    q, v = x.unbind(-1)
    return 0.5 * v ** 2 + 0.5 * p["omega"] ** 2 * q ** 2


harmonic_oscillator = register(System(
    name="harmonic_oscillator", kind="ode", state_names=("q", "p"),
    drift=_harmonic_drift,
    params={"omega": Param(1.0, 0.5, 3.0, "angular frequency")},
    x0_low=(-1.0, -1.0), x0_high=(1.0, 1.0), t_end=25.0, dt=0.05,
    reference="e.g. Goldstein, Poole & Safko (2002), Classical Mechanics, 3rd ed., ch. 6",
    equations=r"\dot{q} = p \\ \dot{p} = -\omega^2 q",
    description="Undamped linear oscillator with unit mass; the simplest Hamiltonian system.",
    energy=_harmonic_energy, qp_split=((0,), (1,)),
))

damped_oscillator = register(System(
    name="damped_oscillator", kind="ode", state_names=("q", "v"),
    drift=damped_oscillator_drift,
    params={"omega": Param(1.0, 0.5, 3.0, "undamped angular frequency"),
            "gamma": Param(0.2, 0.0, 2.0, "damping rate")},
    x0_low=(-1.0, -1.0), x0_high=(1.0, 1.0), t_end=30.0, dt=0.05,
    reference="e.g. Strogatz (2015), Nonlinear Dynamics and Chaos, 2nd ed., sec. 5.2",
    equations=r"\dot{q} = v \\ \dot{v} = -\omega^2 q - \gamma v",
    description="Linear oscillator with viscous damping, spiralling into the origin.",
))


def _mass_spring_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    q, mom = x.unbind(-1)
    return torch.stack([2 * mom, -2 * q], dim=-1)


def _mass_spring_energy(x: torch.Tensor, p: Params) -> torch.Tensor:
    q, mom = x.unbind(-1)
    return q ** 2 + mom ** 2


mass_spring = register(System(
    name="mass_spring", kind="ode", state_names=("q", "p"),
    drift=_mass_spring_drift, params={},
    x0_low=(-1.0, -1.0), x0_high=(1.0, 1.0), x0_sampler=_radial_sampler(0.1, 1.0),
    t_end=10.0, dt=0.02,
    reference="Greydanus, Dzamba & Yosinski (2019), Hamiltonian Neural Networks, NeurIPS (task 1, "
              "H = q^2 + p^2; radius of x0 uniform in [0.1, 1])",
    equations=r"\dot{q} = 2p \\ \dot{p} = -2q",
    description="The HNN paper's ideal mass-spring, H = q^2 + p^2.",
    energy=_mass_spring_energy, qp_split=((0,), (1,)),
))


# --- pendula -----------------------------------------------------------------------------

def _pendulum_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    q, mom = x.unbind(-1)
    return torch.stack([2 * mom, -2 * torch.sin(q)], dim=-1)


def _pendulum_energy(x: torch.Tensor, p: Params) -> torch.Tensor:
    q, mom = x.unbind(-1)
    return 2 * (1 - torch.cos(q)) + mom ** 2


pendulum = register(System(
    name="pendulum", kind="ode", state_names=("q", "p"),
    drift=_pendulum_drift, params={},
    x0_low=(-2.0, -2.0), x0_high=(2.0, 2.0), x0_sampler=_radial_sampler(0.2, 2.0),
    t_end=10.0, dt=0.02,
    reference="Greydanus, Dzamba & Yosinski (2019), Hamiltonian Neural Networks, NeurIPS (task 2, "
              "H = 2(1 - cos q) + p^2; radius of x0 uniform in [0.2, 2])",
    equations=r"\dot{q} = 2p \\ \dot{p} = -2\sin q",
    description="The HNN paper's ideal pendulum, H = 2(1 - cos q) + p^2.",
    units=("rad", "1"),
    energy=_pendulum_energy, qp_split=((0,), (1,)),
))


def _damped_pendulum_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    theta, omega = x.unbind(-1)
    return torch.stack([omega, -p["omega0"] ** 2 * torch.sin(theta) - p["gamma"] * omega], dim=-1)


damped_pendulum = register(System(
    name="damped_pendulum", kind="ode", state_names=("theta", "omega"),
    drift=_damped_pendulum_drift,
    params={"omega0": Param(1.0, 0.5, 3.0, "small-angle angular frequency sqrt(g/l)"),
            "gamma": Param(0.2, 0.0, 2.0, "damping rate")},
    x0_low=(-2.5, -1.0), x0_high=(2.5, 1.0), t_end=30.0, dt=0.05,
    reference="e.g. Strogatz (2015), Nonlinear Dynamics and Chaos, 2nd ed., sec. 6.7",
    equations=r"\dot{\theta} = \omega \\ \dot{\omega} = -\omega_0^2 \sin\theta - \gamma\omega",
    description="Pendulum with linear friction, settling to the hanging rest state.",
    units=("rad", "rad/s"), time_units="s",
))


def _double_pendulum_parts(x: torch.Tensor, p: Params):
    """Angles, momenta and angular velocities (inverse of the mass matrix applied to p)."""
    th1, th2, p1, p2 = x.unbind(-1)
    m1, m2, l1, l2 = p["m1"], p["m2"], p["l1"], p["l2"]
    delta = th1 - th2
    c, s = torch.cos(delta), torch.sin(delta)
    denom = m1 + m2 * s ** 2
    w1 = (l2 * p1 - l1 * c * p2) / (l1 ** 2 * l2 * denom)
    w2 = ((m1 + m2) * l1 * p2 - m2 * l2 * c * p1) / (m2 * l1 * l2 ** 2 * denom)
    return th1, th2, p1, p2, w1, w2, s


def _double_pendulum_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    th1, th2, _, _, w1, w2, s = _double_pendulum_parts(x, p)
    m1, m2, l1, l2, g = p["m1"], p["m2"], p["l1"], p["l2"], p["g"]
    # dp/dt = dL/dtheta at fixed angular velocities (equal to -dH/dtheta at fixed momenta),
    # which avoids differentiating the momentum-form kinetic energy.
    coupling = m2 * l1 * l2 * w1 * w2 * s
    dp1 = -coupling - (m1 + m2) * g * l1 * torch.sin(th1)
    dp2 = coupling - m2 * g * l2 * torch.sin(th2)
    return torch.stack([w1, w2, dp1, dp2], dim=-1)


def _double_pendulum_energy(x: torch.Tensor, p: Params) -> torch.Tensor:
    th1, th2, p1, p2, w1, w2, _ = _double_pendulum_parts(x, p)
    m1, m2, l1, l2, g = p["m1"], p["m2"], p["l1"], p["l2"], p["g"]
    kinetic = 0.5 * (p1 * w1 + p2 * w2)
    return kinetic - (m1 + m2) * g * l1 * torch.cos(th1) - m2 * g * l2 * torch.cos(th2)


double_pendulum = register(System(
    name="double_pendulum", kind="ode", state_names=("theta1", "theta2", "p1", "p2"),
    drift=_double_pendulum_drift,
    params={"m1": Param(1.0, 0.5, 2.0, "upper bob mass"),
            "m2": Param(1.0, 0.5, 2.0, "lower bob mass"),
            "l1": Param(1.0, 0.5, 2.0, "upper rod length"),
            "l2": Param(1.0, 0.5, 2.0, "lower rod length"),
            "g": Param(9.81, 1.0, 20.0, "gravitational acceleration")},
    x0_low=(-2.0, -2.0, -1.0, -1.0), x0_high=(2.0, 2.0, 1.0, 1.0), t_end=10.0, dt=0.01,
    reference="Planar double pendulum of point masses on massless rods, canonical momenta; e.g. "
              "Goldstein, Poole & Safko (2002), Classical Mechanics, 3rd ed.",
    equations=(r"\dot{\theta}_1 = \frac{l_2 p_1 - l_1 p_2 \cos\Delta}{l_1^2 l_2 (m_1 + m_2\sin^2\Delta)} \\ "
               r"\dot{\theta}_2 = \frac{(m_1+m_2) l_1 p_2 - m_2 l_2 p_1 \cos\Delta}"
               r"{m_2 l_1 l_2^2 (m_1 + m_2\sin^2\Delta)} \\ "
               r"\dot{p}_1 = -m_2 l_1 l_2 \dot{\theta}_1 \dot{\theta}_2 \sin\Delta "
               r"- (m_1+m_2) g l_1 \sin\theta_1 \\ "
               r"\dot{p}_2 = m_2 l_1 l_2 \dot{\theta}_1 \dot{\theta}_2 \sin\Delta - m_2 g l_2 \sin\theta_2"),
    description="Double pendulum in canonical coordinates; chaotic at large energies "
                "(Delta = theta1 - theta2).",
    units=("rad", "rad", "kg m^2/s", "kg m^2/s"), time_units="s",
    energy=_double_pendulum_energy, qp_split=((0, 1), (2, 3)),
    # No single exponent: it depends on each orbit's energy. The default sampler reaches both regimes.
    chaotic=True,
    regime="energy-dependent: regular small oscillations at low energy, chaos at large energies where the "
           "bobs swing over; orbits from the default sampler are mixed: finite-time largest exponents of "
           "16 of them over 100 s ranged 0.009-1.26 per s (benchmarks/bench_lyapunov.py)",
))


# --- nonlinear oscillators -----------------------------------------------------------------

def _duffing_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    q, v = x.unbind(-1)
    return torch.stack([v, -p["alpha"] * q - p["beta"] * q ** 3], dim=-1)


def _duffing_energy(x: torch.Tensor, p: Params) -> torch.Tensor:
    q, v = x.unbind(-1)
    return 0.5 * v ** 2 + 0.5 * p["alpha"] * q ** 2 + 0.25 * p["beta"] * q ** 4


duffing = register(System(
    name="duffing", kind="ode", state_names=("q", "p"),
    drift=_duffing_drift,
    # beta > 0 keeps the quartic potential confining for any alpha, so orbits stay bounded.
    params={"alpha": Param(-1.0, -2.0, 2.0, "linear stiffness (negative: double well)"),
            "beta": Param(1.0, 0.1, 2.0, "cubic stiffness")},
    x0_low=(-2.0, -1.0), x0_high=(2.0, 1.0), t_end=30.0, dt=0.05,
    reference="Duffing (1918), Erzwungene Schwingungen bei veränderlicher Eigenfrequenz, Vieweg; "
              "unforced, undamped form",
    equations=r"\dot{q} = p \\ \dot{p} = -\alpha q - \beta q^3",
    description="Unforced, undamped Duffing oscillator; a double well at the defaults.",
    energy=_duffing_energy, qp_split=((0,), (1,)),
))


def van_der_pol_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    """``x' = y``, ``y' = mu (1 - x^2) y - x`` (also the drift of ``stochastic_van_der_pol``)."""
    q, v = x.unbind(-1)
    return torch.stack([v, p["mu"] * (1 - q ** 2) * v - q], dim=-1)


van_der_pol = register(System(
    name="van_der_pol", kind="ode", state_names=("x", "y"),
    drift=van_der_pol_drift,
    # Above mu ~ 5 the relaxation oscillation becomes stiff; keep the range explicit-friendly.
    params={"mu": Param(1.0, 0.1, 5.0, "nonlinear damping strength")},
    x0_low=(-3.0, -3.0), x0_high=(3.0, 3.0), t_end=30.0, dt=0.05,
    reference="van der Pol (1926), On relaxation-oscillations, Phil. Mag. 2(11):978-992",
    equations=r"\dot{x} = y \\ \dot{y} = \mu (1 - x^2) y - x",
    description="Self-sustained oscillator with a stable limit cycle.",
))


# --- Hénon–Heiles ---------------------------------------------------------------------------

def _henon_heiles_potential(xx: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
    return 0.5 * (xx ** 2 + yy ** 2) + xx ** 2 * yy - yy ** 3 / 3


def _henon_heiles_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    xx, yy, px, py = x.unbind(-1)
    return torch.stack([px, py, -xx - 2 * xx * yy, -yy - xx ** 2 + yy ** 2], dim=-1)


def _henon_heiles_energy(x: torch.Tensor, p: Params) -> torch.Tensor:
    xx, yy, px, py = x.unbind(-1)
    return 0.5 * (px ** 2 + py ** 2) + _henon_heiles_potential(xx, yy)


def _henon_heiles_sampler(n: int, generator: torch.Generator,
                          e_low: float = 0.01, e_high: float = 0.16) -> torch.Tensor:
    """Initial conditions with energy in [e_low, e_high], below the escape energy 1/6.

    Positions come from the disc of radius 1/2, which lies inside the triangle bounded by the
    H = 1/6 equipotential, so every orbit is trapped in the bounded well.
    """
    out = torch.empty(0, 4, dtype=torch.float64)
    while out.shape[0] < n:
        u = torch.rand(4 * n, 5, generator=generator, dtype=torch.float64)
        energy = e_low + (e_high - e_low) * u[:, 0]
        radius = 0.5 * torch.sqrt(u[:, 1])
        xx, yy = radius * torch.cos(2 * math.pi * u[:, 2]), radius * torch.sin(2 * math.pi * u[:, 2])
        kinetic = energy - _henon_heiles_potential(xx, yy)
        speed = torch.sqrt(2 * kinetic.clamp(min=0))
        px, py = speed * torch.cos(2 * math.pi * u[:, 3]), speed * torch.sin(2 * math.pi * u[:, 3])
        accepted = torch.stack([xx, yy, px, py], dim=-1)[kinetic > 0]
        out = torch.cat([out, accepted])
    return out[:n]


henon_heiles = register(System(
    name="henon_heiles", kind="ode", state_names=("x", "y", "px", "py"),
    drift=_henon_heiles_drift, params={},
    x0_low=(-0.5, -0.5, -0.57, -0.57), x0_high=(0.5, 0.5, 0.57, 0.57),
    x0_sampler=_henon_heiles_sampler, t_end=100.0, dt=0.1,
    reference="Hénon & Heiles (1964), The applicability of the third integral of motion: some "
              "numerical experiments, Astron. J. 69:73-79",
    equations=(r"\dot{x} = p_x \\ \dot{y} = p_y \\ \dot{p}_x = -x - 2xy \\ "
               r"\dot{p}_y = -y - x^2 + y^2"),
    description="Star in an axisymmetric galactic potential; mixed regular/chaotic motion "
                "for energies in (0, 1/6).",
    energy=_henon_heiles_energy, qp_split=((0, 1), (2, 3)),
    # No single exponent: it depends on each orbit's energy. The default sampler reaches both regimes.
    chaotic=True,
    regime="energy-dependent: regular (KAM tori) below E ~ 1/12, a growing chaotic sea above, mostly "
           "chaotic near the escape energy 1/6 (Hénon & Heiles 1964); the default sampler draws E in "
           "[0.01, 0.16], so its orbits are mixed: finite-time largest exponents of 16 of them over 400 "
           "time units ranged 0.007-0.127 (benchmarks/bench_lyapunov.py)",
))


# --- Kepler ----------------------------------------------------------------------------------

def _kepler_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    qx, qy, px, py = x.unbind(-1)
    r3 = (qx ** 2 + qy ** 2) ** 1.5
    return torch.stack([px, py, -p["k"] * qx / r3, -p["k"] * qy / r3], dim=-1)


def _kepler_energy(x: torch.Tensor, p: Params) -> torch.Tensor:
    qx, qy, px, py = x.unbind(-1)
    return 0.5 * (px ** 2 + py ** 2) - p["k"] / torch.sqrt(qx ** 2 + qy ** 2)


def _kepler_angular_momentum(x: torch.Tensor, p: Params) -> torch.Tensor:
    qx, qy, px, py = x.unbind(-1)
    return qx * py - qy * px


def _kepler_sampler(n: int, generator: torch.Generator) -> torch.Tensor:
    """Counter-clockwise ellipses (for the default k = 1): semi-major axis in [0.8, 1.2],
    eccentricity in [0, 0.5], random orientation and random position along the orbit."""
    k = 1.0
    u = torch.rand(n, 4, generator=generator, dtype=torch.float64)
    a = 0.8 + 0.4 * u[:, 0]
    e = 0.5 * u[:, 1]
    nu = 2 * math.pi * u[:, 2]           # true anomaly
    phi = nu + 2 * math.pi * u[:, 3]     # polar angle = true anomaly + argument of periapsis
    semi_latus = a * (1 - e ** 2)
    r = semi_latus / (1 + e * torch.cos(nu))
    scale = torch.sqrt(k / semi_latus)
    v_r, v_t = scale * e * torch.sin(nu), scale * (1 + e * torch.cos(nu))
    c, s = torch.cos(phi), torch.sin(phi)
    return torch.stack([r * c, r * s, v_r * c - v_t * s, v_r * s + v_t * c], dim=-1)


kepler = register(System(
    name="kepler", kind="ode", state_names=("x", "y", "px", "py"),
    drift=_kepler_drift,
    # The sampler's velocities are those of k = 1; they stay bound (elliptic) for k > 0.75.
    params={"k": Param(1.0, 0.8, 2.0, "gravitational parameter G(m1 + m2)")},
    x0_low=(-1.8, -1.8, -1.8, -1.8), x0_high=(1.8, 1.8, 1.8, 1.8),
    x0_sampler=_kepler_sampler, t_end=20.0, dt=0.02,
    reference="Kepler problem (reduced planar two-body problem, unit reduced mass); e.g. Goldstein, "
              "Poole & Safko (2002), Classical Mechanics, 3rd ed., ch. 3",
    equations=(r"\dot{x} = p_x \\ \dot{y} = p_y \\ \dot{p}_x = -k x / r^3 \\ "
               r"\dot{p}_y = -k y / r^3"),
    description="Relative motion of two bodies under gravity, r = sqrt(x^2 + y^2); bounded "
                "elliptical orbits by default.",
    energy=_kepler_energy, qp_split=((0, 1), (2, 3)),
    invariants={"angular_momentum": _kepler_angular_momentum},
))


# --- Neural-ODE demo spiral ------------------------------------------------------------------

def _spiral_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    # torchdiffeq's ode_demo computes y**3 @ A with y a row vector, A = [[-a, b], [-b, -a]].
    c1, c2 = (x ** 3).unbind(-1)
    a, b = p["a"], p["b"]
    return torch.stack([-a * c1 - b * c2, b * c1 - a * c2], dim=-1)


spiral = register(System(
    name="spiral", kind="ode", state_names=("y1", "y2"),
    drift=_spiral_drift,
    params={"a": Param(0.1, 0.02, 0.5, "damping entry of A"),
            "b": Param(2.0, 0.5, 4.0, "rotation entry of A")},
    x0_low=(1.5, -0.5), x0_high=(2.5, 0.5), t_end=25.0, dt=0.025,
    reference="Chen, Rubanova, Bettencourt & Duvenaud (2018), Neural Ordinary Differential "
              "Equations, NeurIPS; torchdiffeq examples/ode_demo.py (y0 = (2, 0), t in [0, 25])",
    equations=r"\dot{y}_1 = -a y_1^3 - b y_2^3 \\ \dot{y}_2 = b y_1^3 - a y_2^3",
    description="Cubic spiral dy/dt = y^3 A, A = [[-0.1, 2], [-2, -0.1]], from the neural-ODE demo.",
))

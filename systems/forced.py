"""Periodically forced oscillators: the forcing is an exogenous input recorded beside the state,
so learners that accept inputs have a known truth to be measured against."""
from __future__ import annotations

import math

import torch

from ._registry import register
from ._system import Param, Params, System


def _cosine_forcing(t: torch.Tensor, p: Params) -> torch.Tensor:
    """``u(t) = A cos(omega t)``, one column."""
    return (p["amplitude"] * torch.cos(p["omega"] * t)).unsqueeze(-1)


def _forced_duffing_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    q, v = x.unbind(-1)
    u = _cosine_forcing(t, p)[..., 0]
    return torch.stack([v, -p["delta"] * v - p["alpha"] * q - p["beta"] * q ** 3 + u], dim=-1)


forced_duffing = register(System(
    name="forced_duffing", kind="ode", state_names=("q", "v"),
    drift=_forced_duffing_drift,
    params={"delta": Param(0.3, 0.0, 1.0, "damping"),
            "alpha": Param(-1.0, -2.0, 2.0, "linear stiffness (negative: double well)"),
            "beta": Param(1.0, 0.1, 2.0, "cubic stiffness"),
            "amplitude": Param(0.5, 0.0, 1.0, "forcing amplitude A"),
            "omega": Param(1.2, 0.5, 2.0, "forcing angular frequency")},
    x0_low=(-1.5, -1.0), x0_high=(1.5, 1.0), t_end=50.0, dt=0.05,
    reference="Guckenheimer & Holmes (1983), Nonlinear Oscillations, Dynamical Systems, and Bifurcations "
              "of Vector Fields, Springer, sec. 2.2 (delta=0.3, A=0.5, omega=1.2: a strange attractor)",
    equations=r"\dot{q} = v \\ \dot{v} = -\delta v - \alpha q - \beta q^3 + u(t),\quad u(t) = A\cos(\omega t)",
    description="Damped double-well Duffing oscillator driven by a periodic force u(t), recorded as an input.",
    chaotic=True, facts_source="Guckenheimer & Holmes (1983) sec. 2.2; chaos at the default forcing",
    inputs=("u",), forcing=_cosine_forcing,
))


def _forced_van_der_pol_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    q, v = x.unbind(-1)
    u = _cosine_forcing(t, p)[..., 0]
    return torch.stack([v, p["mu"] * (1 - q ** 2) * v - q + u], dim=-1)


forced_van_der_pol = register(System(
    name="forced_van_der_pol", kind="ode", state_names=("x", "y"),
    drift=_forced_van_der_pol_drift,
    params={"mu": Param(1.0, 0.1, 5.0, "nonlinear damping strength"),
            "amplitude": Param(1.0, 0.0, 5.0, "forcing amplitude A"),
            "omega": Param(2 * math.pi / 10, 0.1, 3.0, "forcing angular frequency")},
    x0_low=(-3.0, -3.0), x0_high=(3.0, 3.0), t_end=60.0, dt=0.1,
    reference="van der Pol & van der Mark (1927), Frequency demultiplication, Nature 120:363; "
              "Parlitz & Lauterborn (1987), Phys. Rev. A 36:1428 (the driven van der Pol oscillator)",
    equations=r"\dot{x} = y \\ \dot{y} = \mu (1 - x^2) y - x + u(t),\quad u(t) = A\cos(\omega t)",
    description="Van der Pol oscillator driven by a periodic force u(t), recorded as an input.",
    inputs=("u",), forcing=_cosine_forcing,
))

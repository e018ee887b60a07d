"""Itô stochastic differential equations ``dx = f(t, x) dt + g(t, x) dW``.

Diffusions return one column per state (shape ``(batch, dim)``) for diagonal, additive and
scalar noise. Linear SDEs carry their analytic mean and variance so simulators can be checked.
"""
from __future__ import annotations

import torch

from ._registry import register
from ._system import Param, Params, System
from .chaotic import lorenz63, lorenz63_drift
from .mechanics import damped_oscillator_drift, van_der_pol, van_der_pol_drift
from .populations import sir, sir_drift, sir_sampler, state_sum


def _col(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A parameter shaped to broadcast against a whole ``(..., dim)`` state, not just ``x[..., 0]``.

    It takes the state's dtype and device: once unsqueezed, a 0-d parameter is no longer a
    scalar, so type promotion and CPU-scalar-on-GPU broadcasting would otherwise change.
    """
    return torch.as_tensor(value, dtype=like.dtype, device=like.device).unsqueeze(-1)


def _exp(rate: torch.Tensor, t: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """``exp(rate t)`` as a column, for the moments ``m(t, x0, p)``."""
    return torch.exp(_col(rate, like) * torch.as_tensor(t, dtype=like.dtype, device=like.device))


# --- Ornstein–Uhlenbeck --------------------------------------------------------------------

def _ou_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    return _col(p["theta"], x) * (_col(p["mu"], x) - x)


def _additive_sigma(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    return _col(p["sigma"], x) * torch.ones_like(x)


def _ou_mean(t: torch.Tensor | float, x0: torch.Tensor, p: Params) -> torch.Tensor:
    mu = _col(p["mu"], x0)
    return mu + (x0 - mu) * _exp(-p["theta"], t, x0)


def _ou_variance(t: torch.Tensor | float, x0: torch.Tensor, p: Params) -> torch.Tensor:
    theta, sigma = _col(p["theta"], x0), _col(p["sigma"], x0)
    return sigma ** 2 / (2 * theta) * (1 - _exp(-2 * p["theta"], t, x0)) * torch.ones_like(x0)


ornstein_uhlenbeck = register(System(
    name="ornstein_uhlenbeck", kind="sde", state_names=("x",),
    drift=_ou_drift, diffusion=_additive_sigma, noise_type="additive",
    params={"theta": Param(1.0, 0.2, 5.0, "mean-reversion rate"),
            "mu": Param(0.0, -2.0, 2.0, "long-run mean"),
            "sigma": Param(0.5, 0.05, 2.0, "noise amplitude")},
    x0_low=(-2.0,), x0_high=(2.0,), t_end=10.0, dt=0.01,
    reference="Uhlenbeck & Ornstein (1930), On the theory of the Brownian motion, Phys. Rev. "
              "36:823-841",
    equations=r"dx = \theta (\mu - x)\,dt + \sigma\,dW",
    description="Mean-reverting Gaussian process; the linear SDE with analytic moments.",
    mean=_ou_mean, variance=_ou_variance,
))


# --- geometric Brownian motion -------------------------------------------------------------

def _gbm_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    return _col(p["mu"], x) * x


def _gbm_diffusion(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    return _col(p["sigma"], x) * x


def _gbm_mean(t: torch.Tensor | float, x0: torch.Tensor, p: Params) -> torch.Tensor:
    return x0 * _exp(p["mu"], t, x0)


def _gbm_variance(t: torch.Tensor | float, x0: torch.Tensor, p: Params) -> torch.Tensor:
    return x0 ** 2 * _exp(2 * p["mu"], t, x0) * (_exp(p["sigma"] ** 2, t, x0) - 1)


geometric_brownian_motion = register(System(
    name="geometric_brownian_motion", kind="sde", state_names=("x",),
    drift=_gbm_drift, diffusion=_gbm_diffusion, noise_type="diagonal",
    params={"mu": Param(0.05, -0.5, 0.5, "drift rate per unit time"),
            "sigma": Param(0.2, 0.01, 0.8, "volatility")},
    x0_low=(0.5,), x0_high=(2.0,), t_end=5.0, dt=0.01,
    reference="Samuelson (1965), Rational theory of warrant pricing, Ind. Manag. Rev. 6:13-39; "
              "moments e.g. Øksendal (2003), Stochastic Differential Equations, 6th ed., sec. 5.1",
    equations=r"dx = \mu x\,dt + \sigma x\,dW",
    description="Log-normal growth with multiplicative noise; stays positive.",
    mean=_gbm_mean, variance=_gbm_variance,
))


# --- Cox–Ingersoll–Ross --------------------------------------------------------------------

def _cir_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    return _col(p["kappa"], x) * (_col(p["theta"], x) - x)


def _cir_diffusion(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    # Discretisations can step slightly below zero; the clamp keeps the square root real.
    return _col(p["sigma"], x) * torch.sqrt(torch.clamp(x, min=0))


def _cir_mean(t: torch.Tensor | float, x0: torch.Tensor, p: Params) -> torch.Tensor:
    theta = _col(p["theta"], x0)
    return theta + (x0 - theta) * _exp(-p["kappa"], t, x0)


def _cir_variance(t: torch.Tensor | float, x0: torch.Tensor, p: Params) -> torch.Tensor:
    kappa, theta, sigma = _col(p["kappa"], x0), _col(p["theta"], x0), _col(p["sigma"], x0)
    e1 = _exp(-p["kappa"], t, x0)
    return x0 * sigma ** 2 / kappa * (e1 - e1 ** 2) + theta * sigma ** 2 / (2 * kappa) * (1 - e1) ** 2


cir = register(System(
    name="cir", kind="sde", state_names=("x",),
    drift=_cir_drift, diffusion=_cir_diffusion, noise_type="diagonal",
    # The ranges keep the Feller condition 2 kappa theta > sigma^2 everywhere (0.5 > 0.49),
    # so the exact process never touches zero.
    params={"kappa": Param(1.0, 0.5, 3.0, "mean-reversion rate"),
            "theta": Param(1.0, 0.5, 2.0, "long-run mean"),
            "sigma": Param(0.5, 0.05, 0.7, "volatility scale")},
    x0_low=(0.2,), x0_high=(2.0,), t_end=10.0, dt=0.01,
    reference="Cox, Ingersoll & Ross (1985), A theory of the term structure of interest rates, "
              "Econometrica 53(2):385-407",
    equations=r"dx = \kappa (\theta - x)\,dt + \sigma \sqrt{x}\,dW",
    description="Square-root mean-reverting process (interest rates, variances); positive under Feller.",
    mean=_cir_mean, variance=_cir_variance,
))


# --- double well ---------------------------------------------------------------------------

def _double_well_drift(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    return x - x ** 3


double_well = register(System(
    name="double_well", kind="sde", state_names=("x",),
    drift=_double_well_drift, diffusion=_additive_sigma, noise_type="additive",
    params={"sigma": Param(0.5, 0.1, 1.0, "noise amplitude")},
    x0_low=(-1.5,), x0_high=(1.5,), t_end=50.0, dt=0.05,
    reference="Kramers (1940), Brownian motion in a field of force and the diffusion model of "
              "chemical reactions, Physica 7:284-304",
    equations=r"dx = (x - x^3)\,dt + \sigma\,dW",
    description="Overdamped Langevin dynamics in V(x) = x^4/4 - x^2/2, hopping between wells at +-1.",
))


# --- oscillators with noise on the velocity ------------------------------------------------

def _velocity_noise(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    # Noise enters only through the force, so the position column is zero.
    q, _ = x.unbind(-1)
    return torch.stack([torch.zeros_like(q), p["sigma"] * torch.ones_like(q)], dim=-1)


langevin_oscillator = register(System(
    name="langevin_oscillator", kind="sde", state_names=("q", "p"),
    drift=damped_oscillator_drift, diffusion=_velocity_noise, noise_type="additive",
    params={"omega": Param(1.0, 0.5, 3.0, "angular frequency"),
            "gamma": Param(0.2, 0.05, 2.0, "friction rate"),
            "sigma": Param(0.3, 0.05, 1.0, "thermal noise amplitude (sigma^2 = 2 gamma kT)")},
    x0_low=(-1.0, -1.0), x0_high=(1.0, 1.0), t_end=30.0, dt=0.05,
    reference="Langevin (1908), Sur la théorie du mouvement brownien, C. R. Acad. Sci. 146:530-533; "
              "e.g. Risken (1989), The Fokker-Planck Equation, Springer",
    equations=r"dq = p\,dt \\ dp = (-\omega^2 q - \gamma p)\,dt + \sigma\,dW",
    description="Underdamped Brownian particle in a harmonic trap, noise on the momentum only.",
))

stochastic_van_der_pol = register(System(
    name="stochastic_van_der_pol", kind="sde", state_names=van_der_pol.state_names,
    drift=van_der_pol_drift, diffusion=_velocity_noise, noise_type="additive",
    params={**van_der_pol.params, "sigma": Param(0.3, 0.05, 1.0, "noise amplitude on y")},
    x0_low=van_der_pol.x0_low, x0_high=van_der_pol.x0_high, t_end=30.0, dt=0.05,
    reference=van_der_pol.reference + "; with additive white noise on the velocity",
    equations=r"dx = y\,dt \\ dy = (\mu (1 - x^2) y - x)\,dt + \sigma\,dW",
    description="Van der Pol limit cycle driven by additive noise on the velocity.",
))


# --- stochastic Lorenz ---------------------------------------------------------------------

def _stochastic_lorenz_diffusion(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    u, v, w = x.unbind(-1)
    return torch.stack([p["noise_x"] * u, p["noise_y"] * v, p["noise_z"] * w], dim=-1)


stochastic_lorenz = register(System(
    name="stochastic_lorenz", kind="sde", state_names=lorenz63.state_names,
    drift=lorenz63_drift, diffusion=_stochastic_lorenz_diffusion, noise_type="diagonal",
    params={**lorenz63.params,
            "noise_x": Param(0.1, 0.0, 0.5, "relative noise on x"),
            "noise_y": Param(0.28, 0.0, 0.5, "relative noise on y"),
            "noise_z": Param(0.3, 0.0, 0.5, "relative noise on z")},
    x0_low=lorenz63.x0_low, x0_high=lorenz63.x0_high, t_end=10.0, dt=0.01,
    reference="Li, Wong, Chen & Duvenaud (2020), Scalable gradients for stochastic differential "
              "equations, AISTATS, sec. 7.2 (torchsde examples/latent_sde_lorenz.py)",
    equations=(r"dx = \sigma (y - x)\,dt + s_x x\,dW_1 \\ dy = (x(\rho - z) - y)\,dt + s_y y\,dW_2 \\ "
               r"dz = (xy - \beta z)\,dt + s_z z\,dW_3"),
    description="Lorenz-63 with multiplicative diagonal noise.",
))


# --- stochastic SIR ------------------------------------------------------------------------

def _stochastic_sir_diffusion(t: torch.Tensor, x: torch.Tensor, p: Params) -> torch.Tensor:
    # One Brownian motion perturbs the transmission rate beta; it moves S and I in opposite
    # directions, so S + I + R stays conserved along every path.
    s, i, _ = x.unbind(-1)
    shock = p["sigma"] * s * i
    return torch.stack([-shock, shock, torch.zeros_like(shock)], dim=-1)


stochastic_sir = register(System(
    name="stochastic_sir", kind="sde", state_names=sir.state_names,
    drift=sir_drift, diffusion=_stochastic_sir_diffusion, noise_type="scalar",
    params={**sir.params, "sigma": Param(0.05, 0.0, 0.2, "noise on the transmission rate")},
    x0_low=sir.x0_low, x0_high=sir.x0_high, x0_sampler=sir_sampler, t_end=160.0, dt=0.5,
    reference="Gray, Greenhalgh, Hu, Mao & Pan (2011), A stochastic differential equation SIS "
              "epidemic model, SIAM J. Appl. Math. 71(3):876-902 (beta -> beta + sigma dW/dt); "
              "applied to " + sir.reference,
    equations=(r"dS = -\beta S I\,dt - \sigma S I\,dW \\ dI = (\beta S I - \gamma I)\,dt + "
               r"\sigma S I\,dW \\ dR = \gamma I\,dt"),
    description="SIR epidemic with a noisy transmission rate (one shared Brownian motion).",
    units=sir.units, time_units=sir.time_units,
    invariants={"total": state_sum},
))

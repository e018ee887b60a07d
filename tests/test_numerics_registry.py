"""Every registered solver does what it declares: fixed-step methods converge at their declared order
(the error ratio on halving the step, against the analytic solution), adaptive methods get more
accurate as the tolerance tightens, SDE schemes have their declared strong order; and names resolve
through the registry everywhere (simulate refuses an unknown one with close matches)."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torchdiffeq
import torchsde
from scipy.integrate import solve_ivp

import workbench as wb
from workbench.errors import BadParameterError, UnknownNameError, UnsupportedError
from workbench.numerics import Solver, fixed_step_solve, integrate_batch, solver, solvers

T_END = 2.0  # harmonic oscillator y'' = -y from (1, 0): y = (cos t, -sin t)


def _oscillator(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.stack([y[..., 1], -y[..., 0]], -1)


def _error_at_end(method: Solver, backend: str, t_end: float, *, step: float = 0.0, tol: float = 0.0) -> float:
    """Max-norm error at ``t_end`` of ``method`` run by ``backend`` with a fixed ``step`` or tolerance ``tol``."""
    y0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    t = torch.tensor([0.0, t_end], dtype=torch.float64)
    exact = np.array([math.cos(t_end), -math.sin(t_end)])
    if backend == "workbench" and method.adaptive:
        out, _ = integrate_batch(_oscillator, y0, t, method=method.name, rtol=tol, atol=tol)
        end = out[0, -1]
    elif backend == "workbench":
        end = fixed_step_solve(_oscillator, y0, t, round(t_end / step), method.name)[-1, 0]
    elif backend == "torchdiffeq":
        options = method.backend_options | ({} if method.adaptive else {"step_size": step})
        # a fixed-step implicit method's corrector iterates to rtol/atol: tight, so the step's error shows
        rtol = tol if method.adaptive else 1e-13
        end = torchdiffeq.odeint(_oscillator, y0[0], t, method=method.name, rtol=rtol, atol=rtol, options=options)[-1]
    else:
        assert backend == "scipy"
        sol = solve_ivp(lambda tt, y: [y[1], -y[0]], (0.0, t_end), [1.0, 0.0], rtol=tol, atol=tol,
                        **method.backend_options)
        return float(np.abs(sol.y[:, -1] - exact).max())
    return float(np.abs(end.numpy() - exact).max())


def _cases(adaptive: bool) -> list:
    return [pytest.param(s, backend, id=f"{s.name}-{backend}")
            for s in solvers("ode") if s.adaptive == adaptive for backend in s.backends]


@pytest.mark.parametrize("method, backend", _cases(adaptive=False))
def test_fixed_step_solver_converges_at_its_declared_order(method, backend):
    coarse = _error_at_end(method, backend, T_END, step=0.05)
    fine = _error_at_end(method, backend, T_END, step=0.025)
    observed = math.log2(coarse / fine)
    assert abs(observed - method.order) < 0.3, f"{method.name} ({backend}): observed order {observed:.2f}"


@pytest.mark.parametrize("method, backend", _cases(adaptive=True))
def test_adaptive_solver_error_falls_with_the_tolerance(method, backend):
    # ten time units: enough steps at the loose tolerance for the error control to be in charge; four
    # decades of tolerance buy at least one and a half of error (a global error need not scale like tol)
    loose = _error_at_end(method, backend, 10.0, tol=1e-3)
    tight = _error_at_end(method, backend, 10.0, tol=1e-7)
    assert tight < loose / 30, f"{method.name} ({backend}): {loose:.2e} -> {tight:.2e}"


@pytest.mark.parametrize("scheme", solvers("sde"), ids=lambda s: s.name)
def test_sde_scheme_has_its_declared_strong_order_on_gbm(scheme):
    """Geometric Brownian motion (diagonal noise) against its exact solution on one Brownian path."""
    s = wb.system("geometric_brownian_motion")
    mu, sigma = s.defaults["mu"], 0.5
    n, t_end = 2000, 1.0
    dts = [2.0 ** -k for k in range(4, 9)]  # past the pre-asymptotic steps of the order-1.5 scheme
    levy = "space-time" if scheme.name == "srk" else "none"
    errors = []
    for dt in dts:
        # the same path at every step size (same entropy), queried at any times
        path = torchsde.BrownianInterval(t0=0.0, t1=t_end, size=(n, 1), dtype=torch.float64, entropy=321,
                                         levy_area_approximation=levy)
        ds = wb.simulate(s, n=n, times=[0.0, t_end], x0=[1.0], params={"sigma": sigma}, sde_dt=dt,
                         scheme=scheme.name, brownian=path, split=None)
        exact = np.exp((mu - 0.5 * sigma ** 2) * t_end + sigma * path(0.0, t_end).numpy()[:, 0])
        errors.append(np.abs(ds.state.values[:, -1, 0] - exact).mean())
    slope = np.polyfit(np.log(dts), np.log(errors), 1)[0]
    assert abs(slope - scheme.order) < 0.15, f"{scheme.name}: fitted strong order {slope:.2f}, errors {errors}"


def test_every_solver_declares_a_consistent_profile():
    names = {(s.kind, s.name) for s in solvers()}
    assert len(names) == len(solvers())  # one entry per (kind, name)
    for s in solvers():
        assert s.backends and s.order > 0
        assert s.stochastic == bool(s.noise_types)  # SDE schemes say which noise they handle
        assert not (s.implicit and s.stages is not None)  # stages count explicit one-step methods only
    # a learner that trains through torchdiffeq can take exactly these
    assert {s.name for s in solvers("ode", "torchdiffeq")} == {
        "dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun", "euler", "midpoint", "rk4", "heun2", "heun3",
        "explicit_adams", "implicit_adams"}
    assert not solver("radau").differentiable and solver("dop853").adaptive and not solver("rk4").adaptive


def test_unknown_names_are_refused_with_close_matches():
    with pytest.raises(UnknownNameError, match=r"unknown ODE method 'dopri6' \(did you mean 'dopri8', 'dopri5'") as caught:
        solver("dopri6")
    assert isinstance(caught.value, BadParameterError) and "dop853" in caught.value.fix
    with pytest.raises(UnknownNameError, match="unknown SDE scheme 'rk4'"):
        solver("rk4", kind="sde")
    with pytest.raises(UnknownNameError, match="that torchdiffeq runs"):
        solver("dop853", backend="torchdiffeq")
    with pytest.raises(BadParameterError, match="kind"):
        solvers("pde")


def test_simulate_resolves_method_and_scheme_through_the_registry():
    with pytest.raises(UnknownNameError, match="unknown ODE method 'dopri' \\(did you mean"):
        wb.simulate("lorenz63", n=2, method="dopri")
    with pytest.raises(UnknownNameError, match="unknown SDE scheme 'heun'"):
        wb.simulate("ornstein_uhlenbeck", n=2, scheme="heun")
    # the Adams methods run with the options the registry declares (torchdiffeq's default diverges)
    ds = wb.simulate("harmonic_oscillator", n=1, t_end=2.0, dt=0.05, x0=[1.0, 0.0], split=None,
                     method="explicit_adams")
    assert ds.attrs["integrator"] == "explicit_adams"
    assert np.abs(ds.state.values[0, -1] - [math.cos(2.0), -math.sin(2.0)]).max() < 1e-5


def test_a_scheme_declares_the_noise_it_handles():
    general = dataclasses.replace(wb.system("ornstein_uhlenbeck"), name="ou_general_noise", noise_type="general")
    assert "general" not in solver("srk", kind="sde").noise_types
    with pytest.raises(UnsupportedError, match="does not support the general noise of ou_general_noise; use 'euler'"):
        wb.simulate(general, n=2, scheme="srk")

"""Per-trajectory step control: a trajectory's solution does not depend on what else is in the batch,
and large batches stay accurate against scipy per trajectory."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import workbench as wb
from systems import get
from workbench.numerics import integrate_batch


def _lorenz():
    system = get("lorenz63")
    params = {k: torch.tensor(v, dtype=torch.float64) for k, v in system.defaults.items()}
    return system, params, (lambda t, y: system.drift(t, y, params))


def test_a_trajectory_is_solved_identically_alone_or_in_a_large_batch():
    """Step sizes, error norms and stopping are per row, never shared: the results agree to
    round-off (BLAS may block a 512-row product differently from an 8-row one). For n = 256 in a
    batch of 4,096 they were measured bit-identical.

    (So the growth of the *maximum* error with n seen at a fixed tolerance is the tail of the
    per-trajectory error distribution being sampled more often, not coupling between rows.)
    """
    system, _, field = _lorenz()
    y0 = system.sample_x0(512, torch.Generator().manual_seed(0))
    t = torch.linspace(0.0, 3.0, 301, dtype=torch.float64)
    alone, _ = integrate_batch(field, y0[:8], t, rtol=1e-9, atol=1e-9)
    batch, _ = integrate_batch(field, y0, t, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(alone, batch[:8], rtol=0, atol=1e-11)


def test_lorenz_with_1024_trajectories_matches_scipy_per_trajectory():
    ds = wb.simulate("lorenz63", n=1024, t_end=2.0, dt=0.01, seed=5, split=None)
    system, params, _ = _lorenz()
    rows = np.random.default_rng(0).choice(1024, size=12, replace=False)
    t = ds["time"].values
    for row in rows:
        ref = solve_ivp(lambda tt, y: system.drift(torch.tensor(tt), torch.tensor(y)[None], params)[0].numpy(),
                        (0.0, 2.0), ds["state"].values[row, 0], method="DOP853", t_eval=t, rtol=1e-12, atol=1e-12)
        assert np.abs(ref.y.T - ds["state"].values[row]).max() < 1e-6, row


def test_fused_fixed_step_solver_has_its_order_and_matches_torchdiffeq_where_they_agree():
    import torchdiffeq

    from workbench.numerics import fixed_step_solve

    field = lambda t, y: -y + torch.sin(t)  # noqa: E731  exact: y = C e^-t + (sin t - cos t) / 2
    y0 = torch.tensor([[1.0]], dtype=torch.float64)
    t = torch.linspace(0.0, 2.0, 5, dtype=torch.float64)
    exact = (1.5 * torch.exp(-t) + 0.5 * (torch.sin(t) - torch.cos(t)))[:, None, None]
    for method, order in (("euler", 1), ("midpoint", 2), ("rk4", 4)):
        coarse = (fixed_step_solve(field, y0, t, 4, method) - exact).abs().max()
        fine = (fixed_step_solve(field, y0, t, 8, method) - exact).abs().max()
        assert abs(float(torch.log2(coarse / fine)) - order) < 0.3, method
    reference = torchdiffeq.odeint(field, y0, t, method="euler", options={"step_size": 0.125})
    torch.testing.assert_close(fixed_step_solve(field, y0, t, 4, "euler"), reference)


def test_compiled_step_gives_the_eager_solution_and_says_so(monkeypatch):
    """torch.compile fuses the step into one kernel; the arithmetic is the same up to the order of
    floating-point operations, so the trajectories agree far below the tolerance."""
    from workbench.numerics import adaptive

    monkeypatch.setattr(adaptive, "_COMPILED", {})  # later tests keep the eager default
    eager = wb.simulate("lorenz63", n=48, t_end=3.0, seed=2, split=None, compile=False)
    compiled = wb.simulate("lorenz63", n=48, t_end=3.0, seed=2, split=None, compile=True)
    assert "compiled" in compiled.attrs["integrator"] and "compiled" not in eager.attrs["integrator"]
    np.testing.assert_allclose(compiled["state"].values, eager["state"].values, rtol=0, atol=1e-8)
    # a new batch size and output grid reuse the same compiled step
    again = wb.simulate("lorenz63", n=7, t_end=1.0, dt=0.05, seed=3, split=None)
    assert "compiled" in again.attrs["integrator"]


def test_a_step_that_fails_to_compile_falls_back_to_eager_with_a_warning(monkeypatch):
    import warnings

    from workbench.numerics import adaptive

    from torch._inductor.exc import InvalidCxxCompiler

    def broken_compile(fn, **kwargs):
        def run(*args):
            raise InvalidCxxCompiler()
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr(adaptive, "_COMPILED", {})
    _, _, field = _lorenz()
    y0 = torch.tensor([[1.0, 2.0, 20.0], [-3.0, 1.0, 30.0]], dtype=torch.float64)
    t = torch.linspace(0.0, 1.0, 11, dtype=torch.float64)
    reference, _ = integrate_batch(field, y0, t)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, stats = integrate_batch(field, y0, t, compile=True)
    assert not stats.compiled and any("No working C++ compiler" in str(w.message) for w in caught)
    torch.testing.assert_close(out, reference, rtol=0, atol=0)


def test_an_eager_solve_does_not_load_the_compiler():
    """Importing torch._dynamo (with inductor) took 1-3 s of an eager first call that never
    compiles, enough to lose to diffrax's first call at n = 256; only compiled steps load it."""
    import subprocess
    import sys

    code = ("import sys, workbench as wb; wb.simulate('lorenz63', n=4, t_end=1.0, split=None, compile=False); "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip() == "False"


# --- compiling: decided from the problem's size before solving (issue 27) --------------------------

def test_compile_decision_is_a_function_of_sizes():
    from workbench.numerics.adaptive import COMPILE_MIN_WORK, should_compile

    assert not should_compile(16, 3, 1000, None, compiled_before=False)       # Lorenz-63 default: eager
    assert not should_compile(16_384, 3, 1000, None, compiled_before=False)   # 4.9e7 element-steps
    assert should_compile(65_536, 3, 1000, None, compiled_before=False)       # 2.0e8: compile pays
    assert should_compile(16, 3, 1000, None, compiled_before=True)            # already compiled here
    assert not should_compile(10**6, 3, 10**6, False, compiled_before=True)
    assert should_compile(1, 1, 1, True, compiled_before=False)
    assert should_compile(1, 1, COMPILE_MIN_WORK, None, False)
    assert not should_compile(1, 1, COMPILE_MIN_WORK - 1, None, False)


def test_workbench_compile_0_turns_compiling_off_for_good(monkeypatch):
    from workbench.errors import BadParameterError
    from workbench.numerics.adaptive import compile_setting

    monkeypatch.setenv("WORKBENCH_COMPILE", "0")
    assert compile_setting(True) is False and compile_setting(None) is False
    _, _, field = _lorenz()
    y0 = torch.tensor([[1.0, 2.0, 20.0]], dtype=torch.float64)
    _, stats = integrate_batch(field, y0, torch.linspace(0.0, 0.5, 6, dtype=torch.float64), compile=True)
    assert not stats.compiled
    monkeypatch.setenv("WORKBENCH_COMPILE", "1")
    assert compile_setting(None) is True and compile_setting(False) is False
    monkeypatch.setenv("WORKBENCH_COMPILE", "yes")
    with pytest.raises(BadParameterError, match="WORKBENCH_COMPILE"):
        compile_setting(None)


# --- budgets (issue 22) ----------------------------------------------------------------------------

def test_a_non_finite_field_at_the_start_fails_at_the_first_evaluation():
    from workbench.errors import DivergenceError

    calls = []

    def field(t, y):
        calls.append(1)
        return torch.where(torch.arange(y.shape[0])[:, None] == 1, float("nan"), -y)

    with pytest.raises(DivergenceError, match="trajectory 1: the vector field is non-finite") as caught:
        integrate_batch(field, torch.ones(3, 2, dtype=torch.float64), torch.linspace(0.0, 1.0, 5, dtype=torch.float64))
    assert caught.value.row == 1 and len(calls) == 1


def test_stiffness_is_detected_by_hairers_test_and_can_be_left_to_the_step_budget():
    """y' = -1e4 (y - cos t): the step is held near 6.1e-4 by stability (2,000 steps over [0, 1])."""
    from workbench.errors import SolverStallError

    field = lambda t, y: -1e4 * (y - torch.cos(t)[:, None])  # noqa: E731
    y0, t = torch.zeros(2, 1, dtype=torch.float64), torch.linspace(0.0, 1.0, 3, dtype=torch.float64)
    with pytest.raises(SolverStallError, match="looks stiff.*method='radau'"):
        integrate_batch(field, y0, t, rtol=1e-6, atol=1e-6)
    out, stats = integrate_batch(field, y0, t, rtol=1e-6, atol=1e-6, refuse_stiff=False)
    assert stats.iterations > 1000 and abs(float(out[0, -1, 0]) - np.cos(1.0)) < 1e-3


def test_a_zero_field_in_float32_is_solved_not_called_an_underflow():
    # the first step (1e-6) is below float32's resolution test at t=1; it is accepted and grows, never "underflows"
    out, _ = integrate_batch(lambda t, y: torch.zeros_like(y), torch.ones(2, 1), torch.linspace(0, 1, 5),
                             rtol=1e-4, atol=1e-4)
    assert torch.equal(out, torch.ones(2, 5, 1))


def test_dense_output_is_evaluated_only_on_steps_that_pass_an_output_time():
    """DOP853's interpolant needs three more field evaluations per step; a step that passes no
    output time skips them, and the values at the output times are unchanged (scipy at 1e-13)."""
    system, params, field = _lorenz()
    calls = []

    def counted(t, y):
        calls.append(1)
        return field(t, y)

    y0 = system.sample_x0(4, torch.Generator().manual_seed(1))
    t = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    out, stats = integrate_batch(counted, y0, t, rtol=1e-11, atol=1e-11)
    # 12 evaluations a step, 3 more on the (few) steps that reach t = 1 or t = 2
    assert stats.nfe == len(calls)
    assert 2 + 12 * stats.iterations < len(calls) <= 2 + 12 * stats.iterations + 3 * 2 * 4
    for row in range(4):
        ref = solve_ivp(lambda tt, y: system.drift(torch.tensor(tt), torch.tensor(y)[None], params)[0].numpy(),
                        (0.0, 2.0), y0[row].numpy(), method="DOP853", t_eval=t.numpy(), rtol=1e-13, atol=1e-13)
        assert np.abs(ref.y.T - out[row].numpy()).max() < 1e-7, row


def test_a_field_whose_parameters_require_grad_is_solved_and_differentiated():
    """Eager steps keep their stages in a buffer reused across steps; a field with trainable
    parameters gets fresh tensors instead, so the solve runs and its gradient is the exact one."""
    rate = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    y0 = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    out, _ = integrate_batch(lambda tt, y: -rate * y, y0, t, rtol=1e-10, atol=1e-10)
    exact = y0[:, 0] * torch.exp(-0.7 * t[-1])
    torch.testing.assert_close(out[:, -1, 0].detach(), exact, rtol=1e-8, atol=0)
    out[:, -1, 0].sum().backward()
    torch.testing.assert_close(rate.grad, -(exact * t[-1]).sum(), rtol=1e-6, atol=0)


def test_dopri5_with_its_own_interpolant_matches_scipy_per_trajectory():
    system, params, field = _lorenz()
    y0 = system.sample_x0(4, torch.Generator().manual_seed(3))
    t = torch.linspace(0.0, 1.0, 101, dtype=torch.float64)
    out, _ = integrate_batch(field, y0, t, method="dopri5", rtol=1e-10, atol=1e-10)
    for row in range(4):
        ref = solve_ivp(lambda tt, y: system.drift(torch.tensor(tt), torch.tensor(y)[None], params)[0].numpy(),
                        (0.0, 1.0), y0[row].numpy(), method="DOP853", t_eval=t.numpy(), rtol=1e-13, atol=1e-13)
        assert np.abs(ref.y.T - out[row].numpy()).max() < 1e-7, row

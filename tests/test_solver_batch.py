"""Per-trajectory step control: a trajectory's solution does not depend on what else is in the batch,
and large batches stay accurate against scipy per trajectory."""
from __future__ import annotations

import numpy as np
import torch
from scipy.integrate import solve_ivp

import workbench as wb
from systems import get
from workbench.solvers import integrate_batch


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

    from workbench.solvers import fixed_step_solve

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
    from workbench import solvers

    monkeypatch.setattr(solvers, "_COMPILED", {})  # later tests keep the eager default
    eager = wb.simulate("lorenz63", n=48, t_end=3.0, seed=2, split=None, compile=False)
    compiled = wb.simulate("lorenz63", n=48, t_end=3.0, seed=2, split=None, compile=True)
    assert "compiled" in compiled.attrs["integrator"] and "compiled" not in eager.attrs["integrator"]
    np.testing.assert_allclose(compiled["state"].values, eager["state"].values, rtol=0, atol=1e-8)
    # a new batch size and output grid reuse the same compiled step
    again = wb.simulate("lorenz63", n=7, t_end=1.0, dt=0.05, seed=3, split=None)
    assert "compiled" in again.attrs["integrator"]


def test_a_step_that_fails_to_compile_falls_back_to_eager_with_a_warning(monkeypatch):
    import warnings

    from workbench import solvers

    from torch._inductor.exc import InvalidCxxCompiler

    def broken_compile(fn, **kwargs):
        def run(*args):
            raise InvalidCxxCompiler()
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr(solvers, "_COMPILED", {})
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

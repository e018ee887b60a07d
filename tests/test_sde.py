"""SDE generation against analytic moments and the schemes' known strong orders."""
import dataclasses

import numpy as np
import pytest
import torch
import torchsde

import workbench as wb
from workbench.devices import torch_threads

MOMENT_SYSTEMS = ["ornstein_uhlenbeck", "geometric_brownian_motion", "cir"]


@pytest.mark.parametrize("name", MOMENT_SYSTEMS)
def test_sample_moments_match_analytic_within_4_standard_errors(name):
    s = wb.system(name)
    n = 4000
    x0 = np.asarray(s.x0_high, dtype=float)  # a fixed start away from equilibrium
    times = np.linspace(0.0, 2.0, 41)
    ds = wb.simulate(name, n=n, times=times, x0=x0, seed=7, split=None)
    p = {k: torch.tensor(v, dtype=torch.float64) for k, v in s.defaults.items()}
    x0_t = torch.tensor(x0, dtype=torch.float64)[None]
    for t in (0.25, 1.0, 2.0):
        sample = ds.state.sel(time=t, method="nearest").values  # (n, dim)
        mean = s.mean(torch.tensor(t, dtype=torch.float64), x0_t, p).numpy()[0]
        var = s.variance(torch.tensor(t, dtype=torch.float64), x0_t, p).numpy()[0]
        centred = sample - sample.mean(0)
        se_mean = sample.std(0, ddof=1) / np.sqrt(n)
        se_var = np.sqrt(((centred ** 4).mean(0) - centred.var(0) ** 2) / n)
        assert (np.abs(sample.mean(0) - mean) < 4 * se_mean).all(), (t, sample.mean(0), mean)
        assert (np.abs(sample.var(0, ddof=1) - var) < 4 * se_var).all(), (t, sample.var(0), var)


@pytest.mark.parametrize("scheme, order", [("euler", 0.5), ("milstein", 1.0)])
def test_strong_order_on_gbm(scheme, order):
    s = wb.system("geometric_brownian_motion")
    mu, sigma = s.defaults["mu"], 0.5  # a larger sigma makes the Milstein correction matter
    n, t_end, x0 = 2000, 1.0, 1.0
    dts = [2.0 ** -k for k in range(3, 8)]
    errors = []
    for dt in dts:
        tree = torchsde.BrownianTree(t0=0.0, w0=torch.zeros(n, 1, dtype=torch.float64), t1=t_end,
                                     entropy=123, tol=1e-7)
        ds = wb.simulate(s, n=n, times=[0.0, t_end], x0=[x0], params={"sigma": sigma}, sde_dt=dt,
                         scheme=scheme, brownian=tree, split=None)
        w_end = tree(0.0, t_end).numpy()[:, 0]
        exact = x0 * np.exp((mu - 0.5 * sigma ** 2) * t_end + sigma * w_end)
        errors.append(np.abs(ds.state.values[:, -1, 0] - exact).mean())
    slope = np.polyfit(np.log(dts), np.log(errors), 1)[0]
    assert abs(slope - order) < 0.15, f"{scheme}: fitted strong order {slope:.2f}, errors {errors}"


def test_every_sde_simulates_finite_paths_and_is_seeded():
    for name in wb.systems("sde"):
        dt = wb.system(name).dt
        a = wb.simulate(name, n=8, t_end=50 * dt, dt=dt, seed=1, split=None)
        b = wb.simulate(name, n=8, t_end=50 * dt, dt=dt, seed=1, split=None)
        assert np.isfinite(a.state.values).all(), name
        np.testing.assert_array_equal(a.state.values, b.state.values)
        assert a.attrs["kind"] == "sde"


def test_sde_dt_coarser_than_sampling_is_refused():
    with pytest.raises(wb.WorkbenchError, match="sde_dt"):
        wb.simulate("ornstein_uhlenbeck", n=2, dt=0.01, t_end=1.0, sde_dt=0.1)


def test_simulate_applies_the_thread_policy_and_restores_the_callers_count(monkeypatch):
    seen = []
    ou = wb.system("ornstein_uhlenbeck")

    def recording_drift(t, x, p):
        seen.append(torch.get_num_threads())
        return ou.drift(t, x, p)

    probe = dataclasses.replace(ou, name="thread_probe", drift=recording_drift)
    monkeypatch.setenv("WORKBENCH_THREADS", "1")
    torch.set_num_threads(2)
    try:
        wb.simulate(probe, n=2, t_end=0.1, split=None)
        assert set(seen) == {1}
        assert torch.get_num_threads() == 2
        seen.clear()
        wb.simulate(probe, n=2, t_end=0.1, split=None, threads=3)
        assert set(seen) == {3}
        assert torch.get_num_threads() == 2
        seen.clear()
        with torch_threads(4):          # an enclosing entry point (evaluate) decides for nested ones
            wb.simulate(probe, n=2, t_end=0.1, split=None)
        assert set(seen) == {4}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)

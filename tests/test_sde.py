"""SDE generation against analytic moments and the schemes' known strong orders."""
import dataclasses

import numpy as np
import pytest
import torch
import torchsde

import workbench as wb
from workbench.devices import torch_threads
from workbench.numerics.sde import BrownianIncrements

MOMENT_SYSTEMS = ["ornstein_uhlenbeck", "geometric_brownian_motion", "cir"]


@pytest.mark.parametrize("name, scheme", [(name, None) for name in MOMENT_SYSTEMS]
                         + [("ornstein_uhlenbeck", "euler"), ("ornstein_uhlenbeck", "srk")])
def test_sample_moments_match_analytic_within_4_standard_errors(name, scheme):
    s = wb.system(name)
    n = 4000
    x0 = np.asarray(s.x0_high, dtype=float)  # a fixed start away from equilibrium
    times = np.linspace(0.0, 2.0, 41)
    ds = wb.simulate(name, n=n, times=times, x0=x0, seed=7, split=None, scheme=scheme)
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


def _torchsde_reference(s, x0, times, scheme, bm):
    """torchsde on the catalog functions with the diffusion matrix torchsde's own products use."""
    p = {k: torch.tensor(v, dtype=torch.float64) for k, v in s.defaults.items()}

    class Reference(torch.nn.Module):
        noise_type, sde_type = s.noise_type, "ito"

        def f(self, t, y):
            return s.drift(t, y, p)

        def g(self, t, y):
            g = s.diffusion(t, y, p)
            if s.noise_type == "additive":
                return torch.diag_embed(g)
            return g.unsqueeze(-1) if s.noise_type == "scalar" else g

    with torch.no_grad():
        out = torchsde.sdeint(Reference(), x0, torch.tensor(times), bm=bm, method=scheme, dt=s.dt / 10)
    return out.transpose(0, 1).numpy()


@pytest.mark.parametrize("name, scheme", [("ornstein_uhlenbeck", "euler"), ("ornstein_uhlenbeck", "milstein"),
                                          ("ornstein_uhlenbeck", "srk"), ("langevin_oscillator", "milstein"),
                                          ("stochastic_sir", "srk"), ("stochastic_lorenz", "milstein")])
def test_paths_match_torchsde_reference_on_the_same_brownian_motion(name, scheme):
    # simulate's adapter multiplies the diffusion elementwise where torchsde builds a diagonal (additive)
    # or one-column (scalar) matrix; on one Brownian motion the paths agree to rounding (1e-12).
    s = wb.system(name)
    n, times = 64, np.linspace(0.0, 20 * s.dt, 21)
    x0 = s.sample_x0(n, torch.Generator().manual_seed(3))
    levy = "space-time" if scheme == "srk" else "none"
    paths = [torchsde.BrownianInterval(t0=0.0, t1=float(times[-1]), size=(n, s.noise_dim), dtype=torch.float64,
                                       entropy=11, dt=s.dt / 10, levy_area_approximation=levy) for _ in range(2)]
    ours = wb.simulate(name, n=n, times=times, x0=x0.numpy(), scheme=scheme, brownian=paths[0], split=None)
    reference = _torchsde_reference(s, x0, times, scheme, paths[1])
    assert np.abs(reference[:, -1] - x0.numpy()).max() > 1e-3  # the paths moved
    np.testing.assert_allclose(ours.state.values, reference, rtol=0, atol=1e-12)


def test_brownian_increments_have_the_law_of_brownian_motion():
    # W(tb) - W(ta) ~ N(0, h); U = int_ta^tb (W_s - W_ta) ds has variance h^3/3 and covariance h^2/2 with
    # the increment; disjoint steps and separate channels are independent. Checked to 4 standard errors.
    n = 40_000
    bm = BrownianIncrements(0.0, (n, 2), torch.float64, "cpu", seed=5, space_time=True)
    grid = [0.0, 0.01, 0.03, 0.035]
    steps = [bm(torch.tensor(ta, dtype=torch.float64), torch.tensor(tb, dtype=torch.float64), return_U=True)
             for ta, tb in zip(grid[:-1], grid[1:])]
    z = 4 / np.sqrt(n)  # 4 standard errors of a correlation, or of a standardised mean
    for (ta, tb), (w, u) in zip(zip(grid[:-1], grid[1:]), steps):
        h, w, u = tb - ta, w.numpy(), u.numpy()
        assert np.abs(w.mean(0) / np.sqrt(h)).max() < z
        assert np.abs(w.var(0) / h - 1).max() < z * np.sqrt(2)
        assert np.abs(u.var(0) / (h ** 3 / 3) - 1).max() < z * np.sqrt(2)
        cov = (w * u).mean(0) - w.mean(0) * u.mean(0)
        assert np.abs(cov / (h ** 2 / 2) - 1).max() < 2 * z * np.sqrt(3)  # corr sqrt(3)/2; delta-method SE
        assert abs(np.corrcoef(w[:, 0], w[:, 1])[0, 1]) < z
    assert abs(np.corrcoef(steps[0][0][:, 0], steps[1][0][:, 0])[0, 1]) < z


def test_brownian_increments_refuse_queries_out_of_order():
    bm = BrownianIncrements(0.0, (4, 1), torch.float64, "cpu", seed=0)
    bm(0.0, 0.1)
    with pytest.raises(RuntimeError, match="in order"):
        bm(0.0, 0.1)  # asks again for a step already taken
    with pytest.raises(RuntimeError, match="in order"):
        bm(0.1, 0.2, return_A=True)
    with pytest.raises(RuntimeError, match="space_time"):
        bm(0.1, 0.2, return_U=True)


@pytest.mark.parametrize("drift", [lambda t, x, p: 50.0 * x,                                   # past the bound
                                   lambda t, x, p: torch.where((x != 0) & (t > 0.5), torch.nan, 0.0)])  # NaN
def test_diverging_sde_names_the_trajectory_and_sample(drift):
    # no noise, and only trajectory 2 leaves zero
    bad = dataclasses.replace(wb.system("ornstein_uhlenbeck"), name="diverging", drift=drift,
                              diffusion=lambda t, x, p: torch.zeros_like(x))
    x0 = np.zeros((4, 1))
    x0[2] = 1.0
    with pytest.raises(wb.WorkbenchError, match=r"trajectory 2 .* at sample \d+") as caught:
        wb.simulate(bad, n=4, t_end=5.0, x0=x0, split=None)
    assert type(caught.value).__name__ == "DivergenceError"

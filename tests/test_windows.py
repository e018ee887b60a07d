"""Training windows: how the sampler reads the time grid, and the rate of change it measures."""
import numpy as np
import pytest
import torch

import workbench as wb
from workbench.training.prepare import EVALUATION_WINDOWS, IRREGULAR_STARTS, RATE_LAG, Split, WindowSampler, characteristic_rate, evaluation_starts, evenly_spaced, prepare


def test_float32_time_grid_is_uniform_so_batch_windows_start_anywhere():
    """float32 times every 0.01 up to t = 10 have steps differing by ~1e-6: still a uniform grid, so
    a batch's windows start at different samples (read as irregular, every window of a batch shared
    one start, and wb.fit's held-out MSE stalled at 3.7e-2 where JAX reached 1e-2)."""
    ds = wb.simulate("lorenz63", n=4, t_end=10.0, dt=0.01, seed=0, split=(0.75, 0.25, 0.0))
    data = prepare(ds, torch.device("cpu"), torch.float32)
    sampler = WindowSampler(data.train, data.times, 20, torch.Generator().manual_seed(0))
    assert sampler.uniform
    assert sampler.sample(64).t[:, 0].unique().numel() > 32
    assert not evenly_spaced(torch.tensor([0.0, 0.01, 0.02, 0.04]))
    assert evenly_spaced(torch.arange(0, 1001, dtype=torch.float32) * 0.01)


def test_validation_windows_weigh_every_sample_alike():
    """The fixed validation windows tile each trajectory: every sample is in exactly one window's
    span but the tiles' shared ends, so the first window (an off-attractor transient on Lorenz-63)
    is one window in ``ceil(n_start / (L - 1))``, not a quarter of the validation loss. Many
    trajectories thin the tiles to equal strata; an irregular grid keeps one solve per start."""
    ds = wb.simulate("lorenz63", n=4, t_end=2.0, dt=0.01, seed=0, split=(0.5, 0.5, 0.0))
    data = prepare(ds, torch.device("cpu"), torch.float32)
    sampler = WindowSampler(data.val, data.times, 20, torch.Generator().manual_seed(0))
    (batch,) = sampler.fixed()
    assert batch.z.shape == (2 * 11, 20, 3)  # 182 starts: 0, 19, ..., 171 and 181 flush with the end
    covered = torch.zeros(2, 201, dtype=torch.int64)
    for window in batch.z:
        matches = [(traj, s) for traj in range(2) for s in range(182)
                   if torch.equal(data.val.z[traj, s:s + 20], window)]
        assert len(matches) == 1
        trajectory, start = matches[0]
        covered[trajectory, start:start + 20] += 1
    assert (covered >= 1).all() and (covered <= 2).all()
    assert evaluation_starts(981, 20, 512 // 100) == [98, 294, 490, 686, 882]  # strata centres
    assert len(evaluation_starts(981, 20, 512 // 6)) == 53
    assert 6 * 53 <= EVALUATION_WINDOWS
    irregular = torch.cat([torch.arange(100) * 0.01, 1.0 + torch.arange(1, 101) * 0.02])
    sparse = WindowSampler(Split(z=torch.zeros(3, 200, 2), mask=torch.ones(3, 200, dtype=torch.bool)),
                           irregular, 5, torch.Generator().manual_seed(0))
    assert not sparse.uniform and len(sparse.fixed()) == IRREGULAR_STARTS


@pytest.mark.parametrize("uniform", [True, False])
def test_validation_windows_score_every_trajectory_once_per_start(uniform):
    """Series observed at different samples of a shared axis (trajectory k at k, k + 3, ...) all get
    windows, each starting at an observed sample; a start that gaps move onto the same sample counts
    once (one trajectory observed every 30th sample)."""
    times = torch.arange(150, dtype=torch.float64) * 0.1
    if not uniform:
        times = times + 0.03 * (torch.arange(150) % 2)
    mask = torch.zeros(4, 150, dtype=torch.bool)
    for k in range(3):
        mask[k, k::3] = True
    mask[3, ::30] = True
    labels = torch.stack(torch.meshgrid(torch.arange(4.0), torch.arange(150.0), indexing="ij"), -1)  # (k, i)
    sampler = WindowSampler(Split(z=labels, mask=mask), times, 16, torch.Generator().manual_seed(0))
    assert sampler.uniform == uniform
    windows = [(int(k), int(i)) for batch in sampler.fixed() for k, i in batch.z[:, 0].tolist()]
    per_trajectory = {k: sum(1 for row, _ in windows if row == k) for k in range(4)}
    assert all(per_trajectory[k] >= 8 for k in range(3)), per_trajectory
    assert per_trajectory[3] == 5  # observed starts 0, 30, 60, 90, 120 (135 is the last possible start)
    assert len(set(windows)) == len(windows)
    for batch in sampler.fixed():
        assert batch.mask[:, 0].all()


def test_characteristic_rate_of_a_sine_matches_its_difference_quotient():
    """z = sqrt(2) sin(w t) standardised: the RMS of (z(t + k dt) - z(t)) / (k dt) over whole periods
    is 2 |sin(w k dt / 2)| / (k dt), which tends to the derivative's RMS, w, as k dt -> 0."""
    omega, dt = 3.0, 0.01
    t = np.arange(0, 2 * np.pi / omega * 20, dt)
    x = np.sin(omega * t)[None, :, None] * np.array([1.0, 5.0])  # scale does not matter after standardising
    ds = wb.from_numpy(x, t, variables=["a", "b"])
    data = prepare(ds, torch.device("cpu"), torch.float64)
    tau = RATE_LAG * dt
    assert data.rate == pytest.approx(2 * abs(np.sin(omega * tau / 2)) / tau, rel=2e-3)
    assert data.rate == pytest.approx(omega, rel=0.01)
    # the same series timed in milliseconds changes 1000x more slowly per unit of time
    slow = prepare(ds.assign_coords(time=ds.time * 1000.0), torch.device("cpu"), torch.float64)
    assert slow.rate == pytest.approx(data.rate / 1000, rel=1e-9)
    one = Split(z=torch.zeros(1, 1, 2), mask=torch.ones(1, 1, dtype=torch.bool))
    assert characteristic_rate(one, torch.zeros(1)) == 1.0  # nothing to difference


def test_training_does_not_depend_on_the_unit_of_time():
    """The same data timed in seconds and in milliseconds trains the same neural ODE (its network
    works in units of the data's rate); the validation losses agree to float32 rounding."""
    ds = wb.simulate("van_der_pol", n=8, t_end=4.0, dt=0.1, seed=0)
    options = dict(epochs=3, steps_per_epoch=10, window=8, seed=0, progress=False, compile=False)
    seconds = wb.fit(ds, "node", **options)
    millis = wb.fit(ds.assign_coords(time=ds.time * 1000.0), "node", **options)
    assert float(millis.learner.rate) == pytest.approx(float(seconds.learner.rate) / 1000, rel=1e-5)
    a = [h["val_loss"] for h in seconds.history]
    b = [h["val_loss"] for h in millis.history]
    assert a[-1] < a[0] / 2  # it learned something, the same in both units
    np.testing.assert_allclose(b, a, rtol=1e-3)


def test_a_validation_period_shorter_than_a_chunk_never_reaches_into_the_test_period():
    # values equal to their index show which samples each training chunk holds
    from workbench.data.series import SeriesRecipe, prepare_series

    ds = wb.from_numpy(np.arange(100.0)[None, :, None], times=np.arange(100.0), variables=["y"])
    ds = wb.split_time(ds, val=0.1, test=0.2)          # val 70-79 (10 samples), test from 80
    fit_ds, _ = prepare_series(ds, "nvar", SeriesRecipe())
    values, split = fit_ds["state"].values[..., 0], fit_ds["split"].values
    assert np.nanmax(values) == 79.0
    val = values[split == "val"]
    assert len(val) == 1 and val[0, -1] == 79.0 and val[0, 0] < 70.0   # one chunk, ending where the test starts

"""Training windows: how the sampler reads the time grid."""
import torch

import workbench as wb
from workbench.windows import WindowSampler, evenly_spaced, prepare


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

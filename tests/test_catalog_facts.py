"""The facts the catalog declares hold on the trajectories we generate: conserved quantities, schemes."""
import numpy as np
import pytest
import torch

import workbench as wb

INVARIANTS = [(name, quantity) for name in wb.systems() for quantity in wb.system(name).invariants]


@pytest.mark.parametrize("name, quantity", INVARIANTS)
def test_every_declared_invariant_holds_on_sample_paths(name, quantity):
    """ODE truth conserves it to the solver tolerance; SDE paths to rounding, whatever the noise.

    SDE invariants in the catalog are linear (S + I + R): a scheme whose step combines drift and
    diffusion evaluations (Euler-Maruyama, SRK) keeps them exactly, whereas torchsde's scalar-noise
    Milstein adds J^T g instead of J g and drifted S + I + R by up to 1.5e-2.
    """
    s = wb.system(name)
    t_end = min(s.t_end, 40.0)
    ds = wb.simulate(name, n=8, t_end=t_end, seed=3, split=None,
                     **({"params": {"sigma": s.params["sigma"].high}} if s.kind == "sde" else {}))
    p = {k: torch.tensor(v, dtype=torch.float64) for k, v in s.defaults.items()}
    values = s.invariants[quantity](torch.from_numpy(ds.state.values), p).numpy()
    drift = np.abs(values - values[:, :1]) / np.maximum(1.0, np.abs(values[:, :1]))
    tolerance = 1e-12 if s.kind == "sde" else 1e-7
    assert drift.max() < tolerance, f"{name}: relative drift of {quantity} {drift.max():.2e} ({ds.attrs['integrator']})"

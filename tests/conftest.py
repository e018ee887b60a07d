import os

import numpy as np
import pytest
import torch

os.environ.setdefault("WORKBENCH_THREADS", "1")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def lorenz_small():
    import workbench as wb

    return wb.simulate("lorenz63", n=12, t_end=2.0, dt=0.01, seed=3)


def forge_run_folder(folder, weights: bytes, config: dict):
    """A run folder as an older workbench wrote it: ``weights`` and ``config`` (its checksum recomputed), flat."""
    import json

    from workbench.model import _integrity

    config = {**config, "sha256": _integrity(weights, {k: v for k, v in config.items() if k != "sha256"})}
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def ar1(n=160, phi=0.7, seed=0, level=10.0):
    """An AR(1) series around ``level`` (unit innovations)."""
    rng = np.random.default_rng(seed)
    x = np.zeros(n)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + rng.standard_normal()
    return level + x


def series_ds(y, val=0.15, test=0.2):
    """One measured series ``y`` on an integer time axis, split in time."""
    import workbench as wb

    ds = wb.from_numpy(np.asarray(y)[None, :, None], times=np.arange(len(y), dtype=float), variables=["y"])
    return wb.split_time(ds, val=val, test=test)

import os

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

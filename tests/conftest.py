import os

import pytest
import torch

os.environ.setdefault("WORKBENCH_THREADS", "1")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def lorenz_small():
    import workbench as wb

    return wb.simulate("lorenz63", n=12, t_end=2.0, dt=0.01, seed=3)

"""The eager solver step's operation budget, and the bookkeeping that was fused to meet it: the
buffered eager step against the functional one, and which failure a step reports."""
from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from workbench.catalog import get_system
from workbench.errors import DivergenceError, SolverStallError
from workbench.numerics import integrate_batch
from workbench.numerics.adaptive import (_DIVERGED, _DONE, _OVER_BUDGET, _RUNNING, _STIFF_ROW, _UNDERFLOW,
                                         _raise_row_status, _row_status, _Method, _T)
from workbench.numerics.tableaux import DOP853

# the eager step's own operations on Lorenz-63 (field evaluations excluded): 249 before the cuts
# of issue 27, 163 after them (benchmarks/bench_generate.py --ops); a little room for rounding
STEP_OPERATIONS = 175


class _Counter(TorchDispatchMode):
    """Counts the aten operations Python dispatches, apart from those made inside the field."""

    def __init__(self) -> None:
        super().__init__()
        self.solver = self.field = 0
        self.in_field = False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if self.in_field:
            self.field += 1
        else:
            self.solver += 1
        return func(*args, **(kwargs or {}))


def _lorenz():
    system = get_system("lorenz63")
    params = {k: torch.tensor([v.default], dtype=torch.float64) for k, v in system.params.items()}
    y0 = system.sample_x0(16, torch.Generator().manual_seed(0))
    return system, params, y0


def test_the_eager_step_stays_within_its_operation_budget():
    system, params, y0 = _lorenz()
    counter = _Counter()

    def field(t, y):
        counter.in_field = True
        try:
            return system.drift(t, y, params)
        finally:
            counter.in_field = False

    times = torch.linspace(0.0, 2.0, 201, dtype=torch.float64)
    with counter:
        _, stats = integrate_batch(field, y0, times, compile=False)
    per_step = counter.solver / stats.iterations
    assert 100 < stats.iterations < 1000
    assert per_step <= STEP_OPERATIONS, f"{per_step:.1f} operations per step"
    # 12 stages a step and DOP853's 3 extra on the steps that pass an output: the field's share
    assert counter.field / stats.nfe == pytest.approx(10, abs=1)


@pytest.mark.parametrize("method", ["dop853", "dopri5"])
def test_the_buffered_eager_step_equals_the_functional_one(method):
    """A state that requires grad takes the step that builds fresh tensors (autograd's graph); the
    default one writes stages and stage states into buffers kept across steps. Same arithmetic, so
    the same steps and the same values to rounding."""
    system, params, y0 = _lorenz()
    times = torch.linspace(0.0, 2.0, 41, dtype=torch.float64)
    field = lambda t, y: system.drift(t, y, params)  # noqa: E731
    buffered, stats = integrate_batch(field, y0, times, method=method, compile=False)
    fresh, fresh_stats = integrate_batch(field, y0.clone().requires_grad_(), times, method=method, compile=False)
    assert (stats.iterations, stats.nfe, stats.rejected) == (fresh_stats.iterations, fresh_stats.nfe,
                                                             fresh_stats.rejected)
    torch.testing.assert_close(buffered, fresh.detach(), rtol=1e-11, atol=1e-11)


def test_a_rows_status_is_its_highest_condition():
    m = _Method(DOP853, 3, torch.float64, torch.device("cpu"))
    yes, no = True, False
    # rows: done; running; running + rejected to a tiny step; over budget; stiff + over budget;
    # diverged + stiff (the divergence wins)
    running = torch.tensor([no, yes, yes, yes, yes, yes])
    rejected = torch.tensor([no, no, yes, no, no, no])
    steps = torch.tensor([5.0, 5.0, 5.0, 11.0, 11.0, 11.0], dtype=torch.float64)
    stiff = torch.tensor([0.0, 0.0, 0.0, 0.0, 20.0, 20.0], dtype=torch.float64)
    diverged = torch.tensor([no, no, no, no, no, yes])
    h_next = torch.tensor([1.0, 1.0, 1e-300, 1.0, 1.0, 1.0], dtype=torch.float64)
    status = _row_status(m, torch.zeros(6, dtype=torch.float64), h_next, running, running, rejected, steps, stiff,
                         diverged, torch.tensor(10.0, dtype=torch.float64), torch.tensor(10.0, dtype=torch.float64))
    assert status.tolist() == [_DONE, _RUNNING, _UNDERFLOW, _OVER_BUDGET, _STIFF_ROW, _DIVERGED]


@pytest.mark.parametrize("codes, error, row", [
    ([_DIVERGED, _UNDERFLOW], SolverStallError, 1),   # rows failing differently: a stall is named first
    ([_RUNNING, _DIVERGED], DivergenceError, 1),
    ([_UNDERFLOW, _STIFF_ROW], SolverStallError, 1),
])
def test_the_failure_reported_across_rows_keeps_its_precedence(codes, error, row):
    state = torch.zeros(2, 13, dtype=torch.float64)
    state[:, _T] = 1.0
    with pytest.raises(error) as caught:
        _raise_row_status(torch.tensor(codes), state, 100.0, 1000, "dop853")
    assert caught.value.row == row

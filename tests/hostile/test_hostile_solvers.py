"""Adaptive ODE solves that used to run for minutes (issue 22): each must end within 30 s in a named error.

Measured before the budgets: van der Pol from x0 = [1e5, 1e5] with mu = 5 ran > 300 s, a model with
NaN weights 164 s, Lotka-Volterra from x0 = [-1e3, 1e3] 252 s, Robertson with dop853 76 s. Each case
runs in a forked child under memory and CPU limits (``hostile_harness.run_isolated``) and asserts the
WorkbenchError class, a message pattern and the time taken.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

import workbench as wb
from hostile_harness import run_isolated

ROOT = Path(__file__).resolve().parents[2]
DEMO_MODEL = ROOT / "data" / "demo-lorenz63-node"
STIFF = r"looks stiff.*method='radau'"


@dataclass
class Case:
    name: str
    act: Callable[[], Any]
    error: str
    pattern: str


def _simulate(system: str, **options: Any) -> Callable[[], Any]:
    return lambda: wb.simulate(system, split=None, progress=False, **options)


def _nan_weight_model() -> Any:
    model = wb.load_model(DEMO_MODEL)
    with torch.no_grad():
        for weight in model.learner.parameters():
            weight.fill_(float("nan"))
    # the demo model trained with rk4 and predicts with it; the case is about the adaptive solve
    return model.predict(np.array([[1.0, 1.0, 20.0]]), np.linspace(0.0, 10.0, 501), solver="dopri5")


def _blow_up_system() -> wb.System:
    return wb.System(name="blow_up", kind="ode", state_names=("x",), drift=lambda t, x, p: x ** 2, params={},
                     x0_low=(1.0,), x0_high=(1.0,), t_end=3.0, dt=0.1, reference="x' = x^2",
                     equations=r"\dot x = x^2")


def _nan_midway_system() -> wb.System:
    # finite at the start, NaN once x passes 2 (sqrt of a negative number)
    return wb.System(name="nan_midway", kind="ode", state_names=("x",),
                     drift=lambda t, x, p: 1.0 + torch.sqrt(2.0 - x), params={}, x0_low=(0.0,), x0_high=(0.0,),
                     t_end=5.0, dt=0.1, reference="x' = 1 + sqrt(2 - x)", equations=r"\dot x = 1 + \sqrt{2 - x}")


CASES = [
    Case("van der Pol from x0=[1e5, 1e5], mu=5", _simulate("van_der_pol", x0=[1e5, 1e5], params={"mu": 5.0}),
         "SolverStallError", r"van_der_pol: trajectory 0 .*" + STIFF),
    Case("model with NaN weights", _nan_weight_model, "DivergenceError", r"trajectory 0: .*non-finite"),
    Case("Lotka-Volterra from x0=[-1e3, 1e3]", _simulate("lotka_volterra", x0=[-1e3, 1e3]),
         "SolverStallError", r"lotka_volterra: trajectory \d+ .*" + STIFF),
    Case("Robertson with dop853", _simulate("robertson", method="dop853"), "SolverStallError",
         r"robertson: trajectory \d+ .*" + STIFF),
    Case("Robertson with dopri5", _simulate("robertson", method="dopri5"), "SolverStallError", STIFF),
    Case("Lorenz-63 past a 0.5 s time budget", _simulate("lorenz63", t_end=2000.0, max_seconds=0.5),
         "SolverStallError", r"time budget of 0.5 s.*raise max_seconds"),
    Case("finite-time blow-up", lambda: wb.simulate(_blow_up_system(), n=2, split=None, progress=False),
         "DivergenceError", r"blow_up: trajectory 0 .*divergence bound"),
    Case("field turning NaN midway", lambda: wb.simulate(_nan_midway_system(), n=2, split=None, progress=False),
         "SolverStallError", r"nan_midway: trajectory 0 .*underflowed"),
    Case("max_seconds=0", _simulate("lorenz63", max_seconds=0), "BadParameterError", r"max_seconds"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_adaptive_solve_ends_in_a_named_error(case: Case) -> None:
    if case.name.startswith("model") and not DEMO_MODEL.is_dir():
        pytest.skip("the shipped demo model is missing (run `workbench demo`)")
    outcome = run_isolated(case.act)
    assert outcome.status == "raised", f"{case.name}: {outcome.status} {outcome.value!r}"
    assert outcome.workbench_error, f"{case.name}: {outcome.error}: {outcome.message}"
    assert case.error in outcome.family, f"{case.name}: {outcome.error}: {outcome.message}"
    assert re.search(case.pattern, outcome.message, re.I), outcome.message
    assert outcome.seconds < 30, f"{case.name} took {outcome.seconds:.1f} s to fail"

"""Hostile inputs to the forecasting path (learner='auto', the statistical backbones): named errors with the fix.

Each case runs in a forked child under memory and CPU limits (see ``hostile_harness``) and must
raise the stated ``WorkbenchError`` subclass with a message naming the limit, within 30 s.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import workbench as wb
from hostile_harness import run_isolated


def _split(n: int):
    x = np.sin(np.arange(n) / 3.0) + 2.0
    return wb.split_time(wb.from_numpy(x[None, :, None], np.arange(float(n)), ["x"]), val=0.1, test=0.2)


def too_short():
    wb.fit(_split(20), learner="auto", time_budget=10)


def period_longer_than_series():
    wb.fit(_split(60), learner="arima", period=500)


def every_candidate_diverges():
    from workbench.training.autoselect import fit_auto

    fit_auto(_split(80), candidates=[("nvar", {"delays": 1000}), ("esn", {"washout": -1})])


def auto_without_test_period():
    x = np.sin(np.arange(80) / 3.0)
    wb.fit(wb.from_numpy(x[None, :, None], np.arange(80.0), ["x"]), learner="auto")


@pytest.mark.parametrize("act, error, pattern", [
    (too_short, "DatasetError", r"too short for any validation origin.*give at least \d+ samples"),
    (period_longer_than_series, "BadParameterError", r"period=500 .*give period <= \d+"),
    (every_candidate_diverges, "DivergenceError", r"every learner='auto' candidate failed.*nvar \{'delays': 1000\}: rejected"),
    (auto_without_test_period, "DatasetError", r"no(ne)?.*split it first: wb.split_time"),
])
def test_hostile_forecasting(act, error, pattern):
    outcome = run_isolated(act)
    assert outcome.status == "raised", f"{act.__name__}: {outcome.status}"
    assert outcome.workbench_error, f"{outcome.error}: {outcome.message}"
    assert error in outcome.family, f"{outcome.error}: {outcome.message}"
    assert re.search(pattern, outcome.message), outcome.message
    assert outcome.seconds < 30

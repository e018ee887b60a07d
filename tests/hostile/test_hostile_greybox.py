"""Hostile inputs to the grey-box learners ('ude', 'mechanistic'): each a named WorkbenchError, fast,
before training starts."""
from __future__ import annotations

import re
from typing import Any, Callable

import pytest
import torch

import workbench as wb
from hostile_harness import run_isolated


def _lotka(**options: Any):
    return wb.simulate("lotka_volterra", **{"n": 1, "t_end": 2.0, "dt": 0.25, "seed": 0, "split": None, **options})


def _fit(learner: str, data: Callable[[], Any] = _lotka, **options: Any) -> Callable[[], Any]:
    def act() -> Any:
        return wb.fit(data(), learner, system="lotka_volterra", epochs=1, **options)
    return act


def _returns_list(x, t, p):
    return [x[:, 0], x[:, 1]]


def _raises(x, t, p):
    return x @ torch.ones(5, 5)


def _one_column(x, t, p):
    return x[:, :1]


def _nan_everywhere(x, t, p):
    return x * float("nan")


CASES = [
    ("ude unknown parameter", _fit("ude", known={"prey": "alpha*prey"}, estimate=["omega"]), "UnknownNameError",
     r"no parameter.*omega"),
    ("ude expression 10**5 chars", _fit("ude", known={"prey": "prey+" * 20_000 + "prey"}), "BadParameterError",
     r"at most 2000 characters"),
    ("ude expression overflows", _fit("ude", known={"prey": "exp(prey*1e6)"}), "BadParameterError", r"not finite"),
    ("ude expression attribute", _fit("ude", known={"prey": "prey.__class__"}), "BadParameterError",
     r"uses Attribute"),
    ("ude known returns a list", _fit("ude", known=_returns_list), "BadParameterError", r"returned list"),
    ("ude known raises", _fit("ude", known=_raises), "BadParameterError", r"fails on states"),
    ("ude bounds exclude start", _fit("ude", known={"prey": "alpha*prey"}, bounds={"alpha": (5.0, 6.0)}),
     "BadParameterError", r"outside its bounds"),
    ("ude start not a dict", _fit("ude", start=[1.0]), "BadParameterError", r"start must be a dict"),
    ("ude data too short", _fit("ude", data=lambda: _lotka(t_end=0.5)), "DatasetError", r"3 samples are too short"),
    ("ude known wrong shape", _fit("ude", known=_one_column), "BadParameterError", r"returned \(4, 1\)"),
    ("ude known NaN", _fit("ude", known=_nan_everywhere), "BadParameterError", r"not finite"),
    ("ude estimate unused", _fit("ude", known={"prey": "alpha*prey"}, estimate=["beta"]), "BadParameterError",
     r"do not appear in the known part"),
    ("ude iterations negative", _fit("ude", iterations=-1), "BadParameterError", r"iterations"),
    ("ude predict_with unknown", _fit("ude", predict_with="oracle"), "BadParameterError", r"predict_with"),
    ("ude library degree 9", _fit("ude", sindy_degree=9), "BadParameterError", r"sindy_degree"),
    ("mechanistic unknown parameter", _fit("mechanistic", estimate=["omega"]), "UnknownNameError", r"omega"),
    ("mechanistic data too short", _fit("mechanistic", data=lambda: _lotka(t_end=0.25)), "DatasetError",
     r"cannot determine"),
]


@pytest.mark.parametrize("name, act, error, pattern", CASES, ids=[c[0] for c in CASES])
def test_greybox_input_is_refused_before_training(name: str, act: Callable[[], Any], error: str, pattern: str) -> None:
    outcome = run_isolated(act)
    assert outcome.status == "raised", (outcome.status, outcome.message)
    assert outcome.workbench_error and outcome.error == error, (outcome.error, outcome.message)
    assert re.search(pattern, outcome.message), outcome.message
    assert outcome.seconds < 30

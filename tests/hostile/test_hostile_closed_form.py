"""Closed-form learners (sindy, nvar, esn) given options that size their work: each must be refused
before anything is allocated, with a ResourceLimitError naming the estimate and the largest allowed
value, on fit and on load (a crafted run folder whose config asks for the work), or refused as a
bad parameter. Every case runs in a forked child under memory and CPU limits (``hostile_harness``)."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

import workbench as wb
from hostile_harness import assert_refused, run_isolated
from workbench.model import _integrity


def _lorenz():
    return wb.simulate("lorenz63", n=4, t_end=1.0, dt=0.01, seed=0)


def _fit(learner: str, **options: Any) -> Callable[[], Any]:
    def act() -> Any:
        return wb.fit(_lorenz(), learner, **options)
    return act


def _fit_wide_sindy(**options: Any) -> Callable[[], Any]:
    def act() -> Any:  # 40 variables: a degree-8 library would have 377 million terms
        rng = np.random.default_rng(0)
        ds = wb.from_numpy(rng.normal(size=(2, 50, 40)), np.arange(50.0), [f"v{k}" for k in range(40)])
        return wb.fit(ds, "sindy", **options)
    return act


CASES = [  # (name, act, error class, message pattern)
    ("sindy degree=8 on 40 variables", _fit_wide_sindy(degree=8), "ResourceLimitError",
     r"library terms.*ceiling of 1000.*degree <= 2"),
    ("sindy ensemble=10**6", _fit("sindy", ensemble=10**6), "ResourceLimitError", r"ensemble=1000000.*ensemble <= 1000"),
    ("sindy fourier=10**6", _fit("sindy", fourier=10**6), "ResourceLimitError", r"6,000,0\d\d library terms.*fourier <= "),
    ("sindy weak_windows=10**9", _fit("sindy", weak_windows=10**9), "ResourceLimitError", r"weak_windows <= 10000"),
    ("nvar delays=10**4", _fit("nvar", delays=10**4), "ResourceLimitError", r"features.*delays <= 20 at degree=2"),
    ("nvar degree=20 delays=4", _fit("nvar", degree=20, delays=4), "ResourceLimitError",
     r"degree <= 4 at delays=4"),
    ("nvar ridge=inf", _fit("nvar", ridge=math.inf), "BadParameterError", r"ridge.*finite number in \(0.0"),
    ("nvar ridge=0", _fit("nvar", ridge=0.0), "BadParameterError", r"ridge.*got 0.0"),
    ("esn ridge=nan", _fit("esn", ridge=math.nan, size=20), "BadParameterError", r"ridge.*got nan"),
    ("esn size=10**6", _fit("esn", size=10**6), "ResourceLimitError", r"size=1000000.*size <= 1000"),
    ("esn size=20000", _fit("esn", size=20000), "ResourceLimitError", r"size=20000.*GiB.*size <= 1000"),
]


@pytest.mark.parametrize("name, act, error, pattern", CASES, ids=[c[0] for c in CASES])
def test_work_sizing_option_is_refused_up_front(name: str, act: Callable[[], Any], error: str, pattern: str) -> None:
    assert_refused(run_isolated(act), error, pattern)


def _crafted_run(folder: Path, learner: str, fit_options: dict[str, Any], crafted: dict[str, Any]) -> None:
    """A run folder whose config asks for ``crafted`` options, with a checksum that matches (anyone
    can recompute the plain SHA-256, so the limits must hold where the learner is built)."""
    wb.fit(_lorenz(), learner, **fit_options).save(folder)
    current = folder / (folder / "CURRENT").read_text().strip() if (folder / "CURRENT").exists() else folder
    config = json.loads((current / "config.json").read_text())
    config["options"].update(crafted)
    config["sha256"] = _integrity((current / "model.safetensors").read_bytes(), config)
    (current / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("learner, fit_options, crafted, pattern", [
    ("nvar", {}, {"delays": 10**6}, r"delays=1000000.*delays <= 20"),
    ("esn", {"size": 20, "washout": 20}, {"size": 10**6}, r"size=1000000.*size <= 1000"),
    ("sindy", {"degree": 2}, {"ensemble": 10**6}, r"ensemble <= 1000"),
], ids=["nvar delays=10**6", "esn size=10**6", "sindy ensemble=10**6"])
def test_crafted_run_folder_is_refused_on_load(tmp_path: Path, learner: str, fit_options: dict[str, Any],
                                               crafted: dict[str, Any], pattern: str) -> None:
    _crafted_run(tmp_path / "run", learner, fit_options, crafted)
    outcome = run_isolated(wb.load_model, tmp_path / "run")
    assert outcome.status == "raised" and outcome.error == "ResourceLimitError", (outcome.status, outcome.message)
    assert re.search(pattern, outcome.message), outcome.message
    assert outcome.seconds < 30

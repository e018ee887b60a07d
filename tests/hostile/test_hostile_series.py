"""Hostile options on the series path (embedding, rolling evaluation, transforms, saved recipes).

Each case runs in a forked child under memory and CPU limits (see ``hostile_harness``) and must
raise the stated ``WorkbenchError`` subclass, before allocating, with a message naming the
largest allowed value (or the field at fault), within 30 s.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

import workbench as wb
from hostile_harness import run_isolated
from workbench.data.drivers import add_seasonal_inputs
from workbench.data.embedding import delay_vectors, embed_dataset, suggest_embedding
from workbench.evaluation.forecast import forecast
from workbench.evaluation.rolling import rolling_evaluation
from workbench.data.splits import split_time

LINEAR_NVAR = {"delays": 1, "degree": 1, "ridge": 1e-12}


def _series(n: int) -> Any:
    x = np.sin(np.arange(n) / 5.0) + 2.0
    return wb.from_numpy(x[:, None], np.arange(float(n)), ["x"])


SERIES = split_time(_series(300), val=0.1, test=0.2)          # 60 test samples
SHORT_TEST = split_time(_series(230), val=0, test=0.2)        # a 46-sample test piece
MODEL = wb.fit(SERIES, "nvar", embed=2, lag=1, **LINEAR_NVAR)


def _tampered_model(tmp: Path, **recipe: Any) -> Any:
    """MODEL saved, its series recipe edited and its checksum recomputed (a crafted upload), loaded back."""
    from workbench.model import _integrity

    folder = MODEL.save(tmp / "model")
    config_path = next(folder.rglob("config.json"))
    config = json.loads(config_path.read_text())
    config["series"].update(recipe)
    config["sha256"] = _integrity(next(folder.rglob("model.safetensors")).read_bytes(), config)
    config_path.write_text(json.dumps(config))
    return wb.load_model(folder)


CASES: list[tuple[str, Callable[[Path], Any], str, str]] = [
    ("fit embed=10**6", lambda tmp: wb.fit(SERIES, "nvar", embed=10**6, **LINEAR_NVAR),
     "BadParameterError", r"embed must be an integer in \[1, 100\], got 1000000"),
    ("fit lag=10**9", lambda tmp: wb.fit(SERIES, "nvar", embed=2, lag=10**9, **LINEAR_NVAR),
     "BadParameterError", r"lag must be an integer in \[1, 100000\]"),
    ("fit embed x lag longer than the series", lambda tmp: wb.fit(SERIES, "nvar", embed=50, lag=10, **LINEAR_NVAR),
     "BadParameterError", r"needs 490 samples of history.*300 samples.*use embed <= 30 with lag=10"),
    ("fit embed=2.0 (a float)", lambda tmp: wb.fit(SERIES, "nvar", embed=2.0, **LINEAR_NVAR),
     "BadParameterError", r"embed must be an integer.*\(float\)"),
    ("embed_dataset embed=10**6", lambda tmp: embed_dataset(SERIES, 10**6, 1),
     "BadParameterError", r"embed must be an integer in \[1, 100\]"),
    ("delay_vectors over the memory budget", lambda tmp: delay_vectors(np.zeros((10**8, 1)), 100, 1),
     "ResourceLimitError", r"delay vectors \(100000000 samples x 1 variables x embed=100\) needs 74\.5 GiB"),
    ("rolling horizons=[10**6]", lambda tmp: wb.evaluate(MODEL, SERIES, mode="rolling", horizons=[1, 10**6]),
     "BadParameterError", r"horizon 1000000 reaches past the test period, which has 60 samples.*horizons <= 60"),
    ("rolling horizons=[500] on a 46-sample test piece",
     lambda tmp: wb.evaluate(wb.fit(SHORT_TEST, "nvar", **LINEAR_NVAR), SHORT_TEST, mode="rolling", horizons=[500]),
     "BadParameterError", r"horizon 500 reaches past the test period, which has 46 samples.*use horizons <= 46"),
    ("rolling horizons=[0]", lambda tmp: rolling_evaluation(SERIES, {}, [0]),
     "BadParameterError", r"each horizon must be an integer in \[1, inf\], got 0"),
    ("rolling horizons='12'", lambda tmp: rolling_evaluation(SERIES, {}, "12"),
     "BadParameterError", r"horizons must be a list of forecast steps"),
    ("rolling n_samples=10**9", lambda tmp: rolling_evaluation(SERIES, {}, [1], n_samples=10**9),
     "BadParameterError", r"n_samples must be an integer in \[1, 100000\]"),
    ("rolling ensembles over the memory budget",
     lambda tmp: rolling_evaluation(SERIES, {}, [60], n_samples=100_000, max_origins=10**6),
     "ResourceLimitError", r"rolling forecasts \(1 series x 61 origins x 100000 samples x 60 steps.*needs 8\.2 GiB"),
    ("suggest_embedding max_lag=10**9", lambda tmp: suggest_embedding(SERIES, max_lag=10**9),
     "BadParameterError", r"max_lag must be an integer in \[1, 1\d\d\], got 1000000000"),
    ("suggest_embedding max_embed=10**9", lambda tmp: suggest_embedding(SERIES, max_embed=10**9),
     "BadParameterError", r"max_embed must be an integer in \[1, 100\]"),
    ("transform=['log']", lambda tmp: wb.fit(SERIES, "nvar", transform=["log"], **LINEAR_NVAR),
     "BadParameterError", r"transform must be a transform name or a mapping"),
    ("transform={'x': 5}", lambda tmp: wb.fit(SERIES, "nvar", transform={"x": 5}, **LINEAR_NVAR),
     "BadParameterError", r"unknown transform 5 for 'x'; use one of \['log', 'log1p', 'logit'\]"),
    ("transform='cube'", lambda tmp: wb.fit(SERIES, "nvar", transform="cube", **LINEAR_NVAR),
     "BadParameterError", r"unknown transform 'cube' for 'x'"),
    ("loaded recipe embed=1e9", lambda tmp: _tampered_model(tmp, embed=1e9).forecast(SERIES, horizon=3),
     "DatasetError", r"series recipe is invalid: embed must be an integer in \[1, 100\]"),
    ("loaded recipe embed=3 against a 2-delay learner",
     lambda tmp: _tampered_model(tmp, embed=3).forecast(SERIES, horizon=3),
     "DatasetError", r"implies the learner's variables \['x', 'x_lag1', 'x_lag2'\]"),
    ("loaded recipe drivers harmonics=10**9",
     lambda tmp: _tampered_model(tmp, drivers={"period": 12.0, "harmonics": 10**9, "origin": 0.0}).forecast(
         SERIES, horizon=3),
     "DatasetError", r"drivers harmonics must be an integer in \[1, 50\]"),
    ("loaded recipe variables=7", lambda tmp: _tampered_model(tmp, variables=7).forecast(SERIES, horizon=3),
     "DatasetError", r"series recipe has variables 7, not a list of names"),
    ("forecast horizon=10**9", lambda tmp: MODEL.forecast(SERIES, horizon=10**9),
     "BadParameterError", r"horizon must be an integer in \[1, 100000\]"),
    ("forecast on_divergence='sometimes'", lambda tmp: forecast(MODEL, SERIES, 3, on_divergence="sometimes"),
     "BadParameterError", r"on_divergence must be 'raise' or 'mark'"),
    ("add_seasonal_inputs harmonics=10**9", lambda tmp: add_seasonal_inputs(SERIES, period=12.0, harmonics=10**9),
     "BadParameterError", r"harmonics must be an integer in \[1, 50\]"),
    ("add_seasonal_inputs period=nan", lambda tmp: add_seasonal_inputs(SERIES, period=float("nan")),
     "BadParameterError", r"period must be a finite number in \(0.0, inf\]"),
]


@pytest.mark.parametrize("name, act, error, pattern", CASES, ids=[c[0] for c in CASES])
def test_hostile_series_option_is_refused_fast(name, act, error, pattern, tmp_path):
    outcome = run_isolated(act, tmp_path)
    assert outcome.status == "raised", f"{name}: {outcome.status} {outcome.value!r}"
    assert outcome.workbench_error, f"{name}: {outcome.error}: {outcome.message}"
    assert error in outcome.family, f"{name}: {outcome.error}: {outcome.message}"
    assert re.search(pattern, outcome.message), outcome.message
    assert outcome.seconds < 30, f"{name} took {outcome.seconds:.1f} s to fail"

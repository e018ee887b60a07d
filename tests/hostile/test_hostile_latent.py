"""Hostile inputs to partial observation and latent models (issue 25): each is a named WorkbenchError
in a forked child under memory and CPU limits, fast."""
from __future__ import annotations

import re

import numpy as np
import pytest

import workbench as wb
from hostile_harness import run_isolated


def _observe(observe):
    return lambda: wb.simulate("lorenz63", n=2, t_end=0.5, dt=0.05, observe=observe)


def _latent(**options):
    def act():
        from workbench.learners.latent import LatentODE
        return LatentODE(1, **options)
    return act


def _one_observation_histories():
    """A forecast from histories whose every sample but the first is missing (the model is fitted in
    the parent: the child only forecasts)."""
    from workbench.learners import latent
    ds = wb.simulate("van_der_pol", n=4, t_end=4.0, dt=0.2, observe=["x"], seed=0)
    model = wb.fit(ds, learner="latent_ode", epochs=1, steps_per_epoch=1, window=10, latent=2, hidden=4, context=4)
    mask = np.ones((4, ds.sizes["time"]), bool)
    mask[:, 1:5] = False  # each history keeps only its first sample
    gappy = ds.assign(mask=(("trajectory", "time"), mask), state=ds["state"].where(mask[..., None]))
    return lambda: latent.history_forecast(model, gappy)


CASES = [
    ("unknown variable", _observe(["q"]), "UnknownNameError", r"lorenz63 has no variable 'q'.*observe some of"),
    ("nothing observed", _observe([]), "BadParameterError", r"observes nothing; name at least one"),
    ("matrix of the wrong width", _observe(np.ones((2, 5))), "BadParameterError", r"shape \(k, 3\)"),
    ("latent dimension 0", _latent(latent=0), "BadParameterError", r"latent .* must be an integer in \[1, 1024\]"),
    ("latent beyond the budget", _latent(latent=10**12), "BadParameterError", r"latent .* \[1, 1024\]"),
    ("hidden beyond the budget", _latent(hidden=10**6), "BadParameterError", r"hidden .* \[1, 4096\]"),
    ("histories of one observation", "one observation", "DatasetError",
     r"fewer than two observed samples.*longer context"),
]


@pytest.mark.parametrize("name, act, error, pattern", CASES, ids=[c[0] for c in CASES])
def test_latent_hostile_inputs_are_named(name, act, error, pattern):
    outcome = run_isolated(_one_observation_histories() if act == "one observation" else act)
    assert outcome.status == "raised", outcome
    assert "WorkbenchError" in outcome.family and outcome.error == error, outcome
    assert re.search(pattern, outcome.message), outcome.message
    assert outcome.seconds < 30

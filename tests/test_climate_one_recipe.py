"""One long-run recipe: the Compare page's long-run panel and ``wb.evaluate`` report the same climate
scores for the same model and seed, and a diverged model reads the same way in both."""
import sys
from pathlib import Path

import numpy as np
import pytest

import workbench as wb
from workbench.evaluation import LongRunRecipe, climate_scores

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "app"))
import state  # noqa: E402  (the app folder is not a package)

SCORES = ("lyapunov_learned", "lyapunov_true", "attractor_w1", "attractor_kl", "attractor_hellinger",
          "spectrum_error", "correlation_dimension_learned", "correlation_dimension_true")


@pytest.fixture(scope="module")
def lorenz():
    return wb.simulate("lorenz63", n=12, t_end=6.0, dt=0.02, seed=0, split=(0.5, 0.0, 0.5))


def panel_and_evaluate(model, ds):
    """The numbers the Compare page shows (its cached long run, condensed as the page does) and evaluate's."""
    run = state.long_run_cached(model, ds)
    return run, climate_scores(run), wb.evaluate(model, ds, seed=0)


def test_compare_panel_and_evaluate_report_the_same_climate(lorenz):
    model = wb.fit(lorenz, "sindy", progress=False)
    run, panel, scores = panel_and_evaluate(model, lorenz)
    assert not run.attrs["diverged"]
    for name in SCORES:
        assert float(panel[name]) == float(scores[name]), name
    np.testing.assert_array_equal(panel["attractor_w1_variable"].values, scores["attractor_w1_variable"].values)
    # the panel's per-variable table is what evaluate condenses
    assert float(scores["spectrum_error"]) == pytest.approx(float(run["spectrum_error"].mean()), rel=1e-12)
    np.testing.assert_array_equal(run["w1"].values, scores["attractor_w1_variable"].values)
    # and it is a real climate: the recovered Lorenz-63 keeps Sprott's exponent (0.9056)
    assert float(scores["lyapunov_learned"]) == pytest.approx(0.9056, rel=0.15)
    defaults = LongRunRecipe()
    assert run.attrs["n_runs"] == min(defaults.n_runs, 6) and run.attrs["lyapunov_starts"] == min(
        defaults.lyapunov_starts, 6)


def test_a_diverged_model_reads_the_same_in_the_panel_and_in_evaluate(lorenz):
    model = wb.fit(lorenz, "nvar", progress=False)
    model.learner.readout.mul_(50.0)  # an unstable map: its free runs overflow
    run, panel, scores = panel_and_evaluate(model, lorenz)
    assert run.attrs["diverged"]
    assert scores["lyapunov_learned"].attrs["diverged"] == run.attrs["diverged"]
    for result in (panel, scores):
        assert np.isnan(float(result["lyapunov_learned"])) and np.isnan(float(result["correlation_dimension_learned"]))
        for name in ("attractor_w1", "attractor_kl", "attractor_hellinger", "spectrum_error"):
            assert np.isposinf(float(result[name])), name
    assert np.isnan(run["density_learned"]).all() and np.isnan(run["psd_learned"]).all()  # nothing to draw
    assert np.isfinite(run["density_true"]).all()

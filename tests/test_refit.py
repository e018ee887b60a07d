"""refit='each': the model's fit again on the data up to every rolling origin (closed-form learners only)."""
import numpy as np
import pytest

import workbench as wb
from conftest import ar1, series_ds
from workbench.data.splits import time_split_info
from workbench.errors import BadParameterError, UnsupportedError
from workbench.evaluation import rolling
from workbench.evaluation.forecast import rollout_from
from workbench.evaluation.refit import check_refit, refit_each


def by_hand(y, origin, val_length, learner):
    """What a user does at one origin: the series up to it, split with a validation period of the same
    length ending there, fitted and forecast from its end."""
    ds = wb.from_numpy(y[None, : origin + 1, None], times=np.arange(origin + 1, dtype=float), variables=["y"])
    ds = wb.split_time(ds, val=float(origin + 1 - val_length), test=None)
    return wb.fit(ds, learner=learner).forecast(ds, horizon=3, n_samples=4)["state"].values[:, 0]


@pytest.mark.parametrize("learner", ["theta", "nvar"])
def test_refit_each_is_fitting_by_hand_on_the_series_up_to_the_origin(learner):
    y = ar1(140) + 0.03 * np.arange(140)
    ds = series_ds(y)
    model = wb.fit(ds, learner=learner)
    assert check_refit("each", model)
    (values,), times = rolling.series_arrays(ds)
    info = time_split_info(ds)
    first = int(np.searchsorted(times, info["test_start"]))
    val_length = first - int(np.searchsorted(times, info["val_start"]))
    origins = np.array([first - 1, first + 9])
    refitted = refit_each(model, ds)(model, values, times, origins, 3, 4)
    # the first origin sees exactly the data the model was fitted on: the same forecast
    np.testing.assert_array_equal(refitted[0], rollout_from(model, values, times, origins[:1], 3, 4)[0])
    np.testing.assert_allclose(refitted[1], by_hand(y, int(origins[1]), val_length, learner), rtol=1e-9, atol=1e-12)
    assert not np.allclose(refitted[1], rollout_from(model, values, times, origins[1:], 3, 4)[0])


def test_rolling_scores_with_a_refit_at_each_origin():
    ds = series_ds(ar1(120))
    model = wb.fit(ds, learner="ets")
    forecasters = {name: (lambda rollout: lambda *args: rollout(model, *args))(rollout)
                   for name, rollout in (("refit", refit_each(model, ds)), ("once", rollout_from))}
    scores = rolling.rolling_evaluation(ds, forecasters, [1, 2], stochastic=["refit", "once"], max_origins=4,
                                        statistical=False, n_samples=8)
    assert int(scores["n_origins"][0]) == 4
    assert np.isfinite(scores["rmse_refit"]).all() and np.isfinite(scores["coverage_refit"]).all()
    assert not np.allclose(scores["rmse_refit"], scores["rmse_once"])


def test_refit_each_is_refused_for_gradient_trained_learners_with_the_cost_and_the_fix():
    ds = series_ds(ar1(120))
    node = wb.fit(ds, learner="node", epochs=1, steps_per_epoch=1)
    with pytest.raises(UnsupportedError, match="train 'node' by gradient descent again at every forecast") as info:
        check_refit("each", node)
    assert "refit=None" in info.value.fix and "arima" in info.value.fix
    hybrid = wb.fit(ds, learner="resnet", backbone="theta", epochs=1, steps_per_epoch=1)
    with pytest.raises(UnsupportedError, match="'hybrid'.s part resnet by gradient"):
        check_refit("each", hybrid)
    with pytest.raises(BadParameterError, match="refit='always' is not one of"):
        check_refit("always", node)
    assert check_refit(None, node) is False


def test_refit_each_decides_a_map_s_step_again_on_a_calendar_axis(tmp_path):
    # quarters last 90-92 days: the median step of the series up to an origin need not be the whole series'
    import pandas as pd

    dates = pd.date_range("1959-01-01", periods=120, freq="QS")
    pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "y [1]": ar1(120, seed=2)}).to_csv(tmp_path / "q.csv",
                                                                                          index=False)
    ds = wb.split_time(wb.from_csv(tmp_path / "q.csv"), val=0.15, test=0.2)
    model = wb.fit(ds, learner="nvar")
    (values,), times = rolling.series_arrays(ds)
    first = int(np.searchsorted(times, time_split_info(ds)["test_start"]))
    moved = [o for o in range(first - 1, len(times) - 1)
             if float(np.median(np.diff(times[: o + 1]))) != model.meta["options"]["dt"]]
    assert moved                                # the step does move here (91 -> 91.5 days)
    origins = np.array(moved[:2])
    paths = refit_each(model, ds)(model, values, times, origins, 2, 1)
    assert paths.shape == (len(origins), 1, 2, 1) and np.isfinite(paths).all()


def test_evaluate_takes_refit_each_in_rolling_mode_and_refuses_it_elsewhere():
    # refit_each's numbers are checked against fitting by hand above; here, that evaluate passes it on
    ds = series_ds(ar1(60) + 0.05 * np.arange(60))
    model = wb.fit(ds, learner="theta")
    each = wb.evaluate(model, ds, mode="rolling", horizons=[1], refit="each")
    assert each.attrs["refit"] == "each" and np.isfinite(each["rmse"]).all()
    trajectories = wb.simulate("van_der_pol", n=4, t_end=4.0, dt=0.1, seed=0)
    with pytest.raises(BadParameterError, match="refit='each' applies to rolling evaluations"):
        wb.evaluate(model, trajectories, mode="trajectories", refit="each")

"""Measured data: CSV/NetCDF import with dates and gaps, time splits, baselines, embedding, transforms."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import workbench as wb
from workbench.evaluation.baselines import AR, Climatology, Persistence, detect_period
from workbench.data.embedding import delay_vectors, embed_dataset, suggest_embedding
from workbench.errors import BadParameterError, DatasetError, DivergenceError, ResourceLimitError
from workbench.data.imports import from_csv, from_netcdf
from workbench.evaluation.rolling import rolling_evaluation, skills
from workbench.data.splits import merge_segments, split_time
from workbench.data import time as timeaxis, transforms


def csv(text: str) -> bytes:
    return text.strip().encode() + b"\n"


# --- import -------------------------------------------------------------------------------------

def test_iso_dates_round_trip_through_hdf5_and_xarray(tmp_path):
    data = csv("""
date,co2 [ppm]
1958-03-29,316.1
1958-04-05,317.3
1958-04-12,
1958-04-19,317.5
""")
    ds = from_csv(data)
    assert ds["time"].attrs["units"] == "days since 1958-03-29"
    assert ds["time"].attrs["calendar"] == "proleptic_gregorian"
    np.testing.assert_array_equal(ds["time"].values, [0, 7, 14, 21])
    assert list(ds["units"].values) == ["ppm"] and ds.attrs["kind"] == "observed"
    np.testing.assert_array_equal(ds["mask"].values, [[True, True, False, True]])
    expected = pd.to_datetime(["1958-03-29", "1958-04-05", "1958-04-12", "1958-04-19"]).values
    np.testing.assert_array_equal(xr.decode_cf(ds)["time"].values, expected)
    path = wb.save(ds, tmp_path / "co2.h5")
    with xr.open_dataset(path, engine="h5netcdf") as decoded:  # any CF reader gets the dates back
        np.testing.assert_array_equal(decoded["time"].values, expected)
    loaded = wb.load(path)                                     # the workbench keeps the numeric axis
    xr.testing.assert_identical(loaded, ds)
    np.testing.assert_array_equal(timeaxis.to_datetimes(loaded), expected)


def test_datetimes_with_hours_and_time_zone():
    ds = from_csv(csv("""
timestamp,x
2020-01-01T00:00:00+01:00,1
2020-01-01T01:30:00+01:00,2
2020-01-01T03:00:00+01:00,3
"""))
    assert ds["time"].attrs["units"] == "hours since 2019-12-31"  # UTC midnight before the first sample
    np.testing.assert_allclose(ds["time"].values, [23.0, 24.5, 26.0])
    np.testing.assert_array_equal(timeaxis.to_datetimes(ds)[1], np.datetime64("2020-01-01T00:30"))


def test_numeric_time_with_cf_units_and_custom_format():
    ds = from_csv(csv("t,x\n0,1\n1,2\n"), time_units="days since 2000-01-01")
    assert timeaxis.is_calendar(ds)
    np.testing.assert_array_equal(timeaxis.to_datetimes(ds), np.array(["2000-01-01", "2000-01-02"], "datetime64[ns]"))
    packed = from_csv(csv("date,x\n19580329,1\n19580405,2\n"), time_format="%Y%m%d")
    assert packed["time"].attrs["units"] == "days since 1958-03-29"
    np.testing.assert_array_equal(packed["time"].values, [0, 7])


@pytest.mark.parametrize("text, match", [
    ("time,x\n0,1\n1,abc\n", r"column 'x', line 3: 'abc' is not a number"),
    ("date,x\n2020-01-01,1\n2020-13-01,2\n", r"column 'date', line 3: cannot read '2020-13-01'"),
    ("time,x\n0,1\n,2\n", r"column 'time', line 3: the time is empty"),
    ("time,x\n0,1\n0,2\n", r"lines 2 and 3"),
    ("time,label,x\n0,a,1\n", r"column 'label', line 2: 'a' is not a number.*role 'ignore'"),
])
def test_errors_name_column_and_line(text, match):
    with pytest.raises(DatasetError, match=match):
        from_csv(text.encode())


def test_roles_units_inputs_and_long_layout_agree():
    wide = from_csv(csv("""
trajectory,time,q [m],force [N],note
0,0,1.0,0.5,ok
0,1,,0.6,gap
1,0,2.0,0.1,ok
1,2,3.0,0.3,late
"""), roles={"force": "input", "note": "ignore"})
    assert list(wide["variable"].values) == ["q"] and list(wide["units"].values) == ["m"]
    assert list(wide["input_variable"].values) == ["force"] and list(wide["input_units"].values) == ["N"]
    np.testing.assert_array_equal(wide["mask"].values, [[True, False, False], [True, False, True]])
    # series 1 has no row at t=1: its input there is interpolated between t=0 and t=2
    np.testing.assert_allclose(wide["input"].values[1, :, 0], [0.1, 0.2, 0.3])
    long = from_csv(csv("""
trajectory,time,variable,value,units
0,0,q,1.0,m
0,1,q,,m
1,0,q,2.0,m
1,2,q,3.0,m
"""))
    xr.testing.assert_equal(long["state"], wide["state"])
    np.testing.assert_array_equal(long["mask"].values, wide["mask"].values)


def test_missing_value_text_and_named_series():
    ds = from_csv(csv("station,time,x\nA,0,1\nA,1,-999\nB,0,2\nB,1,3\n"), trajectory="station", missing=["-999"])
    assert list(ds["trajectory_name"].values) == ["A", "B"]
    np.testing.assert_array_equal(ds["mask"].values, [[True, False], [True, True]])


def test_union_grid_is_checked_before_allocation(monkeypatch):
    rows = "\n".join(f"{k},{k * 10 + j / 7},1.0" for k in range(40) for j in range(40))
    monkeypatch.setenv("WORKBENCH_MEMORY_LIMIT", "64K")
    with pytest.raises(ResourceLimitError, match="union grid of 1600 times"):
        from_csv(("trajectory,time,x\n" + rows).encode())


def test_netcdf_from_another_tool(tmp_path):
    times = pd.date_range("2000-01-01", periods=4, freq="D")
    foreign = xr.Dataset({"sst": (("time", "station"), np.array([[1.0, 5.0], [np.nan, 6.0], [3.0, 7.0], [4.0, 8.0]]),
                                  {"units": "degC"}),
                          "wind": (("time", "station"), np.ones((4, 2)))},
                         coords={"time": times, "station": ["a", "b"]})
    path = tmp_path / "foreign.nc"
    foreign.to_netcdf(path, engine="h5netcdf")
    ds = from_netcdf(path, inputs=["wind"])
    assert ds["state"].shape == (2, 4, 1) and list(ds["trajectory_name"].values) == ["a", "b"]
    np.testing.assert_array_equal(ds["mask"].values[0], [True, False, True, True])
    np.testing.assert_array_equal(timeaxis.to_datetimes(ds), times.values)
    assert ds["time"].attrs["units"].startswith("days since 2000-01-01")
    xr.testing.assert_identical(from_netcdf(wb.save(ds, tmp_path / "ours.h5")), wb.load(tmp_path / "ours.h5"))
    with pytest.raises(DatasetError, match="no time dimension"):
        from_netcdf(xr.Dataset({"x": ("n", [1.0, 2.0])}))


# --- time splits ----------------------------------------------------------------------------------

def _series(values, times=None, names=("x",)):
    values = np.asarray(values, dtype=float)
    values = values[:, None] if values.ndim == 1 else values
    return wb.from_numpy(values, np.arange(len(values)) if times is None else times, list(names))


def test_split_time_never_lets_training_see_test_times():
    ds = _series(np.sin(np.arange(200) / 5.0))
    split = split_time(ds, val=0.1, test=0.2)
    info = split.attrs["time_split"]
    assert '"test_start": 160.0' in info and '"val_start": 140.0' in info
    observed = split["mask"].values
    t = split["time"].values
    for k, name in enumerate(split["split"].values):
        lo, hi = {"train": (0, 140), "val": (140, 160), "test": (160, 200)}[name]
        assert ((t[observed[k]] >= lo) & (t[observed[k]] < hi)).all()
        assert np.isnan(split["state"].values[k][(t < lo) | (t >= hi)]).all()  # the values are gone, not hidden
    # the training tensors the fit loop builds hold no test value at all
    train = wb.select_split(split, "train")
    assert np.isnan(train["state"].sel(time=slice(140, None)).values).all()
    xr.testing.assert_equal(merge_segments(split)["state"], ds["state"])


def test_split_time_by_dates_and_errors():
    ds = from_csv(csv("date,x\n" + "\n".join(f"{1950 + y}-01-01,{y}" for y in range(20))))
    split = split_time(ds, val="1960-01-01", test="1965-06-01")
    assert '"test_start_date": "1965-06-01T00:00:00"' in split.attrs["time_split"]
    assert (split["time_split"].values[timeaxis.to_datetimes(split) >= np.datetime64("1966-01-01")] == "test").all()
    with pytest.raises(BadParameterError, match="no calendar origin"):
        split_time(_series(np.arange(10.0)), test="1990-01-01")
    with pytest.raises(DatasetError, match="already split"):
        split_time(split)


# --- baselines and rolling evaluation --------------------------------------------------------------

def _rolling(values, horizons, **kw):
    return rolling_evaluation(split_time(_series(values), val=0, test=0.3), {}, horizons, max_origins=600, **kw)


def test_rolling_persistence_errors_by_hand_on_a_ramp():
    scores = _rolling(0.5 * np.arange(100.0), [1, 3, 7])
    np.testing.assert_allclose(scores["rmse_persistence"].values[:, 0], [0.5, 1.5, 3.5])
    np.testing.assert_allclose(scores["n_origins"].values, [30, 28, 24])  # origins 69..98 with a target
    np.testing.assert_allclose(scores["rmse_ar"].values[:, 0], 0.0, atol=1e-5)  # a line is an exact AR model


def test_baselines_on_noise_around_a_constant():
    noise = np.random.default_rng(0).normal(size=3000)
    scores = _rolling(5 + noise, [1, 5])
    np.testing.assert_allclose(scores["rmse_climatology"].values[:, 0], 1.0, rtol=0.08)
    np.testing.assert_allclose(scores["rmse_persistence"].values[:, 0], np.sqrt(2), rtol=0.08)
    np.testing.assert_allclose(skills(scores, "climatology", ["persistence"])["rmse_skill_vs_persistence"].values,
                               1 - 1 / np.sqrt(2), atol=0.05)


def test_baselines_on_a_random_walk():
    walk = np.cumsum(np.random.default_rng(1).normal(size=3000))
    scores = _rolling(walk, [1, 4, 9])
    np.testing.assert_allclose(scores["rmse_persistence"].values[:, 0], [1, 2, 3], rtol=0.12)
    ar_vs_persistence = 1 - scores["rmse_ar"] / scores["rmse_persistence"]
    assert np.abs(ar_vs_persistence.values).max() < 0.05  # nothing beats persistence on a random walk
    assert (scores["crps_ar"] < scores["crps_persistence"]).all()  # but a calibrated spread scores better


def test_baselines_on_a_pure_seasonal_series():
    period, horizons = 12, np.array([1, 2, 3, 6])
    scores = _rolling(np.sin(2 * np.pi * np.arange(1200) / period), horizons)
    assert "rmse_climatology_seasonal" in scores
    np.testing.assert_allclose(scores["rmse_climatology_seasonal"].values, 0.0, atol=1e-9)
    np.testing.assert_allclose(scores["rmse_persistence"].values[:, 0],
                               np.sqrt(2) * np.abs(np.sin(np.pi * horizons / period)), rtol=0.02)
    skill = skills(scores, "climatology_seasonal", ["persistence"])["rmse_skill_vs_persistence"]
    np.testing.assert_allclose(skill.values, 1.0)


def test_period_detection_snaps_monthly_calendar_data_to_the_year():
    dates = pd.date_range("1950-01-01", periods=240, freq="MS")
    t, _ = timeaxis.encode(dates)
    x = np.sin(2 * np.pi * dates.month.values / 12)[:, None]
    assert detect_period([x], [t], calendar_days=True) == 365.2425
    assert detect_period([np.random.default_rng(0).normal(size=(240, 1))], [t]) is None


def test_ar_order_by_aic_recovers_an_ar2_process():
    rng = np.random.default_rng(2)
    x = np.zeros(4000)
    for i in range(2, len(x)):
        x[i] = 1.2 * x[i - 1] - 0.5 * x[i - 2] + rng.normal()
    ar = AR().fit([x[:, None]], [np.arange(len(x), dtype=float)])
    assert ar.order == 2
    np.testing.assert_allclose(ar.coef[1:, 0], [1.2, -0.5], atol=0.03)
    point = Persistence().forecast(x[:10, None], None, np.arange(3))
    assert point.shape == (1, 3, 1) and (point == x[9]).all()
    assert Climatology(detect=False).fit([x[:, None]], [np.arange(4000.0)]).bins == 1


def _nile():
    from statsmodels.datasets import nile

    return nile.load_pandas().data["volume"].to_numpy(dtype=float)


def test_baseline_point_scores_and_skills_do_not_move_with_the_seed():
    ds = split_time(_series(_nile()), val=0.1, test=0.3)
    runs = [rolling_evaluation(ds, {}, [1, 2, 5], seed=seed) for seed in range(4)]
    for name in ("rmse_ar", "mae_ar", "rmse_climatology", "mae_climatology"):
        for other in runs[1:]:
            np.testing.assert_array_equal(other[name].values, runs[0][name].values)
    skill = [skills(r, "persistence", ["climatology", "ar"]) for r in runs]
    for other in skill[1:]:
        xr.testing.assert_identical(other, skill[0])
    # the AR point forecast is the noise-free recursion (draws once moved the h=2 RMSE from 116 to 132)
    np.testing.assert_allclose(runs[0]["rmse_ar"].sel(horizon=2).item(), 118.611, atol=1e-3)
    assert runs[0]["crps_ar"].values[0, 0] != runs[1]["crps_ar"].values[0, 0]  # the ensembles stay random, for CRPS


@pytest.mark.parametrize("order", [None, 3])
def test_ar_coefficients_match_statsmodels_autoreg(order):
    from statsmodels.tsa.ar_model import AutoReg

    rng = np.random.default_rng(3)
    x = np.zeros(600)
    for i in range(2, len(x)):
        x[i] = 0.8 * x[i - 1] - 0.3 * x[i - 2] + rng.normal()
    for y in (_nile(), x):
        ar = AR(order=order).fit([y[:, None]], [np.arange(len(y), dtype=float)])
        reference = AutoReg(y, lags=ar.order, trend="c").fit()
        assert order is None or ar.order == order
        np.testing.assert_allclose(ar.coef[:, 0], reference.params, rtol=0, atol=1e-8)
        np.testing.assert_allclose(ar.noise[0, 0] ** 2, reference.sigma2, rtol=1e-10)


def test_rolling_scores_carry_each_variables_units():
    x = np.sin(np.arange(300) / 5.0)
    same = rolling_evaluation(split_time(wb.from_numpy(x[:, None], np.arange(300.0), ["rain"], units=["mm"]),
                                         val=0, test=0.2), {}, [1, 3])
    for name in ("rmse_ar", "mae_persistence", "crps_climatology_seasonal"):
        assert same[name].attrs["units"] == "mm"
    assert list(same["units"].values) == ["mm"]
    assert skills(same, "ar", ["persistence"])["rmse_skill_vs_persistence"].attrs["units"] == "1"
    mixed = rolling_evaluation(split_time(wb.from_numpy(np.stack([x, x ** 2], 1), np.arange(300.0), ["rain", "rate"],
                                                        units=["mm", "mm/day"]), val=0, test=0.2), {}, [1])
    assert list(mixed["units"].values) == ["mm", "mm/day"]
    assert "units" not in mixed["rmse_ar"].attrs  # one attribute cannot hold two units: the coordinate does


def test_rolling_horizons_past_the_test_period_are_refused_with_the_longest_allowed():
    ds = split_time(_series(np.sin(np.arange(230) / 5.0)), val=0, test=0.2)  # a 46-sample test piece
    with pytest.raises(BadParameterError, match=r"horizon 500 reaches past the test period, which has 46 samples.*"
                                                r"use horizons <= 46"):
        rolling_evaluation(ds, {}, [1, 500])
    assert rolling_evaluation(ds, {}, [46])["n_origins"].item() == 1


def test_a_runaway_forecast_is_marked_diverged_not_returned_as_huge_numbers():
    x = 1.1 ** np.arange(100.0)  # fits x_{n+1} = 1.1 x_n exactly; 400 steps ahead reaches 5e20
    ds = split_time(_series(x), val=0.1, test=0.2)
    model = wb.fit(ds, "nvar", **LINEAR_NVAR)
    with pytest.raises(DivergenceError, match="ran away 73 samples after its origin.*on_divergence='mark'"):
        model.forecast(ds, horizon=400)
    from workbench.evaluation.forecast import forecast

    marked = forecast(model, ds, horizon=400, on_divergence="mark")
    state = marked["state"].values[0, 0, :, 0]
    # the last sample is x_99 (range 1..1.4e4): the path is kept until it leaves 1000 ranges, then +inf
    np.testing.assert_allclose(state[:72], 1.1 ** np.arange(100.0, 172.0), rtol=1e-5)
    assert np.isinf(state[72:]).all() and marked["diverged_at"].item() == 172.0
    scores = wb.evaluate(model, ds, horizons=[1, 20])
    assert (scores["rmse"].values < 1e-5 * x.max()).all()  # 20 steps of exact growth stay bounded and right


def test_one_transform_name_applies_to_every_variable():
    assert transforms.check_spec("log1p", ["a", "b"]) == {"a": "log1p", "b": "log1p"}
    with pytest.raises(BadParameterError, match="transform must be a transform name or a mapping"):
        transforms.check_spec(["log"], ["a"])
    with pytest.raises(BadParameterError, match=r"unknown transform 'sqrt' for 'a'; use one of"):
        transforms.check_spec("sqrt", ["a"])


def test_a_tampered_series_recipe_is_refused_before_forecasting():
    t, q, _ = _damped()
    ds = split_time(_series(q, t, ("q",)), val=0.1, test=0.2)
    model = wb.fit(ds, "nvar", embed=2, lag=1, **LINEAR_NVAR)
    for field, value, match in (("embed", 1e9, r"embed must be an integer in \[1, 100\], got 1000000000.0"),
                                ("embed", 3, r"implies the learner's variables \['q', 'q_lag1', 'q_lag2'\]"),
                                ("transform", {"q": "cube"}, "unknown transform 'cube'"),
                                ("difference", "yes", "difference='yes'")):
        good = model.meta["series"]
        model.meta["series"] = {**good, field: value}
        with pytest.raises(DatasetError, match="series recipe.*" + match):
            model.forecast(ds, horizon=3)
        model.meta["series"] = good


# --- embedding and transforms --------------------------------------------------------------------

def test_delay_vectors_and_embedded_dataset_keep_the_split():
    np.testing.assert_array_equal(delay_vectors(np.arange(5.0)[:, None], 3, 1)[2:], [[2, 1, 0], [3, 2, 1], [4, 3, 2]])
    split = split_time(_series(np.arange(50.0)), val=0.2, test=0.2)
    emb = embed_dataset(split, 3, 2)
    assert list(emb["variable"].values) == ["x", "x_lag2", "x_lag4"]
    assert emb.attrs["time_split"] == split.attrs["time_split"]
    test = wb.select_split(emb, "test")
    first = int(np.flatnonzero(test["mask"].values[0])[0])
    # the first test sample's delays come from before the test piece: history, not leakage
    np.testing.assert_array_equal(test["state"].values[0, first], [40, 38, 36])


def test_suggest_embedding_on_a_noisy_sine_and_lorenz():
    period = 37
    x = np.sin(2 * np.pi * np.arange(800) / period) + 0.05 * np.random.default_rng(0).normal(size=800)
    out = suggest_embedding(_series(x))
    assert out["embed"] == 2 and abs(out["lag"] - period / 4) <= 2  # a circle; AMI dips near a quarter period
    lorenz = wb.simulate("lorenz63", n=1, t_end=60.0, dt=0.02, seed=0).isel(variable=[0])
    out = suggest_embedding(lorenz)
    # Kennel et al. (1992) and Abarbanel (1996): 3 delays of x, first AMI minimum near 0.16 time units
    assert out["embed"] == 3 and 0.1 <= out["lag"] * 0.02 <= 0.25


@pytest.mark.parametrize("name, data", [("log", [0.1, 1.0, 400.0]), ("log1p", [0.0, 3.0, 250.0]),
                                        ("logit", [0.01, 0.5, 0.99])])
def test_transforms_invert_and_keep_the_domain(name, data):
    x = np.array(data)[:, None]
    z = transforms.forward(x, {"s": name}, ["s"])
    np.testing.assert_allclose(transforms.inverse(z, {"s": name}, ["s"]), x, rtol=1e-12, atol=1e-15)
    wild = np.linspace(-60, 60, 121)[:, None]  # whatever a learner outputs
    back = transforms.inverse(wild, {"s": name}, ["s"])
    assert {"log": back > 0, "log1p": back >= 0, "logit": (back >= 0) & (back <= 1)}[name].all()
    with pytest.raises(DatasetError, match="variable 's'.*outside the domain"):
        transforms.forward(np.array([[-1.5]]), {"s": name}, ["s"])


# --- fitting and forecasting measured series --------------------------------------------------------

def _damped(n=400, dt=0.1, gamma=0.1, omega=1.3):
    t = np.arange(n) * dt
    q = np.exp(-gamma * t) * np.cos(omega * t)
    v = np.exp(-gamma * t) * (-gamma * np.cos(omega * t) - omega * np.sin(omega * t))
    return t, q, v


LINEAR_NVAR = {"delays": 1, "degree": 1, "ridge": 1e-12}


def test_forecast_of_a_linear_system_matches_the_truth_from_the_end():
    t, q, v = _damped()
    ds = split_time(_series(np.stack([q, v], 1), t, ("q", "v")), val=0.1, test=0.2)
    model = wb.fit(ds, "nvar", **LINEAR_NVAR)
    fc = model.forecast(ds, horizon=80, origin="test")
    start = int(np.searchsorted(t, fc.attrs["forecast_origin"])) + 1
    np.testing.assert_allclose(fc["time"].values, t[start:start + 80])
    np.testing.assert_allclose(fc["state"].values[0, 0], np.stack([q, v], 1)[start:start + 80], atol=1e-7)
    ahead = model.forecast(ds, horizon=5)  # from the very end: times continue at the sampling step
    np.testing.assert_allclose(ahead["time"].values, t[-1] + 0.1 * np.arange(1, 6))
    scores = wb.evaluate(model, ds, horizons=[1, 10])
    assert scores.attrs["mode"] == "rolling"
    np.testing.assert_allclose(scores["rmse"].values, 0.0, atol=1e-7)
    np.testing.assert_allclose(scores["rmse_skill_vs_persistence"].values, 1.0, atol=1e-5)


def test_delay_embedding_lets_a_scalar_series_be_forecast():
    t, q, _ = _damped()
    ds = split_time(_series(q, t, ("q",)), val=0.1, test=0.2)
    model = wb.fit(ds, "nvar", embed=2, lag=1, **LINEAR_NVAR)  # q_{n+1} = a q_n + b q_{n-1} exactly
    assert model.meta["series"]["embed"] == 2 and model.variables == ["q", "q_lag1"]
    fc = model.forecast(ds, horizon=60, origin="test")
    start = int(np.searchsorted(t, fc.attrs["forecast_origin"])) + 1
    assert list(fc["variable"].values) == ["q"]
    np.testing.assert_allclose(fc["state"].values[0, 0, :, 0], q[start:start + 60], atol=1e-5)  # float32 fit


def test_a_one_dimensional_ode_on_an_oscillating_series_warns_and_names_embed():
    ds = split_time(_series(np.sin(np.arange(300) / 5.0)), val=0.1, test=0.2)
    with pytest.warns(UserWarning, match=r"cannot oscillate.*embed=\d+, lag=\d+"):
        wb.fit(ds, "node", epochs=1, steps_per_epoch=1)


def test_log_transform_keeps_a_positive_forecast_positive_and_months_continue():
    dates = pd.date_range("2000-01-01", periods=120, freq="MS")
    level = np.exp(0.02 * np.arange(120) + 0.3 * np.sin(2 * np.pi * np.arange(120) / 12))
    text = "date,level\n" + "\n".join(f"{d:%Y-%m-%d},{x:.6f}" for d, x in zip(dates, level))
    ds = split_time(from_csv(text.encode()), val=0.1, test=0.2)
    model = wb.fit(ds, "nvar", transform={"level": "log"}, embed=2, lag=1)
    assert model.meta["series"]["transform"] == {"level": "log"}
    fc = model.forecast(ds, horizon=30)
    assert (fc["state"].values > 0).all()
    months = pd.DatetimeIndex(xr.decode_cf(fc)["time"].values)
    np.testing.assert_array_equal(months, pd.date_range("2010-01-01", periods=30, freq="MS"))


def test_seasonal_drivers_are_known_past_the_end_of_the_data():
    from workbench.data.drivers import add_seasonal_inputs
    from workbench.evaluation.forecast import _inputs_ahead

    dates = pd.date_range("2000-01-01", periods=60, freq="MS")
    text = "date,x\n" + "\n".join(f"{d:%Y-%m-%d},{np.cos(2 * np.pi * d.month / 12):.6f}" for d in dates)
    ds = add_seasonal_inputs(from_csv(text.encode()))
    assert list(ds["input_variable"].values) == ["season_sin1", "season_cos1"]
    t = ds["time"].values
    np.testing.assert_allclose(ds["input"].values[0, :, 0], np.sin(2 * np.pi * t / 365.2425))
    split = split_time(ds, val=0.1, test=0.2)
    model = wb.fit(split, "node", epochs=1, steps_per_epoch=1)
    assert model.meta["series"]["drivers"]["period"] == 365.2425
    fc = model.forecast(split, horizon=6)  # past the end: drivers computed, not refused
    assert fc.sizes["time"] == 6 and np.isfinite(fc["state"].values).all()
    ahead = _inputs_ahead(ds["input"].values[0], t, len(t) - 1, 3, 30.0, model.meta["series"]["drivers"],
                          model.inputs)
    np.testing.assert_allclose(ahead[1:, 1], np.cos(2 * np.pi * (t[-1] + 30.0 * np.arange(1, 4)) / 365.2425))


def test_differenced_fit_forecasts_a_trend_with_a_season_exactly():
    n = np.arange(300)
    x = 0.05 * n + np.sin(2 * np.pi * n / 12)  # trend + season: the increments are a pure cycle
    ds = split_time(_series(x), val=0.1, test=0.2)
    model = wb.fit(ds, "nvar", difference=True, delays=2, degree=1, ridge=1e-12)
    fc = model.forecast(ds, horizon=40, origin="test")
    start = int(fc.attrs["forecast_origin"]) + 1
    np.testing.assert_allclose(fc["state"].values[0, 0, :, 0], x[start:start + 40], atol=1e-4)
    scores = wb.evaluate(model, ds, horizons=[1, 12])
    assert (scores["rmse_skill_vs_climatology"] > 0.99).all()


def test_csv_columns_describe_a_file_for_a_roles_form():
    from workbench.data.imports import csv_columns

    cols = csv_columns(csv("date,co2 [ppm],flag\n1958-03-29,316.1,ok\n1958-04-05,,bad\n"))
    assert [(c["name"], c["units"], c["guess"], c["empty"]) for c in cols] == [
        ("date", None, "time", 0), ("co2", "ppm", "state", 1), ("flag", None, "ignore", 0)]


def test_fill_gaps_lets_a_complete_data_learner_fit_gappy_data():
    t, q, v = _damped()
    x = np.stack([q, v], 1)
    x[[50, 51, 120, 200], :] = np.nan
    ds = split_time(wb.from_numpy(x, t, ["q", "v"], mask=np.isfinite(x).all(1)[None]), val=0.1, test=0.2)
    with pytest.raises(wb.WorkbenchError, match="missing samples"):
        wb.fit(ds, "nvar", **LINEAR_NVAR)
    model = wb.fit(ds, "nvar", fill_gaps=True, **LINEAR_NVAR)
    fc = model.forecast(ds, horizon=20, origin="test")
    start = int(np.searchsorted(t, fc.attrs["forecast_origin"])) + 1
    # linear interpolation of 4 samples perturbs the fit only slightly
    np.testing.assert_allclose(fc["state"].values[0, 0], np.stack([q, v], 1)[start:start + 20], atol=1e-2)


def test_fill_gaps_on_an_axis_it_cannot_make_regular_says_so_instead_of_suggesting_itself():
    t = np.cumsum(np.random.default_rng(4).uniform(0.5, 1.5, 200))  # jittered times: no gaps, no regular step
    ds = split_time(_series(np.sin(t / 5.0), t), val=0.1, test=0.2)
    with pytest.raises(wb.WorkbenchError, match="fill_gaps=True cannot make this time axis regular.*use 'node'"):
        wb.fit(ds, "nvar", fill_gaps=True, **LINEAR_NVAR)

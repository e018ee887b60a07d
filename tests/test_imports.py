"""Measured-data imports: regular grids with missing rows, old dates, option refusals, and the
one verdict of ``learners.compatibility`` and ``fit``."""
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import workbench as wb
from workbench.data import time as timeaxis
from workbench.errors import BadParameterError, DatasetError, UnsupportedError, WorkbenchError
from workbench.learners import compatibility, learners
from workbench.data.realdata import load_real
from workbench.data.series import is_regular


def gappy_csv(freq: str, n: int, period: int, seed: int = 0) -> tuple[bytes, pd.DatetimeIndex, np.ndarray]:
    """A seasonal series on a calendar grid with 10% of its inner rows deleted."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("1990-01-01", periods=n, freq=freq)
    dropped = np.sort(rng.choice(np.arange(1, n - 1), n // 10, replace=False))
    keep = np.setdiff1d(np.arange(n), dropped)
    x = 10 + np.sin(np.arange(n) * 2 * np.pi / period)
    frame = pd.DataFrame({"date": dates[keep].strftime("%Y-%m-%d"), "x": x[keep]})
    return frame.to_csv(index=False).encode(), dates, dropped


@pytest.mark.parametrize("freq, grid, n, period", [("MS", "monthly", 240, 12), ("D", "daily", 400, 30)])
def test_missing_calendar_rows_become_masked_samples_and_nvar_fits_with_fill_gaps(freq, grid, n, period):
    data, dates, dropped = gappy_csv(freq, n, period)
    ds = wb.from_csv(data)
    assert ds.attrs["time_grid"] == grid and ds.attrs["grid_times_added"] == len(dropped)
    np.testing.assert_array_equal(timeaxis.to_datetimes(ds), dates.values.astype("datetime64[ns]"))
    assert is_regular(ds["time"].values)  # months step 28-31 days: regular for the series fit
    np.testing.assert_array_equal(np.flatnonzero(~ds["mask"].values[0]), dropped)
    assert np.isnan(ds["state"].values[0, dropped]).all()
    split = wb.split_time(ds)
    with pytest.raises(UnsupportedError, match=r"fill_gaps=True"):
        wb.fit(split, "nvar")
    model = wb.fit(split, "nvar", fill_gaps=True)
    assert model.meta["series"]["fill_gaps"] and np.isfinite(model.history[-1]["val_loss"])
    assert compatibility(split, fill_gaps=True)["nvar"] is None


def test_numeric_grid_freq_and_sparse_rows():
    ds = wb.from_csv(b"t,x\n0,1\n0.1,2\n0.3,3\n0.4,4\n")
    np.testing.assert_allclose(ds["time"].values, [0, 0.1, 0.2, 0.3, 0.4])
    np.testing.assert_array_equal(ds["mask"].values[0], [True, True, False, True, True])
    assert ds.attrs["time_grid"] == "step 0.1"
    kept = wb.from_csv(b"t,x\n0,1\n0.1,2\n0.3,3\n0.4,4\n", freq="irregular")
    np.testing.assert_array_equal(kept["time"].values, [0, 0.1, 0.3, 0.4])
    sparse = wb.from_csv(b"t,x\n0,1\n1,2\n5,3\n9,4\n")  # 4 rows of a 10-point grid: irregular sampling
    np.testing.assert_array_equal(sparse["time"].values, [0, 1, 5, 9])
    forced = wb.from_csv(b"t,x\n0,1\n1,2\n5,3\n9,4\n", freq=1)
    assert forced.sizes["time"] == 10 and int(forced["mask"].sum()) == 4
    with pytest.raises(DatasetError, match=r"time 0.5 is not on the step 1 grid"):
        wb.from_csv(b"t,x\n0,1\n0.5,2\n2,3\n", freq=1.0)
    with pytest.raises(BadParameterError, match=r"freq='monthly' is a calendar grid.*holds numbers"):
        wb.from_csv(b"t,x\n0,1\n1,2\n2,3\n", freq="monthly")
    with pytest.raises(BadParameterError, match=r"freq='fortnightly' is not a time grid"):
        wb.from_csv(b"t,x\n0,1\n1,2\n2,3\n", freq="fortnightly")


def test_dates_before_1678_work_through_the_cf_axis(tmp_path):
    years = np.arange(1500, 1560)
    rows = "".join(f"{y}-01-01,{np.sin(y / 3):.6f}\n" for y in years if y != 1510)
    ds = wb.from_csv(("date,x\n" + rows).encode())
    assert ds["time"].attrs["units"] == "days since 1500-01-01" and ds.attrs["time_grid"] == "annual"
    dates = timeaxis.to_datetimes(ds)
    assert str(dates[0])[:10] == "1500-01-01" and str(dates[-1])[:10] == "1559-01-01"
    assert not ds["mask"].values[0, 10] and ds["mask"].values.sum() == 59
    assert timeaxis.to_numeric(ds, "1501-01-01") == 365.0
    split = wb.split_time(ds, val="1540-01-01", test="1550-01-01")
    assert split.attrs["time_split"].count("1540-01-01") == 1
    back = wb.load(wb.save(ds, tmp_path / "old.h5"))
    xr.testing.assert_identical(back, ds)
    four_digit_years = wb.from_csv(("year,x\n" + "".join(f"{y},{y % 7}\n" for y in years)).encode(),
                                   time_format="%Y")
    assert str(timeaxis.to_datetimes(four_digit_years)[1])[:10] == "1501-01-01"


@pytest.mark.parametrize("kwargs, error, pattern", [
    ({"roles": "state"}, BadParameterError, r"roles='state' is not a dict"),
    ({"units": {"nope": "m"}}, DatasetError, r"units name column 'nope', which is not in the file"),
    ({"units": {"t": "s"}}, DatasetError, r"units name column 't', which is not a data column.*time_units"),
    ({"time_units": "fortnight"}, BadParameterError, r"time_units='fortnight' is not a time unit"),
    ({"time_units": "months since 2000-01-01"}, BadParameterError, r"not a fixed-length unit"),
    ({"roles": {"t": "input"}}, DatasetError, r"roles name column 't', which the import reads as the time"),
    ({"variables": "x"}, BadParameterError, r"variables='x' is a string"),
])
def test_import_options_are_checked(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        wb.from_csv(b"t,x\n0,1\n1,2\n2,3\n", **kwargs)


def test_long_file_with_one_variable_in_two_units_is_refused():
    text = b"time,variable,value,units\n0,x,1.0,m\n1,x,2.0,m\n2,x,0.003,km\n"
    with pytest.raises(DatasetError, match=r"variable 'x' is given in 'm' \(line 2\) and in 'km' \(line 4\)"):
        wb.from_csv(text)
    same = wb.from_csv(b"time,variable,value,units\n0,x,1.0,m\n1,x,2.0,m\n")
    assert list(same["units"].values) == ["m"]


@pytest.mark.parametrize("calendar, pattern", [("martian", r"'martian' is not a CF calendar"),
                                               ("360_day", r"'360_day' has other month lengths")])
def test_netcdf_calendars_other_than_gregorian_are_refused(tmp_path, calendar, pattern):
    path = tmp_path / "sst.nc"
    xr.Dataset({"sst": ("time", np.arange(4.0))},
               coords={"time": ("time", np.arange(4.0), {"units": "days since 2000-01-01",
                                                          "calendar": calendar})}).to_netcdf(path, engine="scipy")
    with pytest.raises(DatasetError, match=pattern):
        wb.from_netcdf(path)
    good = tmp_path / "ok.nc"
    xr.Dataset({"sst": ("time", np.arange(4.0))},
               coords={"time": ("time", np.arange(4.0), {"units": "days since 2000-01-01",
                                                          "calendar": "standard"})}).to_netcdf(good, engine="scipy")
    assert wb.from_netcdf(good).sizes["time"] == 4


def test_split_time_says_a_boolean_is_neither_a_fraction_nor_a_date():
    ds = load_real("sunspots")
    with pytest.raises(BadParameterError, match=r"val=True is a boolean, which is neither a fraction"):
        wb.split_time(ds, val=True)
    with pytest.raises(DatasetError, match=r"val start 5000 lies outside"):
        wb.split_time(ds, val=np.int64(5000))


@pytest.mark.parametrize("which", ["shipped", "simulated"])
def test_compatibility_gives_fit_s_verdict_for_every_learner(which):
    ds = (wb.split_time(load_real("sunspots").isel(time=slice(0, 100))) if which == "shipped"
          else wb.simulate("van_der_pol", n=6, t_end=2.0, dt=0.1, seed=0))
    verdicts = compatibility(ds)
    for name in learners():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                wb.fit(ds, name, epochs=1, steps_per_epoch=1)
                raised = None
            except WorkbenchError as exc:
                raised = exc
        if verdicts[name] is None:
            assert not isinstance(raised, UnsupportedError), (name, raised)
        else:  # the refusal fit raises before training is the one compatibility reports
            assert raised is not None and str(raised) == verdicts[name], (name, verdicts[name], raised)
    if which == "shipped":  # split series are chunked on a regular step: the complete-data learners fit
        assert all(verdicts[name] is None for name in ("nvar", "resnet", "rknet", "lmnet"))

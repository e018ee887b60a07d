"""Hostile options and files for the importers (``from_csv``, ``from_netcdf``) and ``split_time``.

Each case runs in a forked child under memory and CPU limits (see ``hostile_harness``): refusals
must raise the stated ``WorkbenchError`` subclass with a message naming the problem, and the
supported cases (dates before 1678) must return the stated result, all within 30 s.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import xarray as xr

import workbench as wb
from hostile_harness import run_isolated
from workbench.data import time as timeaxis

WIDE = b"t,x\n0,1\n1,2\n2,3\n"
ANNUAL_FROM_1500 = ("date,x\n" + "".join(f"{y}-01-01,{y % 11}\n" for y in range(1500, 1800))).encode()


def _netcdf_file(sandbox: Path, calendar: str) -> Path:
    path = sandbox / "sst.nc"
    xr.Dataset({"sst": ("time", np.arange(4.0))},
               coords={"time": ("time", np.arange(4.0), {"units": "days since 2000-01-01",
                                                          "calendar": calendar})}).to_netcdf(path, engine="scipy")
    return path


def _netcdf(calendar: str) -> Callable[[Path], Any]:
    return lambda sandbox: wb.from_netcdf(_netcdf_file(sandbox, calendar))


REFUSED = [
    ("roles as a string", lambda _: wb.from_csv(WIDE, roles="state"), "BadParameterError", r"roles='state' is not a dict"),
    ("units as a string", lambda _: wb.from_csv(WIDE, units="m"), "BadParameterError", r"units='m' is not a dict"),
    ("units for a missing column", lambda _: wb.from_csv(WIDE, units={"nope": "m"}), "DatasetError",
     r"units name column 'nope'"),
    ("unit that is not a string", lambda _: wb.from_csv(WIDE, units={"x": 3}), "BadParameterError",
     r"units\['x'\]=3 is not a unit string"),
    ("time_units fortnight", lambda _: wb.from_csv(WIDE, time_units="fortnight"), "BadParameterError",
     r"time_units='fortnight' is not a time unit"),
    ("time_units not a string", lambda _: wb.from_csv(WIDE, time_units=5), "BadParameterError",
     r"time_units must be a string"),
    ("header time unit fortnight", lambda _: wb.from_csv(b"t [fortnight],x\n0,1\n1,2\n"), "BadParameterError",
     r"header of column 't'.*'fortnight'"),
    ("role for the time column", lambda _: wb.from_csv(WIDE, roles={"t": "input"}), "DatasetError",
     r"roles name column 't', which the import reads as the time"),
    ("role for the series column", lambda _: wb.from_csv(b"trajectory,t,x\n0,0,1\n0,1,2\n",
                                                         roles={"trajectory": "state"}), "DatasetError",
     r"roles name column 'trajectory'"),
    ("variables as a string", lambda _: wb.from_csv(WIDE, variables="x"), "BadParameterError", r"is a string"),
    ("long file in m and km", lambda _: wb.from_csv(b"time,variable,value,units\n0,x,1,m\n1,x,2,m\n2,x,0.003,km\n"),
     "DatasetError", r"'x' is given in 'm' \(line 2\) and in 'km' \(line 4\)"),
    ("freq unknown", lambda _: wb.from_csv(WIDE, freq="fortnightly"), "BadParameterError", r"not a time grid"),
    ("freq negative", lambda _: wb.from_csv(WIDE, freq=-1.0), "BadParameterError", r"freq must be a finite number"),
    ("freq boolean", lambda _: wb.from_csv(WIDE, freq=True), "BadParameterError", r"freq must be a finite number"),
    ("freq calendar on numbers", lambda _: wb.from_csv(WIDE, freq="monthly"), "BadParameterError",
     r"calendar grid.*holds numbers"),
    ("freq subnormal step", lambda _: wb.from_csv(b"t,x\n0,1\n5e-324,2\n1,3\n", freq=5e-324), "ResourceLimitError",
     r"time grid of \d+ times"),
    ("freq tiny step", lambda _: wb.from_csv(WIDE, freq=1e-12), "ResourceLimitError", r"time grid of \d+ times"),
    ("row off the given grid", lambda _: wb.from_csv(b"t,x\n0,1\n0.5,2\n2,3\n", freq=1.0), "DatasetError",
     r"time 0.5 is not on the step 1 grid"),
    ("daily freq on monthly rows off grid", lambda _: wb.from_csv(b"date,x\n2000-01-01T06:00,1\n2000-02-01,2\n",
                                                                   freq="daily"), "DatasetError", r"not on the daily grid"),
    ("netcdf martian calendar", _netcdf("martian"), "DatasetError", r"'martian' is not a CF calendar"),
    ("netcdf 360_day calendar", _netcdf("360_day"), "DatasetError", r"'360_day' has other month lengths"),
    ("netcdf units for a missing variable", lambda s: wb.from_netcdf(_netcdf_file(s, "standard"), units={"nope": "m"}),
     "DatasetError", r"units name \['nope'\]"),
    ("split_time val=True", lambda _: wb.split_time(wb.from_csv(WIDE + b"3,4\n"), val=True), "BadParameterError",
     r"val=True is a boolean, which is neither a fraction, a time nor a date"),
    ("split_time val=np.int64", lambda _: wb.split_time(wb.from_csv(WIDE + b"3,4\n"), val=np.int64(50)),
     "DatasetError", r"val start 50 lies outside"),
]


@pytest.mark.parametrize("name, act, error, pattern", REFUSED, ids=[c[0] for c in REFUSED])
def test_hostile_import_option_is_refused_by_name(tmp_path: Path, name: str, act: Callable, error: str,
                                                  pattern: str) -> None:
    outcome = run_isolated(act, tmp_path)
    assert outcome.status == "raised", f"{name}: {outcome.status} {outcome.value!r}"
    assert outcome.workbench_error and error in outcome.family, f"{name}: {outcome.error}: {outcome.message}"
    assert "np.int64" not in outcome.message and re.search(pattern, outcome.message), outcome.message
    assert outcome.seconds < 30, f"{name} took {outcome.seconds:.1f} s"


def _old_dates(_: Path) -> str:
    ds = wb.from_csv(ANNUAL_FROM_1500)
    dates = timeaxis.to_datetimes(ds)
    return f"{ds.sizes['time']} {ds.attrs['time_grid']} {str(dates[0])[:10]} {str(dates[-1])[:10]}"


def _old_years(_: Path) -> str:
    ds = wb.from_csv(b"year,x\n1066,1\n1067,2\n1069,3\n", time_format="%Y")
    return f"{ds.sizes['time']} {str(timeaxis.to_datetimes(ds)[2])[:10]} {int(ds['mask'].sum())}"


@pytest.mark.parametrize("act, expected", [(_old_dates, "300 annual 1500-01-01 1799-01-01"),
                                           (_old_years, "4 1068-01-01 3")])
def test_dates_before_1678_import_instead_of_overflowing(tmp_path: Path, act: Callable, expected: str) -> None:
    outcome = run_isolated(act, tmp_path)
    assert outcome.status == "returned", f"{outcome.status}: {outcome.error}: {outcome.message}"
    assert outcome.value == expected
    assert outcome.seconds < 30


"""The command line: tables, generation to HDF5, and one-line errors."""
import subprocess
import sys

import xarray as xr


def cli(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True,
                            env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "WORKBENCH_THREADS": "1"})
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_systems_table_lists_catalog():
    out = cli("systems").stdout
    assert "lorenz63" in out and "ornstein_uhlenbeck" in out and "0.9056" in out


def test_show_prints_parameters_and_reference():
    out = cli("show", "pendulum").stdout
    assert "Greydanus" in out and "energy" in out


def test_generate_writes_a_file_xarray_opens(tmp_path):
    out = tmp_path / "x.h5"
    result = cli("generate", "lorenz63", "--n", "6", "--t-end", "1", "--dt", "0.01", "--seed", "0",
                 "--param", "rho=30", "--obs-noise", "0.1", "--out", str(out), "--quiet")
    assert "6 trajectories x 101 samples" in result.stdout
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert ds.state.dims == ("trajectory", "time", "variable")
        assert ds.attrs["system"] == "lorenz63" and '"rho": 30.0' in ds.attrs["params"]


def test_bad_arguments_exit_nonzero_with_one_line():
    for args in (["generate", "lorenz63", "--param", "rho=abc", "--out", "x.h5"],
                 ["generate", "nosuch", "--out", "x.h5"],
                 ["generate", "lorenz63", "--n", "abc", "--out", "x.h5"],
                 ["show", "lorenz63", "--option", "dim=3"]):
        result = cli(*args, check=False)
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
        assert "Traceback" not in result.stderr

"""The command line: tables, generation to HDF5, one-line errors, and what it says at once."""
import io
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import xarray as xr

import workbench as wb


def cli(*args, check=True, columns=200, timeout=None):
    result = subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True,
                            env={"COLUMNS": str(columns), "PATH": "/usr/bin:/bin", "WORKBENCH_THREADS": "1"},
                            timeout=timeout)
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


def test_tables_at_80_columns_keep_names_whole_and_lines_inside_the_terminal():
    out = cli("systems", columns=80).stdout
    assert "…" not in out
    for name in wb.systems():
        assert f" {name} " in out, name              # whole and on one line, so it can be copied
    learners = cli("learners", columns=80).stdout.splitlines()
    assert max(map(len, learners)) <= 80
    names = wb.learners()
    references = learners[next(i for i, line in enumerate(learners) if line.startswith("└")) + 1:]
    assert sum(line.startswith(tuple(f"{n} " for n in names)) for line in references) == len(names)
    for line in references:                         # a wrapped reference continues under its text
        assert line.startswith(tuple(f"{n} " for n in names)) or line.startswith(" ") or not line, line


def test_an_unreachable_scheduler_fails_at_once_with_one_line(tmp_path):
    with socket.socket() as probe:                  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = cli("benchmark", "--out", str(tmp_path / "grid"), "--scheduler", f"tcp://127.0.0.1:{port}",
                 "--quiet", check=False, timeout=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no Dask scheduler answers"), result.stderr
    assert not (tmp_path / "grid" / "data").exists()   # refused before generating any data


def test_app_prints_the_address_it_really_serves(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "workbench", "app", "--server.port", str(port),
                                "--server.headless", "true"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "WORKBENCH_THREADS": "1"})
    try:
        first = process.stdout.readline()
    finally:
        process.kill()
        process.wait()
    assert first.strip() == f"serving on http://127.0.0.1:{port}"


def test_commands_say_what_they_start_before_loading_the_engine(tmp_path):
    # `import workbench` loads no torch: the first line of a command comes before the seconds that costs.
    code = "import sys, workbench; print('torch' in sys.modules, 'xarray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.split() == ["False", "False"]
    result = cli("generate", "van_der_pol", "--n", "2", "--t-end", "1", "--out", str(tmp_path / "v.h5"))
    assert result.stdout.splitlines()[0] == f"generating 2 trajectories of van_der_pol -> {tmp_path / 'v.h5'}"


ENGINE_FREE = """
import sys
from workbench.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    print(exc.code, 'torch' in sys.modules)
"""


def test_argument_errors_answer_before_the_engine_loads(tmp_path):
    # the process reports whether torch was ever imported: the error came before the engine (seconds) loaded
    for args, message in (
            (["generate", "nosuchsystem", "--out", "x.h5"], "error: unknown system 'nosuchsystem'; run `workbench "
                                                            "systems` for the list"),
            (["generate", "lorenz6", "--out", "x.h5"], "error: unknown system 'lorenz6'; did you mean lorenz96"),
            (["generate", "lorenz63", "--param", "rho=1e9", "--out", "x.h5"],
             "error: parameter rho=1e+09 of 'lorenz63' is outside its valid range [24, 40]; choose a value inside it"),
            (["generate", "lorenz63", "--param", "nope=1", "--out", "x.h5"], "error: system 'lorenz63' has no parameter"),
            (["generate", "lorenz63", "--param", "rho=abc", "--out", "x.h5"], "error: --param expects NAME=NUMBER"),
            (["fit", str(tmp_path / "missing.h5"), "--out", "run"], "error: no such file:"),
            (["evaluate", str(tmp_path / "norun"), "--data", "x.h5"], "error: the run folder"),
            (["benchmark", "--out", __file__, "--quiet"], "error: --out"),
            (["show", "nosuch"], "error: unknown system 'nosuch'")):
        result = subprocess.run([sys.executable, "-c", ENGINE_FREE, *args], capture_output=True, text=True,
                                cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(message), (args, result.stderr)
        assert result.stdout.split() == ["2", "False"], (args, result.stdout)


def test_the_catalog_index_read_from_source_is_the_catalog():
    from workbench.cli import catalog_index

    index = catalog_index()
    assert sorted(index) == wb.systems()
    checked = 0
    for name, ranges in index.items():
        if ranges is not None:                      # None: computed in the source, checked by the engine
            assert ranges == {k: (p.low, p.high) for k, p in wb.system(name).params.items()}, name
            checked += 1
    assert checked >= len(index) - 3


def test_help_shows_no_type_tags_and_describes_every_option():
    import typer.main

    from workbench.cli import app

    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        for param in command.params:
            if param.param_type_name == "option":
                assert param.help, f"{name} {param.opts[0]} has no description"
    for args in (["--help"], ["fit", "--help"], ["generate", "--help"], ["benchmark", "--help"]):
        out = cli(*args, columns=120).stdout
        assert not re.search(r"<(bool|str|int|float|path|list\[str\])>", out), (args, out)


def test_fit_progress_shows_epoch_losses_and_time_left():
    from tqdm import tqdm

    from workbench.cli import epoch_progress

    bar = tqdm(total=None, file=io.StringIO(), disable=False)
    update = epoch_progress(bar, budget=60.0)
    update({"epoch": 3, "epochs": 10 ** 9, "train_loss": 0.0123, "val_loss": 0.0456, "elapsed": 15.2})
    text = str(bar)
    assert "epoch=3" in text and "train=0.0123" in text and "val=0.0456" in text and "left=45 s" in text
    assert text.lstrip().startswith("25%")
    bar = tqdm(total=None, file=io.StringIO(), disable=False)
    epoch_progress(bar, budget=None)({"epoch": 4, "epochs": 40, "train_loss": None, "val_loss": 1.5, "elapsed": 2.0})
    assert " 4/40 " in str(bar) and "train=—" in str(bar)


def test_a_bar_is_redrawn_while_its_work_gives_no_update(monkeypatch):
    from workbench import progress

    monkeypatch.setattr(progress, "REFRESH_S", 0.02)
    sink = io.StringIO()
    bar = progress.LiveBar(total=3, file=sink, disable=False, mininterval=0)
    try:
        for _ in range(500):                        # a condition, not a clock: wait for three redraws
            if sink.getvalue().count("\r") >= 4:
                break
            time.sleep(0.02)
    finally:
        bar.close()
    assert sink.getvalue().count("\r") >= 4
    assert not bar._ticker.is_alive()


def test_a_forked_child_killed_while_holding_the_bar_lock_does_not_block_the_next_bar():
    """A writer forked and killed by kill -9 inside a bar's critical section (tqdm's default lock is a
    multiprocessing lock the child shares) once left the parent waiting forever for its next bar."""
    import os
    import signal
    import threading

    from workbench import progress

    progress.progress_bar(1, "before the fork", False).close()    # the parent's lock exists before the fork
    ready, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child takes the lock and never lets go
        try:
            progress.LiveBar.get_lock().acquire()
            os.write(writer, b"x")
            time.sleep(60)
        finally:
            os._exit(0)
    os.read(ready, 1)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    made = []
    worker = threading.Thread(target=lambda: made.append(progress.progress_bar(3, "after a kill", False)),
                              daemon=True)
    worker.start()
    worker.join(10)
    assert made, "the parent's next bar waited for a lock held by a dead child"
    made[0].close()


def test_the_package_exports_its_api_and_nothing_else():
    code = ("import sys, workbench as wb; names = set(dir(wb)); "
            "print(sorted(names ^ set(wb.__all__)), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[]", "False"]           # dir() is __all__, and importing loads no torch
    assert not {"Any", "importlib", "sys", "types", "annotations"} & set(dir(wb))
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name in set(re.findall(r"\bwb\.([A-Za-z_]+)", readme)):
        assert name in wb.__all__ and getattr(wb, name) is not None, name
    from workbench.learners import LEARNERS         # the module loads, yet wb.learners stays the function

    assert sys.modules["workbench.learners"].LEARNERS is LEARNERS
    assert wb.learners() == sorted(LEARNERS) and callable(wb.learners)


def test_fit_and_evaluate_a_time_split_series_by_horizon(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    y = np.zeros(90)
    for k in range(1, 90):
        y[k] = 0.8 * y[k - 1] + rng.normal()
    ds = wb.split_time(wb.from_numpy(y[None, :, None], times=np.arange(90.0), variables=["y"]), val=0.15, test=0.2)
    wb.save(ds, tmp_path / "series.h5")
    fitted = cli("fit", str(tmp_path / "series.h5"), "-o", str(tmp_path / "run"), "-l", "theta", "-q")
    assert "saved" in fitted.stdout and "Traceback" not in fitted.stderr
    scores = cli("evaluate", str(tmp_path / "run"), "--data", str(tmp_path / "series.h5"), "--horizons", "1,3",
                 "--refit", "each", "-o", str(tmp_path / "scores.h5"))
    assert "rolling origins over the test period (refit: each)" in scores.stdout
    saved = xr.open_dataset(tmp_path / "scores.h5", engine="h5netcdf")
    assert list(saved["horizon"].values) == [1, 3] and saved.attrs["refit"] == "each"
    for h, rmse in zip((1, 3), saved["rmse"].values[:, 0]):
        assert re.search(rf"│\s+{h} │ y\s+│\s+{rmse:.4g} │", scores.stdout)
    bad = cli("evaluate", str(tmp_path / "run"), "--data", str(tmp_path / "series.h5"), "--horizons", "1,x",
              check=False)
    assert bad.returncode != 0 and "--horizons expects comma-separated whole numbers" in bad.stderr + bad.stdout

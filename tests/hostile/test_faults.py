"""Faults around writes: kill -9 at random points of `wb.save` and `workbench generate --out`, and a full disk.

After every kill the target must load and hold one complete dataset (the old or a new one), a
reader running during the writes must never fail, and the next write must remove the temporaries
the killed writer left. A full disk (a 1 MiB tmpfs, root only) must give a StorageError naming the
path and the space needed, keep the old file byte for byte, leave no temporary and never crash.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest

import workbench as wb
from hostile_harness import run_isolated, temporaries
from workbench.errors import StorageError

KILLS = 25


def _datasets() -> list:
    return [wb.simulate("lorenz63", n=n, t_end=2.0, dt=0.01, seed=seed) for n, seed in ((8, 0), (24, 1))]


def _writer_loop(write) -> None:
    """Child body: write the two versions alternately until killed."""
    with open(os.devnull, "w") as sink, redirect_stdout(sink), redirect_stderr(sink):
        k = 0
        while True:
            write(k % 2)
            k += 1


def _kill_during_writes(target: Path, write, versions: list, seed: int) -> dict:
    """Fork a writer, let it run a random time while this process reads the target, kill -9 it; repeat."""
    rng = random.Random(seed)
    states = [v["state"].values for v in versions]
    reads, leftovers = 0, 0
    for _ in range(KILLS):
        pid = os.fork()
        if pid == 0:  # the writer
            try:
                _writer_loop(write)
            finally:
                os._exit(0)
        deadline = time.monotonic() + rng.uniform(0.05, 0.6)
        while time.monotonic() < deadline:
            if target.exists():
                loaded = wb.load(target)  # a concurrent reader must never fail
                assert any(np.array_equal(loaded["state"].values, s) for s in states)
                reads += 1
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        if target.exists():
            loaded = wb.load(target)
            assert any(np.array_equal(loaded["state"].values, s) for s in states)
        leftovers += len(temporaries(target.parent))
    return {"reads": reads, "leftovers": leftovers}


def test_save_survives_kill_9_at_random_points(tmp_path):
    versions = _datasets()
    target = tmp_path / "data.h5"
    wb.save(versions[0], target)  # the old file every kill must leave intact or replace completely
    seen = _kill_during_writes(target, lambda k: wb.save(versions[k], target), versions, seed=0)
    assert seen["reads"] > 0
    wb.save(versions[0], target)
    assert temporaries(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.h5"]


def test_generate_out_survives_kill_9_at_random_points(tmp_path):
    from workbench.cli import main

    target = tmp_path / "gen.h5"
    args = ["generate", "lorenz63", "--t-end", "2", "--dt", "0.01", "--out", str(target), "-q"]
    versions = [wb.simulate("lorenz63", n=n, t_end=2.0, dt=0.01, seed=seed) for n, seed in ((8, 0), (24, 1))]

    def write(k: int) -> None:
        try:
            main(args + ["--n", ("8", "24")[k], "--seed", str(k)])
        except SystemExit:
            pass

    write(0)
    seen = _kill_during_writes(target, write, versions, seed=1)
    assert seen["reads"] > 0
    write(0)
    assert temporaries(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen.h5"]


def test_stale_temporaries_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    target = tmp_path / "d.h5"
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        dead = tmp_path / f".d.h5.{2**22 + 12345}.dead.tmp"  # above the default pid_max: never alive
        live = tmp_path / f".d.h5.{sleeper.pid}.live.tmp"
        other = tmp_path / f".e.h5.{2**22 + 12345}.dead.tmp"  # another target's: not ours to touch
        for path in (dead, live, other):
            path.write_bytes(b"x" * 1000)
        wb.save(wb.simulate("lorenz63", n=2, t_end=0.2, dt=0.1), target)
        assert not dead.exists() and live.exists() and other.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_new_files_respect_the_umask_and_replaced_files_keep_their_mode(tmp_path):
    ds = wb.simulate("lorenz63", n=2, t_end=0.2, dt=0.1)
    old = os.umask(0o027)
    try:
        assert oct(wb.save(ds, tmp_path / "a.h5").stat().st_mode & 0o777) == oct(0o640)
    finally:
        os.umask(old)
    os.chmod(tmp_path / "a.h5", 0o600)
    assert oct(wb.save(ds, tmp_path / "a.h5").stat().st_mode & 0o777) == oct(0o600)


@pytest.fixture
def full_disk():
    """A 1 MiB tmpfs (needs root and a kernel that allows mounts)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("the disk-full test mounts a 1 MiB tmpfs, which needs root")
    folder = Path(tempfile.mkdtemp(prefix="wb-full-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        folder.rmdir()
        pytest.skip(f"could not mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)
        folder.rmdir()


def _save_big(target: Path) -> None:
    wb.save(wb.simulate("lorenz63", n=64, t_end=20.0, dt=0.01, seed=2), target)


def test_full_disk_names_the_path_and_keeps_the_old_file(full_disk):
    target = full_disk / "data.h5"
    wb.save(wb.simulate("lorenz63", n=2, t_end=1.0, dt=0.1), target)
    before = target.read_bytes()
    outcome = run_isolated(_save_big, target)
    assert outcome.status == "raised" and "StorageError" in outcome.family, outcome
    assert "disk is full" in outcome.message and str(target) in outcome.message and "MiB" in outcome.message
    assert target.read_bytes() == before
    assert temporaries(full_disk) == [] and [p.name for p in full_disk.iterdir()] == ["data.h5"]


def test_full_disk_in_generate_is_one_error_line_not_a_segfault(full_disk):
    from workbench.cli import main

    target = full_disk / "gen.h5"
    outcome = run_isolated(main, ["generate", "lorenz63", "--n", "64", "--t-end", "20", "--dt", "0.01",
                                  "--out", str(target), "-q"])
    assert outcome.status == "exited" and outcome.exit_code == 2, outcome
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1 and "disk is full" in lines[0] and str(target) in lines[0]
    assert list(full_disk.iterdir()) == []


def test_storage_error_is_an_oserror_and_a_workbench_error(tmp_path):
    with pytest.raises(StorageError) as info:
        wb.save(wb.simulate("lorenz63", n=2, t_end=0.2, dt=0.1), tmp_path)
    assert isinstance(info.value, OSError) and isinstance(info.value, wb.WorkbenchError)

"""kill -9 at random points of `workbench fit --out`, then load and resume: the run folder always
loads, a concurrent reader never fails, and the resumed run ends with exactly the weights and
history of an uninterrupted one (CPU, epoch-count run)."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import torch

import workbench as wb
from workbench.training.runs import has_run

KILLS = 25 if os.environ.get("CI") else 8
EPOCHS = 40
OPTIONS = {"epochs": EPOCHS, "batch_size": 16, "window": 8, "seed": 0}  # the CLI's other defaults


def _command(data, run):
    return [sys.executable, "-m", "workbench", "fit", str(data), "--out", str(run), "--learner", "resnet",
            "--epochs", str(EPOCHS), "--batch-size", "16", "--window", "8", "--option", "hidden=16",
            "--resume", "--quiet"]


def test_kill_nine_during_fit_never_loses_the_run(tmp_path):
    ds = wb.simulate("van_der_pol", n=8, t_end=4.0, dt=0.1, seed=0)
    wb.save(ds, tmp_path / "data.h5")
    reference = wb.fit(ds, "resnet", hidden=16, **OPTIONS)
    run = tmp_path / "run"
    env = {**os.environ, "WORKBENCH_THREADS": "1", "OMP_NUM_THREADS": "1"}
    failures: list[str] = []
    reads = 0
    stop = threading.Event()

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            if has_run(run):
                try:
                    wb.load_model(run)
                    reads += 1
                except Exception as exc:  # any failure of a reader is a defect
                    failures.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.01)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    rng = random.Random(0)
    kills = 0
    try:
        while True:
            process = subprocess.Popen(_command(tmp_path / "data.h5", run), env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if kills < KILLS:
                before = wb.load_model(run).history[-1]["epoch"] if has_run(run) else -1
                deadline = time.monotonic() + 120
                # wait until this process has saved at least one new epoch, then kill it at a random moment
                while process.poll() is None and time.monotonic() < deadline:
                    if has_run(run) and wb.load_model(run).history[-1]["epoch"] > before:
                        break
                    time.sleep(0.02)
                time.sleep(rng.uniform(0.0, 0.3))
                if process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                    process.wait()
                    kills += 1
                    assert wb.load_model(run).history  # loads after every kill
                    continue
            _, err = process.communicate(timeout=300)
            assert process.returncode == 0, err.decode()
            break
    finally:
        stop.set()
        thread.join()
    assert kills >= min(KILLS, 5)
    assert not failures, failures[:3]
    assert reads > 0
    resumed = wb.load_model(run)
    assert [h["epoch"] for h in resumed.history] == [h["epoch"] for h in reference.history]
    for key, value in reference.learner.state_dict().items():
        torch.testing.assert_close(resumed.learner.state_dict()[key], value, rtol=0, atol=0, msg=key)
    np.testing.assert_array_equal([h["val_loss"] for h in resumed.history], [h["val_loss"] for h in reference.history])

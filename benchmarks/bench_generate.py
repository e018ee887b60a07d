"""Ground-truth generation speed and per-trajectory accuracy: workbench vs a scipy loop.

256 Lorenz-63 trajectories, 2,001 samples on [0, 20]. Errors are the max over trajectories of the
max abs error on t <= 2 (about two Lyapunov times) against scipy DOP853 at rtol=atol=1e-12.

    python benchmarks/bench_generate.py [--n 256] [--threads 1]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torchdiffeq
from scipy.integrate import solve_ivp

import workbench as wb


def lorenz_numpy(t, y, sigma=10.0, rho=28.0, beta=8.0 / 3.0):
    return np.array([sigma * (y[1] - y[0]), y[0] * (rho - y[2]) - y[1], y[0] * y[1] - beta * y[2]])


def scipy_loop(x0: np.ndarray, times: np.ndarray, tol: float) -> np.ndarray:
    return np.stack([solve_ivp(lorenz_numpy, (times[0], times[-1]), x, method="DOP853", t_eval=times,
                               rtol=tol, atol=tol).y.T for x in x0])


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    times = np.linspace(0.0, 20.0, 2001)
    early = times <= 2.0
    x0 = wb.simulate("lorenz63", n=args.n, times=[0.0], seed=0, split=None).state.values[:, 0]
    reference, ref_time = timed(lambda: scipy_loop(x0, times, 1e-12))
    rows = [("scipy DOP853 loop, tol 1e-12 (reference)", ref_time, 0.0)]

    def error(states: np.ndarray) -> float:
        return float(np.abs(states[:, early] - reference[:, early]).max())

    for tol in (1e-7, 1e-8, 1e-10):
        out, sec = timed(lambda: wb.simulate("lorenz63", n=args.n, times=times, x0=x0, rtol=tol, atol=tol,
                                            split=None).state.values)
        rows.append((f"workbench.simulate dop853, tol {tol:g}", sec, error(out)))
    for tol in (1e-8, 1e-9, 1e-10):
        out, sec = timed(lambda: scipy_loop(x0, times, tol))
        rows.append((f"scipy DOP853 loop, tol {tol:g}", sec, error(out)))

    def lorenz_torch(t, y):
        x, yy, z = y.unbind(-1)
        return torch.stack([10 * (yy - x), x * (28 - z) - yy, x * yy - 8 / 3 * z], -1)

    y0 = torch.from_numpy(x0)
    out, sec = timed(lambda: torchdiffeq.odeint(lorenz_torch, y0, torch.from_numpy(times), method="dopri8",
                                                rtol=1e-10, atol=1e-10).transpose(0, 1).numpy())
    rows.append(("torchdiffeq dopri8 batched (shared step), tol 1e-10", sec, error(out)))

    print(f"\n{args.n} Lorenz-63 trajectories, {len(times)} samples on [0, 20], torch threads={args.threads}\n")
    print(f"| method | time (s) | max error, t <= 2 |\n|---|---:|---:|")
    for name, sec, err in rows:
        print(f"| {name} | {sec:.2f} | {err:.1e} |")


if __name__ == "__main__":
    main()

"""Largest Lyapunov exponents estimated from the generator, beside the catalog's stored values.

Two-trajectory renormalisation (Benettin et al. 1980): a reference and a perturbed copy, distance
``d0`` apart, are integrated together by the workbench's batched solver; every ``tau`` time units
the log stretch is accumulated and the perturbation rescaled to ``d0``. Several initial conditions
on the attractor run in one batch; the table shows their mean and spread.

    python benchmarks/bench_lyapunov.py [--systems lorenz63,rossler] [--time 1000]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import workbench as wb
from workbench.solvers import integrate_batch

SETTINGS = {"lorenz63": {"tau": 0.5, "time": 1000.0}, "rossler": {"tau": 2.0, "time": 5000.0},
            "lorenz96": {"tau": 0.5, "time": 500.0}, "lorenz84": {"tau": 1.0, "time": 2000.0},
            "hindmarsh_rose": {"tau": 5.0, "time": 10000.0}, "thomas": {"tau": 5.0, "time": 10000.0}}


def largest_exponent(name: str, total: float, tau: float, n_ic: int = 8, d0: float = 1e-8,
                     transient: float = 50.0, tol: float = 1e-10) -> np.ndarray:
    """Per-initial-condition estimates of the largest Lyapunov exponent of a catalog system."""
    s = wb.system(name)
    p = {k: torch.tensor(v, dtype=torch.float64) for k, v in s.defaults.items()}

    def field(t, y):
        return s.drift(t, y, p)

    start = wb.simulate(name, n=n_ic, times=[0.0, transient], seed=1, split=None).state.values[:, -1]
    ref = torch.from_numpy(start)
    gen = torch.Generator().manual_seed(0)
    direction = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    pert = ref + d0 * direction / direction.norm(dim=-1, keepdim=True)
    log_stretch = torch.zeros(n_ic, dtype=torch.float64)
    segments = int(round(total / tau))
    times = torch.tensor([0.0, tau], dtype=torch.float64)
    for _ in range(segments):
        out, _ = integrate_batch(field, torch.cat([ref, pert]), times, rtol=tol, atol=tol)
        ref, pert = out[:n_ic, -1], out[n_ic:, -1]
        dist = (pert - ref).norm(dim=-1)
        log_stretch += torch.log(dist / d0)
        pert = ref + (pert - ref) * (d0 / dist)[:, None]
    return (log_stretch / (segments * tau)).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--systems", default="lorenz63,rossler")
    parser.add_argument("--time", type=float, default=None, help="Override the averaging time.")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| system | stored max exponent | estimated (mean +- std over 8 ICs) | averaging time | wall (s) | stored value's source |")
    print("|---|---:|---:|---:|---:|---|")
    for name in args.systems.split(","):
        s = wb.system(name)
        cfg = SETTINGS.get(name, {"tau": 1.0, "time": 1000.0})
        total = args.time or cfg["time"]
        start = time.perf_counter()
        est = largest_exponent(name, total, cfg["tau"])
        wall = time.perf_counter() - start
        stored = f"{s.lyapunov:.4f}" if s.lyapunov else "none published"
        print(f"| {name} | {stored} | {est.mean():.4f} +- {est.std():.4f} | {total:g} | {wall:.0f} | {s.facts_source} |")


if __name__ == "__main__":
    main()

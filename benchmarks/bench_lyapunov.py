"""Largest Lyapunov exponents estimated from the generator, beside the catalog's stored values.

Two-trajectory renormalisation (Benettin et al. 1980, ``workbench.attractor.system_lyapunov``, the
same estimator ``evaluate`` runs on learned models): a reference and a perturbed copy, distance
``d0`` apart, are integrated together by the workbench's batched solver; every ``tau`` time units
the log stretch is accumulated and the perturbation rescaled to ``d0``. Several initial conditions
on the attractor run in one batch; the table shows their mean and spread.

    python benchmarks/bench_lyapunov.py [--systems lorenz63,rossler] [--time 1000]
"""
from __future__ import annotations

import argparse
import time

import torch

import workbench as wb
from workbench.attractor import system_lyapunov

SETTINGS = {"lorenz63": {"tau": 0.5, "time": 1000.0}, "rossler": {"tau": 2.0, "time": 5000.0},
            "lorenz96": {"tau": 0.5, "time": 500.0}, "lorenz84": {"tau": 1.0, "time": 2000.0},
            "hindmarsh_rose": {"tau": 5.0, "time": 10000.0}, "thomas": {"tau": 5.0, "time": 10000.0}}


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
        est = system_lyapunov(name, total, cfg["tau"])
        wall = time.perf_counter() - start
        stored = f"{s.lyapunov:.4f}" if s.lyapunov else "none published"
        print(f"| {name} | {stored} | {est.mean():.4f} +- {est.std():.4f} | {total:g} | {wall:.0f} | {s.facts_source} |")


if __name__ == "__main__":
    main()

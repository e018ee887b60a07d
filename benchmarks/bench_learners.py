"""Learner accuracy benchmarks (CPU, stated time budgets), printed as Markdown tables.

1. ``node`` on clean ``lorenz63``: valid prediction time (normalised error < 0.4) over 64 held-out
   initial conditions on the attractor, in Lyapunov times (target: median >= 3 within 10 CPU-minutes).
2. HNN vs an unconstrained MLP vector field (``node`` with derivative matching) on ``mass_spring``
   and ``pendulum`` with the HNN paper's settings: 25 training trajectories on [0, 3] with
   observation noise std 0.05 (20 fit, 5 validate), 25 test trajectories; energy MSE along test
   rollouts from clean initial states, against the paper's numbers.
3. ``nsde`` on ``ornstein_uhlenbeck`` and ``double_well``: learned diffusion vs truth over the
   data's range, and coverage of the 90% prediction interval on held-out paths.
4. ``chaos``: every deterministic learner on clean ``lorenz63`` (the data of part 1; the 64 held-out
   trajectories on [0, 16]): VPT in Lyapunov times, the learned largest Lyapunov exponent beside the
   true 0.9056, attractor W1 / Hellinger / spectrum error and correlation dimension of long free
   runs (``workbench.evaluation.climate.attractor_scores``). Closed-form learners fit in seconds; gradient
   learners get ``--budget`` seconds each (``--learners`` picks the rows).

    python benchmarks/bench_learners.py [--part lorenz,hnn,nsde,chaos] [--budget 480]
        [--learners sindy,nvar,nvar_long,esn,node]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import workbench as wb
from workbench.evaluation import metrics
from workbench.evaluation.evaluate import summary
from workbench.learners import get_learner

# Greydanus et al. 2019, Table 1 (energy MSE along test rollouts; baseline = MLP vector field)
PAPER_ENERGY_MSE = {"mass_spring": {"mlp": 1.70e-1, "hnn": 3.84e-4}, "pendulum": {"mlp": 4.2e-2, "hnn": 2.49e-2}}


def lorenz_data(t_test: float = 10.0):
    """64 training trajectories on [0, 20] (58 fit, 6 validate) and 64 test trajectories on [0, t_test],
    all starting on the attractor (after a spin-up of 20 time units), as in the VPT literature."""
    on_attractor = lambda seed, n: wb.simulate("lorenz63", n=n, times=[0.0, 20.0], seed=seed,  # noqa: E731
                                               split=None).state.values[:, -1]
    train = wb.simulate("lorenz63", n=64, t_end=20.0, dt=0.01, x0=on_attractor(0, 64), split=(0.9, 0.1, 0.0))
    test = wb.simulate("lorenz63", n=64, t_end=t_test, dt=0.01, x0=on_attractor(1, 64), split=(0.0, 0.0, 1.0))
    return train, test


def table_head(title: str, columns: list[str], text: int) -> None:
    """Print a Markdown table's title, header and alignment row (the first ``text`` columns left-aligned)."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" if i < text else "---:" for i in range(len(columns))) + "|")


def lorenz(budget: float) -> None:
    train, test = lorenz_data()
    start = time.perf_counter()
    model = wb.fit(train, "node", time_budget=budget, hidden=128, depth=2, window=32, batch_size=128,
                   lr=3e-3, patience=10_000, seed=0)
    fit_time = time.perf_counter() - start
    scores = wb.evaluate(model, test)
    vpt = scores["vpt"].values * wb.system("lorenz63").lyapunov
    rmse = scores["rmse"]
    table_head("node on lorenz63 (clean data, 64 held-out initial conditions)",
               ["fit time (s)", "epochs", "VPT median (Lyapunov times)", "VPT 25-75%", "RMSE t=0.5", "RMSE t=1",
                "RMSE t=2"], text=0)
    at = lambda t: float(rmse.sel(time=t, method="nearest"))  # noqa: E731
    print(f"| {fit_time:.0f} | {model.history[-1]['epoch']} | {np.median(vpt):.2f} | "
          f"{np.percentile(vpt, 25):.2f}-{np.percentile(vpt, 75):.2f} | {at(0.5):.3g} | {at(1.0):.3g} | {at(2.0):.3g} |")


def hnn(budget: float) -> None:
    table_head("HNN vs MLP vector field (HNN paper settings: 25 + 25 trajectories on [0, 3], noise 0.05)",
               ["system", "model", "fit time (s)", "energy MSE (ours)", "energy MSE (paper)",
                "vector-field rel. error"], text=2)
    for name in ("mass_spring", "pendulum"):
        # 25 noisy training trajectories; the 25 test rollouts start from clean initial states (a noisy
        # start alone would put the energy error at ~(2 |x| 0.05)^2, hiding the learned dynamics)
        ds = wb.simulate(name, n=25, t_end=3.0, dt=0.1, seed=0, obs_noise=0.05, derivative=True, split=(0.8, 0.2, 0.0))
        test = wb.simulate(name, n=25, t_end=3.0, dt=0.1, seed=1, split=(0.0, 0.0, 1.0))
        for label, learner, extra in (("mlp", "node", {"objective": "derivative"}), ("hnn", "hnn", {})):
            start = time.perf_counter()
            model = wb.fit(ds, learner, time_budget=budget, hidden=200, window=8, seed=0, patience=10 ** 6, **extra)
            fit_time = time.perf_counter() - start
            scores = summary(wb.evaluate(model, test))
            print(f"| {name} | {label.upper()} | {fit_time:.0f} | {scores['energy_mse']:.3g} | "
                  f"{PAPER_ENERGY_MSE[name][label]:.3g} | {scores['vector_field_error']:.3g} |")


def nsde(budget: float) -> None:
    table_head("nsde (Euler-Maruyama likelihood): diffusion and calibration on held-out paths",
               ["system", "fit time (s)", "max rel. diffusion error over data range", "coverage 90%", "coverage 50%",
                "CRPS / oracle"], text=1)
    for name in ("ornstein_uhlenbeck", "double_well"):
        s = wb.system(name)
        ds = wb.simulate(name, n=200, seed=0)
        start = time.perf_counter()
        model = wb.fit(ds, "nsde", time_budget=budget, seed=0)
        fit_time = time.perf_counter() - start
        train = wb.select_split(ds, "train")["state"].values.reshape(-1, 1)
        grid = np.linspace(np.quantile(train, 0.02), np.quantile(train, 0.98), 50)[:, None]
        import torch

        p = {k: torch.tensor(v, dtype=torch.float64) for k, v in s.defaults.items()}
        true_g = s.diffusion(torch.zeros(len(grid)), torch.from_numpy(grid), p).numpy()
        rel = np.abs(model.diffusion(grid) - true_g) / np.abs(true_g)
        scores = wb.evaluate(model, ds, n_samples=200)
        cov90 = float(metrics.coverage(model.predict(wb.select_split(ds, "test"), n_samples=200, seed=3),
                                       wb.select_split(ds, "test"), 0.9, over="all"))
        print(f"| {name} | {fit_time:.0f} | {rel.max():.3f} | {cov90:.3f} | {float(scores['coverage_50'].mean()):.3f} | "
              f"{float(scores['crps_relative']):.3f} |")


# options of each chaos row; gradient learners also get the time budget
CHAOS_ROWS = {
    "sindy": ("sindy", {"precision": "float64"}),
    "nvar": ("nvar", {}),  # Gauthier et al. 2021: two delays one sample apart, quadratic monomials
    "nvar_long": ("nvar", {"delays": 3, "skip": 2}),  # a delay span of 4 samples (0.04 time units)
    "esn": ("esn", {}),
    "node": ("node", {"hidden": 128, "depth": 2, "window": 32, "batch_size": 128, "lr": 3e-3, "patience": 10_000}),
    "anode": ("anode", {"hidden": 128, "depth": 2, "window": 32, "batch_size": 128, "lr": 3e-3, "patience": 10_000}),
}


def chaos(budget: float, rows: str = "sindy,nvar,nvar_long,esn") -> None:
    train, test = lorenz_data(t_test=16.0)
    print(f"\n### Chaos: lorenz63 (clean, 64 held-out ICs on the attractor), gradient budget {budget:.0f} s\n")
    print("| learner | fit (s) | VPT median (Lyapunov times) | VPT 25-75% | Lyapunov exponent learned (true 0.9056) "
          "| attractor W1 / std | Hellinger | spectrum error | corr. dimension learned / true | evaluate (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows.split(","):
        learner, options = CHAOS_ROWS[row]
        extra = {} if get_learner(learner).supports.training == "closed_form" else {"time_budget": budget}
        start = time.perf_counter()
        model = wb.fit(train, learner, seed=0, **options, **extra)
        fit_time = time.perf_counter() - start
        start = time.perf_counter()
        scores = wb.evaluate(model, test)
        eval_time = time.perf_counter() - start
        vpt = scores["vpt"].values * wb.system("lorenz63").lyapunov
        s = summary(scores)
        print(f"| {row} | {fit_time:.0f} | {np.median(vpt):.2f} | {np.percentile(vpt, 25):.2f}-{np.percentile(vpt, 75):.2f} | "
              f"{s['lyapunov_learned']:.3f} | {s['attractor_w1']:.3f} | {s['attractor_hellinger']:.3f} | "
              f"{s['spectrum_error']:.3f} | {s['correlation_dimension_learned']:.2f} / "
              f"{s['correlation_dimension_true']:.2f} | {eval_time:.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--part", default="lorenz,hnn,nsde")
    parser.add_argument("--budget", type=float, default=None, help="Seconds per fit (default per part).")
    parser.add_argument("--learners", default="sindy,nvar,nvar_long,esn", help=f"chaos rows: {','.join(CHAOS_ROWS)}")
    args = parser.parse_args()
    parts = {"lorenz": (lorenz, 540.0), "hnn": (hnn, 60.0), "nsde": (nsde, 90.0), "chaos": (chaos, 540.0)}
    for part in args.part.split(","):
        run, default_budget = parts[part]
        if part == "chaos":
            chaos(args.budget or default_budget, args.learners)
        else:
            run(args.budget or default_budget)


if __name__ == "__main__":
    main()

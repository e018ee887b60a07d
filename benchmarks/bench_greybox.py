"""Grey-box learners measured against their targets (issue 24), printing tables with the load average.

(a) ``mechanistic`` on ``--reps`` replications of noisy forced Duffing and Lotka-Volterra data: 95%
    interval coverage of the truth (target 0.90-0.98), median relative error (target < 2%), and an
    unidentifiable product of two parameters reported as such.
(b) the same problems side by side with scipy's ``least_squares`` around single-shooting
    ``solve_ivp`` (DOP853): estimates and wall time on 1 and on 64 trajectories; Lorenz-63 from 5
    Lyapunov times where single shooting from the same start fails.
(c) the UDE case: Lotka-Volterra of Rackauckas et al. 2020 (catalog names alpha 1.3, beta 0.9,
    delta 0.8, gamma 1.8: prey' = 1.3 x - 0.9 x y, predator' = 0.8 x y - 1.8 y), one trajectory on
    [0, 5] with 21 samples and 5% noise, known part the prey growth and the predator death; the
    residual's SINDy equations and the forecast to t = 10 beside a neural ODE on the same data.

Run: ``python benchmarks/bench_greybox.py [--reps 100] [--parts abc] [--ude-epochs 150]``.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
from scipy.integrate import solve_ivp
from scipy.optimize import least_squares

import workbench as wb
from systems import Param, System

LOTKA = {"alpha": 1.3, "beta": 0.9, "delta": 0.8, "gamma": 1.8}
DUFFING = {"delta": 0.3, "alpha": -1.0, "beta": 1.0, "amplitude": 0.5, "omega": 1.2}
X0_PAPER = [0.44249296, 4.6280594]


def _load() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def _table(title: str, header: list[str], rows: list[list[object]]) -> None:
    print(f"\n{title}   ({_load()})")
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))


def _problem(name: str, seed: int, n: int = 3) -> "wb.xr.Dataset":
    if name == "lotka_volterra":
        return wb.simulate(name, n=n, t_end=5.0, dt=0.25, seed=seed, params=LOTKA, obs_noise=0.05,
                           obs_noise_kind="relative", split=None)
    return wb.simulate(name, n=n, t_end=10.0, dt=0.25, seed=seed, params=DUFFING, obs_noise=0.05,
                       obs_noise_kind="relative", split=None)


def part_a(reps: int) -> None:
    rows = []
    for name, truth, estimate in (("lotka_volterra", LOTKA, "all"),
                                  ("forced_duffing", DUFFING, ["delta", "alpha", "beta"])):
        covered, errors, seconds = [], [], []
        for seed in range(reps):
            ds = _problem(name, seed)
            started = time.perf_counter()
            table = wb.fit(ds, "mechanistic", system=name, estimate=estimate, precision="float64").parameters()
            seconds.append(time.perf_counter() - started)
            true = np.array([truth[str(p)] for p in table["parameter"].values])
            covered.append((table["ci_low"].values <= true) & (true <= table["ci_high"].values))
            errors.append(np.abs(table["estimate"].values - true) / np.abs(true))
        covered, errors = np.array(covered), np.array(errors)
        rows.append([name, reps, f"{covered.mean():.3f}", " ".join(f"{c:.2f}" for c in covered.mean(0)),
                     f"{100 * np.median(errors):.2f}%", f"{np.median(seconds):.2f}"])
    _table("(a) mechanistic: 95% interval coverage and median relative error",
           ["system", "reps", "coverage", "per parameter", "median rel err", "median s/fit"], rows)
    decay = System(name="decay_product_bench", kind="ode", state_names=("x",),
                   drift=lambda t, x, p: -p["a"] * p["b"] * x,
                   params={"a": Param(1.0, 0.1, 5.0, "rate"), "b": Param(0.5, 0.1, 5.0, "gain")},
                   x0_low=(1.0,), x0_high=(2.0,), t_end=3.0, dt=0.1, reference="bench", equations=r"\dot x = -a b x")
    ds = wb.simulate(decay, n=3, seed=0, params={"a": 2.0, "b": 0.4}, obs_noise=0.02, split=None)
    table = wb.fit(ds, "mechanistic", system=decay, precision="float64").parameters()
    print(f"unidentifiable pair (x' = -a b x): identifiable={table['identifiable'].values.tolist()}, "
          f"ci_low={table['ci_low'].values.tolist()}, identifiable combination: "
          f"{table.attrs['identifiable_combinations']!r}")


def _scipy_lotka(ds: "wb.xr.Dataset", start: np.ndarray) -> np.ndarray:
    """solve_ivp (DOP853) inside least_squares, one solve per trajectory, same weights as mechanistic."""
    y, t = ds["state"].values, ds["time"].values
    sigma = y.reshape(-1, y.shape[-1]).std(0)

    def residuals(u: np.ndarray) -> np.ndarray:
        a, b, d, g = u[:4]
        out = []
        for i, x0 in enumerate(u[4:].reshape(-1, 2)):
            sol = solve_ivp(lambda _, x: [a * x[0] - b * x[0] * x[1], d * x[0] * x[1] - g * x[1]], (t[0], t[-1]),
                            x0, t_eval=t, method="DOP853", rtol=1e-8, atol=1e-8)
            fitted = sol.y.T if sol.success else np.full_like(y[i], 1e6)
            out.append(((fitted - y[i]) / sigma).ravel())
        return np.concatenate(out)

    return least_squares(residuals, np.concatenate([start, y[:, 0].ravel()]), method="trf").x[:4]


def _scipy_lorenz(ds: "wb.xr.Dataset", start: np.ndarray) -> np.ndarray:
    y, t = ds["state"].values, ds["time"].values
    sigma = y.reshape(-1, 3).std(0)

    def residuals(u: np.ndarray) -> np.ndarray:
        s, r, b = u[:3]
        out = []
        for i, x0 in enumerate(u[3:].reshape(-1, 3)):
            sol = solve_ivp(lambda _, x: [s * (x[1] - x[0]), x[0] * (r - x[2]) - x[1], x[0] * x[1] - b * x[2]],
                            (t[0], t[-1]), x0, t_eval=t, method="DOP853", rtol=1e-8, atol=1e-8)
            fitted = sol.y.T if sol.success and sol.y.shape[1] == len(t) else np.full_like(y[i], 1e6)
            out.append(((fitted - y[i]) / sigma).ravel())
        return np.concatenate(out)

    return least_squares(residuals, np.concatenate([start, y[:, 0].ravel()]), method="trf").x[:3]


def part_b(sizes: list[int]) -> None:
    rows = []
    names = ["alpha", "beta", "delta", "gamma"]
    truth = np.array([LOTKA[k] for k in names])
    start = {"alpha": 1.0, "beta": 0.7, "delta": 1.0, "gamma": 1.5}
    for n in sizes:
        ds = _problem("lotka_volterra", 0, n=n)
        started = time.perf_counter()
        ours = wb.fit(ds, "mechanistic", system="lotka_volterra", start=start, precision="float64").parameters()
        t_ours = time.perf_counter() - started
        started = time.perf_counter()
        ref = _scipy_lotka(ds, np.array([start[k] for k in names]))
        t_ref = time.perf_counter() - started
        err_ours = np.abs(ours["estimate"].values - truth) / truth
        err_ref = np.abs(ref - truth) / truth
        rows.append([f"lotka_volterra n={n}", f"{100 * err_ours.max():.2f}%", f"{t_ours:.2f}",
                     f"{100 * err_ref.max():.2f}%", f"{t_ref:.2f}", f"{t_ref / t_ours:.1f}x"])
    lyapunov = 0.9056
    lorenz = {"sigma": 10.0, "rho": 28.0, "beta": 8.0 / 3.0}
    ds = wb.simulate("lorenz63", n=1, t_end=round(5.0 / lyapunov / 0.02) * 0.02, dt=0.02, seed=3, obs_noise=0.01,
                     obs_noise_kind="relative", split=None)
    guess = {"sigma": 8.0, "rho": 25.0, "beta": 2.2}
    true = np.array([lorenz[k] for k in ("sigma", "rho", "beta")])
    started = time.perf_counter()
    ours = wb.fit(ds, "mechanistic", system="lorenz63", start=guess, precision="float64").parameters()
    t_ours = time.perf_counter() - started
    est = np.array([float(ours["estimate"].sel(parameter=k)) for k in ("sigma", "rho", "beta")])
    started = time.perf_counter()
    ref = _scipy_lorenz(ds, np.array(list(guess.values())))
    t_ref = time.perf_counter() - started
    rows.append(["lorenz63 5 Lyapunov times", f"{100 * (np.abs(est - true) / true).max():.2f}%", f"{t_ours:.2f}",
                 f"{100 * (np.abs(ref - true) / true).max():.2f}%", f"{t_ref:.2f}", f"{t_ref / t_ours:.1f}x"])
    _table("(b) mechanistic vs scipy least_squares + solve_ivp single shooting (max relative error over parameters)",
           ["problem", "ours err", "ours s", "scipy err", "scipy s", "speed-up"], rows)


def part_c(epochs: int) -> None:
    ds = wb.simulate("lotka_volterra", n=1, t_end=5.0, dt=0.25, seed=1, params=LOTKA, x0=[X0_PAPER], obs_noise=0.05,
                     obs_noise_kind="relative", split=None)
    truth = wb.simulate("lotka_volterra", n=1, t_end=10.0, dt=0.25, params=LOTKA, x0=[X0_PAPER], split=None)
    known = {"prey": "alpha*prey", "predator": "-gamma*predator"}
    rows = []
    for label, options in (("ude (alpha, gamma held at truth)",
                            dict(learner="ude", system="lotka_volterra", known=known, estimate=[], fixed=LOTKA)),
                           ("ude (alpha, gamma estimated)",
                            dict(learner="ude", system="lotka_volterra", known=known, start={"alpha": 1.0, "gamma": 1.0},
                                 fixed={"beta": 0.9, "delta": 0.8})),
                           ("node", dict(learner="node"))):
        started = time.perf_counter()
        model = wb.fit(ds, epochs=epochs, lr=1e-2, schedule="cosine", window=8, hidden=16, substeps=1, **options)
        seconds = time.perf_counter() - started
        pred = model.predict(np.array([X0_PAPER]), truth["time"].values)["state"].values[0, 0]
        true = truth["state"].values[0]
        late = truth["time"].values > 5.0
        error = np.abs(pred[late] - true[late]).max(0) / np.abs(true).max(0)
        found = "; ".join(model.equations()) if options["learner"] == "ude" else "-"
        params = {k: round(float(v), 3) for k, v in model.learner.params().items()} if options["learner"] == "ude" \
            else "-"
        rows.append([label, f"{seconds:.0f}", " ".join(f"{100 * e:.1f}%" for e in error), params, found])
    _table("(c) UDE on one trajectory (21 samples, 5% noise) vs neural ODE: forecast error on (5, 10] as the max "
           "abs error over the truth's range (prey predator), and the residual's SINDy equations",
           ["model", "fit s", "forecast err", "constants", "equations"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=100, help="replications per system in (a)")
    parser.add_argument("--parts", default="abc", help="which parts to run")
    parser.add_argument("--sizes", default="1,64", help="trajectory counts compared with scipy in (b)")
    parser.add_argument("--ude-epochs", type=int, default=150, help="epochs of each fit in (c)")
    args = parser.parse_args()
    if "a" in args.parts:
        part_a(args.reps)
    if "b" in args.parts:
        part_b([int(n) for n in args.sizes.split(",")])
    if "c" in args.parts:
        part_c(args.ude_epochs)


if __name__ == "__main__":
    main()

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
    residual's equations and the forecast to t = 10 beside a neural ODE on the same data, then the
    same fixed recipe over ``--seeds`` noise draws: fraction passing and median coefficient errors.
(d) the recipe unchanged on a second system: a damped oscillator with its damping left out.

Run: ``python benchmarks/bench_greybox.py [--reps 100] [--parts abc] [--seeds 10] [--node-epochs 150]
[--scipy-seconds 600]``.
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Callable

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
        covered, estimates, std_errors, seconds = [], [], [], []
        for seed in range(reps):
            ds = _problem(name, seed)
            started = time.perf_counter()
            table = wb.fit(ds, "mechanistic", system=name, estimate=estimate, precision="float64").parameters()
            seconds.append(time.perf_counter() - started)
            true = np.array([truth[str(p)] for p in table["parameter"].values])
            covered.append((table["ci_low"].values <= true) & (true <= table["ci_high"].values))
            estimates.append(table["estimate"].values)
            std_errors.append(table["std_error"].values)
            if (seed + 1) % 25 == 0:  # progress of a long loop
                print(f"  {name}: {seed + 1}/{reps} fits, coverage so far {np.mean(covered):.3f}", flush=True)
        covered, estimates, std_errors = np.array(covered), np.array(estimates), np.array(std_errors)
        errors = np.abs(estimates - true) / np.abs(true)
        z = (estimates - true) / std_errors
        # the parameters' errors are strongly correlated, so the replications (not reps x parameters)
        # are the independent trials: the standard error of the coverage is the binomial one over reps
        joint = covered.all(1).mean()
        rows.append([name, reps, f"{covered.mean():.3f} +- {np.sqrt(0.95 * 0.05 / reps):.3f}", f"{joint:.2f}",
                     " ".join(f"{p}:{c:.2f}" for p, c in zip(table["parameter"].values, covered.mean(0))),
                     " ".join(f"{r:.2f}" for r in np.sqrt((z ** 2).mean(0))),
                     " ".join(f"{b:+.2f}" for b in (estimates.mean(0) - true) / estimates.std(0, ddof=1)),
                     f"{100 * np.median(errors):.2f}%", f"{np.median(seconds):.2f}"])
    _table("(a) mechanistic: 95% interval coverage (+- its binomial standard error at 0.95), median relative "
           "error; rms z = rms of (estimate - truth) / std_error (1 when the std errors are right), "
           "bias = mean error / empirical sd",
           ["system", "reps", "coverage", "all covered", "per parameter", "rms z", "bias", "median rel err",
            "median s/fit"], rows)
    decay = System(name="decay_product_bench", kind="ode", state_names=("x",),
                   drift=lambda t, x, p: -p["a"] * p["b"] * x,
                   params={"a": Param(1.0, 0.1, 5.0, "rate"), "b": Param(0.5, 0.1, 5.0, "gain")},
                   x0_low=(1.0,), x0_high=(2.0,), t_end=3.0, dt=0.1, reference="bench", equations=r"\dot x = -a b x")
    ds = wb.simulate(decay, n=3, seed=0, params={"a": 2.0, "b": 0.4}, obs_noise=0.02, split=None)
    table = wb.fit(ds, "mechanistic", system=decay, precision="float64").parameters()
    print(f"unidentifiable pair (x' = -a b x): identifiable={table['identifiable'].values.tolist()}, "
          f"ci_low={table['ci_low'].values.tolist()}, identifiable combination: "
          f"{table.attrs['identifiable_combinations']!r}")


class _Stopped(Exception):
    """scipy's fit ran past its wall-clock allowance."""


def _scipy_fit(ds: "wb.xr.Dataset", rhs: Callable[[np.ndarray, float, np.ndarray], list[float]],
               start: np.ndarray, seconds: float = float("inf")) -> tuple[np.ndarray, bool]:
    """Single shooting: ``least_squares`` (trf) over ``solve_ivp`` (DOP853, rtol = atol = 1e-8), one solve
    per trajectory, residuals over each variable's spread, the parameters and every initial state
    fitted. ``rhs(params, t, x)``. Past ``seconds`` of wall time (checked in the right-hand side: one
    solve from a wandering iterate can take minutes) it returns the best point evaluated so far.

    Returns:
        The estimated parameters and whether the fit was stopped.
    """
    y, t = ds["state"].values, ds["time"].values
    dim, k = y.shape[-1], len(start)
    sigma = y.reshape(-1, dim).std(0)
    deadline = time.perf_counter() + seconds
    best = {"cost": np.inf, "u": np.concatenate([start, y[:, 0].ravel()])}

    def residuals(u: np.ndarray) -> np.ndarray:
        def field(tt: float, x: np.ndarray) -> list[float]:
            if time.perf_counter() > deadline:
                raise _Stopped
            return rhs(u[:k], tt, x)

        out = []
        for i, x0 in enumerate(u[k:].reshape(-1, dim)):
            sol = solve_ivp(field, (t[0], t[-1]), x0, t_eval=t, method="DOP853", rtol=1e-8, atol=1e-8)
            fitted = sol.y.T if sol.success and sol.y.shape[1] == len(t) else np.full_like(y[i], 1e6)
            out.append(((fitted - y[i]) / sigma).ravel())
        r = np.concatenate(out)
        if r @ r < best["cost"]:
            best.update(cost=float(r @ r), u=u.copy())
        return r

    try:
        return least_squares(residuals, best["u"], method="trf").x[:k], False
    except _Stopped:
        return best["u"][:k], True


def _lotka_rhs(u: np.ndarray, _: float, x: np.ndarray) -> list[float]:
    a, b, d, g = u
    return [a * x[0] - b * x[0] * x[1], d * x[0] * x[1] - g * x[1]]


def _duffing_rhs(u: np.ndarray, t: float, x: np.ndarray) -> list[float]:
    delta, alpha, beta = u
    force = DUFFING["amplitude"] * np.cos(DUFFING["omega"] * t)
    return [x[1], -delta * x[1] - alpha * x[0] - beta * x[0] ** 3 + force]


def _lorenz_rhs(u: np.ndarray, _: float, x: np.ndarray) -> list[float]:
    s, r, b = u
    return [s * (x[1] - x[0]), x[0] * (r - x[2]) - x[1], x[0] * x[1] - b * x[2]]


# part (b)'s problems: the data of part (a), the parameters estimated, where both fits start
SIDE_BY_SIDE = (("lotka_volterra", ["alpha", "beta", "delta", "gamma"],
                 {"alpha": 1.0, "beta": 0.7, "delta": 1.0, "gamma": 1.5}, _lotka_rhs),
                ("forced_duffing", ["delta", "alpha", "beta"], {"delta": 0.5, "alpha": -0.8, "beta": 0.8},
                 _duffing_rhs))


def part_b(sizes: list[int], scipy_seconds: float, problems: list[str]) -> None:
    rows = []
    for name, names, start, rhs in (problem for problem in SIDE_BY_SIDE if problem[0] in problems):
        truth = np.array([(LOTKA if name == "lotka_volterra" else DUFFING)[k] for k in names])
        for n in sizes:
            ds = _problem(name, 0, n=n)
            started = time.perf_counter()
            ours = wb.fit(ds, "mechanistic", system=name, estimate=names, start=start,
                          precision="float64").parameters()
            t_ours = time.perf_counter() - started
            started = time.perf_counter()
            ref, stopped = _scipy_fit(ds, rhs, np.array([start[k] for k in names]), scipy_seconds)
            t_ref = time.perf_counter() - started
            estimate = np.array([float(ours["estimate"].sel(parameter=k)) for k in names])
            err_ours = np.abs(estimate - truth) / np.abs(truth)
            err_ref = np.abs(ref - truth) / np.abs(truth)
            rows.append([f"{name} n={n}", f"{100 * err_ours.max():.2f}%", f"{t_ours:.2f}",
                         f"{100 * err_ref.max():.2f}%" + (" (stopped, best point)" if stopped else ""),
                         f"{t_ref:.2f}", f"{t_ref / t_ours:.2g}x"])
            print(f"  {rows[-1]}   ({_load()})", flush=True)  # progress: the scipy fits take minutes
    if "lorenz63" in problems:
        rows.append(_lorenz_side_by_side(scipy_seconds))
    _table("(b) mechanistic vs scipy least_squares + solve_ivp single shooting (max relative error over parameters)",
           ["problem", "ours err", "ours s", "scipy err", "scipy s", "speed-up"], rows)


def _lorenz_side_by_side(scipy_seconds: float) -> list[str]:
    """Lorenz-63 from 5 Lyapunov times at 1% noise, both fits from the same wrong start: a table row."""
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
    ref, stopped = _scipy_fit(ds, _lorenz_rhs, np.array(list(guess.values())), scipy_seconds)
    t_ref = time.perf_counter() - started
    return ["lorenz63 5 Lyapunov times", f"{100 * (np.abs(est - true) / true).max():.2f}%", f"{t_ours:.2f}",
            f"{100 * (np.abs(ref - true) / true).max():.2f}%" + (" (stopped, best point)" if stopped else ""),
            f"{t_ref:.2f}", f"{t_ref / t_ours:.2g}x"]


UDE_KNOWN = {"prey": "alpha*prey", "predator": "-gamma*predator"}
# the cross-check of the same recipe on a second system: a damped oscillator whose damping is left out
OSCILLATOR = {"omega": 1.0, "gamma": 0.2}
OSCILLATOR_X0 = [2.0, 0.0]


def _forecast_error(model: "wb.Model", truth: "wb.xr.Dataset", x0: list[float], after: float) -> np.ndarray:
    """Max absolute error after ``after`` over the truth's largest magnitude, per variable."""
    pred = model.predict(np.array([x0]), truth["time"].values)["state"].values[0, 0]
    true = truth["state"].values[0]
    late = truth["time"].values > after
    return np.abs(pred[late] - true[late]).max(0) / np.abs(true).max(0)


def _percent(values: np.ndarray) -> str:
    return " ".join(f"{100 * v:.1f}%" for v in values)


def _residual_terms(model: "wb.Model") -> tuple[list[list[str]], np.ndarray, np.ndarray]:
    coefficients, network, terms = model.learner.residual_equations(model.variables)
    chosen = [[terms[j] for j in np.flatnonzero(row)] for row in coefficients]
    return chosen, coefficients, network


def _ude_case(name: str, seed: int, **options: object) -> tuple[dict, "wb.Model"]:
    """One UDE fit of case ``name`` ("lotka" or "oscillator"); the pass/fail facts of its target."""
    if name == "lotka":
        ds = wb.simulate("lotka_volterra", n=1, t_end=5.0, dt=0.25, seed=seed, params=LOTKA, x0=[X0_PAPER],
                         obs_noise=0.05, obs_noise_kind="relative", split=None)
        truth = wb.simulate("lotka_volterra", n=1, t_end=10.0, dt=0.25, params=LOTKA, x0=[X0_PAPER], split=None)
        options = {"system": "lotka_volterra", "known": UDE_KNOWN, "estimate": [], "fixed": LOTKA, **options}
        target = {0: ("prey predator", -LOTKA["beta"]), 1: ("prey predator", LOTKA["delta"])}
        x0, after = X0_PAPER, 5.0
    else:
        ds = wb.simulate("damped_oscillator", n=1, t_end=10.0, dt=0.5, seed=seed, params=OSCILLATOR,
                         x0=[OSCILLATOR_X0], obs_noise=0.05, obs_noise_kind="relative", split=None)
        truth = wb.simulate("damped_oscillator", n=1, t_end=20.0, dt=0.5, params=OSCILLATOR, x0=[OSCILLATOR_X0],
                            split=None)
        options = {"system": "damped_oscillator", "known": {"q": "v", "v": "-omega**2*q"}, "estimate": [],
                   "fixed": OSCILLATOR, **options}
        target = {1: ("v", -OSCILLATOR["gamma"])}
        x0, after = OSCILLATOR_X0, 10.0
    started = time.perf_counter()
    model = wb.fit(ds, "ude", seed=seed, **options)
    seconds = time.perf_counter() - started
    chosen, coefficients, network = _residual_terms(model)
    terms = model.learner.term_names(model.variables)
    want = [[target[i][0]] if i in target else [] for i in range(len(chosen))]
    errors = [abs(coefficients[i, terms.index(term)] - value) / abs(value) for i, (term, value) in target.items()]
    forecast = _forecast_error(model, truth, x0, after)
    facts = {"seed": seed, "seconds": seconds, "terms": chosen, "exact": chosen == want,
             "coefficients": [round(float(coefficients[i, terms.index(term)]), 4) for i, (term, _) in target.items()],
             "network": [round(float(network[i, terms.index(term)]), 4) for i, (term, _) in target.items()],
             "errors": errors, "forecast": forecast}
    facts["passed"] = facts["exact"] and max(errors) <= 0.10 and forecast.max() <= 0.10
    return facts, model


def part_c(seeds: int, node_epochs: int) -> None:
    """The paper's Lotka-Volterra case side by side with a neural ODE, then the recipe over seeds."""
    ds = wb.simulate("lotka_volterra", n=1, t_end=5.0, dt=0.25, seed=0, params=LOTKA, x0=[X0_PAPER], obs_noise=0.05,
                     obs_noise_kind="relative", split=None)
    truth = wb.simulate("lotka_volterra", n=1, t_end=10.0, dt=0.25, params=LOTKA, x0=[X0_PAPER], split=None)
    rows = []
    for label, learner, options in (
            ("ude, alpha gamma held (the paper)", "ude", dict(system="lotka_volterra", known=UDE_KNOWN, estimate=[],
                                                              fixed=LOTKA)),
            ("ude, alpha gamma estimated", "ude", dict(system="lotka_volterra", known=UDE_KNOWN,
                                                       start={"alpha": 1.0, "gamma": 1.0},
                                                       fixed={"beta": 0.9, "delta": 0.8})),
            ("node", "node", dict(epochs=node_epochs, lr=1e-2, schedule="cosine", window=8, hidden=32))):
        started = time.perf_counter()
        model = wb.fit(ds, learner, **options)
        seconds = time.perf_counter() - started
        error = _forecast_error(model, truth, X0_PAPER, 5.0)
        if learner == "ude":
            model.learner.predict_with("network")
            network = _forecast_error(model, truth, X0_PAPER, 5.0)
            model.learner.predict_with("equations")
            error = f"{_percent(error)} (network: {_percent(network)})"
            chosen, coefficients, _ = _residual_terms(model)
            found = "; ".join(f"d{v}: " + (" + ".join(f"{c:.3f} {t}" for c, t in zip(row[row != 0], terms)) or "0")
                              for v, row, terms in zip(model.variables, coefficients, chosen))
            refitted = model.learner.params(model.learner.theta_raw_equations)
            constants = {k: round(float(refitted[k]), 3) for k in ("alpha", "gamma")}
        else:
            found, constants, error = "-", "-", _percent(error)
        rows.append([label, f"{seconds:.0f}", error, constants, found])
    _table("(c) Lotka-Volterra, one trajectory of 21 samples on [0, 5], 5% noise, seed 0: the residual's equations "
           "(truth: dprey -0.9 prey predator, dpredator 0.8 prey predator) and the forecast error on (5, 10] "
           "(max abs error over the truth's largest value, prey predator)",
           ["model", "fit s", "forecast err", "constants", "residual equations"], rows)
    for name, title in (("lotka", "(c) Lotka-Volterra UDE over noise draws (target: exactly the two prey predator "
                                  "terms, coefficients within 10% of -0.9 and 0.8, forecast to t = 10 within 10%)"),
                        ("oscillator", "(d) cross-check, damped oscillator with the damping left out (truth: dv "
                                       "-0.2 v), 21 samples on [0, 10], 5% noise, forecast to t = 20")):
        runs = []
        for seed in range(seeds):
            runs.append(_ude_case(name, seed)[0])
            print(f"  {name} seed {seed}: {runs[-1]}", flush=True)  # progress of a long loop
        rows = [[r["seed"], f"{r['seconds']:.0f}", r["terms"], r["coefficients"], r["network"],
                 _percent(r["errors"]), _percent(r["forecast"]), "yes" if r["passed"] else "NO"] for r in runs]
        errors = np.array([r["errors"] for r in runs])
        rows.append(["all", f"{np.median([r['seconds'] for r in runs]):.0f}",
                     f"exact terms {sum(r['exact'] for r in runs)}/{len(runs)}", "", "median:",
                     _percent(np.median(errors, 0)), _percent(np.median([r["forecast"] for r in runs], 0)),
                     f"{sum(r['passed'] for r in runs)}/{len(runs)}"])
        _table(title, ["seed", "fit s", "residual terms", "coefficients (data re-fit)", "on the network",
                       "coef err", "forecast err", "passed"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=100, help="replications per system in (a)")
    parser.add_argument("--parts", default="abc", help="which parts to run")
    parser.add_argument("--sizes", default="1,64", help="trajectory counts compared with scipy in (b)")
    parser.add_argument("--scipy-seconds", type=float, default=1200.0,
                        help="wall-clock allowance of each scipy single-shooting fit in (b)")
    parser.add_argument("--problems", default="lotka_volterra,forced_duffing,lorenz63", help="the problems of (b)")
    parser.add_argument("--seeds", type=int, default=10, help="noise draws of the UDE cases in (c) and (d)")
    parser.add_argument("--node-epochs", type=int, default=150, help="epochs of the neural ODE beside the UDE in (c)")
    args = parser.parse_args()
    if "a" in args.parts:
        part_a(args.reps)
    if "b" in args.parts:
        part_b([int(n) for n in args.sizes.split(",")], args.scipy_seconds, args.problems.split(","))
    if "c" in args.parts:
        part_c(args.seeds, args.node_epochs)


if __name__ == "__main__":
    main()

"""``learner="auto"`` against the statistical backbones on real series (issue 26's table).

One fixed recipe for every series, chosen before any was run: ``split_time(val=0.1, test=0.2)``,
``wb.fit(ds, learner="auto", time_budget=60)``, rolling origins over the test period at horizons
1, 2, 4 and 8 samples. Printed per series and horizon: RMSE skill of ``auto`` against the best of
auto-ARIMA, ETS and Theta at that horizon (``1 - rmse / min(rmse_arima, rmse_ets, rmse_theta)``),
the 80% interval coverage of ``auto`` and of ARIMA's Gaussian intervals, and CRPS of both. Series:
the three shipped in ``data/real/`` and three that statsmodels ships and this project does not
(Nile flow, US quarterly inflation and unemployment from ``macrodata``). ``--series held_out`` runs
six series kept out of development: three from statsmodels (the US 3-month T-bill rate from
``macrodata``, the German interest rate from ``interest_inflation``, the Danish bond rate from
``danish_data``; first run after the longer calibration period was fixed, before the online
update and the small-sample selection rule) and three classic ones in ``benchmarks/data/`` (annual
Canadian lynx trappings 1821-1934, monthly Australian wine sales 1980-1994, quarterly Australian
woollen yarn production 1965-1994; from R's datasets and Hyndman's fpp as shipped by pmdarima; not
run before the online update and the first selection rule were fixed). After that held-out run
showed single candidates winning on a few validation origins and losing badly on the test (German
rate, lynx), the one-standard-error rule became a small-sample Diebold-Mariano test;
``--series fresh`` runs three series untouched until then (quarterly Australian beer production
1956-2008 and residents 1971-1993, and 150 heart-rate samples 0.5 s apart; pmdarima's copies).
Those showed nonlinear NVAR running away on a trend (Australian residents), so nonlinear learners
now have to beat the linear autoregression by the same test; ``--series last`` runs three series
untouched until then (Box & Jenkins' monthly airline passengers 1949-1960, half-hourly
electricity demand in England and Wales over 12 weeks of 2000 (Taylor 2003), the quarterly US
real interest rate from ``macrodata``). Each series also prints
what ``auto`` chose (a combination's members and weights) and how many validation origins its
conformal intervals were calibrated on; a closing table gives the means and the targets met or missed.

``--hybrids`` adds backbone hybrids with a cheap learner to ``auto``'s default candidates
(:data:`HYBRIDS`: NVAR on the residuals of Theta and of auto-ARIMA, :mod:`workbench.learners.hybrid`),
with the combinations as by default, to compare ``auto`` with and without them.

    python benchmarks/bench_auto.py [--series co2,nile | held_out | fresh | last] [--budget 60] [--hybrids]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import workbench as wb
from workbench.data.realdata import load_real
from workbench.training.autoselect import CANDIDATES, NODE_BUDGET, fit_auto

HORIZONS = [1, 2, 4, 8]
BACKBONES = ("arima", "ets", "theta")
# cheapest first, as autoselect.CANDIDATES: Theta's fit is a fraction of ARIMA's order search
HELD_OUT = ("tbill", "german_rate", "danish_bond", "lynx", "wineind", "woolyrnq")
# classic public series (R's datasets and Hyndman's fpp, as shipped by pmdarima), written as CSV
# kept out of everything until the selection test and the calibration were fixed (the last check)
FRESH = ("ausbeer", "austres", "heartrate")
# kept out of everything until nonlinear learners had to beat the linear autoregression (the last check)
LAST = ("airpassengers", "taylor", "realint")
SERIES_FILES = {name: Path(__file__).parent / "data" / f"{name}.csv"
                for name in ("lynx", "wineind", "woolyrnq", "airpassengers", "taylor") + FRESH}
HYBRIDS = (("nvar", {"backbone": "theta", "delays": 2}), ("nvar", {"backbone": "arima", "delays": 2}))


def statsmodels_series(name: str, folder: Path) -> "wb.xr.Dataset":
    """A statsmodels dataset written as a scientist's CSV (dates and a unit in the header), then imported."""
    import statsmodels.api as sm

    if name == "nile":
        frame = sm.datasets.nile.load_pandas().data
        table = pd.DataFrame({"date": [f"{int(y)}-01-01" for y in frame["year"]],
                              "flow [1e8 m3]": frame["volume"].astype(float)})
    elif name == "danish_bond":  # quarterly, dates in the index
        frame = sm.datasets.danish_data.load_pandas().data
        table = pd.DataFrame({"date": [str(d)[:10] for d in frame.index],
                              "bond rate [1]": frame["ibo"].astype(float).values})
    else:  # quarterly columns with year and quarter
        source, header = {"inflation": ("infl", "inflation [percent]"),
                          "unemployment": ("unemp", "unemployment [percent]"),
                          "tbill": ("tbilrate", "3-month T-bill rate [percent]"),
                          "realint": ("realint", "real interest rate [percent]"),
                          "german_rate": ("R", "interest rate [1]")}[name]
        frame = (sm.datasets.interest_inflation if name == "german_rate" else sm.datasets.macrodata).load_pandas().data
        dates = [f"{int(y)}-{3 * (int(q) - 1) + 1:02d}-01" for y, q in zip(frame["year"], frame["quarter"])]
        table = pd.DataFrame({"date": dates, header: frame[source].astype(float)})
    path = folder / f"{name}.csv"
    table.to_csv(path, index=False)
    return wb.from_csv(path)


def load(name: str, folder: Path):
    if name in ("co2", "sunspots", "elnino"):
        return load_real(name)
    if name in SERIES_FILES:
        return wb.from_csv(SERIES_FILES[name])
    return statsmodels_series(name, folder)


def describe(model) -> str:
    """The chosen learner, with a combination's members and its weights at the first and last horizon."""
    chosen = next(row for row in model.selection if row.get("chosen"))
    if chosen["learner"] != "combination":
        return f"{chosen['learner']} {chosen['options'] or ''}".strip()
    names = [f"{m['learner']}{m['options'] or ''}" for m in chosen["options"]["members"]]
    weights = chosen["options"]["weights"]
    rows = " -> ".join("/".join(f"{w:.2f}" for w in row) for row in (weights[0], weights[-1])[: len(weights)])
    return f"combination of {', '.join(names)} ({chosen['rule']}; weights h=1 -> h={len(weights)}: {rows})"


def run(name: str, budget: float, folder: Path, hybrids: bool = False) -> tuple[list[float], list[float], str,
                                                                              list[float]]:
    ds = wb.split_time(load(name, folder), val=0.1, test=0.2)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if hybrids:  # the default candidates (no node below its budget) plus the hybrids, combined as by default
            model = fit_auto(ds, budget, candidates=list(CANDIDATES) + list(HYBRIDS), combine=True)
        else:
            model = wb.fit(ds, learner="auto", time_budget=budget)
        fit_s = time.perf_counter() - started
        scores = wb.evaluate(model, ds, mode="rolling", horizons=HORIZONS, n_samples=50)
    calibration = model.meta["calibration"]
    print(f"\n## {name}: auto chose {describe(model)} in {fit_s:.0f} s "
          f"({int(scores['n_origins'].values[0])} test origins at h=1; calibrated on {calibration['origins']} "
          f"validation origins, binomial s.e. of an 80% coverage there {calibration['coverage80_standard_error']:.3f})")
    if hybrids:  # how the hybrids fared on the validation origins, beside the best score
        best = min(r["score"] for r in model.selection if r["score"] is not None)
        for row in model.selection:
            if "backbone" in row["options"]:
                score = f"score {row['score']:.3f} (best {best:.3f})" if row["score"] is not None else ""
                print(f"hybrid {row['learner']} on {row['options']['backbone']}: {row['status'][:120]} {score}")
    print("| h | skill vs best backbone | best backbone | coverage80 auto | coverage80 arima | CRPS auto "
          "| CRPS arima |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    skills, coverages, crps = [], [], []
    for i, h in enumerate(HORIZONS):
        rmse = float(scores["rmse"].isel(horizon=i).mean())
        best = min(BACKBONES, key=lambda b: float(scores[f"rmse_{b}"].isel(horizon=i).mean()))
        skill = 1 - rmse / float(scores[f"rmse_{best}"].isel(horizon=i).mean())
        skills.append(skill)
        coverages.append(float(scores["coverage"].isel(horizon=i).mean()))
        crps.append(float(scores["crps"].isel(horizon=i).mean() / scores["crps_arima"].isel(horizon=i).mean()))
        cell = lambda key: f"{float(scores[key].isel(horizon=i).mean()):.3g}" if key in scores else "-"  # noqa: E731
        print(f"| {h} | {skill:+.3f} | {best} | {cell('coverage')} | {cell('coverage_arima')} | {cell('crps')} "
              f"| {cell('crps_arima')} |")
    return skills, coverages, describe(model).split(" (")[0], crps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", default="co2,sunspots,elnino,nile,inflation,unemployment",
                        help="comma-separated names, held_out, fresh or last (see the module docstring)")
    parser.add_argument("--budget", type=float, default=60.0, help="auto's time budget per series, seconds")
    parser.add_argument("--hybrids", action="store_true", help="add backbone hybrids to auto's candidates")
    args = parser.parse_args()
    if args.hybrids and args.budget >= NODE_BUDGET:
        parser.error(f"--hybrids replaces the candidate list, which drops node (a default candidate at budgets >= "
                     f"{NODE_BUDGET:g} s): use a smaller --budget")
    print(f"load average before: {os.getloadavg()}; candidates: default" + (" + " + ", ".join(
        f"{n} on {o['backbone']}" for n, o in HYBRIDS) if args.hybrids else ""))
    table = {}
    with tempfile.TemporaryDirectory() as folder:
        names = {"held_out": HELD_OUT, "fresh": FRESH, "last": LAST}.get(args.series) or args.series.split(",")
        for name in names:
            table[name] = run(name, args.budget, Path(folder), args.hybrids)
    print("\n## summary: RMSE skill vs the best backbone at each horizon, 80% coverage of auto")
    print("| series (auto's choice) | skill h=" + " / ".join(map(str, HORIZONS)) + " | coverage h="
          + " / ".join(map(str, HORIZONS)) + " | CRPS / ARIMA's h=" + " / ".join(map(str, HORIZONS)) + " |")
    print("|---|---|---|---|")
    for name, (skills, coverages, choice, crps) in table.items():
        print(f"| {name} ({choice}) | {' / '.join(f'{s:+.2f}' for s in skills)} | "
              f"{' / '.join(f'{c:.2f}' for c in coverages)} | {' / '.join(f'{c:.2f}' for c in crps)} |")
    skill = np.mean([row[0] for row in table.values()], axis=0)
    coverage = np.array([row[1] for row in table.values()])
    crps = np.mean([row[3] for row in table.values()], axis=0)
    print(f"| **mean** | **{' / '.join(f'{s:+.2f}' for s in skill)}** | "
          f"{' / '.join(f'{c:.2f}' for c in coverage.mean(0))} | {' / '.join(f'{c:.2f}' for c in crps)} |")
    inside = ((coverage >= 0.75) & (coverage <= 0.85)).sum(0)
    print("series with coverage in 0.75-0.85, by horizon: " + " / ".join(f"{k}/{len(table)}" for k in inside))
    print("targets: mean skill >= 0 at every horizon: " + ("met" if (skill >= 0).all() else "MISSED")
          + f"; >= 0.05 at h={HORIZONS[-1]}: " + ("met" if skill[-1] >= 0.05 else "MISSED")
          + "; coverage 0.75-0.85 everywhere: " + ("met" if inside.min() == len(table) else "MISSED")
          + "; mean CRPS <= ARIMA's at every horizon: " + ("met" if (crps <= 1).all() else "MISSED"))
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()

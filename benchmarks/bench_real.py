"""Forecast skill on the shipped real series, against persistence, climatology and AR(p).

For each series in ``data/real/`` (see ``workbench.data.realdata``): split in time (10% validation, the
last 15% test), suggest a delay embedding from the training part, fit each learner with it on the
CPU within a stated budget, and score rolling-origin forecasts over the test period by horizon.
Skill = 1 - RMSE_learner / RMSE_baseline (1 perfect, 0 no better, < 0 worse); CRPS skill for the
stochastic learner. The closing lines check the target: the best learner beats climatology at every
horizon up to one characteristic period and matches or beats AR(p) at short horizons (1-2 steps).

A learner named ``<name>+season`` is fitted with the annual sin/cos drivers as exogenous inputs
(``workbench.data.drivers``), on the seasonal series only; ``+fill`` interpolates missing samples first
(``fill_gaps=True``) so learners that need complete samples can fit CO2.

    python benchmarks/bench_real.py [--budget 60] [--learners nvar,node,node+season,nvar+fill,...]
                                    [--data co2,sunspots,elnino]
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

import workbench as wb
from workbench.data.drivers import add_seasonal_inputs
from workbench.data.realdata import REAL_DATASETS, load_real

HORIZONS = {"co2": [1, 4, 13, 26, 52], "sunspots": [1, 2, 3, 5, 8, 11], "elnino": [1, 2, 3, 6, 12]}
TRANSFORMS = {"sunspots": {"sunspots": "log1p"}}  # counts: never forecast below zero
SEASONAL = ("co2", "elnino")
DIFFERENCE = ("co2",)  # a trend the training range never reaches: learners fit the weekly increments  # "<learner>+season" also gets the annual sin/cos drivers as inputs
SHORT = 2  # "short horizons" for the AR comparison: the first two steps


def options_for(learner: str, name: str, emb: dict, budget: float) -> dict:
    """Fit options: the suggested embedding for every learner (NVAR takes it as its own delays)."""
    series = {"difference": True} if name in DIFFERENCE else {}
    if "+fill" in learner:
        series["fill_gaps"] = True
    learner = learner.split("+")[0]
    if learner == "nvar":  # quadratic features of widely spaced delays diverged: half the lag (ridge: "auto")
        return {"delays": emb["embed"], "skip": max(1, -(-emb["lag"] // 2)), **series}
    common = {"embed": emb["embed"], "lag": emb["lag"], "time_budget": budget, "seed": 0, "patience": 10_000,
              **series}
    if name in TRANSFORMS:
        common["transform"] = TRANSFORMS[name]
    return common


def run(name: str, learners: list[str], budget: float) -> list[str]:
    raw = load_real(name)
    ds = wb.split_time(raw, val=0.1, test=0.15)
    seasonal = wb.split_time(add_seasonal_inputs(raw), val=0.1, test=0.15) if name in SEASONAL else None
    emb = wb.suggest_embedding(ds)
    horizons = HORIZONS[name]
    period = REAL_DATASETS[name]["period_samples"]
    print(f"\n## {name}: {REAL_DATASETS[name]['description']}")
    print(f"suggested embedding (training part): embed={emb['embed']}, lag={emb['lag']} ({emb['lag_method']}); "
          f"test starts {ds.attrs['time_split']}")
    rows, results = [], {}
    for learner in learners:
        data = seasonal if "+season" in learner else ds
        if data is None:
            continue
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = wb.fit(data, learner.split("+")[0], **options_for(learner, name, emb, budget))
            scores = wb.evaluate(model, data, mode="rolling", horizons=horizons, n_samples=32)
        except wb.WorkbenchError as exc:
            print(f"- {learner}: failed ({type(exc).__name__}: {exc})")
            continue
        results[learner] = scores
        rows.append((learner, time.perf_counter() - start, scores))
    first = next(iter(results.values()), None)
    if first is None:
        return [f"{name}: no learner fitted"]
    baselines = [v for v in first.data_vars if v.startswith("rmse_") and "skill" not in v]
    print(f"\nRMSE by horizon (samples): {horizons}; origins per horizon {first['n_origins'].values.tolist()}")
    print("| forecaster | fit+eval s | " + " | ".join(f"h={h}" for h in horizons) + " |")
    print("|---|---|" + "---|" * len(horizons))
    for b in baselines:
        print(f"| {b[5:]} (baseline) | - | " + " | ".join(f"{v:.3g}" for v in first[b].values[:, 0]) + " |")
    for learner, seconds, scores in rows:
        print(f"| {learner} | {seconds:.0f} | " + " | ".join(f"{v:.3g}" for v in scores["rmse"].values[:, 0]) + " |")
    for ref in ("persistence", "climatology", "ar"):
        print(f"\nRMSE skill vs {ref}:")
        print("| learner | " + " | ".join(f"h={h}" for h in horizons) + " |")
        print("|---|" + "---|" * len(horizons))
        for learner, _, scores in rows:
            skill = scores[f"rmse_skill_vs_{ref}"].values[:, 0]
            print(f"| {learner} | " + " | ".join(f"{v:+.2f}" for v in skill) + " |")
    for learner, _, scores in rows:
        if "crps_skill_vs_ar" in scores:
            print(f"\nCRPS skill of {learner} vs climatology / AR: "
                  + ", ".join(f"h={h}: {c:+.2f} / {a:+.2f}" for h, c, a in
                              zip(horizons, scores["crps_skill_vs_climatology"].values[:, 0],
                                  scores["crps_skill_vs_ar"].values[:, 0])))
    return verdict(name, horizons, period, rows)


def verdict(name: str, horizons: list[int], period: int, rows: list) -> list[str]:
    """The target check, with every miss named."""
    notes = []
    within = [i for i, h in enumerate(horizons) if h <= period]
    short = [i for i, h in enumerate(horizons) if h <= SHORT]
    best_clim = max(rows, key=lambda r: np.nanmin(r[2]["rmse_skill_vs_climatology"].values[within, 0]))
    clim = best_clim[2]["rmse_skill_vs_climatology"].values[within, 0]
    notes.append(f"{name}: best vs climatology up to {period} steps is {best_clim[0]} "
                 f"(min skill {np.nanmin(clim):+.2f}): {'MET' if (clim > 0).all() else 'MISSED'}")
    best_ar = max(rows, key=lambda r: np.nanmin(r[2]["rmse_skill_vs_ar"].values[short, 0]))
    ar = best_ar[2]["rmse_skill_vs_ar"].values[short, 0]
    notes.append(f"{name}: best vs AR(p) at h<={SHORT} is {best_ar[0]} (skill {', '.join(f'{v:+.2f}' for v in ar)}): "
                 f"{'MET' if (ar >= -0.05).all() else 'MISSED'} (matching = within 5% of AR's RMSE)")
    return notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=60.0, help="CPU seconds per gradient-trained fit (<= 120)")
    parser.add_argument("--learners", default="nvar,node,node+season,resnet+season,nsde,nvar+fill,resnet+season+fill")
    parser.add_argument("--data", default=",".join(REAL_DATASETS))
    args = parser.parse_args()
    budget = min(args.budget, 120.0)
    print(f"# Real-data forecast skill (CPU, 1 torch thread, fit budget {budget:.0f} s per gradient fit; "
          f"load average {os.getloadavg()[0]:.1f})")
    notes = []
    for name in args.data.split(","):
        notes += run(name, args.learners.split(","), budget)
    print("\n## Target check")
    for line in notes:
        print(f"- {line}")


if __name__ == "__main__":
    main()

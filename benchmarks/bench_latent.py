"""Hidden variables and irregular samples (issue 25): latent models against baselines, same data, same run.

1. Van der Pol (mu = 1), only x observed, 50% of samples dropped at random (the first sample and the
   forecast origin kept, so every model starts from an observation): forecast one period (6.66) from
   a history of ``context`` samples; normalised RMSE (RMSE over the test std of x) of ``latent_ode``
   against ``node`` on x alone (from the origin's x), and a GRU (encoder over the history, recurrent
   decoder; defined here as a baseline learner).
2. Lorenz-63, only x observed, 30% dropped: VPT of x in Lyapunov times (threshold 0.4) and
   ``hidden_r2`` of y and z for ``latent_ode`` and ``ncde``.
3. The double well SDE (sigma 0.5), ``--sde-n`` trajectories of 20 time units (60/20/20% train/val/
   test), 30% of samples dropped at random (the forecast origins kept): from
   histories of ``context`` samples at several origins per test trajectory, 64 paths over 3 time units;
   central 80% and 90% interval coverage and CRPS of ``latent_sde`` (spread calibrated on the
   validation split, :func:`workbench.learners.latent.calibrate`) beside the same scores of 64 paths of
   the true SDE from the true state at each origin (the exact forecast distribution: the system is
   Markov and the origin is observed without noise).

Usage: python benchmarks/bench_latent.py [--part vdp,lorenz,sde] [--budget SECONDS] [--n N] [--sde-n N] [--seed S]
Prints tables with the load average; every number is measured in this run.
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Any, Optional

import numpy as np
import torch
import xarray as xr
from torch import nn

import workbench as wb
from workbench.data.schema import select_split
from workbench.evaluation import metrics
from workbench.evaluation.truth import oracle_samples
from workbench.learners import latent, register_learner
from workbench.learners.base import Batch, Capabilities, masked_mse

VDP_PERIOD = 6.663  # mu = 1


class GRUBaseline(latent.HistoryLearner):
    """A plain recurrent baseline: a GRU over the history (inputs: value, mask, step), then a GRU
    decoder stepping forward on the step size alone, read out linearly."""

    name = "gru_baseline"
    supports = Capabilities(irregular=True, objectives=("trajectory",), has_vector_field=False)
    defaults = {"latent": 32, "hidden": 32, "context": 8, "substeps": 1, "dt": None, "objective": "trajectory"}

    def __init__(self, dim: int, n_inputs: int = 0, **options: Any):
        super().__init__(dim, n_inputs, **options)
        self.encoder = nn.GRUCell(2 * dim + 1, self.options["latent"])
        self.decoder = nn.GRUCell(1, self.options["latent"])
        self.readout = nn.Linear(self.options["latent"], dim)

    def encode_end(self, z, t, mask):
        h = z.new_zeros(z.shape[0], self.options["latent"])
        m = mask.to(z.dtype)[..., None]
        for i in range(z.shape[1]):
            step = (t[:, i] - t[:, i - 1] if i else torch.zeros_like(t[:, 0]))[:, None] * self.rate
            h = self.encoder(torch.cat([z[:, i] * m[:, i], m[:, i].expand(-1, self.dim), step], -1), h)
        return h

    def forecast(self, z, t, mask, t_out, n_samples=1, generator=None):
        h = self.encode_end(z, t, mask)
        out = [self.readout(h)]
        for i in range(1, len(t_out)):
            h = self.decoder(((t_out[i] - t_out[i - 1]) * self.rate).expand(h.shape[0], 1).to(h.dtype), h)
            out.append(self.readout(h))
        return torch.stack(out, 1).unsqueeze(0).expand(n_samples, -1, -1, -1)

    def loss(self, batch: Batch, horizon: int, objective: str) -> torch.Tensor:
        z_h, t_h, m_h = self.split_window(batch)
        c = z_h.shape[1] - 1
        pred = self.forecast(z_h, t_h, m_h, batch.t[0, c:])[0]
        return masked_mse(pred, batch.z[:, c:], batch.mask[:, c:])


register_learner(GRUBaseline, overwrite=True)


def drop(ds, fraction: float, keep: list[int], seed: int):
    """``ds`` with ``fraction`` of its samples marked missing at random, the samples ``keep`` kept."""
    rng = np.random.default_rng(seed)
    mask = rng.random((ds.sizes["trajectory"], ds.sizes["time"])) >= fraction
    mask[:, keep] = True
    return ds.assign(mask=(("trajectory", "time"), mask), state=ds["state"].where(mask[..., None]))


def nrmse_over(pred: np.ndarray, truth: np.ndarray, scale: float) -> float:
    """RMSE over finite truth values of the sample mean, over ``scale``."""
    error = (pred.mean(0) - truth) ** 2
    return float(np.sqrt(np.nanmean(error)) / scale)


def vdp(budget: float, n: int, seed: int) -> list[tuple[str, float, float]]:
    dt, context = 0.2, 16
    t_end = round((context * dt + 1.5 * VDP_PERIOD) / dt) * dt
    clean = wb.simulate("van_der_pol", n=n, t_end=t_end, dt=dt, observe=["x"], seed=seed)
    ds = drop(clean, 0.5, [0, context], seed)
    test, clean_test = select_split(ds, "test"), select_split(clean, "test")
    span = int(round(VDP_PERIOD / dt)) + 1
    truth = clean_test["state"].values[:, context:context + span]
    scale = float(clean_test["state"].values.std())
    rows = []
    window = context + span
    for name, options in (("latent_ode", {"context": context, "latent": 8, "hidden": 32}),
                          ("gru_baseline", {"context": context}),
                          ("node", {})):
        start = time.perf_counter()
        fit_options = {"window": window} if name != "node" else {}
        model = wb.fit(ds, learner=name, time_budget=budget, epochs=10_000, seed=seed, **fit_options, **options)
        if name == "node":
            x0 = test["state"].values[:, context]
            pred = model.predict(x0, times=test["time"].values[context:context + span])["state"].values
        else:
            pred = latent.history_forecast(model, test, n_samples=16)["state"].values[:, :, :span]
        rows.append((name, nrmse_over(pred, truth, scale), time.perf_counter() - start))
    return rows


def lorenz(budget: float, n: int, seed: int) -> list[tuple[str, float, float, list[float], float]]:
    dt, context = 0.02, 32
    ds = wb.simulate("lorenz63", n=n, t_end=4.0, dt=dt, observe=["x"], missing=0.3, seed=seed)
    rows = []
    for name in ("latent_ode", "ncde"):
        start = time.perf_counter()
        model = wb.fit(ds, learner=name, time_budget=budget, epochs=10_000, seed=seed, window=context + 48,
                       context=context, latent=16, hidden=64)
        scores = wb.evaluate(model, ds, n_samples=8)
        vpt = float(scores["vpt_lyapunov_median"]) if "vpt_lyapunov_median" in scores else float("nan")
        rows.append((name, vpt, float(scores["extrapolation_nrmse"]), scores["hidden_r2"].values.tolist(),
                     time.perf_counter() - start))
    return rows


def forecasts_from_origins(model, observed, clean, context: int, span: int, step: int, samples: int, seed: int):
    """Model forecasts from every ``step``-th origin of each trajectory (origins become trajectories),
    the true SDE's paths from the true state at each origin, and the clean truth: three datasets over
    lead time."""
    system = wb.system(str(clean.attrs["system"]))
    preds, oracles, truths = [], [], []
    last = observed.sizes["time"] - span - 1
    for k, origin in enumerate(range(context, last + 1, step)):
        history = observed.isel(time=slice(origin - context, origin + span + 1))
        truth = clean.isel(time=slice(origin, origin + span + 1))
        # origins become trajectories on one axis of lead times
        label = {"trajectory": [f"{t}@{origin}" for t in truth["trajectory"].values],
                 "time": np.round(truth["time"].values - truth["time"].values[0], 9)}
        preds.append(latent.history_forecast(model, history, samples, seed + k).drop_vars("diverged_at")
                     .assign_coords(label))
        oracles.append(oracle_samples(truth, system, samples, seed + 1000 + k).assign_coords(label))
        truths.append(truth.assign_coords(label))
    return tuple(xr.concat([p[["state"]] for p in parts], dim="trajectory", coords="minimal", compat="override")
                 for parts in (preds, oracles, truths))


def stochastic_scores(pred, truth) -> dict[str, float]:
    """Coverage of the central 80% and 90% intervals and CRPS, over every forecast time after the origin."""
    pred, truth = pred.isel(time=slice(1, None)), truth.isel(time=slice(1, None))
    return {"coverage_80": float(metrics.coverage(pred, truth, 0.8, over="all")),
            "coverage_90": float(metrics.coverage(pred, truth, 0.9, over="all")),
            "crps": float(metrics.crps(pred, truth).mean())}


SDE_RECIPE = {"latent": 4, "hidden": 32, "context": 10, "substeps": 2, "noise": 0.05}


def double_well(budget: float, n: int, seed: int) -> tuple[dict[str, float], dict[str, float], dict[str, float],
                                                              float, float]:
    dt, context, span, step, samples = 0.1, SDE_RECIPE["context"], 30, 10, 64
    clean = wb.simulate("double_well", n=n, t_end=20.0, dt=dt, seed=seed, split=(0.6, 0.2, 0.2))
    origins = list(range(context, clean.sizes["time"], step))
    ds = drop(clean, 0.3, [0] + origins, seed)
    start = time.perf_counter()
    model = wb.fit(ds, learner="latent_sde", time_budget=budget, epochs=10_000, seed=seed,
                   window=context + span + 1, **SDE_RECIPE)
    seconds = time.perf_counter() - start
    test, clean_test = select_split(ds, "test"), select_split(clean, "test")
    pred, oracle, truth = forecasts_from_origins(model, test, clean_test, context, span, step, samples, seed)
    raw = stochastic_scores(pred, truth)
    factor = float(latent.calibrate(model, ds, "val", n_samples=samples, seed=seed)[0])
    pred, _, _ = forecasts_from_origins(model, test, clean_test, context, span, step, samples, seed)
    return raw, stochastic_scores(pred, truth), stochastic_scores(oracle, truth), factor, seconds


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0, help="training seconds per model")
    parser.add_argument("--n", type=int, default=64, help="trajectories per data set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sde-n", type=int, default=128, help="trajectories of the double well (part sde)")
    parser.add_argument("--part", default="vdp,lorenz,sde", help="comma-separated parts: vdp, lorenz, sde")
    args = parser.parse_args(argv)
    parts = set(args.part.split(","))
    torch.set_num_threads(1)
    print(f"load average before: {os.getloadavg()[0]:.2f}  (budget {args.budget:g} s per model, n={args.n})")
    if "vdp" in parts:
        run_vdp(args)
    if "lorenz" in parts:
        run_lorenz(args)
    if "sde" in parts:
        run_sde(args)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def run_vdp(args: argparse.Namespace) -> None:
    print("\nVan der Pol, x observed, 50% dropped: normalised RMSE over one period from the origin")
    print(f"{'model':<14}{'nRMSE':>8}{'seconds':>9}")
    for name, score, seconds in vdp(args.budget, args.n, args.seed):
        print(f"{name:<14}{score:>8.3f}{seconds:>9.1f}")
    print(f"load average: {os.getloadavg()[0]:.2f}")


def run_lorenz(args: argparse.Namespace) -> None:
    print("\nLorenz-63, x observed, 30% dropped: VPT of x (Lyapunov times), extrapolation nRMSE, hidden_r2 (y, z)")
    print(f"{'model':<14}{'VPT':>6}{'nRMSE':>8}{'r2 y':>7}{'r2 z':>7}{'seconds':>9}")
    for name, vpt, nrmse, r2, seconds in lorenz(args.budget, args.n, args.seed):
        print(f"{name:<14}{vpt:>6.2f}{nrmse:>8.3f}{r2[0]:>7.3f}{r2[1]:>7.3f}{seconds:>9.1f}")
    print(f"load average: {os.getloadavg()[0]:.2f}")


def run_sde(args: argparse.Namespace) -> None:
    print(f"\nDouble well SDE, {args.sde_n} trajectories, 30% dropped: 64 paths over 3 time units from each origin; "
          "the true SDE's paths from the true origin state beside")
    raw, calibrated, oracle, factor, seconds = double_well(args.budget, args.sde_n, args.seed)
    print(f"{'paths':<28}{'cover 80':>9}{'cover 90':>9}{'CRPS':>8}{'CRPS/true':>10}")
    for name, row in ((f"latent_sde ({seconds:.0f} s fit)", raw),
                      (f"latent_sde, spread x{factor:.2f}", calibrated), ("true SDE", oracle)):
        print(f"{name:<28}{row['coverage_80']:>9.3f}{row['coverage_90']:>9.3f}{row['crps']:>8.4f}"
              f"{row['crps'] / oracle['crps']:>10.2f}")
    print(f"load average: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

"""Benchmark grids: systems x learners x seeds, each cell fit and scored, scaled out on Dask.

Every cell is one ``dask.distributed`` task (a ``LocalCluster`` of one single-threaded process per
core by default, or any running cluster given its scheduler address). Finished cells are JSON files
written atomically, so a rerun skips them and an interrupted cell leaves nothing behind; a failing
cell records its error and the grid goes on. A learner whose declared capabilities do not cover a
system's data is not fitted at all: its cells record the reason as ``skipped``.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence
from urllib.parse import urlsplit

import numpy as np
import xarray as xr

from .data.io import PathLike, load, save, write_netcdf
from .data.schema import make_dataset
from .safety import atomic_write_bytes
from .errors import BadParameterError, SchedulerError, StorageError, WorkbenchError

# Seconds to wait for a Dask scheduler before giving up (Dask's own default is 30 s of retries).
SCHEDULER_TIMEOUT = 5.0

HEADLINE = ("vpt_median", "vpt_lyapunov_median", "rmse_mean", "vector_field_error", "energy_mse", "nfe",
            "crps_mean", "coverage_90_mean", "crps_relative", "final_error", "lyapunov_learned", "lyapunov_true",
            "attractor_w1", "spectrum_error", "diverged_trajectories", "epochs", "fit_seconds", "evaluate_seconds")

# leaderboard columns (metric, header) of the generic grids and of the chaos preset
COLUMNS = tuple((m, m) for m in ("vpt_lyapunov_median", "vpt_median", "rmse_mean", "vector_field_error",
                                 "energy_mse", "final_error", "nfe", "crps_mean", "fit_seconds"))
CHAOS_COLUMNS = (("vpt_lyapunov_median", "VPT (Lyapunov times)"), ("attractor_w1", "attractor W1 / std"),
                 ("spectrum_error", "spectrum error"), ("lyapunov_learned", "λ learned"),
                 ("lyapunov_true", "λ true"), ("diverged_trajectories", "diverged test runs"), ("epochs", "epochs"),
                 ("fit_seconds", "fit s"))

# chaotic catalog attractors of the chaos preset (lorenz96 at its default dim=10) and their data:
# training trajectories at each system's default span and spacing, and a separate held-out set
# (another seed) whose runs also start the attractor-level scores
CHAOS_SYSTEMS = ("lorenz63", "rossler", "lorenz96", "halvorsen", "chen")
CHAOS_TRAIN = {"n": 16, "seed": 0, "split": (0.75, 0.25, 0.0)}
CHAOS_TEST = {"n": 8, "seed": 1, "split": (0.0, 0.0, 1.0)}


@dataclass(frozen=True)
class Entry:
    """One learner configuration of a grid: a label, a learner name and its options."""

    label: str
    learner: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataSpec:
    """How a grid generates one system's data: ``simulate`` keyword arguments, or a custom builder;
    ``test`` (optional) simulates a separate held-out set, else the data's test split is scored."""

    system: str
    simulate: dict[str, Any] = field(default_factory=dict)
    builder: Optional[Callable[[], xr.Dataset]] = None
    test: Optional[dict[str, Any]] = None


@dataclass
class Grid:
    data: list[DataSpec]
    entries: list[Entry]
    seeds: list[int]
    budget: float
    reference: dict[tuple[str, str], float] = field(default_factory=dict)
    reference_metric: str = ""
    columns: tuple[tuple[str, str], ...] = COLUMNS
    rank_by: str = ""  # leaderboard rows per system sorted by this metric's seed mean, highest first


def crossing_dataset(n: int = 64, noise: float = 0.05, seed: int = 0) -> xr.Dataset:
    """Dupont et al. (2019)'s 1-D task g(-1) = 1, g(1) = -1: states at t=0 and t=1 whose paths must cross.

    A neural ODE's flow is a homeomorphism and cannot order-reverse points on the line; an
    augmented one can.
    """
    rng = np.random.default_rng(seed)
    x0 = np.where(rng.random(n) < 0.5, -1.0, 1.0) + noise * rng.standard_normal(n)
    states = np.stack([x0, -np.sign(x0)], axis=1)[..., None]
    split = np.array(["train"] * n)
    split[rng.permutation(n)[: n // 4]] = "val"
    split[rng.permutation(n)[: n // 4]] = "test"
    return make_dataset(states, [0.0, 1.0], ["x"], split=list(split),
                        attrs={"system": "crossing_1d", "kind": "ode", "generator": "workbench.benchmark.crossing_dataset",
                               "reference": "Dupont, Doucet & Teh 2019, Augmented Neural ODEs, Sec. 3"})


def deterministic_learners() -> list[str]:
    """Registered learners whose rollouts are not random, judged by the capabilities of a default
    instance for a 3-variable ODE (so a new learner joins the chaos preset by declaring itself).
    Learners that cannot be built without options naming what the scientist knows (``mechanistic``
    needs its system) are not black-box surrogates and stay out."""
    from .learners import LEARNERS, DataInfo

    info = DataInfo(kind="ode", dim=3, regular=True, dt=0.01, has_derivative=False, names=["x", "y", "z"],
                    length=1000)
    names = []
    for name, cls in LEARNERS.items():
        try:
            learner = cls(info.dim, 0, **cls.options_from_data(info, {}))
        except WorkbenchError:
            continue
        if not learner.capabilities().stochastic:
            names.append(name)
    return sorted(names)


def preset(name: str, budget: float) -> Grid:
    """Grids that reproduce published comparisons: ``hnn``, ``anode``, and ``chaos``.

    ``chaos`` scores every deterministic learner (:func:`deterministic_learners`) on five chaotic
    catalog attractors (:data:`CHAOS_SYSTEMS`) with two seeds: valid prediction time in Lyapunov
    times and, from :func:`workbench.evaluation.evaluate`'s attractor scores, W1 between invariant marginals,
    power-spectrum error and the learned largest Lyapunov exponent beside the true one; in the
    spirit of Gilpin (2021), "Chaos as an interpretable benchmark for forecasting and data-driven
    modelling", NeurIPS Datasets and Benchmarks. ``budget`` bounds gradient training per cell;
    closed-form learners take what their solve takes.
    """
    if name == "hnn":
        # the paper's data: 25 noisy training trajectories on [0, 3]; 25 test rollouts from clean states
        train = {"n": 25, "t_end": 3.0, "dt": 0.1, "obs_noise": 0.05, "derivative": True, "split": (0.8, 0.2, 0.0)}
        test = {"n": 25, "t_end": 3.0, "dt": 0.1, "seed": 1, "split": (0.0, 0.0, 1.0)}
        return Grid(data=[DataSpec("mass_spring", train, test=test), DataSpec("pendulum", train, test=test)],
                    entries=[Entry("mlp", "node", {"objective": "derivative", "hidden": 200, "window": 8, "patience": 10 ** 6}),
                             Entry("hnn", "hnn", {"hidden": 200, "window": 8, "patience": 10 ** 6})],
                    seeds=[0, 1, 2], budget=budget, reference_metric="energy_mse",
                    reference={("mass_spring", "mlp"): 1.70e-1, ("mass_spring", "hnn"): 3.84e-4,
                               ("pendulum", "mlp"): 4.2e-2, ("pendulum", "hnn"): 2.49e-2})
    if name == "anode":
        return Grid(data=[DataSpec("crossing_1d", builder=crossing_dataset)],
                    entries=[Entry("node", "node", {"window": 2, "solver": "dopri5"}),
                             Entry("anode", "anode", {"window": 2, "solver": "dopri5", "augment": 1})],
                    seeds=[0, 1, 2], budget=budget)
    if name == "chaos":
        return Grid(data=[DataSpec(s, CHAOS_TRAIN, test=CHAOS_TEST) for s in CHAOS_SYSTEMS],
                    entries=[Entry(n, n) for n in deterministic_learners()], seeds=[0, 1], budget=budget,
                    columns=CHAOS_COLUMNS, rank_by="vpt_lyapunov_median")
    raise BadParameterError(f"unknown preset {name!r}; use hnn, anode or chaos")


def cell_name(system: str, label: str, seed: int) -> str:
    return f"{system}__{label}__seed{seed}"


def run_cell(data_path: str, test_path: str, system: str, entry: Entry, seed: int, budget: float,
             out: str) -> dict[str, Any]:
    """Fit and score one cell; write its JSON result atomically and return it (errors included)."""
    from .devices import configure_threads
    from .evaluation.evaluate import evaluate, summary
    from .training.fitting import fit

    configure_threads(1)
    result: dict[str, Any] = {"system": system, "learner": entry.label, "seed": seed}
    start = time.perf_counter()
    try:
        ds = load(data_path)
        model = fit(ds, entry.learner, time_budget=budget, seed=seed, progress=False, **entry.options)
        result["fit_seconds"] = time.perf_counter() - start
        result["epochs"] = len(model.history)
        start = time.perf_counter()
        scores = evaluate(model, load(test_path) if test_path != data_path else ds, n_samples=32, seed=seed)
        result["evaluate_seconds"] = time.perf_counter() - start
        result.update(summary(scores))
        if "normalized_error" in scores:
            result["final_error"] = float(scores["normalized_error"].isel(time=-1))
        if "vpt_lyapunov_median" not in result and np.isfinite(result.get("lyapunov_true", np.nan)):
            # no published exponent (lorenz96): VPT in units of the Benettin estimate evaluate made
            result["vpt_lyapunov_median"] = result["vpt_median"] * result["lyapunov_true"]
            result["lyapunov_source"] = str(scores["lyapunov_true"].attrs.get("source", ""))
    except WorkbenchError as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a cell's crash is recorded, never fatal to the grid
        result["error"] = f"{type(exc).__name__}: {exc}"
    atomic_write_bytes(Path(out) / "cells" / f"{cell_name(system, entry.label, seed)}.json",
                       json.dumps(result, indent=1).encode())
    return result


def skip_reason(data_path: str, entry: Entry) -> Optional[str]:
    """Why ``entry``'s learner (with its options) cannot fit the data at ``data_path`` according to its
    declared capabilities (see :func:`workbench.learners.compatibility`), or None when it can. Only the
    learner's own options take part; the entry's training options (``window``, ``patience``...) go to
    ``fit`` and do not change what a learner can fit."""
    from .errors import UnsupportedError
    from .learners import build, get_learner
    from .training.prepare import data_info

    own = get_learner(entry.learner).defaults
    try:
        build(entry.learner, data_info(load(data_path)), {k: v for k, v in entry.options.items() if k in own})
    except UnsupportedError as exc:
        return str(exc)
    return None


def run_grid(grid: Grid, out: PathLike, *, scheduler: Optional[str] = None, workers: Optional[int] = None,
             progress: Optional[bool] = None) -> xr.Dataset:
    """Run every unfinished cell of ``grid`` on Dask and write ``results.h5``, ``leaderboard.md``, ``results.csv``.

    Arguments:
        grid: systems (data specs), learner entries, seeds and the per-cell time budget in seconds.
        out: results folder; finished cells in ``out/cells`` are skipped on a rerun.
        scheduler: address of a running Dask scheduler (``tcp://host:8786``); default: a
            ``LocalCluster`` with ``workers`` single-threaded processes (default: one per core).
        progress: progress bar over cells.

    Returns:
        The tidy results Dataset (``score(system, learner, seed, metric)`` and ``error``).
    """
    from dask.distributed import as_completed

    from .progress import progress_bar
    from .simulate import simulate

    if scheduler:
        check_scheduler(scheduler)  # before minutes of data generation, not after
    folder = results_folder(out)
    data_paths, test_paths = {}, {}
    with progress_bar(len(grid.data), "benchmark data", progress, "system") as bar:
        for spec in grid.data:
            path = folder / "data" / f"{spec.system}.h5"
            if not path.is_file():
                save(spec.builder() if spec.builder else simulate(spec.system, **spec.simulate, progress=False), path)
            data_paths[spec.system] = test_paths[spec.system] = str(path)
            if spec.test is not None:
                test_path = folder / "data" / f"{spec.system}-test.h5"
                if not test_path.is_file():
                    save(simulate(spec.system, **spec.test, progress=False), test_path)
                test_paths[spec.system] = str(test_path)
            bar.update(1)
    todo = []
    for spec in grid.data:
        for entry in grid.entries:
            left = [seed for seed in grid.seeds
                    if not (folder / "cells" / f"{cell_name(spec.system, entry.label, seed)}.json").is_file()]
            reason = skip_reason(data_paths[spec.system], entry) if left else None
            for seed in left:
                if reason:  # recorded without a fit, so the grid shows why the learner is absent
                    record = {"system": spec.system, "learner": entry.label, "seed": seed, "skipped": reason}
                    atomic_write_bytes(folder / "cells" / f"{cell_name(spec.system, entry.label, seed)}.json",
                                       json.dumps(record, indent=1).encode())
                else:
                    todo.append((spec.system, entry, seed))
    if todo:
        # the bar opens before the cluster starts: starting workers takes seconds, and a cell a whole budget
        with progress_bar(len(todo), "benchmark cells", progress, "cell") as bar, quiet_dask_shutdown():
            client, cluster = _connect(scheduler, workers)
            try:
                # every cell's first seed before any second one, so a grid stopped early still covers each pair
                futures = [client.submit(run_cell, data_paths[s], test_paths[s], s, e, seed, grid.budget,
                                         str(folder), pure=False, priority=-grid.seeds.index(seed))
                           for s, e, seed in todo]
                for _ in as_completed(futures):
                    bar.update(1)
            finally:
                client.close()
                if cluster is not None:
                    cluster.close()
    return collect(grid, folder)


def _connect(scheduler: Optional[str], workers: Optional[int]) -> tuple[Any, Any]:
    """A Dask client of the scheduler at ``scheduler``, or of a new ``LocalCluster`` (returned too, to close)."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout=SCHEDULER_TIMEOUT), None
        except (OSError, TimeoutError) as exc:
            raise SchedulerError(f"could not connect to the Dask scheduler at {scheduler} ({exc}); "
                                 "check that it is running, or drop --scheduler to run on this machine",
                                 address=scheduler) from None
    cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                           dashboard_address=None, env={"WORKBENCH_THREADS": "1", "OMP_NUM_THREADS": "1"})
    return Client(cluster), cluster


@contextmanager
def quiet_dask_shutdown() -> Iterator[None]:
    """Hide the nanny's "Worker process still alive after ... seconds, killing" warning while the
    cluster runs and closes: a worker busy in a cell's torch step is expected to be killed, and the
    warning reads like a failure."""
    nanny = logging.getLogger("distributed.nanny")
    level = nanny.level
    nanny.setLevel(logging.ERROR)
    try:
        yield
    finally:
        nanny.setLevel(level)


def results_folder(out: PathLike) -> Path:
    """Create the results folder ``out`` (with its ``data`` subfolder) and return it.

    Raises:
        StorageError: ``out`` or a folder above it is a file, or cannot be created.
    """
    folder = Path(out)
    for path in (folder, *folder.parents):
        if path.exists() and not path.is_dir():
            raise StorageError(f"the benchmark results folder {folder} cannot be made: {path} exists and is not "
                               "a folder", fix="choose another --out path (a new or existing folder)")
    try:
        (folder / "data").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create the benchmark results folder {folder} ({exc.strerror or exc})",
                           fix="choose a writable --out path") from None
    return folder


def check_scheduler(address: str, timeout: float = SCHEDULER_TIMEOUT) -> None:
    """Raise :class:`SchedulerError` unless a TCP connection to the scheduler ``address`` opens within ``timeout``.

    Dask's client retries a refused connection for 30 s and then raises a long traceback; a plain
    socket says at once that nothing listens there.
    """
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls"):
        return  # other transports (inproc, ucx) are Dask's to check
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or port is None:
        raise BadParameterError(f"--scheduler expects an address like tcp://HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SchedulerError(f"no Dask scheduler answers at {address} ({reason.lower()}); start one with "
                             f"`dask scheduler` (and workers with `dask worker {address}`), or drop --scheduler "
                             "to run on this machine", address=address) from None


def collect(grid: Grid, folder: Path) -> xr.Dataset:
    """Gather cell files into the tidy Dataset and write results.h5, results.csv and leaderboard.md."""
    systems = [spec.system for spec in grid.data]
    labels = [entry.label for entry in grid.entries]
    cells = {}
    for path in (folder / "cells").glob("*.json"):
        record = json.loads(path.read_text())
        cells[(record["system"], record["learner"], record["seed"])] = record
    metrics_found = [m for m in HEADLINE if any(m in r for r in cells.values())]
    shape = (len(systems), len(labels), len(grid.seeds))
    score = np.full(shape + (len(metrics_found),), np.nan)
    error = np.full(shape, "", dtype=object)
    skipped = np.full(shape, "", dtype=object)
    finished = np.zeros(shape, dtype=bool)
    for (s, label, seed), record in cells.items():
        if s in systems and label in labels and seed in grid.seeds:
            index = (systems.index(s), labels.index(label), grid.seeds.index(seed))
            finished[index] = True
            error[index] = record.get("error", "")
            skipped[index] = record.get("skipped", "")
            for k, metric in enumerate(metrics_found):
                score[index + (k,)] = record.get(metric, np.nan)
    ds = xr.Dataset({"score": (("system", "learner", "seed", "metric"), score),
                     "error": (("system", "learner", "seed"), error.astype(str)),
                     "skipped": (("system", "learner", "seed"), skipped.astype(str)),
                     "finished": (("system", "learner", "seed"), finished)},
                    coords={"system": systems, "learner": labels, "seed": grid.seeds, "metric": metrics_found},
                    attrs={"budget_seconds": grid.budget, "generator": "workbench.benchmark"})
    write_netcdf(ds, folder / "results.h5")
    table = ds["score"].to_dataframe().dropna().reset_index()
    atomic_write_bytes(folder / "results.csv", table.to_csv(index=False).encode())
    atomic_write_bytes(folder / "leaderboard.md", leaderboard(ds, grid).encode())
    return ds


def _mean_std(v: np.ndarray) -> str:
    """Seed mean +- std of the finite values (the value alone when there is one); infinite ones
    (diverged runs) are counted, NaN ignored."""
    v = v[~np.isnan(v)]
    finite, inf = v[np.isfinite(v)], int(np.isinf(v).sum())
    largest = float(np.abs(finite).max()) if finite.size else 0.0
    spread = float((finite / largest).std()) * largest if largest > 0 else 0.0  # scaled: 1e194 squared overflows
    text = f"{finite.mean():.3g} ± {spread:.2g}" if finite.size > 1 else f"{finite.mean():.3g}" if finite.size else ""
    if inf:
        text = f"{text} (+{inf} ∞)" if text else "∞"
    return text or "—"


def _markdown_cell(text: str) -> str:
    """``text`` as one table cell: a newline would end the row and a ``|`` start another column."""
    return " ".join(text.split()).replace("|", "\\|")


def leaderboard(ds: xr.Dataset, grid: Grid) -> str:
    """Markdown: mean +- std over seeds per system and learner, published numbers alongside.

    Learners skipped for lack of capability get no row; one line under the table names them and why.
    ``seeds`` counts the finished cells of a row (fewer than the grid's seeds when it was stopped early).
    """
    shown = [(m, h) for m, h in grid.columns if m in ds["metric"].values]
    header = ["system", "learner", *(h for _, h in shown)]
    header += ([f"{grid.reference_metric} (paper)"] if grid.reference else []) + ["seeds", "failed"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    skipped: dict[str, list[str]] = {}
    for s in ds["system"].values:
        labels = [str(label) for label in ds["learner"].values]
        reasons = {label: next((r for r in ds["skipped"].sel(system=s, learner=label).values if r), "")
                   for label in labels}
        for label, reason in reasons.items():
            if reason:
                skipped.setdefault(f"`{label}` ({reason})", []).append(str(s))
        labels = [label for label in labels if not reasons[label]]
        if grid.rank_by in ds["metric"].values:
            def key(label: str) -> float:
                v = ds["score"].sel(system=s, learner=label, metric=grid.rank_by).values
                return -np.nanmean(v) if np.isfinite(v).any() else np.inf
            labels.sort(key=key)
        for label in labels:
            values = ds["score"].sel(system=s, learner=label)
            cells = [_mean_std(values.sel(metric=m).values) for m, _ in shown]
            if grid.reference:
                ref = grid.reference.get((str(s), label))
                cells.append(f"{ref:.3g}" if ref is not None else "")
            failed = [e for e in ds["error"].sel(system=s, learner=label).values if e]
            cells.append(f"{int(ds['finished'].sel(system=s, learner=label).sum())}/{ds.sizes['seed']}")
            cells.append(f"{len(failed)}: {_markdown_cell(failed[0][:80])}" if failed else "0")
            lines.append(f"| {s} | {label} | " + " | ".join(cells) + " |")
    notes = [f"\nSkipped (cannot fit): {learner} on {', '.join(systems)}." for learner, systems in skipped.items()]
    return "\n".join(lines) + "\n" + "".join(f"{n}\n" for n in notes)


def grid_from_names(systems: Sequence[str], learners: Sequence[str], seeds: Sequence[int], budget: float,
                    n: int = 32) -> Grid:
    """A grid over catalog systems (default spans, ``n`` trajectories) and plain learner names."""
    from .learners import get_learner
    from .catalog import get_system

    for name in systems:
        get_system(name)
    for name in learners:
        get_learner(name)
    return Grid(data=[DataSpec(s, {"n": n, "seed": 0}) for s in systems],
                entries=[Entry(name, name) for name in learners], seeds=list(seeds), budget=budget)

"""The `workbench` command line: a thin shell over the Python API.

Commands import the engine (torch, xarray) only when they run, after saying what they start, so the
first line appears within a second; errors are imported lazily for the same reason.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  help="Dynamical-systems workbench: generate ground truth, fit neural surrogates, compare flows.")
console = Console()
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bars.")


def _parse_pairs(pairs: List[str], what: str, convert: Callable[[str], Any] = float) -> dict[str, Any]:
    """NAME=VALUE options as a dict, each value read by ``convert`` (numbers by default)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            if not sep:
                raise ValueError
            out[key.strip()] = convert(value)
        except ValueError:
            from .errors import BadParameterError

            expected = "NUMBER" if convert is float else "VALUE"
            raise BadParameterError(f"--{what} expects NAME={expected}, got {pair!r}") from None
    return out


def _json_or_text(value: str) -> Any:
    """A learner option's value: JSON where it parses (numbers, lists, booleans), else the text."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


@app.command("systems")
def list_systems(kind: Optional[str] = typer.Option(None, help="Only 'ode' or 'sde' systems.")) -> None:
    """Table of the catalog (parameters too on terminals of 120 columns or more; `show NAME` has them all)."""
    import workbench as wb

    names = wb.systems(kind)
    wide = console.width >= 120
    table = Table(title="Systems catalog", box=box.SIMPLE_HEAD, pad_edge=False)
    # names are what users copy into other commands: never cut or wrapped
    table.add_column("name", no_wrap=True, min_width=max(map(len, names), default=4))
    table.add_column("kind", no_wrap=True)
    table.add_column("dim", justify="right", no_wrap=True)
    if wide:
        table.add_column("parameters", ratio=1)
    table.add_column("max Lyap.", justify="right", no_wrap=True)
    table.add_column("description", ratio=2, overflow="fold")
    for name in names:
        s = wb.system(name)
        cells = [name, s.kind, str(s.dim)]
        if wide:
            cells.append(", ".join(f"{k}={v:g}" for k, v in s.defaults.items()))
        table.add_row(*cells, f"{s.lyapunov:g}" if s.lyapunov else "", s.description)
    console.print(table)


@app.command()
def show(name: str, option: List[str] = typer.Option([], "--option", help="Structural option, e.g. dim=10.")) -> None:
    """Parameters, facts and reference of one system."""
    import workbench as wb

    s = wb.system(name, **_parse_pairs(option, "option"))  # whole numbers checked there: dim=4.7 is refused
    console.print(f"[bold]{s.name}[/bold] ({s.kind}, dim {s.dim}): {s.description}")
    console.print(f"state: {', '.join(f'{v} [{u}]' for v, u in zip(s.state_names, s.state_units))}")
    console.print(f"equations: {s.equations}")
    table = Table(title="parameters")
    for column in ("name", "default", "range", "meaning"):
        table.add_column(column)
    for key, spec in s.params.items():
        table.add_row(key, f"{spec.default:g}", f"[{spec.low:g}, {spec.high:g}]", spec.description)
    console.print(table)
    console.print(f"default span: t in [0, {s.t_end:g}], dt = {s.dt:g}")
    console.print("facts: " + json.dumps(s.facts))
    console.print(f"reference: {s.reference}")


@app.command()
def generate(name: str,
             out: Path = typer.Option(..., "--out", "-o", help="Output HDF5 file."),
             n: int = typer.Option(256, "--n", help="Number of trajectories."),
             t_end: Optional[float] = typer.Option(None, "--t-end", help="End time (default: the system's)."),
             dt: Optional[float] = typer.Option(None, "--dt", help="Sampling step (default: the system's)."),
             seed: int = typer.Option(0, "--seed"),
             param: List[str] = typer.Option([], "--param", help="Fixed parameter, NAME=VALUE (repeatable)."),
             sample: List[str] = typer.Option([], "--sample-param", help="Parameter drawn per trajectory from its range."),
             option: List[str] = typer.Option([], "--option", help="Structural option, e.g. dim=10."),
             obs_noise: float = typer.Option(0.0, "--obs-noise", help="Observation noise std."),
             relative_noise: bool = typer.Option(False, "--relative-noise", help="Noise as a multiple of each variable's std."),
             missing: float = typer.Option(0.0, "--missing", help="Fraction of samples dropped (irregular sampling)."),
             derivative: bool = typer.Option(False, "--derivative", help="Also store the true vector field."),
             method: Optional[str] = typer.Option(None, "--method", help="ODE solver (dop853, dopri5, radau, torchdiffeq names)."),
             rtol: float = typer.Option(1e-10, "--rtol"), atol: float = typer.Option(1e-10, "--atol"),
             device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda (default: auto)."),
             compile_step: Optional[bool] = typer.Option(
                 None, "--compile/--no-compile",
                 help="Compile the ODE solver step with torch.compile (default: only where it pays)."),
             quiet: bool = QUIET) -> None:
    """Generate trajectories of a catalog system and write them to HDF5."""
    import time

    start = time.perf_counter()
    if not quiet:
        console.print(f"generating {n} trajectories of {name} -> {out}")
    import workbench as wb

    ds = wb.simulate(name, n=n, t_end=t_end, dt=dt, seed=seed, params=_parse_pairs(param, "param"),
                     sample_params=sample or None, options=_parse_pairs(option, "option"),
                     obs_noise=obs_noise, obs_noise_kind="relative" if relative_noise else "absolute",
                     missing=missing, derivative=derivative, method=method, rtol=rtol, atol=atol,
                     device=device, compile=compile_step, progress=False if quiet else None)
    elapsed = time.perf_counter() - start
    wb.save(ds, out)
    console.print(summary(ds))
    console.print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) in {elapsed:.2f} s")


@app.command()
def fit(data: Path = typer.Argument(..., help="Training data (HDF5 in the workbench schema)."),
        out: Path = typer.Option(..., "--out", "-o", help="Run folder for the model."),
        learner: str = typer.Option("node", "--learner", "-l", help="Learner name (see `workbench learners`)."),
        epochs: Optional[int] = typer.Option(None, "--epochs"),
        time_budget: Optional[str] = typer.Option(None, "--time-budget", help="e.g. 90s, 5m, 1h."),
        device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda (default: auto)."),
        seed: int = typer.Option(0, "--seed"),
        lr: float = typer.Option(3e-3, "--lr"),
        batch_size: int = typer.Option(64, "--batch-size"),
        window: Optional[int] = typer.Option(None, "--window", help="Samples per training window."),
        option: List[str] = typer.Option([], "--option", help="Learner option NAME=VALUE (JSON values)."),
        resume: bool = typer.Option(False, "--resume", help="Continue the run in --out exactly."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace a run already in --out."),
        precision: str = typer.Option("float32", "--precision", help="float32, float64 or mixed (bfloat16 products)."),
        compile_step: Optional[bool] = typer.Option(
            None, "--compile/--no-compile", help="torch.compile the training step (default: long runs only)."),
        quiet: bool = QUIET) -> None:
    """Fit a surrogate to a dataset and save it as a run folder (one atomic generation per epoch)."""
    import workbench as wb

    ds = wb.load(data)
    model = wb.fit(ds, learner, epochs=epochs, time_budget=time_budget, device=device, seed=seed, lr=lr,
                   batch_size=batch_size, window=window, out=out, resume=resume, overwrite=overwrite,
                   precision=precision, compile="auto" if compile_step is None else compile_step,
                   progress=False if quiet else None, **_parse_pairs(option, "option", _json_or_text))
    last = model.history[-1]
    best = min(h["val_loss"] for h in model.history)
    console.print(f"{learner}: {last['epoch']} epochs in {last['elapsed']:.1f} s, validation loss "
                  f"{model.history[0]['val_loss']:.4g} -> {best:.4g}; saved {out}")


@app.command()
def predict(run: Path = typer.Argument(..., help="Run folder written by `workbench fit`."),
            data: Path = typer.Option(..., "--data", help="Dataset whose initial states and times to use."),
            out: Path = typer.Option(..., "--out", "-o", help="Output HDF5 file."),
            split: Optional[str] = typer.Option("test", "--split", help="train, val, test, or 'all'."),
            samples: int = typer.Option(32, "--samples", help="Paths per initial state (stochastic models)."),
            seed: int = typer.Option(0, "--seed")) -> None:
    """Roll a fitted model out from a dataset's initial states and save the predictions."""
    import workbench as wb

    model = wb.load_model(run)
    ds = wb.load(data)
    if split != "all":
        ds = wb.select_split(ds, split, required=True)
    pred = model.predict(ds, n_samples=samples, seed=seed)
    wb.save(pred, out)
    console.print(f"wrote {out}: {dict(pred.state.sizes)}")


@app.command()
def evaluate(run: Path = typer.Argument(..., help="Run folder written by `workbench fit`."),
             data: Path = typer.Option(..., "--data", help="Dataset with held-out trajectories."),
             split: str = typer.Option("test", "--split"),
             samples: int = typer.Option(32, "--samples"),
             out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also save all metrics to HDF5."),
             seed: int = typer.Option(0, "--seed")) -> None:
    """Score a fitted model on held-out data and print the headline metrics."""
    import workbench as wb
    from .evaluate import summary as headline

    scores = wb.evaluate(wb.load_model(run), wb.load(data), split=split, n_samples=samples, seed=seed)
    table = Table(title=f"{scores.attrs['learner']} on {scores.attrs['system']} ({split}, "
                        f"{scores.attrs['n_trajectories']} trajectories)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in headline(scores).items():
        table.add_row(name, f"{value:.4g}")
    console.print(table)
    if out is not None:
        from .dataset import write_netcdf

        console.print(f"wrote {write_netcdf(scores, out)}")


@app.command("learners")
def list_learners(data: Optional[Path] = typer.Option(None, "--data", help="Also say which learners can fit "
                                                                         "this HDF5 dataset, and why not.")) -> None:
    """Table of learners and what each declares (the same declaration fit checks)."""
    from .learners import LEARNERS, compatibility

    verdicts = compatibility(_load(data)) if data is not None else None
    table = Table(title="Learners")
    for column in ("name", "training", "data", "stochastic", "irregular", "inputs", "needs"):
        table.add_column(column, no_wrap=column == "name")
    for name, cls in sorted(LEARNERS.items()):
        s = cls.supports
        needs = ", ".join(n for n, flag in (("(q,p)", s.needs_qp), ("(q,v)", s.needs_even_dim)) if flag)
        table.add_row(name, s.training.replace("_", "-"), "/".join(s.kinds), "yes" if s.stochastic else "no",
                      "yes" if s.irregular else "no", "yes" if s.inputs else "no", needs)
    console.print(table)
    references = Table.grid(padding=(0, 1))
    references.add_column(no_wrap=True, style="bold")
    references.add_column()  # wraps under itself, not under the name
    for name, cls in sorted(LEARNERS.items()):
        references.add_row(name, cls.reference)
    console.print(references, highlight=False)
    if verdicts is not None:
        console.print(f"\nOn {data}:")
        for name, reason in verdicts.items():
            console.print(f"  {name}: " + ("fits" if reason is None else f"cannot fit; {reason}"), highlight=False)


def _load(path: Path):
    import workbench as wb

    return wb.load(path)


@app.command("app", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def launch_app(ctx: typer.Context,
         port: int = typer.Option(8501, "--port", help="Port to serve on (localhost only unless --address)."),
         address: str = typer.Option("127.0.0.1", "--address", help="Interface to bind; 127.0.0.1 keeps it local.")) -> None:
    """Launch the web app (extra options go to `streamlit run`; its --server.port/--server.address win)."""
    import os

    from .demo import DEMOS, build_demo, demo_paths, shipped
    from .errors import BadParameterError, StorageError

    extra = list(ctx.args)
    port_text = _take_option(extra, "server.port") or str(port)
    address = _take_option(extra, "server.address") or address
    if not port_text.isdigit():
        raise BadParameterError(f"--server.port expects a port number, got {port_text!r}")
    entry = shipped("app") / "streamlit_app.py"
    if not entry.is_file():
        raise StorageError(f"the app is missing from this installation ({entry}); reinstall with `pip install .` "
                           "from a source checkout")
    if not all(demo_paths(kind)[0].is_file() for kind in DEMOS):
        console.print("building the demo data and models (first run only)...")
        build_demo()
    command = [sys.executable, "-m", "streamlit", "run", str(entry), "--server.address", address,
               "--server.port", port_text, "--server.maxUploadSize", "64",
               "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", *extra]
    console.print(f"serving on http://{address}:{port_text}")
    os.execv(sys.executable, command)


def _take_option(args: List[str], name: str) -> Optional[str]:
    """Remove every ``--name VALUE`` / ``--name=VALUE`` from ``args`` and return the last value (None if absent)."""
    value, flag, i = None, f"--{name}", 0
    while i < len(args):
        if args[i] == flag and i + 1 < len(args):
            value = args.pop(i + 1)
            args.pop(i)
        elif args[i].startswith(flag + "="):
            value = args.pop(i).split("=", 1)[1]
        else:
            i += 1
    return value


@app.command()
def demo(folder: Optional[Path] = typer.Option(None, "--folder", help="Where to write (default: data/)."),
         quiet: bool = QUIET) -> None:
    """Rebuild the demo datasets and models the app shows by default (a few CPU-minutes)."""
    from .demo import build_demo

    for path in build_demo(folder, progress=False if quiet else None):
        console.print(f"wrote {path}")


@app.command()
def benchmark(out: Path = typer.Option(..., "--out", "-o", help="Results folder (rerun to resume)."),
              systems: str = typer.Option("lorenz63,van_der_pol", "--systems", help="Comma-separated systems."),
              learners: str = typer.Option("node,resnet", "--learners", help="Comma-separated learners."),
              seeds: str = typer.Option("0", "--seeds", help="Comma-separated seeds (a --preset brings its own)."),
              budget: str = typer.Option("60s", "--budget", help="Training time per cell, e.g. 90s, 2m."),
              n: int = typer.Option(32, "--n", help="Trajectories per system."),
              preset: Optional[str] = typer.Option(None, "--preset", help="hnn, anode or chaos (overrides the lists)."),
              scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address, tcp://HOST:PORT."),
              workers: Optional[int] = typer.Option(None, "--workers", help="LocalCluster processes (default: cores)."),
              quiet: bool = QUIET) -> None:
    """Fit and score a grid of systems x learners x seeds on Dask; write results.h5 and leaderboard.md."""
    if not quiet:
        where = f"the Dask scheduler at {scheduler}" if scheduler else "a local Dask cluster"
        what = f"preset {preset} (its own seeds)" if preset else f"{systems} x {learners}, seeds {seeds}"
        console.print(f"benchmark {what}, {budget} per cell, "
                      f"on {where} -> {out}")
    from . import benchmark as bench
    from .errors import BadParameterError
    from .training import parse_duration

    seconds = parse_duration(budget)
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise BadParameterError(f"--seeds expects comma-separated integers, got {seeds!r}") from None
    grid = bench.preset(preset, seconds) if preset else bench.grid_from_names(
        [s.strip() for s in systems.split(",") if s.strip()], [s.strip() for s in learners.split(",") if s.strip()],
        seed_list, seconds, n)
    bench.run_grid(grid, out, scheduler=scheduler, workers=workers, progress=False if quiet else None)
    console.print((out / "leaderboard.md").read_text())
    console.print(f"wrote {out / 'results.h5'}, {out / 'results.csv'}, {out / 'leaderboard.md'}")


def summary(ds) -> str:
    """A few human lines about a dataset."""
    from .dataset import observation_mask

    lines = [f"system {ds.attrs.get('system', '?')} ({ds.attrs.get('kind', '?')}): "
             f"{ds.sizes['trajectory']} trajectories x {ds.sizes['time']} samples x {ds.sizes['variable']} variables",
             f"time [{float(ds.time[0]):g}, {float(ds.time[-1]):g}], integrator {ds.attrs.get('integrator', '?')}"]
    if "split" in ds.coords:
        values, counts = __import__("numpy").unique(ds["split"].values, return_counts=True)
        lines.append("split: " + ", ".join(f"{v}={c}" for v, c in zip(values, counts)))
    observed = observation_mask(ds)
    if not observed.all():
        lines.append(f"observed samples: {observed.mean():.1%}")
    state = ds["state"]
    for var in ds["variable"].values:
        values = state.sel(variable=var)
        lines.append(f"  {var}: min {float(values.min()):.4g}  mean {float(values.mean()):.4g}  max {float(values.max()):.4g}")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point: user errors become one line on stderr and a non-zero exit, never a traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        app(args=argv or ["--help"], prog_name="workbench", standalone_mode=False)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except (KeyboardInterrupt, typer.Abort):
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except typer.TyperException as exc:  # usage errors: bad option values, unknown commands
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        print(f"error: {message} (see `workbench --help`)", file=sys.stderr)
        raise SystemExit(getattr(exc, "exit_code", 2)) from None
    except Exception as exc:
        from .errors import WorkbenchError  # imported here: it loads the catalog, and startup should not wait

        if not isinstance(exc, WorkbenchError):
            raise
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None

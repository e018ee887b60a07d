"""The `workbench` command line: a thin shell over the Python API.

Commands import the engine (torch, xarray) only when they run, after saying what they start, so the
first line appears within a second. Mistakes in the arguments that need no engine to see (an
unknown system or parameter, a value outside its range, a missing file) are answered before the
engine loads: the catalog's names and ranges are read from its source (:func:`catalog_index`),
since importing the catalog imports torch.
"""
from __future__ import annotations

import ast
import difflib
import importlib.util
import json
import math
import operator
import sys
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from typer.core import TyperArgument, TyperCommand, TyperGroup



def _no_type(ctx: Any) -> None:
    return None


class _PlainHelp:
    """Help without typer's ``<bool>``/``<str>``/``<path>`` tags: options show their own metavar
    (set by :func:`option`), flags, ``--help`` and positional arguments (named by theirs) show none."""

    def get_help_option(self, ctx: Any) -> Any:
        help_option = super().get_help_option(ctx)
        if help_option is not None:
            help_option.metavar = ""
        return help_option

    def get_params(self, ctx: Any) -> list:
        params = super().get_params(ctx)
        for param in params:
            if isinstance(param, TyperArgument):
                param.display_type_rich = _no_type  # typer has no setting for this
        return params


class PlainHelpGroup(_PlainHelp, TyperGroup):
    """The command group with plain help."""


class PlainHelpCommand(_PlainHelp, TyperCommand):
    """A command with plain help."""


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, cls=PlainHelpGroup,
                  help="Dynamical-systems workbench: generate ground truth, fit neural surrogates, compare flows.")
command = partial(app.command, cls=PlainHelpCommand)
console = Console()

# the catalog's sources: numbers in Param(default, low, high) may be written as arithmetic (8.0 / 3.0)
_ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
               ast.Pow: operator.pow}
Ranges = Optional[dict[str, tuple[float, float]]]


class ArgumentError(Exception):
    """An argument the command line refuses before loading the engine (printed as one line, exit 2).

    Arguments:
        problem: what is wrong, naming the argument and its value.
        fix: what to do instead.
    """

    def __init__(self, problem: str, fix: str):
        self.problem, self.fix = problem, fix
        super().__init__(f"{problem}; {fix}")


def option(default: Any, *names: str, help: str, metavar: str = "") -> Any:
    """A typer option with its description and a plain placeholder (``""`` for flags), instead of the
    ``<str>``/``<bool>`` type tags typer prints by default."""
    return typer.Option(default, *names, help=help, metavar=metavar)


QUIET = option(False, "--quiet", "-q", help="No progress bars.")


def _number(node: ast.AST) -> float:
    """The value of a literal number or arithmetic on literals; ValueError for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _number(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        return _ARITHMETIC[type(node.op)](_number(node.left), _number(node.right))
    raise ValueError("not a literal number")


def _param_ranges(node: Optional[ast.AST]) -> Ranges:
    """``{name: (low, high)}`` of a literal ``params={...: Param(default, low, high, ...)}``; None
    where the source computes them (the engine checks those)."""
    if node is None:
        return {}
    if not isinstance(node, ast.Dict):
        return None
    ranges = {}
    for key, value in zip(node.keys, node.values):
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str) and isinstance(value, ast.Call)
                and getattr(value.func, "id", None) == "Param" and len(value.args) >= 3):
            return None
        try:
            ranges[key.value] = (_number(value.args[1]), _number(value.args[2]))
        except ValueError:
            return None
    return ranges


@lru_cache(maxsize=1)
def catalog_index() -> dict[str, Ranges]:
    """Catalog system name -> parameter ranges (None: not literal in the source), read from the
    ``System(name=..., params=...)`` calls of the catalog's source files without importing them.

    A test holds this equal to the imported catalog, so a catalog written another way fails there.
    """
    spec = importlib.util.find_spec("systems")  # finds the package without running it
    index: dict[str, Ranges] = {}
    for folder in spec.submodule_search_locations if spec else ():
        for path in sorted(Path(folder).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "System":
                    keywords = {k.arg: k.value for k in node.keywords}
                    name = keywords.get("name")
                    if isinstance(name, ast.Constant) and isinstance(name.value, str):
                        index[name.value] = _param_ranges(keywords.get("params"))
    return index


def check_system(name: str, params: Optional[dict[str, float]] = None, sampled: List[str] = ()) -> None:
    """Refuse an unknown system, unknown parameter names and fixed values outside their ranges.

    Raises:
        ArgumentError: the same verdicts the catalog gives, before it is imported.
    """
    index = catalog_index()
    if name not in index:
        close = difflib.get_close_matches(name, list(index), n=3)
        raise ArgumentError(f"unknown system {name!r}", f"did you mean {', '.join(close)}?" if close
                            else "run `workbench systems` for the list")
    ranges = index[name]
    if ranges is None:
        return
    for key in [*(params or {}), *sampled]:
        if key not in ranges:
            raise ArgumentError(f"system {name!r} has no parameter {key!r}",
                                f"its parameters are {sorted(ranges) or 'none'}")
    for key, value in (params or {}).items():
        low, high = ranges[key]
        if not (math.isfinite(value) and low <= value <= high):
            raise ArgumentError(f"parameter {key}={value:g} of {name!r} is outside its valid range [{low:g}, {high:g}]",
                                "choose a value inside it")


def check_file(path: Path, what: str) -> None:
    """Refuse a missing input file or a folder given as one (before the engine loads)."""
    if not path.exists():
        raise ArgumentError(f"no such file: {path} ({what})", "check the path")
    if path.is_dir():
        raise ArgumentError(f"{path} is a folder, not a file ({what})", "pass the path of an HDF5 file")


def check_run_folder(path: Path) -> None:
    """Refuse a run folder that does not exist or is a file (before the engine loads)."""
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a folder"
        raise ArgumentError(f"the run folder {path} {what}", "pass a folder written by `workbench fit --out`")


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
            expected = "NUMBER" if convert is float else "VALUE"
            raise ArgumentError(f"--{what} expects NAME={expected}, got {pair!r}",
                                f"write e.g. --{what} rho=28") from None
    return out


def _json_or_text(value: str) -> Any:
    """A learner option's value: JSON where it parses (numbers, lists, booleans), else the text."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


@command("systems")
def list_systems(kind: Optional[str] = option(None, "--kind", help="Only 'ode' or 'sde' systems.",
                                              metavar="KIND")) -> None:
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


@command()
def show(name: str = typer.Argument(..., help="System name (see `workbench systems`).", metavar="NAME"),
         options: List[str] = option([], "--option", help="Structural option, e.g. dim=10.", metavar="NAME=VALUE")
         ) -> None:
    """Parameters, facts and reference of one system."""
    check_system(name)
    structure = _parse_pairs(options, "option")
    import workbench as wb

    s = wb.system(name, **structure)  # whole numbers checked there: dim=4.7 is refused
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


@command()
def generate(name: str = typer.Argument(..., help="System name (see `workbench systems`).", metavar="NAME"),
             out: Path = option(..., "--out", "-o", help="Output HDF5 file.", metavar="FILE"),
             n: int = option(256, "--n", help="Number of trajectories.", metavar="N"),
             t_end: Optional[float] = option(None, "--t-end", help="End time (default: the system's).", metavar="T"),
             dt: Optional[float] = option(None, "--dt", help="Sampling step (default: the system's).", metavar="DT"),
             seed: int = option(0, "--seed", help="Seed of initial states, parameters and noise.", metavar="N"),
             param: List[str] = option([], "--param", help="Fixed parameter, NAME=VALUE (repeatable).",
                                       metavar="NAME=VALUE"),
             sample: List[str] = option([], "--sample-param", help="Parameter drawn per trajectory from its range.",
                                        metavar="NAME"),
             options: List[str] = option([], "--option", help="Structural option, e.g. dim=10.", metavar="NAME=VALUE"),
             obs_noise: float = option(0.0, "--obs-noise", help="Observation noise std.", metavar="STD"),
             relative_noise: bool = option(False, "--relative-noise", help="Noise as a multiple of each variable's std."),
             missing: float = option(0.0, "--missing", help="Fraction of samples dropped (irregular sampling).",
                                     metavar="FRACTION"),
             derivative: bool = option(False, "--derivative", help="Also store the true vector field."),
             method: Optional[str] = option(None, "--method", help="ODE solver (dop853, dopri5, radau, torchdiffeq "
                                                                   "names).", metavar="NAME"),
             rtol: float = option(1e-10, "--rtol", help="Relative tolerance of the adaptive solver.", metavar="TOL"),
             atol: float = option(1e-10, "--atol", help="Absolute tolerance of the adaptive solver.", metavar="TOL"),
             device: Optional[str] = option(None, "--device", help="cpu, cuda (default: auto).", metavar="DEVICE"),
             compile_step: Optional[bool] = option(
                 None, "--compile/--no-compile",
                 help="Compile the ODE solver step with torch.compile (default: only where it pays)."),
             quiet: bool = QUIET) -> None:
    """Generate trajectories of a catalog system and write them to HDF5."""
    import time

    start = time.perf_counter()
    params = _parse_pairs(param, "param")
    check_system(name, params, sample)
    if not quiet:
        console.print(f"generating {n} trajectories of {name} -> {out}")
    import workbench as wb

    ds = wb.simulate(name, n=n, t_end=t_end, dt=dt, seed=seed, params=params,
                     sample_params=sample or None, options=_parse_pairs(options, "option"),
                     obs_noise=obs_noise, obs_noise_kind="relative" if relative_noise else "absolute",
                     missing=missing, derivative=derivative, method=method, rtol=rtol, atol=atol,
                     device=device, compile=compile_step, progress=False if quiet else None)
    elapsed = time.perf_counter() - start
    wb.save(ds, out)
    console.print(summary(ds))
    console.print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) in {elapsed:.2f} s")


@command()
def fit(data: Path = typer.Argument(..., help="Training data (HDF5 in the workbench schema).", metavar="DATA"),
        out: Path = option(..., "--out", "-o", help="Run folder for the model.", metavar="FOLDER"),
        learner: str = option("node", "--learner", "-l", help="Learner name (see `workbench learners`).",
                              metavar="NAME"),
        epochs: Optional[int] = option(None, "--epochs", help="Epochs to train (default 40, or until the time "
                                                              "budget ends).", metavar="N"),
        time_budget: Optional[str] = option(None, "--time-budget", help="Wall-clock limit, e.g. 90s, 5m, 1h.",
                                            metavar="DURATION"),
        device: Optional[str] = option(None, "--device", help="cpu, cuda (default: auto).", metavar="DEVICE"),
        seed: int = option(0, "--seed", help="Seed of the initial weights and the batches.", metavar="N"),
        lr: float = option(3e-3, "--lr", help="Adam learning rate.", metavar="RATE"),
        batch_size: int = option(64, "--batch-size", help="Training windows per optimiser step.", metavar="N"),
        window: Optional[int] = option(None, "--window", help="Samples per training window.", metavar="N"),
        options: List[str] = option([], "--option", help="Learner option NAME=VALUE (JSON values).",
                                    metavar="NAME=VALUE"),
        resume: bool = option(False, "--resume", help="Continue the run in --out exactly."),
        overwrite: bool = option(False, "--overwrite", help="Replace a run already in --out."),
        precision: str = option("float32", "--precision", help="float32, float64 or mixed (bfloat16 products).",
                                metavar="NAME"),
        compile_step: Optional[bool] = option(
            None, "--compile/--no-compile", help="torch.compile the training step (default: long runs only)."),
        quiet: bool = QUIET) -> None:
    """Fit a surrogate to a dataset and save it as a run folder (one atomic generation per epoch)."""
    check_file(data, "training data")
    learner_options = _parse_pairs(options, "option", _json_or_text)
    if not quiet:
        console.print(f"fitting {learner} to {data} -> {out}")
    from .progress import progress_bar

    # the bar opens before the engine loads, so its clock runs from the start
    with progress_bar(None, f"fit {learner}", False if quiet else None, "epoch") as bar:
        import workbench as wb
        from .training import parse_duration

        budget = parse_duration(time_budget)
        ds = wb.load(data)
        model = wb.fit(ds, learner, epochs=epochs, time_budget=budget, device=device, seed=seed, lr=lr,
                       batch_size=batch_size, window=window, out=out, resume=resume, overwrite=overwrite,
                       precision=precision, compile="auto" if compile_step is None else compile_step,
                       progress=False, callback=epoch_progress(bar, budget), **learner_options)
    last = model.history[-1]
    scored = [h["val_loss"] for h in model.history if isinstance(h.get("val_loss"), float)]
    losses = f", validation loss {scored[0]:.4g} -> {min(scored):.4g}" if scored else ""
    epochs = f"{last['epoch']} epoch{'s' if last['epoch'] != 1 else ''}"
    console.print(f"{learner}: {epochs} in {last['elapsed']:.1f} s{losses}; saved {out}")


def epoch_progress(bar: Any, budget: Optional[float]) -> Callable[[dict[str, Any]], None]:
    """The ``fit`` callback that moves ``bar`` after each epoch, showing the epoch and the training and
    validation losses: through the epochs, or under a time budget through its seconds with the time
    left (the bar's own clock, redrawn every second, keeps running between epochs)."""
    def update(record: dict[str, Any]) -> None:
        if bar.total is None:
            bar.total = budget if budget is not None else record["epochs"]
            bar.unit = "epoch"
            if budget is not None:
                bar.bar_format = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}{postfix}]"
        # a closed-form learner's one record may carry neither loss
        train, val = record.get("train_loss"), record.get("val_loss")
        losses = {"epoch": record["epoch"], "train": "—" if train is None else f"{train:.3g}",
                  "val": "—" if val is None else f"{val:.3g}"}
        if budget is not None:
            bar.n = min(record["elapsed"], budget)
            losses["left"] = f"{max(0.0, budget - record['elapsed']):.0f} s"
        else:
            bar.n = record["epoch"]
        bar.set_postfix(losses)
    return update


@command()
def predict(run: Path = typer.Argument(..., help="Run folder written by `workbench fit`.", metavar="RUN"),
            data: Path = option(..., "--data", help="Dataset whose initial states and times to use.", metavar="FILE"),
            out: Path = option(..., "--out", "-o", help="Output HDF5 file.", metavar="FILE"),
            split: Optional[str] = option("test", "--split", help="train, val, test, or 'all'.", metavar="NAME"),
            samples: int = option(32, "--samples", help="Paths per initial state (stochastic models).", metavar="N"),
            seed: int = option(0, "--seed", help="Seed of stochastic rollouts.", metavar="N")) -> None:
    """Roll a fitted model out from a dataset's initial states and save the predictions."""
    check_run_folder(run)
    check_file(data, "--data")
    import workbench as wb

    model = wb.load_model(run)
    ds = wb.load(data)
    if split != "all":
        ds = wb.select_split(ds, split, required=True)
    pred = model.predict(ds, n_samples=samples, seed=seed)
    wb.save(pred, out)
    console.print(f"wrote {out}: {dict(pred.state.sizes)}")


@command()
def evaluate(run: Path = typer.Argument(..., help="Run folder written by `workbench fit`.", metavar="RUN"),
             data: Path = option(..., "--data", help="Dataset with held-out trajectories.", metavar="FILE"),
             split: str = option("test", "--split", help="Which split to score: train, val or test.", metavar="NAME"),
             samples: int = option(32, "--samples", help="Paths per initial state (stochastic models).", metavar="N"),
             horizons: str = option("1", "--horizons", help="Forecast steps scored on a time-split series, e.g. "
                                                            "1,2,4,8 (rolling origins over its test period).",
                                    metavar="LIST"),
             refit: Optional[str] = option(None, "--refit", help="'each': refit a closed-form model at every "
                                                                 "rolling origin.", metavar="WHEN"),
             out: Optional[Path] = option(None, "--out", "-o", help="Also save all metrics to HDF5.", metavar="FILE"),
             seed: int = option(0, "--seed", help="Seed of stochastic rollouts.", metavar="N")) -> None:
    """Score a fitted model on held-out data and print the headline metrics (by horizon for a series
    split in time)."""
    check_run_folder(run)
    check_file(data, "--data")
    import workbench as wb

    try:
        steps = [int(h) for h in horizons.split(",") if h.strip()]
    except ValueError:
        raise ArgumentError(f"--horizons expects comma-separated whole numbers, got {horizons!r}",
                            "write e.g. --horizons 1,2,4,8") from None
    scores = wb.evaluate(wb.load_model(run), wb.load(data), split=split, n_samples=samples, seed=seed,
                         horizons=steps, refit=refit)
    console.print(_rolling_table(scores) if scores.attrs.get("mode") == "rolling" else _headline_table(scores, split))
    if out is not None:
        from .data.io import write_netcdf

        console.print(f"wrote {write_netcdf(scores, out)}")


def _headline_table(scores: Any, split: str) -> Table:
    """The scalar headline metrics of a trajectory evaluation."""
    from .evaluation.evaluate import summary as headline

    table = Table(title=f"{scores.attrs['learner']} on {scores.attrs.get('system', 'the data')} ({split}, "
                        f"{scores.attrs['n_trajectories']} trajectories)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in headline(scores).items():
        table.add_row(name, f"{value:.4g}")
    return table


# rolling scores printed per horizon, where present (the rest go to --out)
ROLLING_COLUMNS = ("rmse", "mae", "mase", "crps", "coverage", "rmse_skill_vs_best", "rmse_skill_vs_persistence")


def _rolling_table(scores: Any) -> Table:
    """Rolling-origin scores by horizon and variable, with the skill against the best baseline."""
    columns = [c for c in ROLLING_COLUMNS if c in scores]
    table = Table(title=f"{scores.attrs['learner']}: rolling origins over the test period "
                        f"(refit: {scores.attrs.get('refit', 'none')})")
    for column in ("horizon", "variable", *columns, "origins"):
        table.add_column(column, justify="left" if column == "variable" else "right")
    units = scores["units"].values if "units" in scores.coords else [""] * scores.sizes["variable"]
    labels = [f"{name} [{unit}]" if str(unit) else str(name) for name, unit in zip(scores["variable"].values, units)]
    for h in range(scores.sizes["horizon"]):
        for v, label in enumerate(labels):
            row = [f"{float(scores[c].values[h, v]):.4g}" for c in columns]
            table.add_row(str(int(scores["horizon"].values[h])), label, *row, str(int(scores["n_origins"].values[h])))
    return table


@command("learners")
def list_learners(data: Optional[Path] = option(None, "--data", help="Also say which learners can fit this HDF5 "
                                                                     "dataset, and why not.", metavar="FILE")) -> None:
    """Table of learners and what each declares (the same declaration fit checks)."""
    if data is not None:
        check_file(data, "--data")
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


@command("app", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def launch_app(ctx: typer.Context,
               port: int = option(8501, "--port", help="Port to serve on (localhost only unless --address).",
                                  metavar="PORT"),
               address: str = option("127.0.0.1", "--address", help="Interface to bind; 127.0.0.1 keeps it local.",
                                     metavar="HOST")) -> None:
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


@command()
def demo(folder: Optional[Path] = option(None, "--folder", help="Where to write (default: data/).", metavar="FOLDER"),
         quiet: bool = QUIET) -> None:
    """Rebuild the demo datasets and models the app shows by default (a few CPU-minutes)."""
    from .demo import build_demo

    for path in build_demo(folder, progress=False if quiet else None):
        console.print(f"wrote {path}")


@command()
def benchmark(out: Path = option(..., "--out", "-o", help="Results folder (rerun to resume).", metavar="FOLDER"),
              systems: str = option("lorenz63,van_der_pol", "--systems", help="Comma-separated systems.",
                                    metavar="NAMES"),
              learners: str = option("node,resnet", "--learners", help="Comma-separated learners.", metavar="NAMES"),
              seeds: str = option("0", "--seeds", help="Comma-separated seeds (a --preset brings its own).",
                                  metavar="SEEDS"),
              budget: str = option("60s", "--budget", help="Training time per cell, e.g. 90s, 2m.", metavar="DURATION"),
              n: int = option(32, "--n", help="Trajectories per system.", metavar="N"),
              preset: Optional[str] = option(None, "--preset", help="hnn, anode or chaos (overrides the lists).",
                                             metavar="NAME"),
              scheduler: Optional[str] = option(None, "--scheduler", help="Dask scheduler address, tcp://HOST:PORT.",
                                                metavar="ADDRESS"),
              workers: Optional[int] = option(None, "--workers", help="LocalCluster processes (default: cores).",
                                              metavar="N"),
              quiet: bool = QUIET) -> None:
    """Fit and score a grid of systems x learners x seeds on Dask; write results.h5 and leaderboard.md."""
    system_list = [s.strip() for s in systems.split(",") if s.strip()]
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise ArgumentError(f"--seeds expects comma-separated integers, got {seeds!r}", "write e.g. --seeds 0,1,2") \
            from None
    if not preset:
        for name in system_list:
            check_system(name)
    for path in (out, *out.parents):
        if path.exists() and not path.is_dir():
            raise ArgumentError(f"--out {out}: {path} exists and is not a folder",
                                "choose another --out path (a new or existing folder)")
    if not quiet:
        where = f"the Dask scheduler at {scheduler}" if scheduler else "a local Dask cluster"
        what = f"preset {preset} (its own seeds)" if preset else f"{systems} x {learners}, seeds {seeds}"
        console.print(f"benchmark {what}, {budget} per cell, "
                      f"on {where} -> {out}")
    from . import benchmark as bench
    from .training import parse_duration

    seconds = parse_duration(budget)
    grid = bench.preset(preset, seconds) if preset else bench.grid_from_names(
        system_list, [s.strip() for s in learners.split(",") if s.strip()], seed_list, seconds, n)
    bench.run_grid(grid, out, scheduler=scheduler, workers=workers, progress=False if quiet else None)
    # as written: rich would wrap each long row at the terminal's width and read [..] as markup
    console.print((out / "leaderboard.md").read_text(), soft_wrap=True, markup=False, highlight=False)
    console.print(f"wrote {out / 'results.h5'}, {out / 'results.csv'}, {out / 'leaderboard.md'}")


def summary(ds) -> str:
    """A few human lines about a dataset."""
    from .data.schema import observation_mask

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
    except ArgumentError as exc:  # refused before the engine loaded
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as exc:
        from .errors import WorkbenchError  # imported here: it loads the catalog, and startup should not wait

        if not isinstance(exc, WorkbenchError):
            raise
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None

"""The one fit loop shared by every learner.

Adam with a plateau learning-rate schedule, gradient clipping, a horizon curriculum over
multiple-shooting windows, early stopping on the validation split, a NaN guard, time budgets,
progress bars, a stop/progress callback, and resumable checkpoints (safetensors + JSON).
"""
from __future__ import annotations

import copy
import json
import math
import re
import time
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
import xarray as xr
from safetensors.torch import load_file

from .dataset import PathLike, atomic_write_bytes, json_attr
from .devices import DeviceLike, configure_threads, resolve_device
from .errors import BadParameterError, DivergenceError, WorkbenchError
from .learners import Learner, get_learner
from .learners.base import DataInfo
from .model import Model, _weights_bytes, load_model, write_run
from .progress import progress_bar
from .windows import WindowSampler, data_info, prepare

Callback = Callable[[dict[str, Any]], Optional[bool]]
DEFAULT_EPOCHS = 40
MAX_BAD_STEPS = 5
DEFAULT_WINDOW = {"trajectory": 16, "derivative": 8, "likelihood": 16}


def parse_duration(value: Union[None, float, int, str]) -> Optional[float]:
    """Seconds from a number or a string such as ``"90s"``, ``"5m"``, ``"1.5h"``."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", str(value))
        if not match:
            raise BadParameterError(f"cannot read the duration {value!r}; write e.g. 90, '90s', '5m' or '1h'")
        seconds = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    if not seconds > 0:
        raise BadParameterError(f"a time budget must be positive, got {value!r}")
    return seconds


def _auto_options(name: str, info: DataInfo, options: dict[str, Any]) -> dict[str, Any]:
    """Fill options a learner takes from the data: a map's step, HNN's canonical indices."""
    cls = get_learner(name)
    options = dict(options)
    if "dt" in cls.defaults and "dt" not in options:
        options["dt"] = info.dt
    if cls.supports.needs_qp and info.qp_split is not None:
        options.setdefault("q", info.qp_split[0])
        options.setdefault("p", info.qp_split[1])
    if name == "ensemble":
        base = options.get("base", cls.defaults["base"])
        options["base_options"] = _auto_options(base, info, dict(options.get("base_options", {})))
    return options


def fit(ds: xr.Dataset, learner: str = "node", *, epochs: Optional[int] = None,
        time_budget: Union[None, float, str] = None, device: DeviceLike = None, seed: int = 0,
        batch_size: int = 64, lr: float = 3e-3, window: Optional[int] = None, steps_per_epoch: int = 25,
        patience: int = 15, clip: float = 1.0, schedule: Optional[str] = None, precision: str = "float32", q: Optional[list[str]] = None,
        p: Optional[list[str]] = None, out: Optional[PathLike] = None, resume: bool = False,
        callback: Optional[Callback] = None, threads: Optional[int] = None, progress: Optional[bool] = None,
        **learner_options: Any) -> Model:
    """Fit a surrogate to a dataset and return the model at its best validation loss.

    Arguments:
        ds: a dataset in the workbench schema (its ``split`` picks train/val trajectories).
        learner: a name from :func:`workbench.learners` (``node``, ``anode``, ``sonode``, ``hnn``,
            ``resnet``, ``rknet``, ``lmnet``, ``nsde``, ``ensemble``).
        epochs: number of epochs of ``steps_per_epoch`` optimiser steps (default 40 unless a
            ``time_budget`` alone is given).
        time_budget: wall-clock limit, seconds or ``"5m"``; training ends at the best weights.
        device: ``"cpu"``, ``"cuda"``, or ``None`` for CUDA when available.
        seed: seeds initialisation and batch sampling (CPU runs are reproducible).
        batch_size, lr, clip: minibatch size, Adam learning rate, gradient-norm clip.
        window: samples per training window (the curriculum grows the horizon up to it).
        patience: epochs without validation improvement before stopping.
        schedule: learning-rate schedule, ``"cosine"`` (annealed to 1% over the epochs or the time
            budget; the default with a time budget) or ``"plateau"`` (halved after 4 epochs
            without improvement; the default otherwise).
        precision: ``"float32"`` (default) or ``"float64"``.
        q, p: canonical coordinate names, for HNN on datasets that do not declare them.
        out: run folder; written every epoch (atomically), so ``resume=True`` can continue.
        callback: called after every epoch with a dict (epoch, losses, lr, elapsed, horizon);
            returning ``False`` stops training (used by the app's stop button).
        threads: torch CPU threads (default 1: fastest for small models on small CPUs).
        progress: progress bar (default: only on a terminal).
        learner_options: the learner's own options (see each learner's ``defaults``).

    Returns:
        The fitted :class:`Model` with its ``history``.
    """
    budget = parse_duration(time_budget)
    if epochs is None:
        epochs = 10 ** 9 if budget is not None else DEFAULT_EPOCHS
    if int(epochs) < 1 or batch_size < 1 or steps_per_epoch < 1 or not lr > 0:
        raise BadParameterError("epochs, batch_size and steps_per_epoch must be >= 1 and lr > 0")
    schedule = schedule or ("cosine" if budget is not None else "plateau")
    if schedule not in ("cosine", "plateau"):
        raise BadParameterError(f"schedule must be 'cosine' or 'plateau', got {schedule!r}")
    if precision not in ("float32", "float64"):
        raise BadParameterError(f"precision must be 'float32' or 'float64', got {precision!r}")
    dtype = getattr(torch, precision)
    configure_threads(threads)
    dev = resolve_device(device)
    info = data_info(ds, q, p)
    cls = get_learner(learner)
    cls.check_data(info, learner_options)
    options = _auto_options(learner, info, learner_options)

    torch.manual_seed(seed)
    module = cls(info.dim, **options).to(device=dev, dtype=dtype)
    scaler, train, val, times = prepare(ds, dev, dtype)
    module.set_scaling(torch.as_tensor(scaler.mean, dtype=dtype, device=dev),
                       torch.as_tensor(scaler.std, dtype=dtype, device=dev))
    objective = module.objective(info.has_derivative)
    generator = torch.Generator().manual_seed(seed)
    train_windows = WindowSampler(train, times, int(window or DEFAULT_WINDOW[objective]), generator)
    length = train_windows.length  # at most the number of samples
    val_windows = WindowSampler(val if val is not None else train, times, length, generator).fixed()
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=4)
    meta = {"learner": learner, "options": options, "variables": info.names, "kind": info.kind, "dt": info.dt,
            "units": [str(u) for u in ds["units"].values] if "units" in ds.coords else None,
            "time_units": ds["time"].attrs.get("units", "1"), "system": ds.attrs.get("system"),
            "params": json_attr(ds, "params", {}), "objective": objective, "window": length, "seed": seed,
            "schedule": schedule, "precision": precision,
            "lyapunov": (json_attr(ds, "facts", {}) or {}).get("max_lyapunov_exponent")}

    def validate_loss() -> float:
        module.eval()
        with torch.no_grad():
            losses = [float(module.loss(b, length, objective)) for b in val_windows]
        module.train()
        return float(np.mean(losses))

    history: list[dict[str, Any]] = []
    start_epoch, best_val, best_state = 1, math.inf, None
    folder = Path(out) if out is not None else None
    if resume and folder is not None and (folder / "checkpoint.json").is_file():
        start_epoch, best_val, best_state, history = _restore(folder, module, optimizer, scheduler, generator, meta)
    if not history:
        best_val = validate_loss()
        best_state = copy.deepcopy(module.state_dict())
        history.append({"epoch": 0, "train_loss": None, "val_loss": best_val, "lr": lr, "horizon": 2, "elapsed": 0.0})

    started = time.perf_counter()
    elapsed_before = history[-1]["elapsed"]
    stale = _epochs_since_improvement(history)
    bar = progress_bar(None if budget else epochs - start_epoch + 1, f"fit {learner}", progress, "epoch")
    good_state = copy.deepcopy(module.state_dict())
    bad_steps, lr_scale = 0, 1.0
    module.train()
    for epoch in range(start_epoch, int(epochs) + 1):
        frac = (epoch - 1) / max(1, epochs - 1) if budget is None else min(1.0, (time.perf_counter() - started) / budget)
        if schedule == "cosine":
            for group in optimizer.param_groups:
                group["lr"] = lr * lr_scale * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * frac)))
        horizon = length if objective != "trajectory" else max(2, min(length, 2 + round((length - 2) * frac / 0.5)))
        losses = []
        for _ in range(steps_per_epoch):
            loss = module.loss(train_windows.sample(batch_size), horizon, objective)
            optimizer.zero_grad(set_to_none=True)
            if torch.isfinite(loss):
                loss.backward()
                norm = torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
            if not torch.isfinite(loss) or not torch.isfinite(norm):
                bad_steps += 1
                if bad_steps > MAX_BAD_STEPS:
                    raise DivergenceError(f"training {learner} diverged: the loss stayed non-finite after {MAX_BAD_STEPS} "
                                          "restarts from the last good weights with halved learning rates; lower lr, "
                                          "shorten window, or check the data for outliers")
                module.load_state_dict(good_state)
                lr_scale *= 0.5
                for group in optimizer.param_groups:
                    group["lr"] *= 0.5
                optimizer.state.clear()
                continue
            optimizer.step()
            bad_steps = 0
            losses.append(loss.item())
            if budget is not None and time.perf_counter() - started > budget:
                break
        val_loss = validate_loss()
        if not math.isfinite(val_loss):
            module.load_state_dict(good_state)
            val_loss = validate_loss()
        else:
            good_state = copy.deepcopy(module.state_dict())
        if schedule == "plateau":
            scheduler.step(val_loss)
        improved = val_loss < best_val
        if improved:
            best_val, best_state, stale = val_loss, copy.deepcopy(module.state_dict()), 0
        else:
            stale += 1
        record = {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else None, "val_loss": val_loss,
                  "lr": optimizer.param_groups[0]["lr"], "horizon": horizon,
                  "elapsed": elapsed_before + time.perf_counter() - started}
        history.append(record)
        bar.update(1)
        bar.set_postfix(train=f"{record['train_loss'] or float('nan'):.3g}", val=f"{val_loss:.3g}", horizon=horizon)
        if folder is not None:
            _checkpoint(folder, module, best_state, optimizer, scheduler, generator, scaler, meta, history, best_val)
        stop = callback is not None and callback({**record, "epochs": epochs, "best_val": best_val}) is False
        out_of_time = budget is not None and time.perf_counter() - started > budget
        if stop or out_of_time or stale >= patience:
            break
    bar.close()
    module.load_state_dict(best_state)
    module.eval()
    model = Model(module, scaler, meta, history)
    if folder is not None:
        model.save(folder)
    return model


def _epochs_since_improvement(history: list[dict[str, Any]]) -> int:
    best, since = math.inf, 0
    for record in history:
        if record["val_loss"] is not None and record["val_loss"] < best:
            best, since = record["val_loss"], 0
        else:
            since += 1
    return since


def _checkpoint(folder: Path, module: Learner, best_state: dict, optimizer: torch.optim.Optimizer,
                scheduler: Any, generator: torch.Generator, scaler: Any, meta: dict, history: list,
                best_val: float) -> None:
    """Write the best model (for users) and the last state (for resume), each file atomically."""
    write_run(folder, best_state, scaler, meta, history)
    tensors = {f"model.{k}": v for k, v in module.state_dict().items()}
    opt_state = optimizer.state_dict()
    for index, state in opt_state["state"].items():
        for key, value in state.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).reshape(-1) if key == "step" else value
    tensors["generator"] = generator.get_state()
    atomic_write_bytes(folder / "checkpoint.safetensors", _weights_bytes(tensors))
    state = {"epoch": history[-1]["epoch"], "best_val": best_val, "param_groups": opt_state["param_groups"],
             "scheduler": {k: v for k, v in scheduler.state_dict().items() if isinstance(v, (int, float, str, list))},
             "options": meta["options"], "learner": meta["learner"]}
    atomic_write_bytes(folder / "checkpoint.json", json.dumps(state).encode())


def _restore(folder: Path, module: Learner, optimizer: torch.optim.Optimizer, scheduler: Any,
             generator: torch.Generator, meta: dict) -> tuple[int, float, dict, list]:
    """Load the last checkpoint of a run folder into the live objects; returns where to continue."""
    state = json.loads((folder / "checkpoint.json").read_text())
    if state.get("learner") != meta["learner"] or state.get("options") != json.loads(json.dumps(meta["options"])):
        raise WorkbenchError(f"cannot resume {folder}: it was trained as {state.get('learner')!r} with options "
                             f"{state.get('options')}; use the same learner and options or a new --out folder")
    tensors = load_file(str(folder / "checkpoint.safetensors"))
    module.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    opt_state: dict = {"state": {}, "param_groups": state["param_groups"]}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            opt_state["state"].setdefault(int(index), {})[name] = value.reshape(()) if name == "step" else value
    optimizer.load_state_dict(opt_state)
    scheduler.load_state_dict({**scheduler.state_dict(), **state["scheduler"]})
    generator.set_state(tensors["generator"])
    best = load_model(folder, device=next(module.parameters()).device)
    history = json.loads((folder / "history.json").read_text())
    return state["epoch"] + 1, state["best_val"], best.learner.state_dict(), history

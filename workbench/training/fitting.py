"""``fit``: wire data, learner, trainer and run folder together (the one entry point for training)."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch
import xarray as xr

from ..data.io import PathLike
from ..data.schema import json_attr
from ..devices import DeviceLike, resolve_device, torch_threads
from ..errors import BadParameterError, DatasetError, WorkbenchError
from ..learners import DataInfo, Learner, build, get_learner
from ..model import Model, run_files
from ..progress import progress_bar
from ..data.series import prepare_series, wants_series_fit
from .prepare import Prepared, data_info, prepare
from .config import TrainConfig
from .runs import RunWriter, has_run, read_run_files
from .trainer import Trainer

Callback = Callable[[dict[str, Any]], Optional[bool]]


def fit(ds: xr.Dataset, learner: str = "node", *, epochs: Optional[int] = None,
        time_budget: Union[None, float, str] = None, device: DeviceLike = None, seed: int = 0,
        batch_size: int = 64, lr: float = 3e-3, window: Optional[int] = None, curriculum: bool = True,
        steps_per_epoch: int = 25,
        patience: int = 15, clip: float = 1.0, schedule: Optional[str] = None, precision: str = "float32",
        q: Optional[list[str]] = None, p: Optional[list[str]] = None, out: Optional[PathLike] = None,
        resume: bool = False, overwrite: bool = False, callback: Optional[Callback] = None,
        threads: Optional[int] = None, progress: Optional[bool] = None, compile: Union[bool, str] = "auto",
        **learner_options: Any) -> Model:
    """Fit a surrogate to a dataset and return the model at its best validation loss.

    Gradient-style learners train on windows of the training split with the shared
    :class:`~workbench.training.trainer.Trainer`; closed-form learners fit once. Before any
    computation the learner's declared capabilities are checked against the data.

    Arguments:
        ds: a dataset in the workbench schema (its ``split`` picks train/val trajectories).
        learner: a name from :func:`workbench.learners`, or ``"auto"``: the best forecaster of a
            time-split series chosen on validation origins within ``time_budget``, with calibrated
            intervals (:mod:`workbench.training.autoselect`; the candidates in ``model.meta["selection"]``).
        epochs, time_budget, batch_size, lr, window, curriculum, steps_per_epoch, patience, clip,
            schedule, precision, seed: the training configuration (see :class:`TrainConfig`).
        device: ``"cpu"``, ``"cuda"``, or ``None`` for CUDA when available.
        q, p: canonical coordinate names, for HNN on datasets that do not declare them.
        out: run folder, saved every epoch as one atomic generation (see ``training.runs``).
        resume: continue the run saved in ``out`` exactly (same epochs, schedule and budget).
        overwrite: replace a run already in ``out`` (otherwise refused unless ``resume``).
        callback: called after every epoch with the epoch record; returning ``False`` stops.
        threads: torch CPU threads while fitting (default 1; restored afterwards).
        progress: progress bar (default: only on a terminal).
        compile: ``torch.compile`` the training step of ``rknet`` and fixed-step continuous-time
            learners (``True``, ``False``, or ``"auto"``: runs of at least 5,000 steps or 300 s; see
            :attr:`TrainConfig.compiles`); a speed setting only, results are the same.
        learner_options: the learner's own options (see each learner's ``defaults``); for measured
            series also ``embed``/``lag`` (delay embedding) and ``transform`` (per-variable
            ``log``/``log1p``/``logit``), handled by :mod:`workbench.data.series` like a time split.

    Returns:
        The fitted :class:`Model` with its ``history``.

    Raises:
        UnsupportedError: the learner cannot fit this data (the message names an alternative).
        BadParameterError: an option out of range. DivergenceError: training diverged.
    """
    if not isinstance(ds, xr.Dataset):
        raise DatasetError(f"fit needs an xarray.Dataset in the workbench schema, got {type(ds).__name__}; "
                           "build one with wb.simulate, wb.load, wb.from_csv or wb.from_numpy")
    for name, flag in (("resume", resume), ("overwrite", overwrite)):
        if not isinstance(flag, bool):
            raise BadParameterError(f"{name} must be True or False, got {flag!r}")
    if learner == "auto":  # a choice among learners on validation origins (workbench.training.autoselect)
        from .autoselect import fit_auto

        model = fit_auto(ds, time_budget, seed, fit_options=learner_options)
        if out is not None:
            model.save(out)
        return model
    config = TrainConfig(epochs=epochs, time_budget=time_budget, batch_size=batch_size, lr=lr, window=window,
                         curriculum=curriculum, steps_per_epoch=steps_per_epoch, patience=patience, clip=clip, schedule=schedule,
                         precision=precision, seed=seed, compile=compile)
    folder = Path(out) if out is not None else None
    if folder is not None and has_run(folder) and not (resume or overwrite):
        raise WorkbenchError(f"{folder} already holds a run; pass resume=True (--resume) to continue it or "
                             "overwrite=True (--overwrite) to replace it")
    dev = resolve_device(device)
    dtype = config.dtype
    if "seed" in get_learner(learner).defaults:  # learners with their own random draws (an ESN's reservoir)
        learner_options.setdefault("seed", config.seed)
    with torch_threads(threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        ds, series, info, module = plan_fit(ds, learner, learner_options, q, p)
        module = module.to(device=dev, dtype=dtype)
        objective = module.objective(info.has_derivative)
        data = prepare(ds, dev, dtype)
        module.set_scaling(torch.as_tensor(data.scaler.mean, dtype=dtype, device=dev),
                           torch.as_tensor(data.scaler.std, dtype=dtype, device=dev), data.rate)
        meta = _meta(ds, learner, module, info, config, objective)
        if series is not None:
            meta["series"] = series
        if folder is None:
            return _train(module, data, config, objective, meta, None, False, callback, progress)
        with RunWriter(folder) as writer:
            return _train(module, data, config, objective, meta, writer, resume, callback, progress)


def plan_fit(ds: xr.Dataset, learner: str, options: dict[str, Any], q: Optional[list[str]] = None,
             p: Optional[list[str]] = None) -> tuple[xr.Dataset, Optional[dict[str, Any]], DataInfo, Learner]:
    """What ``fit`` trains on and with, and the one check of whether the learner can fit it.

    :func:`fit` and :func:`workbench.learners.compatibility` both call this, so their verdicts agree:
    a measured series (a time split, or ``embed``/``lag``/``transform``/``fill_gaps`` options) is
    prepared first (:func:`workbench.data.series.prepare_series`: chunks of the train/val pieces on a
    regular axis), then the learner is built and its capabilities checked against that data.

    Arguments:
        ds: the dataset given to ``fit``.
        learner: the learner name.
        options: the learner and series options; the series options are taken out of it.
        q, p: canonical coordinate names (HNN).

    Returns:
        ``(data, series, info, module)``: the data to train on, the series recipe (None for plain
        trajectories), the facts about the data, and the built learner.

    Raises:
        UnsupportedError: the learner cannot fit this data (the message names the fix).
        UnknownNameError, BadParameterError, DatasetError: unknown learner, bad options or data.
    """
    series = None
    if wants_series_fit(ds, options):  # measured series: transform, embed, cut the time split first
        ds, series = prepare_series(ds, learner, options)
    info = data_info(ds, q, p)
    return ds, series, info, build(learner, info, options)


def _meta(ds: xr.Dataset, learner: str, module: Learner, info: Any, config: TrainConfig,
          objective: str) -> dict[str, Any]:
    caps = module.capabilities()
    return {"learner": learner, "options": json.loads(json.dumps(module.options)), "variables": info.names,
            "kind": info.kind, "dt": info.dt,
            "units": [str(u) for u in ds["units"].values] if "units" in ds.coords else None,
            "inputs": info.inputs,
            "input_units": [str(u) for u in ds["input_units"].values] if "input_units" in ds.coords else None,
            "time_units": ds["time"].attrs.get("units", "1"), "system": ds.attrs.get("system"),
            "params": json_attr(ds, "params", {}), "objective": objective, "seed": config.seed,
            "capabilities": caps.as_dict(), "train_config": config.to_json(),
            "lyapunov": (json_attr(ds, "facts", {}) or {}).get("max_lyapunov_exponent")}


def _train(module: Learner, data: Prepared, config: TrainConfig, objective: str, meta: dict[str, Any],
           writer: Optional[RunWriter], resume: bool, callback: Optional[Callback],
           progress: Optional[bool]) -> Model:
    if module.capabilities().training == "closed_form":
        started = time.perf_counter()
        module.time_budget = config.time_budget  # iterative closed-form fits (mechanistic) stop at it
        scores = module.fit_closed_form(data.train, data.val, data.times)
        history = [{"epoch": 1, **{k: float(v) for k, v in scores.items()}, "elapsed": time.perf_counter() - started}]
        model = Model(module.eval(), data.scaler, meta, history, data.input_scaler)
        if writer is not None:
            writer.write(run_files(model))
        return model

    trainer = Trainer(module, data, config, objective)
    meta["window"] = trainer.length
    if resume and writer is not None and has_run(writer.folder):
        _resume(trainer, writer.folder, meta)
    trainer.start()
    total = None if config.time_budget else config.epochs - trainer.epoch
    bar = progress_bar(total if total is not None else config.time_budget, f"fit {meta['learner']}", progress,
                       "epoch" if total is not None else "s")
    while not trainer.finished():
        record = trainer.epoch_step()
        bar.update(1 if total is not None else min(record["elapsed"], config.time_budget) - bar.n)
        bar.set_postfix(epoch=record["epoch"], train=f"{record['train_loss'] or float('nan'):.3g}",
                        val=f"{record['val_loss']:.3g}",
                        horizon=record["horizon"])
        if writer is not None:
            writer.write(_checkpoint_files(trainer, data, meta))
        if callback is not None and callback({**record, "epochs": config.epochs, "best_val": trainer.best_val}) is False:
            break
    bar.close()
    module.load_state_dict(trainer.best_state)
    model = Model(module.eval(), data.scaler, meta, trainer.history, data.input_scaler)
    if writer is not None:
        writer.write(_checkpoint_files(trainer, data, meta, final=True))
    return model


def _checkpoint_files(trainer: Trainer, data: Prepared, meta: dict[str, Any], final: bool = False) -> dict[str, bytes]:
    """The best model (for users) and the live state (for resume), as one generation."""
    from ..model import weights_bytes

    live = {k: v.detach().clone() for k, v in trainer.module.state_dict().items()}
    trainer.module.load_state_dict(trainer.best_state)
    files = run_files(Model(trainer.module, data.scaler, meta, trainer.history, data.input_scaler))
    trainer.module.load_state_dict(live)
    tensors, state = trainer.state()
    state.update(learner=meta["learner"], options=meta["options"], train_config=meta["train_config"], final=final)
    files["checkpoint.safetensors"] = weights_bytes(tensors)
    files["checkpoint.json"] = json.dumps(state).encode()
    return files


def _resume(trainer: Trainer, folder: Path, meta: dict[str, Any]) -> None:
    from safetensors.torch import load as load_tensors

    files = read_run_files(folder, ("checkpoint.json", "checkpoint.safetensors", "history.json"))
    state = json.loads(files["checkpoint.json"])
    for key in ("learner", "options", "train_config"):
        if state.get(key) != meta[key]:
            raise WorkbenchError(f"cannot resume {folder}: it was trained with {key} {state.get(key)!r}, now "
                                 f"{meta[key]!r}; use the same settings or a new --out folder")
    trainer.restore(load_tensors(files["checkpoint.safetensors"]), state, json.loads(files["history.json"]))

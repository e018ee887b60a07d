"""``fit``: wire data, learner, trainer and run folder together (the one entry point for training)."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import xarray as xr

from ..data.io import PathLike
from ..data.schema import json_attr
from ..data.series import SERIES_OPTIONS, SeriesRecipe, prepare_series, wants_series_fit
from ..devices import DeviceLike, resolve_device, torch_threads
from ..errors import BadParameterError, DatasetError, WorkbenchError
from ..learners import DataInfo, Learner, build, get_learner
from ..model import Model, run_files
from ..progress import progress_bar
from .prepare import Prepared, data_info, prepare
from .config import TRAIN_OPTIONS, TrainConfig
from .runs import RunWriter, has_run, read_run_files
from .trainer import Trainer

Callback = Callable[[dict[str, Any]], Optional[bool]]


def fit(ds: xr.Dataset, learner: str = "node", *, train: Optional[TrainConfig] = None,
        series: Optional[SeriesRecipe] = None, device: DeviceLike = None, out: Optional[PathLike] = None,
        resume: bool = False, overwrite: bool = False, callback: Optional[Callback] = None,
        threads: Optional[int] = None, progress: Optional[bool] = None, q: Optional[list[str]] = None,
        p: Optional[list[str]] = None, **learner_options: Any) -> Model:
    """Fit a surrogate to a dataset and return the model at its best validation loss.

    Gradient-style learners train on windows of the training split with the shared
    :class:`~workbench.training.trainer.Trainer`; closed-form learners fit once. Before any
    computation the learner's declared capabilities are checked against the data. A measured
    series (a time split, or a ``series`` recipe) is merged once, run through the recipe as whole
    series and cut once into training chunks (:mod:`workbench.data.series`).

    Arguments:
        ds: a dataset in the workbench schema (its ``split`` picks train/val trajectories).
        learner: a name from :func:`workbench.learners`, or ``"auto"``: the best forecaster of a
            time-split series chosen on validation origins within ``train.time_budget``, with
            calibrated intervals (:mod:`workbench.training.autoselect`; the candidates in
            ``model.meta["selection"]``; of ``train`` only the budget and the seed count).
        train: the training run (:class:`TrainConfig`: epochs, time_budget, batch_size, lr, window,
            curriculum, steps_per_epoch, patience, clip, schedule, precision, seed, compile).
            Its fields may also be given as keywords (``epochs=5, seed=0``), but not both ways.
        series: the recipe of a measured series (:class:`~workbench.data.series.SeriesRecipe`:
            transform, difference, embed, lag, fill_gaps). Its fields may also be given as
            keywords (``embed=3, lag=1, transform={"co2": "log"}``), but not both ways.
        device: ``"cpu"``, ``"cuda"``, or ``None`` for CUDA when available.
        out: run folder, saved every epoch as one atomic generation (see ``training.runs``).
        resume: continue the run saved in ``out`` exactly (same epochs, schedule and budget).
        overwrite: replace a run already in ``out`` (otherwise refused unless ``resume``).
        callback: called after every epoch with the epoch record; returning ``False`` stops (a
            closed-form learner reports once, after its fit).
        threads: torch CPU threads while fitting (default 1; restored afterwards).
        progress: progress bar (default: only on a terminal).
        q, p: canonical coordinate names, for HNN on datasets that do not declare them.
        learner_options: the learner's own options (see each learner's ``defaults``); with
            ``backbone="arima"`` (``"ets"``, ``"theta"``) the learner is fitted on that backbone's
            residuals and forecasts added to it (:mod:`workbench.learners.hybrid`).

    Returns:
        The fitted :class:`Model` with its ``history`` (and ``meta["series"]``, the fitted recipe,
        for a measured series).

    Raises:
        UnsupportedError: the learner cannot fit this data (the message names an alternative).
        BadParameterError: an option out of range, or one given both as a keyword and in ``train``
            or ``series``. DivergenceError: training diverged.
    """
    if not isinstance(ds, xr.Dataset):
        raise DatasetError(f"fit needs an xarray.Dataset in the workbench schema, got {type(ds).__name__}; "
                           "build one with wb.simulate, wb.load, wb.from_csv or wb.from_numpy")
    for name, flag in (("resume", resume), ("overwrite", overwrite)):
        if not isinstance(flag, bool):
            raise BadParameterError(f"{name} must be True or False, got {flag!r}")
    config = from_keywords(TrainConfig, train, "train", TRAIN_OPTIONS, learner_options)
    if "backbone" in learner_options or learner == "hybrid":  # a learner on a backbone's residuals (learners.hybrid)
        from ..learners.hybrid import hybrid_options

        learner_options, learner = hybrid_options(learner, learner_options, config), "hybrid"
    if learner == "auto":  # a choice among learners on validation origins (workbench.training.autoselect)
        from .autoselect import fit_auto

        model = fit_auto(ds, config.time_budget, config.seed, series=series, fit_options=learner_options)
        if out is not None:
            model.save(out)
        return model
    folder = Path(out) if out is not None else None
    if folder is not None and has_run(folder) and not (resume or overwrite):
        raise WorkbenchError(f"{folder} already holds a run; pass resume=True (--resume) to continue it or "
                             "overwrite=True (--overwrite) to replace it")
    if "seed" in get_learner(learner).defaults:  # learners with their own random draws (an ESN's reservoir)
        learner_options.setdefault("seed", config.seed)
    with torch_threads(threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        ds, module, data, objective, meta = _set_up(ds, learner, learner_options, q, p, series, config,
                                                    resolve_device(device))
        if folder is None:
            return _train(module, data, config, objective, meta, None, False, callback, progress, ds)
        with RunWriter(folder) as writer:
            return _train(module, data, config, objective, meta, writer, resume, callback, progress, ds)


def _set_up(ds: xr.Dataset, learner: str, options: dict[str, Any], q: Optional[list[str]],
            p: Optional[list[str]], series: Optional[SeriesRecipe], config: TrainConfig, dev: torch.device
            ) -> tuple[xr.Dataset, Learner, Prepared, str, dict[str, Any]]:
    """The data to train on, the built learner on ``dev`` scaled to it, the prepared tensors, the
    objective and the model's description."""
    ds, fitted, info, module = plan_fit(ds, learner, options, q, p, series=series)
    module = module.to(device=dev, dtype=config.dtype)
    objective = module.objective(info.has_derivative)
    data = prepare(ds, dev, config.dtype)
    module.set_scaling(torch.as_tensor(data.scaler.mean, dtype=config.dtype, device=dev),
                       torch.as_tensor(data.scaler.std, dtype=config.dtype, device=dev), data.rate)
    meta = _meta(ds, learner, module, info, config, objective)
    if fitted is not None:
        meta["series"] = fitted.to_json()
    return ds, module, data, objective, meta


def from_keywords(cls: type, given: Any, name: str, keys: tuple[str, ...], options: dict[str, Any]) -> Any:
    """The ``train``/``series`` object of ``fit``: ``given``, or built from its fields given as
    keywords (taken out of ``options``); None for a recipe nobody asked for (a ``TrainConfig`` is
    always built).

    Raises:
        BadParameterError: ``given`` is not a ``cls``, or a field is given both ways (naming both).
    """
    flat = {k: options.pop(k) for k in keys if k in options}
    if given is None:
        return cls(**flat) if flat or cls is TrainConfig else None
    if not isinstance(given, cls):
        raise BadParameterError(f"{name}= must be a {cls.__name__}, got {type(given).__name__}",
                                fix=f"pass {name}={cls.__name__}(...)")
    if flat:
        key = sorted(flat)[0]
        raise BadParameterError(f"{key}={flat[key]!r} and {name}={cls.__name__}(...) both set {name}.{key}",
                                fix=f"give it in one place: {name}={cls.__name__}(..., {key}={flat[key]!r}), or the "
                                    f"keyword {key}= without {name}=")
    return given


def plan_fit(ds: xr.Dataset, learner: str, options: dict[str, Any], q: Optional[list[str]] = None,
             p: Optional[list[str]] = None, series: Optional[SeriesRecipe] = None
             ) -> tuple[xr.Dataset, Optional[SeriesRecipe], DataInfo, Learner]:
    """What ``fit`` trains on and with, and the one check of whether the learner can fit it.

    :func:`fit` and :func:`workbench.learners.compatibility` both call this, so their verdicts agree:
    a measured series (a time split, or a recipe) is prepared first
    (:func:`workbench.data.series.prepare_series`: merged once, the recipe on whole series, cut once
    into chunks of the train/val periods on a regular axis), then the learner is built and its
    capabilities checked against that data.

    Arguments:
        ds: the dataset given to ``fit``.
        learner: the learner name.
        options: the learner options; recipe fields given as keywords (``embed=2``) are taken out
            of it into the recipe.
        q, p: canonical coordinate names (HNN).
        series: the series recipe, if any (not together with recipe keywords in ``options``).

    Returns:
        ``(data, recipe, info, module)``: the data to train on, the fitted series recipe (None for
        plain trajectories), the facts about the data, and the built learner.

    Raises:
        UnsupportedError: the learner cannot fit this data (the message names the fix).
        UnknownNameError, BadParameterError, DatasetError: unknown learner, bad options or data.
    """
    recipe = from_keywords(SeriesRecipe, series, "series", SERIES_OPTIONS, options)
    if wants_series_fit(ds, recipe):  # measured series: merge once, run the recipe, cut once
        ds, recipe = prepare_series(ds, learner, recipe or SeriesRecipe())
    info = data_info(ds, q, p)
    return ds, recipe, info, build(learner, info, options)


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
           progress: Optional[bool], ds: xr.Dataset) -> Model:
    if module.capabilities().training == "closed_form":
        started = time.perf_counter()
        module.time_budget = config.time_budget  # iterative closed-form fits (mechanistic) stop at it
        scores = module.fit_closed_form(data.train, data.val, data.times)
        history = [{"epoch": 1, **{k: float(v) for k, v in scores.items()}, "elapsed": time.perf_counter() - started}]
        model = Model(module.eval(), data.scaler, meta, history, data.input_scaler)
        module.after_fit(model, ds)
        if writer is not None:
            writer.write(run_files(model))
        if callback is not None:  # one report: a closed-form fit has no epochs to stop between
            callback({**history[0], "epochs": 1, "best_val": history[0].get("val_loss")})
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
    module.after_fit(model, ds)
    trainer.best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
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

"""A fitted surrogate: predictions as labelled datasets, vector fields, and safe save/load.

A run folder holds ``model.safetensors`` (weights), ``config.json`` (learner, options,
standardisation, data description, and a SHA-256 over weights and config together) and
``history.json``, written as one atomic generation (see :mod:`workbench.training.runs`).
Nothing is pickled.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import torch
import xarray as xr

from .data.io import PathLike
from .data.schema import make_dataset, observation_mask
from .devices import DeviceLike, resolve_device, torch_threads
from .errors import BadParameterError, DatasetError, DivergenceError, UnsupportedError
from .learners import InputSignal, Learner, get_learner
from .learners.continuous import legacy_solver
from .safety import check_integer, parse_json_bounded
from .training.prepare import Standardiser, input_names

FORMAT = "workbench-model"
FORMAT_VERSION = 3  # 3: learners carry the data's rate (weights of version 2 files were trained at rate 1)
MIN_FORMAT_VERSION = 2  # the first whose checksum covers the config too
MAX_CONFIG_BYTES = 4 * 2 ** 20


def check_scaler(scaler: Standardiser, what: str) -> None:
    """Refuse a standardisation that a saved model could not restore.

    Arguments:
        scaler: the fitted standardisation.
        what: ``"state"`` or ``"input"``, for the message.

    Raises:
        DatasetError: a mean or scale is not a finite positive number, as when data near 1e308
            overflow the variance (squares pass 1.8e308); such a model could be saved but never loaded.
    """
    mean, std = np.asarray(scaler.mean, dtype=float), np.asarray(scaler.std, dtype=float)
    if np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all():
        return
    raise DatasetError(f"the {what} values overflow their standardisation (means {mean.tolist()}, scales "
                       f"{std.tolist()}): values beyond about 1e154 have squares past float64's 1.8e308",
                       fix="rescale the data before fitting (e.g. divide by a power of ten and record it in the "
                           "units)")


def mark_diverged(out: xr.Dataset, lost: np.ndarray, t: np.ndarray, long_name: str) -> None:
    """Set each lost path of ``out["state"]`` to ``+inf`` from ``lost`` (sample, trajectory, time) on, and
    record when it was lost in ``diverged_at(sample, trajectory)``; done after the schema check, which
    requires finite states."""
    out["state"].data[lost] = np.inf
    out["diverged_at"] = xr.DataArray(np.where(lost.any(axis=2), t[np.argmax(lost, axis=2)], np.nan),
                                      dims=("sample", "trajectory"),
                                      attrs={"long_name": long_name, "units": out["time"].attrs.get("units", "1")})


class Model:
    """A learner fitted to data, with everything needed to use it in the data's physical units.

    Attributes:
        learner: the torch module (standardised coordinates).
        scaler: the standardisation of the state fitted on the training split.
        input_scaler: the standardisation of the exogenous inputs (None without inputs).
        meta: JSON-friendly description (learner name/options, variables, units, inputs, system...).
        history: one dict per epoch (``epoch``, ``train_loss``, ``val_loss``, ``lr``, ``elapsed``...).
    """

    def __init__(self, learner: Learner, scaler: Standardiser, meta: dict[str, Any],
                 history: Optional[list[dict[str, Any]]] = None, input_scaler: Optional[Standardiser] = None):
        check_scaler(scaler, "state")
        if input_scaler is not None:
            check_scaler(input_scaler, "input")
        self.learner, self.scaler, self.meta = learner, scaler, meta
        self.input_scaler = input_scaler
        self.history = history or []

    @classmethod
    def standardised(cls, learner: Learner, meta: Optional[Mapping[str, Any]] = None) -> "Model":
        """``learner`` as a model whose physical units are its own standardised coordinates (an identity
        standardisation), so its rollouts go through :meth:`rollout` where there is no data-scaled model:
        validation during a fit (:mod:`workbench.learners.closed_form`) and maps on standardised histories
        (:mod:`workbench.evaluation.climate`).

        Arguments:
            learner: the learner, in the standardised coordinates it trains in.
            meta: a fitted model's description to keep (its solver choice among it); the variables
                become ``z0, z1, ...`` and the model has no inputs.
        """
        identity = Standardiser(mean=np.zeros(learner.dim), std=np.ones(learner.dim))
        described = {"learner": learner.name, "options": dict(learner.options), **(meta or {})}
        described.update(variables=[f"z{i}" for i in range(learner.dim)], inputs=[], series=None)
        return cls(learner, identity, described)

    # --- description -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.meta["learner"]

    @property
    def variables(self) -> list[str]:
        return list(self.meta["variables"])

    @property
    def inputs(self) -> list[str]:
        """Names of the exogenous inputs the model needs (empty for autonomous models)."""
        return list(self.meta.get("inputs") or [])

    @property
    def stochastic(self) -> bool:
        return self.learner.capabilities().stochastic

    @property
    def device(self) -> torch.device:
        return self.learner.scale.device

    def to(self, device: DeviceLike) -> "Model":
        self.learner.to(resolve_device(device))
        return self

    def __repr__(self) -> str:
        best = min((h["val_loss"] for h in self.history if h.get("val_loss") is not None), default=float("nan"))
        return (f"Model({self.name!r}, system={self.meta.get('system')!r}, variables={self.variables}, "
                f"epochs={len(self.history) - 1 if self.history else 0}, best_val_loss={best:.3g})")

    # --- numerics in physical units ----------------------------------------------------------
    def _to_z(self, x: np.ndarray) -> torch.Tensor:
        p = self.learner.scale
        return torch.as_tensor(self.scaler.to_z(x), dtype=p.dtype, device=p.device)

    def _from_z(self, z: torch.Tensor) -> np.ndarray:
        return z.detach().cpu().double().numpy() * self.scaler.std + self.scaler.mean

    def vector_field(self, x: np.ndarray) -> np.ndarray:
        """The learned drift dx/dt at states ``x`` (N, D), in physical units (an ensemble's mean;
        inputs, if the model has any, held at their training mean)."""
        return self.member_vector_fields(x).mean(0)

    def member_vector_fields(self, x: np.ndarray) -> np.ndarray:
        """Each ensemble member's drift, shape (K, N, D); a single model gives K = 1."""
        x = self._check_states(x)
        with torch.no_grad():
            dz = self.learner.member_drifts(self._to_z(x))
        return dz.detach().cpu().double().numpy() * self.scaler.std

    def equations(self, latex: bool = False) -> list[str]:
        """The discovered equations, one per state variable in the dataset's variable names (plain
        text, or LaTeX with ``latex=True``); learners without equations raise UnsupportedError."""
        return self.learner.equations(self.variables, latex=latex)

    def residual(self, x: np.ndarray) -> np.ndarray:
        """The learned neural part of a universal differential equation (``learner="ude"``) at states
        ``x`` (N, D), in physical units (N, D): the drift minus the known terms."""
        part = getattr(self.learner, "residual", None)
        if part is None:
            raise UnsupportedError(f"a {self.name} model has no known/learned split of its drift",
                                   fix="fit learner='ude' with known=... to learn a residual beside known terms")
        x = self._check_states(x)
        with torch.no_grad():
            dz = part(self._to_z(x))
        return dz.detach().cpu().double().numpy() * self.scaler.std

    def diffusion(self, x: np.ndarray) -> np.ndarray:
        """The learned diagonal diffusion g(x) (N, D) in physical units (stochastic learners only)."""
        x = self._check_states(x)
        with torch.no_grad():
            g = self.learner.diffusion(self._to_z(x))
        return g.detach().cpu().double().numpy() * self.scaler.std

    def _check_states(self, x: Any) -> np.ndarray:
        try:
            x = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise BadParameterError(f"states must be numbers, shape (N, {len(self.variables)})") from None
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != len(self.variables):
            raise BadParameterError(f"states must have shape (N, {len(self.variables)}) for variables "
                                    f"{self.variables}, got {x.shape}")
        if not np.isfinite(x).all():
            raise BadParameterError("states must be finite")
        return x

    def _input_signal(self, inputs: Optional[np.ndarray], t: np.ndarray, n: int) -> Optional[InputSignal]:
        if not self.inputs:
            return None
        if inputs is None:
            raise UnsupportedError(f"this {self.name} model was trained with exogenous inputs {self.inputs}; "
                                   "predict needs their values over the prediction times: pass a dataset with an "
                                   "'input' variable, or inputs= of shape (N, T, U)")
        u = np.asarray(inputs, dtype=np.float64)
        if u.shape != (n, len(t), len(self.inputs)) or not np.isfinite(u).all():
            raise BadParameterError(f"inputs must be finite with shape ({n}, {len(t)}, {len(self.inputs)}) for "
                                    f"inputs {self.inputs} at the prediction times, got {u.shape}")
        p = self.learner.scale
        values = torch.as_tensor(self.input_scaler.to_z(u), dtype=p.dtype, device=p.device)
        return InputSignal(torch.as_tensor(t - t[0], dtype=p.dtype, device=p.device), values)

    def _start_from_dataset(self, ds: xr.Dataset, times: Optional[Sequence[float]], context: int
                            ) -> tuple[np.ndarray, Any, Optional[np.ndarray], dict[str, Any]]:
        """History (context samples, then the start), times, inputs and trajectory coords of a rollout from ``ds``."""
        if [str(v) for v in ds["variable"].values] != self.variables:
            if self.meta.get("series"):
                raise DatasetError(f"this {self.name} model was fitted to a measured series through a recipe "
                                   f"(embedding/transform/time split) and works on its internal variables "
                                   f"{self.variables}; use model.forecast(ds, horizon) or "
                                   "wb.evaluate(model, ds, mode='rolling') on the original data")
            raise DatasetError(f"dataset variables {[str(v) for v in ds['variable'].values]} differ from the "
                               f"model's {self.variables}; pick a dataset of the same system")
        if ds.sizes["time"] <= context:
            raise DatasetError(f"{self.name} needs {context} samples of context before its start; the dataset "
                               f"has {ds.sizes['time']}")
        if not observation_mask(ds)[:, : context + 1].all():
            raise DatasetError("some trajectories miss observations at the start of the rollout (and its "
                               "context); drop them or fill those samples")
        inputs = None
        if self.inputs:
            if input_names(ds) != self.inputs:
                raise UnsupportedError(f"this model needs inputs {self.inputs} but the dataset has "
                                       f"{input_names(ds) or 'none'}; pass data with the same 'input' variables")
            inputs = ds["input"].values[:, context:]
        coords: dict[str, Any] = {"trajectory": ds["trajectory"].values}
        if "split" in ds.coords:
            coords["split"] = list(ds["split"].values)
        times = ds["time"].values[context:] if times is None else times
        return ds["state"].values[:, : context + 1], times, inputs, coords

    def _check_history(self, history: Any, context: int) -> np.ndarray:
        """``history`` as finite float64 ``(N, context + 1, D)``; ``(N, D)`` is read as ``(N, 1, D)`` when
        ``context == 0``."""
        dim = len(self.variables)
        try:
            h = np.asarray(history, dtype=np.float64)
        except (TypeError, ValueError):
            raise BadParameterError(f"history must be numbers, shape (N, {context + 1}, {dim})") from None
        if h.ndim == 2 and context == 0:
            h = h[:, None]
        if h.ndim != 3 or h.shape[1:] != (context + 1, dim) or h.shape[0] < 1:
            shape = f"(N, {dim}) or (N, 1, {dim})" if context == 0 else f"(N, {context + 1}, {dim})"
            raise BadParameterError(f"history must have shape {shape} for variables {self.variables} ({context} "
                                    f"samples of context, then the start state), got {h.shape}")
        if not np.isfinite(h).all():
            raise BadParameterError("history must be finite")
        return h

    def _rollout_solver(self, solver: Union[None, str, Mapping[str, Any]]) -> Optional[dict[str, Any]]:
        """The solver options a rollout hands the learner: the file's (``meta["rollout_solver"]``) with the
        caller's on top; None where both are empty (the learner's trained ones)."""
        if isinstance(solver, str):
            solver = {"solver": solver}
        if solver is not None and not isinstance(solver, Mapping):
            raise BadParameterError(f"solver must be a solver name or a dict of solver options, got {solver!r}")
        allowed = self.learner.solver_options
        if solver and not allowed:
            raise UnsupportedError(f"a {self.name} model has no ODE solver to choose",
                                   fix="leave solver= out; only continuous-time learners (node, anode, sonode, "
                                       "hnn, ude) integrate with a solver")
        unknown = sorted(set(solver or {}) - set(allowed))
        if unknown:
            raise BadParameterError(f"{self.name}: solver= knows the options {list(allowed)}, not {unknown}")
        # fixed-step solvers take their substeps per sample spacing of the training data
        spacing = {"dt": float(self.meta["dt"])} if allowed and self.meta.get("dt") else {}
        settings = {**spacing, **(self.meta.get("rollout_solver") or {}), **(solver or {})}
        return settings or None

    def rollout(self, history: Any, times: Sequence[float], inputs: Optional[np.ndarray] = None,
                n_samples: int = 1, seed: int = 0, *, solver: Union[None, str, Mapping[str, Any]] = None,
                threads: Optional[int] = None) -> np.ndarray:
        """Roll the learner out from physical states: the one path from physical units to the learner.

        :meth:`predict`, :meth:`forecast` (through :func:`workbench.evaluation.forecast.rollout_from`), the
        climate scores' free runs and the closed-form learners' validation all call it, so the same
        history, times, inputs and seed give bit-identical paths whichever of them asks. Histories are
        standardised with :attr:`scaler`, handed to ``learner.rollout`` in its dtype, and the result
        mapped back. The one other path is a latent learner's irregular history: :meth:`predict`
        encodes it at its own times (:func:`workbench.learners.latent.history_forecast`), which a
        history on the rollout's grid cannot express.

        Arguments:
            history: physical states ``(N, C + 1, D)``: the ``C`` samples before the start that the learner
                needs (``learner.capabilities().context``: delays, a reservoir's washout), then the start
                states; ``(N, D)`` where ``C == 0``.
            times: increasing output times ``(T,)``, the first the start's; handed to the learner as they
                are (continuous-time learners integrate from ``times[0]``, maps need multiples of their step).
            inputs: exogenous inputs ``(N, T, U)`` at ``times`` in physical units, for models trained with inputs.
            n_samples: sample paths per start for stochastic learners (an ensemble gives one per member;
                deterministic learners one).
            seed: seeds the noise of stochastic rollouts.
            solver: continuous-time learners: a solver name (``"dopri5"``, ``"rk4"``, ...) or a dict of
                ``solver``, ``substeps``, ``rtol``, ``atol``, ``max_steps`` and ``dt`` (the sample spacing a
                fixed-step solver takes ``substeps`` steps over: the training data's, ``meta["dt"]``) for
                this rollout, in place of the ones the learner trained with (or, for a file whose options do not name its solver, of
                dopri5 at ``atol = rtol / 10``, as such files predicted: ``meta["rollout_solver"]``).
            threads: torch CPU threads for the rollout (default 1; restored afterwards).

        Returns:
            float64 states ``(S, N, T, D)`` in physical units, ``S = n_samples`` for stochastic learners
            (the member count for an ensemble), 1 otherwise. A path that leaves the finite numbers is
            left as the learner gave it (:meth:`predict` marks or refuses it).

        Raises:
            BadParameterError: a history, times, inputs or ``n_samples`` of the wrong shape or not finite.
            UnsupportedError: inputs missing for a model trained with them, or ``solver`` for a learner
                without an ODE solver.
            DivergenceError, SolverStallError: from the learner's solver.
        """
        caps = self.learner.capabilities()
        h = self._check_history(history, caps.context)
        try:
            t = np.array(times, dtype=np.float64)
        except (TypeError, ValueError):
            raise BadParameterError("times must be a 1-D strictly increasing sequence of finite numbers") from None
        if t.ndim != 1 or t.size < 1 or (np.diff(t) <= 0).any() or not np.isfinite(t).all():
            raise BadParameterError("times must be a 1-D strictly increasing sequence of finite numbers")
        n_samples = check_integer(n_samples, "n_samples", 1, 100_000)
        settings = self._rollout_solver(solver)
        signal = self._input_signal(inputs, t, len(h))
        generator = torch.Generator().manual_seed(int(seed))
        extra = {"solver": settings} if settings else {}
        self.learner.eval()
        with torch_threads(threads), torch.no_grad():
            z = self._to_z(h)
            context = z[:, :-1].contiguous() if caps.context else None
            tt = torch.as_tensor(t, dtype=z.dtype, device=z.device)
            path = self.learner.rollout(z[:, -1].contiguous(), tt, int(n_samples) if caps.stochastic else 1,
                                        generator=generator, inputs=signal, context=context, **extra)
        # overflow in a runaway path is expected: the callers mark it
        with np.errstate(over="ignore", invalid="ignore"):
            return self._from_z(path)

    def predict(self, x0: Union[np.ndarray, Sequence[float], xr.Dataset], times: Optional[Sequence[float]] = None,
                n_samples: int = 1, seed: int = 0, inputs: Optional[np.ndarray] = None,
                threads: Optional[int] = None, on_divergence: str = "raise",
                solver: Union[None, str, Mapping[str, Any]] = None) -> xr.Dataset:
        """Roll the surrogate out from initial states (through :meth:`rollout`).

        Arguments:
            x0: initial states (N, D) or (D,), or a dataset in the schema: its states at the first
                time start the rollout (after the first C samples, for learners that need C samples
                of context), and its trajectory ids, split, inputs and time axis are kept.
            times: increasing output times starting at the initial time (default: the dataset's).
            n_samples: sample paths per initial state for stochastic learners (an ensemble
                returns one path per member; deterministic learners one path).
            seed: seeds the noise of stochastic rollouts.
            inputs: exogenous inputs (N, T, U) at ``times``, for models trained with inputs when
                ``x0`` is not a dataset.
            threads: torch CPU threads for the rollout (default 1; restored afterwards).
            on_divergence: what a rollout that leaves the finite numbers does. ``"raise"``: raise
                :class:`DivergenceError` naming the time. ``"mark"`` (for scoring a model up to its
                blow-up): return it anyway, each sample path ``+inf`` from its first non-finite state
                on, with ``diverged_at(sample, trajectory)`` holding that time (NaN where the path
                stayed finite); infinite states are outside the schema, so ``save`` refuses them.
            solver: continuous-time learners: the ODE solver for this prediction in place of the one
                the learner trained with (a name or a dict of options; see :meth:`rollout`).

        Returns:
            Dataset in the workbench schema with dims (sample, trajectory, time, variable).
        """
        if on_divergence not in ("raise", "mark"):
            raise BadParameterError(f"on_divergence must be 'raise' or 'mark', got {on_divergence!r}")
        caps = self.learner.capabilities()
        coords: dict[str, Any] = {}
        if isinstance(x0, xr.Dataset) and times is None and getattr(self.learner, "reads_history", False):
            # latent models encode their history at its own (irregular, gappy) times
            from .learners.latent import history_forecast
            pred = history_forecast(self, x0, int(n_samples) if caps.stochastic else 1, int(seed))
            if on_divergence == "raise" and not np.isfinite(pred["state"].values).all():
                raise DivergenceError(f"the {self.name} rollout left the finite range",
                                      fix="predict a shorter span, retrain, or pass on_divergence='mark'")
            return pred
        if isinstance(x0, xr.Dataset):
            history, times, inputs, coords = self._start_from_dataset(x0, times, caps.context)
        elif caps.context:
            raise UnsupportedError(f"{self.name} needs {caps.context} samples of context before the start: pass a "
                                   "dataset (its first samples warm the model up)")
        else:
            history = self._check_states(x0)
        if times is None:
            raise BadParameterError("predict needs times (or a dataset to take them from)")
        state = self.rollout(history, times, inputs, n_samples, seed, solver=solver, threads=threads)
        t = np.array(times, dtype=np.float64)
        # a path is lost from its first non-finite state on: (sample, trajectory, time)
        lost = np.logical_or.accumulate(~np.isfinite(state).all(axis=3), axis=2)
        if on_divergence == "raise" and lost.any():
            first = int(np.argmax(lost.any(axis=(0, 1))))
            raise DivergenceError(f"the {self.name} rollout left the finite range at t={t[first]:g} (step {first}); "
                                  "the learned dynamics are unstable from these states: predict a shorter span, "
                                  "retrain (more data, a smaller ridge/step), or try another learner")
        attrs = {"title": f"{self.name} predictions", "system": self.meta.get("system"),
                 "kind": self.meta.get("kind"), "generator": "workbench.Model.predict", "learner": self.name,
                 "learner_options": self.meta.get("options", {}), "seed": int(seed), "context_samples": caps.context}
        out = make_dataset(np.where(lost[..., None], 0.0, state) if lost.any() else state, t, self.variables,
                           units=self.meta.get("units"), time_units=self.meta.get("time_units", "1"),
                           trajectory=coords.get("trajectory"), split=coords.get("split"), attrs=attrs)
        if on_divergence == "mark":
            mark_diverged(out, lost, t, "time of the first non-finite state of each sample path (NaN: stayed finite)")
        return out

    def forecast(self, ds: xr.Dataset, horizon: int, n_samples: int = 1, seed: int = 0,
                 origin: Any = None, on_divergence: str = "raise") -> xr.Dataset:
        """Continue each series of ``ds`` for ``horizon`` samples from its last observed sample (or
        ``origin``: a time, a date, or ``"test"`` for the start of a time split's test piece), with
        the data's time axis (dates on calendar axes); a path that runs away raises, or with
        ``on_divergence="mark"`` is ``inf`` from then on; see :func:`workbench.evaluation.forecast.forecast`."""
        from .evaluation.forecast import forecast

        return forecast(self, ds, horizon, n_samples=n_samples, seed=seed, origin=origin,
                        on_divergence=on_divergence)

    @property
    def selection(self) -> list[dict[str, Any]]:
        """``learner="auto"``: every candidate with its options, validation score, RMSE by horizon,
        status (chosen, or why it was rejected); empty for a model fitted by name."""
        return list(self.meta.get("selection") or [])

    # --- grey-box models ---------------------------------------------------------------------
    def parameters(self, level: Optional[float] = None) -> xr.Dataset:
        """Estimated physical parameters over ``parameter``: ``estimate``, ``std_error``, ``ci_low``,
        ``ci_high`` (at ``level``, default the fit's 0.95) and ``identifiable``; the method, the residual
        variance and the identifiable combinations of unidentifiable parameters are in ``attrs``.
        Learners that estimate parameters only (``mechanistic``)."""
        table = getattr(self.learner, "parameter_table", None)
        if table is None:
            raise UnsupportedError(f"a {self.name} model has no physical parameters",
                                   fix="fit learner='mechanistic' with system=... to estimate them")
        return table(level)

    def profile(self, name: str, points: int = 21, level: Optional[float] = None) -> xr.DataArray:
        """Profile likelihood of parameter ``name`` (``mechanistic`` models, in the session that fitted
        them); see :meth:`workbench.learners.mechanistic.Mechanistic.profile`."""
        if getattr(self.learner, "profile", None) is None:
            raise UnsupportedError(f"a {self.name} model has no parameters to profile",
                                   fix="fit learner='mechanistic' with system=... first")
        return self.learner.profile(name, points=points, level=level)

    # --- files -------------------------------------------------------------------------------
    def save(self, path: PathLike) -> Path:
        """Write the run folder (weights, config, history) as one atomic generation."""
        from .training.runs import RunWriter

        with RunWriter(path) as writer:
            writer.write(run_files(self))
        return Path(path)


def weights_bytes(state: dict[str, torch.Tensor]) -> bytes:
    """Tensors as safetensors bytes (CPU, contiguous)."""
    from safetensors.torch import save

    return save({k: v.detach().cpu().contiguous() for k, v in state.items()})


def _integrity(weights: bytes, config: dict[str, Any]) -> str:
    """SHA-256 over the weights and every config entry that shapes predictions."""
    body = {k: v for k, v in config.items() if k != "sha256"}
    digest = hashlib.sha256(weights)
    digest.update(json.dumps(body, sort_keys=True).encode())
    return digest.hexdigest()


def run_files(model: Model) -> dict[str, bytes]:
    """The files of a saved model: weights, config (with its integrity hash) and history."""
    weights = weights_bytes(model.learner.state_dict())
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, **model.meta, "scaler": model.scaler.to_json(),
              "input_scaler": model.input_scaler.to_json() if model.input_scaler is not None else None}
    config["sha256"] = _integrity(weights, config)
    return {"model.safetensors": weights, "config.json": json.dumps(config, indent=1).encode(),
            "history.json": json.dumps(model.history, indent=1).encode()}


def load_model(path: PathLike, device: DeviceLike = None) -> Model:
    """Load a run folder written by :meth:`Model.save` or ``fit(out=...)`` (safetensors + JSON;
    nothing is unpickled). The weights and config must match their SHA-256."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_tensors

    from .training.runs import read_run_files

    folder = Path(path)
    files = read_run_files(folder, ("config.json", "model.safetensors"), optional=("history.json",))
    config = parse_json_bounded(files["config.json"], f"{folder}/config.json", MAX_CONFIG_BYTES)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise DatasetError(f"{folder}/config.json does not describe a workbench model")
    version = config.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version > FORMAT_VERSION:
        raise DatasetError(f"{folder}/config.json has format_version {version!r}; this workbench reads versions up "
                           f"to {FORMAT_VERSION} (a newer file needs a newer workbench)")
    if version < MIN_FORMAT_VERSION:  # version 1 hashed only the weights: its scaler and options are unverifiable
        raise DatasetError(f"{folder}/config.json has format_version {version}, whose checksum covers only the "
                           "weights, so its standardisation and options cannot be verified",
                           fix="load it with the workbench version that wrote it and save it again with this one "
                               "(model.save), or retrain")
    raw = files["model.safetensors"]
    if _integrity(raw, config) != config.get("sha256"):
        raise DatasetError(f"{folder}: the weights or config.json were modified after saving (checksum differs); "
                           "retrain or restore the folder from a copy")
    try:
        cls = get_learner(config["learner"])
        dim = len(config["variables"])
        n_inputs = len(config.get("inputs") or [])
        scaler = Standardiser.from_json(config["scaler"], dim, "state")
        input_scaler = Standardiser.from_json(config["input_scaler"], n_inputs, "input") if n_inputs else None
        learner = cls(dim, n_inputs, **cls.saved_options(config["options"]))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DatasetError(f"{folder}/config.json is incomplete or malformed ({type(exc).__name__}: {exc}); "
                           "save models with model.save(path)") from None
    try:
        state = load_tensors(raw)
        floats = {v.dtype for v in state.values() if v.is_floating_point()}
        if len(floats) > 1 or not floats <= {torch.float32, torch.float64}:
            raise ValueError(f"weights must all be float32 or all float64, found {sorted(map(str, floats))}")
        # the module takes the saved precision first, so loading never rounds float64 weights
        learner.to(dtype=floats.pop() if floats else torch.float32)
        if version < 3:
            state.update({k: v for k, v in learner.state_dict().items() if k.rsplit(".", 1)[-1] == "rate"})
        learner.load_state_dict(state)
    except (SafetensorError, RuntimeError, ValueError) as exc:
        raise DatasetError(f"{folder}/model.safetensors could not be loaded into a {config['learner']} learner "
                           f"({str(exc)[:200]})") from None
    learner.to(device=resolve_device(device))
    history = parse_json_bounded(files["history.json"], f"{folder}/history.json", MAX_CONFIG_BYTES) \
        if "history.json" in files else []
    if not isinstance(history, list):
        raise DatasetError(f"{folder}/history.json must hold a list of epoch records")
    meta = {k: v for k, v in config.items()
            if k not in ("format", "format_version", "scaler", "input_scaler", "sha256", "weights_sha256")}
    if "solver" in cls.defaults and "solver" not in config["options"] and "rollout_solver" not in meta:
        meta["rollout_solver"] = legacy_solver(learner)  # how a file without its solver predicted
    if meta.get("series") is not None:  # a tampered recipe is refused here, not at the first forecast
        from .data.series import check_recipe
        check_recipe(meta["series"], meta.get("variables") or [])
    return Model(learner.eval(), scaler, meta, history, input_scaler)


__all__ = ["Model", "load_model", "mark_diverged"]

"""Shared machinery of continuous-time learners: trajectory matching through an ODE solver,
derivative matching, and rollouts with per-trajectory step control."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

import torch
import torchdiffeq

from ..errors import SolverStallError
from ..safety import check_integer, check_real
from ..numerics import BatchField, fixed_step_solve, fixed_steps, integrate_batch, solver as solver_named
from .base import MIN_COMPILED_EVALUATIONS, Batch, InputSignal, Learner, compile_with_trial, masked_mse

Interval = Callable[["ContinuousLearner", torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
# the options a rollout may set apart from training (Model.rollout's solver=); "dt" is the sample
# spacing that fixed-step solvers divide into substeps (Model.rollout passes the training data's)
SOLVER_OPTIONS = ("solver", "substeps", "rtol", "atol", "max_steps", "dt")
# a standardised state this far out has left the data for good: dopri5 rollouts stop there
ROLLOUT_BOUND = 1e8


def _training_interval(learner: "ContinuousLearner", t: torch.Tensor, y: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One output interval of a training window without inputs: the learner's fixed-step stages."""
    return fixed_steps(learner.rhs(None), t, y, h, learner.options["substeps"], learner.options["solver"])


def _tracked(y: torch.Tensor) -> torch.Tensor:
    """``y`` as the compiled training interval takes every state: contiguous (a window's start state
    is a strided slice, and strides are part of what was compiled) and requiring a gradient. A start
    state from the data carries none, later states do; without this the interval was compiled twice:
    a median of 37 s on an empty compile cache against 29 s (benchmarks/bench_train.py's model)."""
    y = y.contiguous()
    return y if y.requires_grad else y.detach().requires_grad_()


class ContinuousLearner(Learner):
    """A learner whose model is a vector field ``dz/dt = field(t, z, u)`` on a (possibly augmented) state.

    Options shared by subclasses: ``solver`` (torchdiffeq method used in training and, unless a
    rollout is given another, in rollouts; fixed-step ``rk4`` by default, adaptive ``dopri5`` with
    ``rtol``/``atol``), ``substeps`` (solver steps per sample for fixed-step solvers), ``adjoint`` (adjoint backpropagation, Chen et al. 2018),
    ``max_steps`` (step budget of adaptive solves before a stall is reported), ``interpolation``
    of exogenous inputs between samples (``"linear"`` or ``"hermite"``).
    """

    solver_defaults = {"solver": "rk4", "substeps": 2, "rtol": 1e-5, "atol": 1e-6, "adjoint": False,
                       "max_steps": 20_000, "interpolation": "linear"}
    solver_options = SOLVER_OPTIONS

    def __init__(self, dim: int, n_inputs: int = 0, **options: Any):
        super().__init__(dim, n_inputs, **options)
        check_solver_settings(self.name, self.options)
        self._interval: Optional[Interval] = None  # set by compile_training

    def solver_settings(self, overrides: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
        """The solver options of a rollout: the trained ones (:data:`SOLVER_OPTIONS`) with ``overrides``
        on top, checked as the learner's options are."""
        settings = {**{k: self.options.get(k) for k in SOLVER_OPTIONS}, **(overrides or {})}
        check_solver_settings(self.name, settings)
        return settings

    def field(self, t: torch.Tensor, z: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        raise NotImplementedError

    def lift(self, z: torch.Tensor) -> torch.Tensor:
        """Map data states to solver states (identity unless augmented)."""
        return z

    def project(self, y: torch.Tensor) -> torch.Tensor:
        """Map solver states back to data states."""
        return y

    def drift(self, z: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        t = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        if u is None and self.n_inputs:  # standardised inputs at their training mean
            u = torch.zeros(z.shape[0], self.n_inputs, dtype=z.dtype, device=z.device)
        return self.project(self.field(t, self.lift(z), u))

    def _with_inputs(self, inputs: Optional[InputSignal]) -> Optional[InputSignal]:
        if inputs is None:
            return None
        return InputSignal(inputs.times, inputs.values, self.options["interpolation"])

    def rhs(self, signal: Optional[InputSignal]) -> BatchField:
        """The field as solvers call it, ``f(t, y)`` with ``t`` a scalar tensor: broadcast over the
        batch, with the inputs interpolated at ``t`` where there are any."""
        def f(tt: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.field(tt.expand(y.shape[0]), y, None if signal is None else signal.at(tt))
        return f

    @property
    def compilable(self) -> bool:
        """Whether :meth:`compile_training` applies: a fixed-step fused solver without the adjoint, no
        exogenous inputs (the field would read a per-batch signal), and at least
        ``MIN_COMPILED_EVALUATIONS`` field evaluations per output interval (fewer run faster eagerly)."""
        o = self.options
        if self.n_inputs or o["adjoint"] or not _runs_fused(o["solver"]):
            return False
        return solver_named(o["solver"]).stages * o["substeps"] >= MIN_COMPILED_EVALUATIONS

    def compile_training(self, batch_size: int) -> bool:
        """Compile one output interval of the training windows' fixed-step solve (the field and the
        Runge-Kutta stages, forward and backward) with ``torch.compile``; training windows use it from
        then on. A trial interval on zeros compiles both directions at once, so a compiler that is
        missing or fails on this field (no C compiler, an unsupported op) shows here: a warning, and
        training stays eager with the same results.

        Arguments:
            batch_size: windows per training batch (the compiled interval is specialised to it).

        Returns:
            Whether training windows now run compiled (False where not :attr:`compilable`).
        """
        if not self.compilable:
            return False

        def trial(interval: Interval, like: dict[str, Any]) -> torch.Tensor:
            y = _tracked(self.lift(torch.zeros(batch_size, self.dim, **like)))
            t, h = torch.zeros((), **like), torch.full((), 1e-2, **like)
            return interval(self, t, y, h)

        self._interval = compile_with_trial(self, _training_interval, trial)
        return self._interval is not None

    def _odeint(self, y0: torch.Tensor, t: torch.Tensor, inputs: Optional[InputSignal],
                settings: Optional[Mapping[str, Any]] = None,
                count: Optional[Callable[[], None]] = None) -> torch.Tensor:
        """States (T, B, state) at ``t`` by the solver of ``settings`` (default: the options), as training
        integrates; ``count`` is called at each evaluation of the field."""
        o = {**self.options, **(settings or {})}
        solve = torchdiffeq.odeint_adjoint if o["adjoint"] else torchdiffeq.odeint
        method = solver_named(o["solver"], backend="torchdiffeq")
        kwargs: dict[str, Any] = {"method": method.name, "options": method.backend_options}
        if not method.adaptive:
            if len(t) > 1:
                kwargs["options"]["step_size"] = float((t[1:] - t[:-1]).min()) / o["substeps"]
        else:
            kwargs.update(rtol=o["rtol"], atol=o["atol"])
            kwargs["options"]["max_num_steps"] = o["max_steps"]
        if o["adjoint"]:
            kwargs["adjoint_params"] = tuple(self.parameters())
        signal = self._with_inputs(inputs)
        rhs = self.rhs(signal)
        if count is not None:
            field = rhs

            def rhs(tt: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
                count()
                return field(tt, y)
        if _runs_fused(method.name) and not o["adjoint"]:
            compiled = self._interval if signal is None and self.training and torch.is_grad_enabled() else None
            interval = None if compiled is None else (lambda tt, y, h: compiled(self, tt, _tracked(y), h))
            return fixed_step_solve(rhs, y0, t, o["substeps"], o["solver"], interval)
        try:
            return solve(rhs, y0, t, **kwargs)
        except AssertionError as exc:
            switch = "" if not method.adaptive else "use solver='rk4', "
            raise SolverStallError(f"{self.name}: the {o['solver']} solver stalled on the learned field ({exc}); "
                                   f"lower the learning rate, {switch}shift large time values to start near 0 "
                                   "(float32 cannot resolve small steps at large times), or raise max_steps") from None

    def loss(self, batch: Batch, horizon: int, objective: str) -> torch.Tensor:
        if objective == "derivative":
            u = None if batch.u is None else batch.u.reshape(-1, self.n_inputs)
            z, dz = batch.z.reshape(-1, self.dim), batch.dz.reshape(-1, self.dim)
            return masked_mse(self.drift(z, u), dz, batch.mask.reshape(-1))
        z, t, mask = batch.z[:, :horizon], batch.t[:, :horizon], batch.mask[:, :horizon]
        rel = t[0] - t[0, 0]
        pred = self.project(self._odeint(self.lift(z[:, 0]), rel, batch.inputs(horizon))).transpose(0, 1)
        return masked_mse(pred, z, mask)

    def rollout(self, z0: torch.Tensor, t: torch.Tensor, n_samples: int = 1,
                generator: Optional[torch.Generator] = None, inputs: Optional[InputSignal] = None,
                context: Optional[torch.Tensor] = None, solver: Optional[Mapping[str, Any]] = None) -> torch.Tensor:
        """Predicted states ``(n_samples, B, T, dim)`` (the same path ``n_samples`` times), integrated by the
        solver the learner trained with, or with ``solver`` (options of :data:`SOLVER_OPTIONS`) on top.

        ``dopri5`` runs on the per-trajectory batch solver (:func:`~workbench.numerics.integrate_batch`):
        each trajectory keeps its own step size, a runaway state stops at ``ROLLOUT_BOUND`` with
        :class:`DivergenceError`, and ``rtol`` is raised to ``1e3`` machine epsilons of the dtype where it
        asks for less (float32 cannot meet it, and the step size would underflow). Every other solver
        integrates as in training (:meth:`_odeint`), without the adjoint; a runaway path there turns
        non-finite and is left so for the caller to mark. Fixed-step solvers take ``substeps`` steps per
        sample spacing ``dt`` as in training, so output times further apart than ``dt`` get more steps
        (:func:`sample_grid`), and refuse a rollout of more than ``max_steps`` steps up front.

        Raises:
            SolverStallError: over the step budget ``max_steps``.
            DivergenceError: a dopri5 rollout beyond ``ROLLOUT_BOUND``.
        """
        o = self.solver_settings(solver)
        rel = t - t[0]
        y0 = self.lift(z0)
        if o["solver"] == "dopri5":
            signal = self._with_inputs(inputs)

            def rhs(tt: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
                return self.field(tt, y, None if signal is None else signal.at(tt))

            rtol = max(o["rtol"], 1e3 * torch.finfo(z0.dtype).eps)
            # a stiff learned field keeps to the step budget: there is no implicit method to point to
            out, stats = integrate_batch(rhs, y0, rel, method="dopri5", rtol=rtol, atol=o["atol"],
                                         max_steps=o["max_steps"], bound=ROLLOUT_BOUND, refuse_stiff=False)
            self.last_nfe = stats.nfe
        else:
            fixed = not solver_named(o["solver"], backend="torchdiffeq").adaptive
            grid, outputs = sample_grid(rel, o["dt"]) if fixed else (rel, None)
            steps = o["substeps"] * (len(grid) - 1)
            if outputs is not None and steps > o["max_steps"]:
                raise SolverStallError(f"{self.name}: this {o['solver']} rollout needs {steps} steps, over the budget "
                                       f"of {o['max_steps']} steps ({o['substeps']} per sample spacing {o['dt']:g})",
                                       fix="predict a shorter span, or raise the budget: solver={'max_steps': ...}")
            calls = [0]

            def count() -> None:
                calls[0] += 1

            out = self._odeint(y0, grid, inputs, {**o, "adjoint": False}, count)
            out = (out if outputs is None else out[outputs]).transpose(0, 1)
            self.last_nfe = calls[0]
        return self.project(out).unsqueeze(0).expand(n_samples, -1, -1, -1)


def _runs_fused(name: str) -> bool:
    """Whether the workbench's own fused fixed-step solve runs ``name`` (training and rollouts alike)."""
    method = solver_named(name, backend="torchdiffeq")
    return "workbench" in method.backends and not method.adaptive


def check_solver_settings(name: str, settings: Mapping[str, Any]) -> None:
    """Refuse solver options that the solvers would reject mid-run (torchdiffeq with a bare ValueError).

    Arguments:
        name: the learner's name, for the message.
        settings: values of :data:`SOLVER_OPTIONS`.
    """
    solver_named(settings["solver"], backend="torchdiffeq", what=f"{name} solver")
    check_integer(settings["substeps"], "substeps", 1, 1000)
    check_integer(settings["max_steps"], "max_steps", 1)
    check_real(settings["rtol"], "rtol", 0.0, 1.0, low_open=True)
    check_real(settings["atol"], "atol", 0.0, 1.0, low_open=True)
    if settings.get("dt") is not None:
        check_real(settings["dt"], "dt", 0.0, low_open=True)


def sample_grid(t: torch.Tensor, dt: Optional[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Output times ``t`` (T,) with each interval longer than the sample spacing ``dt`` cut into equal
    parts no longer than it, so a fixed-step solver keeps the step it trained with; and the indices of
    ``t`` in the result. Intervals within 0.1% of ``dt`` (rounding of the time axis) stay whole, so on
    the data's own grid the result is ``t`` itself; so it is without a ``dt``."""
    same = (t, torch.arange(len(t), device=t.device))
    if dt is None or len(t) < 2:
        return same
    gaps = torch.diff(t).double().cpu()
    parts = torch.ceil(gaps / dt - 1e-3).clamp_min(1).long()
    if bool((parts == 1).all()):
        return same
    pieces = [t[i] + (t[i + 1] - t[i]) * torch.arange(int(n), dtype=t.dtype, device=t.device) / int(n)
              for i, n in enumerate(parts)]
    outputs = torch.cat([torch.zeros(1, dtype=torch.long), parts.cumsum(0)]).to(t.device)
    return torch.cat([*pieces, t[-1:]]), outputs


def legacy_solver(learner: "ContinuousLearner") -> dict[str, Any]:
    """The solver rollouts used before they honoured the learner's ``solver``, ``rtol`` and ``atol``:
    ``dopri5`` at ``atol = rtol / 10`` (``rtol`` raised as :meth:`ContinuousLearner.rollout` raises it).
    A model file whose options do not name its solver keeps predicting so."""
    rtol = max(learner.options["rtol"], 1e3 * torch.finfo(learner.scale.dtype).eps)
    return {"solver": "dopri5", "atol": rtol / 10}

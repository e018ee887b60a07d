"""Shared machinery of continuous-time learners: trajectory matching through an ODE solver,
derivative matching, and rollouts with per-trajectory step control."""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch
import torchdiffeq

from ..errors import BadParameterError, SolverStallError
from ..safety import check_integer, check_real
from ..numerics.solvers import FIXED_STEP_METHODS, FUSED_METHODS, TORCHDIFFEQ_METHODS, BatchField, fixed_step_solve, fixed_steps, integrate_batch
from .base import MIN_COMPILED_EVALUATIONS, Batch, InputSignal, Learner, compile_with_trial, masked_mse

Interval = Callable[["ContinuousLearner", torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


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

    Options shared by subclasses: ``solver`` (torchdiffeq method used in training; fixed-step
    ``rk4`` by default, adaptive ``dopri5`` with ``rtol``/``atol``), ``substeps`` (solver steps per
    sample for fixed-step solvers), ``adjoint`` (adjoint backpropagation, Chen et al. 2018),
    ``max_steps`` (step budget of adaptive solves before a stall is reported), ``interpolation``
    of exogenous inputs between samples (``"linear"`` or ``"hermite"``).
    """

    solver_defaults = {"solver": "rk4", "substeps": 2, "rtol": 1e-5, "atol": 1e-6, "adjoint": False,
                       "max_steps": 20_000, "interpolation": "linear"}

    def __init__(self, dim: int, n_inputs: int = 0, **options: Any):
        super().__init__(dim, n_inputs, **options)
        o = self.options
        if o["solver"] not in TORCHDIFFEQ_METHODS:  # torchdiffeq would raise a bare ValueError mid-training
            raise BadParameterError(f"learner {self.name!r}: unknown solver {o['solver']!r}; use one of "
                                    f"{list(TORCHDIFFEQ_METHODS)} ('rk4' is the default)")
        check_integer(o["substeps"], "substeps", 1, 1000)
        check_integer(o["max_steps"], "max_steps", 1)
        check_real(o["rtol"], "rtol", 0.0, 1.0, low_open=True)
        check_real(o["atol"], "atol", 0.0, 1.0, low_open=True)
        self._interval: Optional[Interval] = None  # set by compile_training

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
        if self.n_inputs or o["adjoint"] or o["solver"] not in FUSED_METHODS:
            return False
        return len(FUSED_METHODS[o["solver"]][1]) * o["substeps"] >= MIN_COMPILED_EVALUATIONS

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

    def _odeint(self, y0: torch.Tensor, t: torch.Tensor, inputs: Optional[InputSignal]) -> torch.Tensor:
        o = self.options
        solve = torchdiffeq.odeint_adjoint if o["adjoint"] else torchdiffeq.odeint
        kwargs: dict[str, Any] = {"method": o["solver"]}
        if o["solver"] in FIXED_STEP_METHODS:
            if len(t) > 1:
                kwargs["options"] = {"step_size": float((t[1:] - t[:-1]).min()) / o["substeps"]}
        else:
            kwargs.update(rtol=o["rtol"], atol=o["atol"], options={"max_num_steps": o["max_steps"]})
        if o["adjoint"]:
            kwargs["adjoint_params"] = tuple(self.parameters())
        signal = self._with_inputs(inputs)
        rhs = self.rhs(signal)
        if o["solver"] in FUSED_METHODS and not o["adjoint"]:
            compiled = self._interval if signal is None and self.training and torch.is_grad_enabled() else None
            interval = None if compiled is None else (lambda tt, y, h: compiled(self, tt, _tracked(y), h))
            return fixed_step_solve(rhs, y0, t, o["substeps"], o["solver"], interval)
        try:
            return solve(rhs, y0, t, **kwargs)
        except AssertionError as exc:
            switch = "" if o["solver"] in FIXED_STEP_METHODS else "use solver='rk4', "
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
                context: Optional[torch.Tensor] = None) -> torch.Tensor:
        signal = self._with_inputs(inputs)

        def rhs(tt: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.field(tt, y, None if signal is None else signal.at(tt))

        eps = torch.finfo(z0.dtype).eps
        rtol = max(self.options["rtol"], 1e3 * eps)
        # the budgeted batch solver: a non-finite field (e.g. NaN weights) fails at the first
        # evaluation, a runaway state at the bound; a stiff learned field keeps to the step budget
        # (there is no implicit method to point to for rollouts)
        out, stats = integrate_batch(rhs, self.lift(z0), t - t[0], method="dopri5", rtol=rtol, atol=rtol / 10,
                                     max_steps=self.options["max_steps"], bound=1e8, refuse_stiff=False)
        self.last_nfe = stats.nfe
        return self.project(out).unsqueeze(0).expand(n_samples, -1, -1, -1)

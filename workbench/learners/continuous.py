"""Shared machinery of continuous-time learners: trajectory matching through an ODE solver,
derivative matching, and rollouts with per-trajectory step control."""
from __future__ import annotations

from typing import Any, Optional

import torch
import torchdiffeq

from ..errors import BadParameterError, SolverStallError
from ..solvers import integrate_batch
from .base import Batch, Learner, masked_mse

FIXED_STEP = ("euler", "midpoint", "rk4", "heun3")


class ContinuousLearner(Learner):
    """A learner whose model is a vector field ``dz/dt = field(t, z)`` on a (possibly augmented) state.

    Options shared by subclasses: ``solver`` (torchdiffeq method used in training; fixed-step
    ``rk4`` by default, adaptive ``dopri5`` with ``rtol``/``atol``), ``substeps`` (solver steps per
    sample for fixed-step solvers), ``adjoint`` (adjoint backpropagation, Chen et al. 2018),
    ``max_steps`` (step budget of adaptive solves before a stall is reported).
    """

    solver_defaults = {"solver": "rk4", "substeps": 2, "rtol": 1e-5, "atol": 1e-6, "adjoint": False,
                       "max_steps": 20_000}

    def field(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def lift(self, z: torch.Tensor) -> torch.Tensor:
        """Map data states to solver states (identity unless augmented)."""
        return z

    def project(self, y: torch.Tensor) -> torch.Tensor:
        """Map solver states back to data states."""
        return y

    def drift(self, z: torch.Tensor) -> torch.Tensor:
        t = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        return self.project(self.field(t, self.lift(z)))

    def _odeint(self, y0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        o = self.options
        solve = torchdiffeq.odeint_adjoint if o["adjoint"] else torchdiffeq.odeint
        kwargs: dict[str, Any] = {"method": o["solver"]}
        if o["solver"] in FIXED_STEP:
            if len(t) > 1:
                kwargs["options"] = {"step_size": float((t[1:] - t[:-1]).min()) / o["substeps"]}
        else:
            kwargs.update(rtol=o["rtol"], atol=o["atol"], options={"max_num_steps": o["max_steps"]})
        if o["adjoint"]:
            kwargs["adjoint_params"] = tuple(self.parameters())
        try:
            return solve(lambda tt, y: self.field(tt.expand(y.shape[0]), y), y0, t, **kwargs)
        except AssertionError as exc:
            raise SolverStallError(f"{self.name}: the {o['solver']} solver stalled on the learned field ({exc}); "
                                   "lower the learning rate, use solver='rk4', or raise max_steps") from None

    def loss(self, batch: Batch, horizon: int, objective: str) -> torch.Tensor:
        if objective == "derivative":
            if batch.dz is None:
                raise BadParameterError(f"{self.name}: objective 'derivative' needs a 'derivative' variable in the "
                                        "dataset (simulate(..., derivative=True))")
            z, dz = batch.z.reshape(-1, self.dim), batch.dz.reshape(-1, self.dim)
            return masked_mse(self.drift(z), dz, batch.mask.reshape(-1))
        z, t, mask = batch.z[:, :horizon], batch.t[:, :horizon], batch.mask[:, :horizon]
        rel = t[0] - t[0, 0]
        pred = self.project(self._odeint(self.lift(z[:, 0]), rel)).transpose(0, 1)
        return masked_mse(pred, z, mask)

    def rollout(self, z0: torch.Tensor, t: torch.Tensor, n_samples: int = 1,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        def field(tt: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.field(tt, y)

        eps = torch.finfo(z0.dtype).eps
        rtol = max(self.options["rtol"], 1e3 * eps)
        out, stats = integrate_batch(field, self.lift(z0), t - t[0], method="dopri5",
                                     rtol=rtol, atol=rtol / 10, max_steps=self.options["max_steps"], bound=1e8)
        self.last_nfe = stats.nfe
        return self.project(out).unsqueeze(0).expand(n_samples, -1, -1, -1)

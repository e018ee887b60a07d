"""Hidden variables and irregular samples: models that encode an observed history into a latent state
and roll that state out.

* ``latent_ode``: Rubanova, Chen & Duvenaud, "Latent ODEs for Irregularly-Sampled Time Series",
  NeurIPS 2019. An ODE-RNN encoder (a GRU update at each observed sample, a small ODE between
  samples, so any times and any mask) reads the history and gives q(z) at the forecast origin (the
  extrapolation recipe of their code; ``anchor="first"``: q(z0) at the history's first time from
  the encoder run backwards, the paper's generative model, for reconstruction); a latent ODE
  carries z forward; a linear decoder maps the latent state to the observed variables. Trained as
  a VAE: the ELBO, Gaussian likelihood with a fixed noise level (or a learned one per variable) on
  every observed sample from the anchor on, KL to N(0, I).
* ``ncde``: Kidger, Morrill, Foster & Lyons, "Neural Controlled Differential Equations for Irregular
  Time Series", NeurIPS 2020 (torchcde). The history (with time and, per Kidger et al., the
  cumulative observation count as channels; missing samples are NaN, which torchcde's coefficients
  interpolate over) drives a CDE whose hidden state at the history's end is the latent state. The
  forecast continues that state with an autonomous latent ODE and a linear read-out (chosen over an
  autoregressive read-out: predictions at any times, and one latent state for ``hidden_r2``).
  Trained by the mean squared error on the observed samples from the history's end on.
* ``latent_sde``: Li, Wong, Chen & Duvenaud, "Scalable Gradients for Stochastic Differential
  Equations", AISTATS 2020 (torchsde). The same ODE-RNN encoder gives q(z0) and a context at every
  sample; a posterior SDE reading that context explains the window, a prior SDE with the same
  diffusion generates forecasts; trained on the ELBO with the path KL. Its samples' spread is
  calibrated on validation data afterwards (:func:`calibrate`).

Windows: a learner with ``context = C`` reads the first ``C + 1`` samples of a training window as
its history and predicts from sample ``C`` on, as :meth:`workbench.Model.predict` does from a
dataset (it passes the first ``C`` samples as ``context``); training windows must be longer than
``C + 1`` (``fit(..., window=...)``, default 16 beside the default ``context=8``).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import replace
from typing import Any, Callable, Mapping, Optional

import numpy as np
import torch
import torchcde
import torchdiffeq
import torchsde
import xarray as xr
from torch import nn

from ..errors import BadParameterError, DatasetError, UnsupportedError
from ..safety import check_integer, check_real
from . import register_learner
from .base import Batch, Capabilities, DataInfo, InputSignal, Learner, masked_mse, mlp, rk4_step

MAX_LATENT = 1024
MAX_CONTEXT = 10_000
# the GRU cell is allocated before the networks' own size checks: bound its width first
MAX_HIDDEN = 4096
# the noise level of the decoder's Gaussian likelihood (standardised units) cannot fall below this
MIN_OBSERVATION_STD = 1e-3
# the latent ODE's RK4 step is the smallest gap between samples, but never shorter than the median
# gap over this: near-continuous sample times (two samples 1e-4 apart) would otherwise cost
# thousands of steps per solve; outputs between steps are then read off a cubic Hermite interpolant
MEDIAN_GAP_STEPS = 4
INTERPOLATIONS = ("cubic", "linear", "rectilinear")
# Where latent_ode's q(z) sits: the history's last time (forecasting) or its first (reconstruction)
ANCHORS = ("last", "first")


class Scaled(nn.Module):
    """``rate * net(h)``: a field in units of the data's own time scale (``Learner.rate``)."""

    def __init__(self, net: nn.Module, owner: Learner):
        super().__init__()
        self.net, self._owner = net, [owner]  # a list: the owner is not a submodule (no cycle)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self._owner[0].rate * self.net(h)


class HistoryLearner(Learner):
    """Shared by latent models: the history window, rollouts from ``context``, and the latent state.

    Subclasses implement :meth:`encode_end` (latent state at the history's last time) and
    :meth:`forecast` (paths from the history's last time over relative times).
    """

    reads_history = True  # predict(ds) encodes each trajectory's history at its own times (gaps allowed)

    def __init__(self, dim: int, n_inputs: int = 0, **options: Any):
        super().__init__(dim, n_inputs, **options)
        o = self.options
        check_integer(o["context"], "context (history samples before the start)", 1, MAX_CONTEXT)
        check_integer(o["latent"], "latent (the latent dimension)", 1, MAX_LATENT)
        check_integer(o["hidden"], "hidden (the network width)", 1, MAX_HIDDEN)
        check_integer(o["substeps"], "substeps", 1, 1000)
        if o["dt"] is not None:
            check_real(o["dt"], "dt", 0.0, low_open=True)

    @classmethod
    def options_from_data(cls, info: DataInfo, options: dict[str, Any]) -> dict[str, Any]:
        options = super().options_from_data(info, options)
        context = options.get("context", cls.defaults["context"])
        if isinstance(context, int) and info.length and context + 2 > info.length:
            raise BadParameterError(f"learner {cls.name!r}: context={context} needs trajectories of at least "
                                    f"{context + 2} samples (a history of context + 1 and a sample to predict), "
                                    f"got {info.length}", fix=f"use context <= {max(1, info.length - 2)}")
        return options

    def capabilities(self) -> Capabilities:
        return replace(self.supports, context=int(self.options["context"]))

    # --- the history ------------------------------------------------------------------------------
    def split_window(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """History (z, t, mask) of a training window: its first ``context + 1`` samples.

        Raises:
            BadParameterError: the window is not longer than the history.
        """
        c = self.options["context"]
        if batch.z.shape[1] < c + 2:
            raise BadParameterError(f"learner {self.name!r} reads {c + 1} history samples, but training windows "
                                    f"hold {batch.z.shape[1]}", fix=f"fit with window >= {c + 2} or a smaller context")
        return batch.z[:, : c + 1], batch.t[:, : c + 1], batch.mask[:, : c + 1]

    def encode_end(self, z: torch.Tensor, t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The latent state (B, latent) at the last time of histories ``z`` (B, H, D), ``t`` (B, H), ``mask`` (B, H)."""
        raise NotImplementedError

    def forecast(self, z: torch.Tensor, t: torch.Tensor, mask: torch.Tensor, t_out: torch.Tensor, n_samples: int = 1,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Paths (S, B, T, D) from histories at times ``t_out`` (T,), ``t_out[0]`` the history's last time."""
        raise NotImplementedError

    def rollout(self, z0: torch.Tensor, t: torch.Tensor, n_samples: int = 1,
                generator: Optional[torch.Generator] = None, inputs: Optional[InputSignal] = None,
                context: Optional[torch.Tensor] = None) -> torch.Tensor:
        """From ``context`` (B, C, D; NaN where a sample is missing) and ``z0``, on a history grid of the
        data's step ``dt`` ending at ``t[0]`` (rollouts get no history times; irregular histories go
        through :func:`history_forecast`)."""
        if context is None:
            raise UnsupportedError(f"{self.name} needs a history of {self.options['context']} samples before the "
                                   "start", fix="predict from a dataset (its first samples are the history)")
        z = torch.cat([context, z0[:, None]], dim=1)
        step = self.options["dt"] or (float(t[1] - t[0]) if len(t) > 1 else 1.0)
        th = t[0] + step * torch.arange(-z.shape[1] + 1, 1, dtype=t.dtype, device=t.device)
        mask = torch.isfinite(z).all(-1)
        check_histories(mask.cpu().numpy())
        return self.forecast(torch.nan_to_num(z), th.expand(z.shape[0], -1), mask, t, n_samples, generator)


def check_histories(mask: np.ndarray) -> None:
    """Refuse histories with fewer than two observed samples (one cannot show where the state is going).

    Raises:
        DatasetError: naming the first such history and the fix.
    """
    counts = mask.sum(1)
    bad = np.flatnonzero(counts < 2)
    if bad.size:
        raise DatasetError(f"{bad.size} histories hold fewer than two observed samples (the first, position "
                           f"{int(bad[0])}, holds {int(counts[bad[0]])}); a single observation cannot show the "
                           "hidden state", fix="use a longer context (learner option context=) or data with fewer "
                                               "missing samples at the start")


def euler_step(field: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], t: torch.Tensor, y: torch.Tensor,
               h: torch.Tensor) -> torch.Tensor:
    """One Euler step of ``dy/dt = field(t, y)`` from times ``t`` (B,) over steps ``h`` (B,)."""
    return y + h[:, None] * field(t, y)


def ode_rnn_backwards(gru: nn.GRUCell, field: nn.Module, z: torch.Tensor, t: torch.Tensor,
                      mask: torch.Tensor, step: Callable[..., torch.Tensor] = rk4_step) -> torch.Tensor:
    """The ODE-RNN encoder (Rubanova et al. 2019) run backwards over ``z`` (B, L, D) at times ``t``
    (B, L) with ``mask`` (B, L): a GRU update at each observed sample, ``field`` carrying the hidden
    state back between samples by one ``step`` (:func:`rk4_step` or :func:`euler_step`). Returns the
    hidden states (B, L, hidden); position ``i`` summarises the samples from ``i`` on."""
    h = z.new_zeros(z.shape[0], gru.hidden_size)
    m = mask.to(z.dtype)[..., None]
    states = []
    for i in range(z.shape[1] - 1, -1, -1):
        if i < z.shape[1] - 1:  # evolve back to the earlier sample: a step of -dt
            h = step(lambda _, state: field(state), t[:, i + 1], h, t[:, i] - t[:, i + 1])
        update = gru(torch.cat([z[:, i] * m[:, i], m[:, i].expand(-1, z.shape[-1])], -1), h)
        h = m[:, i] * update + (1 - m[:, i]) * h
        states.append(h)
    return torch.stack(states[::-1], 1)


def is_uniform(gaps: torch.Tensor) -> bool:
    """Whether the gaps between output times are equal up to their dtype's rounding."""
    rounding = 64 * torch.finfo(gaps.dtype).eps * float(gaps.abs().max())
    return float(gaps.max() - gaps.min()) <= rounding


def uniform_rk4(field: nn.Module, z0: torch.Tensor, gap: float, length: int, substeps: int) -> torch.Tensor:
    """Classical RK4 from ``z0`` (B, n) over ``length`` output times ``gap`` apart, ``substeps`` steps
    per gap: the path (B, length, n). The grid of torchdiffeq's fixed-step ``rk4`` (its 3/8-rule
    variant, also fourth order); this loop skips its per-step bookkeeping, which costs about as much
    as the small fields of a latent model (the whole latent solve ran twice as fast)."""
    h = gap / substeps
    y, path = z0, [z0]
    for _ in range(length - 1):
        for _ in range(substeps):
            k1 = field(y)
            k2 = field(y + h / 2 * k1)
            k3 = field(y + h / 2 * k2)
            k4 = field(y + h * k3)
            y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        path.append(y)
    return torch.stack(path, 1)


class LatentODE(HistoryLearner):
    """Options: ``latent`` (dimension of the latent state), ``hidden`` (GRU and network width),
    ``depth``/``activation`` of the latent field, ``context`` (history samples before the start),
    ``substeps`` (RK4 steps per sample of the latent solve), ``kl_weight`` (1: the ELBO),
    ``noise`` (the likelihood's observation noise std in standardised units, fixed as in Rubanova
    et al.'s code, or ``None`` to learn one per variable), ``anchor`` (where q(z) sits, below),
    ``dt`` (history step of rollouts; from the data). ``predict(n_samples=1)`` decodes the
    posterior mean; more samples draw z from the posterior (decoded without observation noise).

    ``anchor="last"`` (forecasting, the default) is the extrapolation recipe of Rubanova et al.'s
    code: the ODE-RNN reads the history forwards and gives q(z) at its last time, the forecast
    origin; the latent ODE runs from there and the ELBO covers the samples from the origin on. The
    ODE then carries the state only over the forecast, and the encoder's last update reads the
    origin's own sample. ``anchor="first"`` is the paper's generative model for reconstruction
    (interpolation): the ODE-RNN runs backwards, q(z0) sits at the history's first time and the
    ELBO covers the whole window, history included.
    """

    name = "latent_ode"
    reference = "Rubanova, Chen & Duvenaud 2019, Latent ODEs for Irregularly-Sampled Time Series, NeurIPS"
    supports = Capabilities(kinds=("ode",), stochastic=True, irregular=True, objectives=("likelihood",),
                            has_vector_field=False)
    defaults = {"latent": 8, "hidden": 64, "depth": 2, "activation": "tanh", "context": 8, "substeps": 1,
                "kl_weight": 1.0, "noise": 0.01, "anchor": "last", "objective": "likelihood", "dt": None}

    def __init__(self, dim: int, n_inputs: int = 0, **options: Any):
        super().__init__(dim, n_inputs, **options)
        o = self.options
        check_real(o["kl_weight"], "kl_weight", 0.0)
        if o["noise"] is not None:
            check_real(o["noise"], "noise (observation noise std, standardised units)", MIN_OBSERVATION_STD)
        if o["anchor"] not in ANCHORS:
            raise BadParameterError(f"unknown anchor {o['anchor']!r} of latent_ode; choose one of {ANCHORS}",
                                    fix="anchor='last' to forecast, anchor='first' to reconstruct histories")
        self.gru = nn.GRUCell(2 * dim, o["hidden"])
        self.encoder_field = Scaled(mlp(o["hidden"], o["hidden"], o["hidden"], 1, "tanh"), self)
        self.posterior = nn.Linear(o["hidden"], 2 * o["latent"])
        self.field = Scaled(mlp(o["latent"], o["latent"], o["hidden"], o["depth"], o["activation"]), self)
        self.decoder = nn.Linear(o["latent"], dim)
        fixed = o["noise"] is not None
        self.log_std = nn.Parameter(torch.full((dim,), math.log(o["noise"] if fixed else 0.1)), requires_grad=not fixed)

    @classmethod
    def saved_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """A file from before ``anchor`` and ``noise`` existed holds the paper's reconstruction model
        with a learned noise level: it keeps predicting as it was trained."""
        return {"anchor": "first", "noise": None, **options}

    def anchored_at_last(self) -> bool:
        """Whether q(z) sits at the history's last time (``anchor="last"``)."""
        return self.options["anchor"] == "last"

    def posterior_of(self, z: torch.Tensor, t: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z) at the anchor: ``t[:, -1]`` from the ODE-RNN run forwards
        (the backward run on reversed time), or ``t[:, 0]`` from the ODE-RNN run backwards."""
        if self.anchored_at_last():
            z, t, mask = z.flip(1), -t.flip(1), mask.flip(1)
        # Euler between samples, as in Rubanova et al.'s code: the encoder's ODE only carries a summary
        # (RK4 gave about the same forecast error on van der Pol at twice the encoder's cost)
        h = ode_rnn_backwards(self.gru, self.encoder_field, z, t, mask, euler_step)[:, 0]
        mean, log_var = self.posterior(h).chunk(2, dim=-1)
        return mean, log_var.clamp(-12.0, 6.0)

    def latent_path(self, z0: torch.Tensor, rel: torch.Tensor) -> torch.Tensor:
        """The latent ODE from ``z0`` over relative times ``rel`` (T,), increasing or (back in time)
        decreasing: shape (B, T, latent)."""
        if len(rel) < 2:
            return z0[:, None]
        if float(rel[-1]) < float(rel[0]):  # back in time: the reversed field forwards in -t
            return self._solve(lambda y: -self.field(y), z0, -rel)
        return self._solve(self.field, z0, rel)

    def _solve(self, field: Callable[[torch.Tensor], torch.Tensor], z0: torch.Tensor, rel: torch.Tensor
               ) -> torch.Tensor:
        gaps = rel[1:] - rel[:-1]
        if is_uniform(gaps):
            return uniform_rk4(field, z0, float(gaps.mean()), len(rel), self.options["substeps"])
        smallest, floor = float(gaps.min()), float(gaps.median()) / MEDIAN_GAP_STEPS
        options = {"step_size": max(smallest, floor) / self.options["substeps"],
                   "interp": "linear" if smallest >= floor else "cubic"}
        path = torchdiffeq.odeint(lambda tt, y: field(y), z0, rel, method="rk4", options=options)
        return path.transpose(0, 1)

    def loss(self, batch: Batch, horizon: int, objective: str) -> torch.Tensor:
        """Negative ELBO per observed value of the window from the anchor on (the forecast, or the
        history's reconstruction and the forecast)."""
        z_h, t_h, m_h = self.split_window(batch)
        mean, log_var = self.posterior_of(z_h, t_h, m_h)
        # validation (eval mode) decodes the posterior mean, as predict does: at the small fixed noise
        # level the spread of a fresh draw dominated the validation loss, and the early stop and the
        # best epoch followed the draws (on van der Pol a 60 s run stopped at 24 s, nRMSE 0.086; with
        # the mean it trained 60 s to 0.021)
        z0 = mean + torch.randn_like(mean) * (0.5 * log_var).exp() if self.training else mean
        start = z_h.shape[1] - 1 if self.anchored_at_last() else 0
        target, t, observed = batch.z[:, start:], batch.t[0, start:], batch.mask[:, start:]
        x = self.decoder(self.latent_path(z0, t - t[0]))
        log_std = self.log_std.clamp_min(math.log(MIN_OBSERVATION_STD))
        nll = 0.5 * ((x - target) / log_std.exp()) ** 2 + log_std + 0.5 * math.log(2 * math.pi)
        weight = observed.to(x.dtype)[..., None]
        kl = 0.5 * (mean ** 2 + log_var.exp() - 1 - log_var).sum()
        values = (weight.sum() * self.dim).clamp_min(1.0)
        return ((nll * weight).sum() + self.options["kl_weight"] * kl) / values

    def reconstruct(self, z: torch.Tensor, t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The histories decoded from the posterior mean at every time of ``t`` (B, L): (B, L, D)."""
        mean, _ = self.posterior_of(z, t, mask)
        if self.anchored_at_last():
            # from the anchor back to the first time, then in the order of ``t``
            return self.decoder(self.latent_path(mean, (t[0] - t[0, -1]).flip(0)).flip(1))
        return self.decoder(self.latent_path(mean, t[0] - t[0, 0]))

    def encode_end(self, z: torch.Tensor, t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mean, _ = self.posterior_of(z, t, mask)
        return mean if self.anchored_at_last() else self.latent_path(mean, t[0] - t[0, 0])[:, -1]

    def forecast(self, z: torch.Tensor, t: torch.Tensor, mask: torch.Tensor, t_out: torch.Tensor, n_samples: int = 1,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
        mean, log_var = self.posterior_of(z, t, mask)
        if n_samples > 1:
            noise = torch.randn((n_samples, *mean.shape), generator=generator, dtype=mean.dtype).to(mean.device)
            z0 = (mean + noise * (0.5 * log_var).exp()).reshape(-1, mean.shape[-1])
        else:
            z0 = mean
        ahead = (t_out - t_out[0]).to(t.dtype)
        if self.anchored_at_last():
            rel, skip = ahead, 0
        else:  # from the history's first time, through the history
            rel_h = t[0] - t[0, 0]
            rel, skip = torch.cat([rel_h, rel_h[-1] + ahead[1:]]), z.shape[1] - 1
        x = self.decoder(self.latent_path(z0, rel)[:, skip:])
        self.last_nfe = 4 * self.options["substeps"] * (len(rel) - 1)
        return x.reshape(n_samples, z.shape[0], len(t_out), self.dim)


class NeuralCDE(HistoryLearner):
    """Options: ``latent`` (CDE hidden state), ``hidden``/``depth``/``activation`` of the CDE and
    continuation fields, ``context``, ``interpolation`` of the observations (``"cubic"``: natural
    cubic splines, smooth, offline; ``"linear"``; ``"rectilinear"``: causal, for online use),
    ``substeps`` (RK4 steps per sample), ``dt`` (history step of rollouts; from the data)."""

    name = "ncde"
    reference = "Kidger, Morrill, Foster & Lyons 2020, Neural Controlled Differential Equations for Irregular Time Series"
    supports = Capabilities(kinds=("ode",), irregular=True, objectives=("trajectory",), has_vector_field=False)
    defaults = {"latent": 16, "hidden": 32, "depth": 2, "activation": "tanh", "context": 8, "substeps": 1,
                "interpolation": "cubic", "objective": "trajectory", "dt": None}

    def __init__(self, dim: int, n_inputs: int = 0, **options: Any):
        super().__init__(dim, n_inputs, **options)
        o = self.options
        if o["interpolation"] not in INTERPOLATIONS:
            raise BadParameterError(f"ncde: unknown interpolation {o['interpolation']!r}",
                                    fix=f"use one of {INTERPOLATIONS}")
        self.channels = dim + 2  # time, the observed variables, the cumulative count of observations
        self.initial = nn.Linear(self.channels, o["latent"])
        self.cde_field = mlp(o["latent"], o["latent"] * self.channels, o["hidden"], o["depth"], o["activation"])
        self.field = Scaled(mlp(o["latent"], o["latent"], o["hidden"], o["depth"], o["activation"]), self)
        self.readout = nn.Linear(o["latent"], dim)

    def _control(self, z: torch.Tensor, t: torch.Tensor, mask: torch.Tensor) -> tuple[Any, torch.Tensor, float]:
        """The interpolated history, the times to integrate over and the RK4 step."""
        rel = t[0] - t[0, 0]
        # time in units of the data's time scale, so the control's channels have comparable sizes
        scaled = (rel * self.rate)[None, :, None].expand(z.shape[0], -1, 1)
        counts = mask.to(z.dtype).cumsum(1)[..., None]
        # missing samples are NaN for torchcde to interpolate over; before the first observation the
        # path sits at the training mean (0), which keeps the rectilinear path causal
        values = torch.where(mask[..., None] | (counts == 0), z * mask[..., None], torch.full_like(z, float("nan")))
        x = torch.cat([scaled, values, counts], -1)
        kind, substeps = self.options["interpolation"], self.options["substeps"]
        if kind == "rectilinear":  # parameterised by sample index: time moves first, then the values jump
            control = torchcde.LinearInterpolation(torchcde.linear_interpolation_coeffs(x, rectilinear=0))
            return control, control.interval, 1.0 / substeps
        step = float((rel[1:] - rel[:-1]).min()) / substeps
        if kind == "cubic":
            return torchcde.CubicSpline(torchcde.natural_cubic_coeffs(x, rel), rel), rel[[0, -1]], step
        return torchcde.LinearInterpolation(torchcde.linear_interpolation_coeffs(x, rel), rel), rel[[0, -1]], step

    def encode_end(self, z: torch.Tensor, t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        control, interval, step = self._control(z, t, mask)
        latent = self.options["latent"]

        def vector_field(tt: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.cde_field(h)).view(h.shape[0], latent, self.channels)

        h0 = self.initial(control.evaluate(interval[0]))
        hT = torchcde.cdeint(control, vector_field, h0, interval, method="rk4", options={"step_size": step})
        return hT[:, -1]

    def forecast(self, z: torch.Tensor, t: torch.Tensor, mask: torch.Tensor, t_out: torch.Tensor, n_samples: int = 1,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
        h = self.encode_end(z, t, mask)
        rel = (t_out - t_out[0]).to(h.dtype)
        if len(rel) > 1:
            step = float((rel[1:] - rel[:-1]).min()) / self.options["substeps"]
            h = torchdiffeq.odeint(lambda tt, y: self.field(y), h, rel, method="rk4",
                                   options={"step_size": step}).transpose(0, 1)
        else:
            h = h[:, None]
        self.last_nfe = 4 * self.options["substeps"] * (len(rel) - 1)
        return self.readout(h).unsqueeze(0).expand(n_samples, -1, -1, -1)

    def loss(self, batch: Batch, horizon: int, objective: str) -> torch.Tensor:
        """Mean squared error of the forecast over the observed samples from the history's end on
        (the curriculum's ``horizon`` counts forecast samples, at least one)."""
        z_h, t_h, m_h = self.split_window(batch)
        c = z_h.shape[1] - 1
        end = min(batch.z.shape[1], max(c + 2, horizon))
        pred = self.forecast(z_h, t_h, m_h, batch.t[0, c:end])[0]
        return masked_mse(pred, batch.z[:, c:end], batch.mask[:, c:end])


class LatentDynamics:
    """The latent SDE in torchsde's interface (diagonal Ito noise): ``f`` the posterior drift, reading
    the encoder's context at the next observation after ``t`` (or the prior drift where there is no
    context), ``g`` the shared diffusion (zero for the noise-free mean path), ``h`` the prior drift."""

    noise_type, sde_type = "diagonal", "ito"

    def __init__(self, learner: "LatentSDE", context: Optional[torch.Tensor] = None,
                 times: Optional[torch.Tensor] = None, noise: bool = True):
        self.learner, self.context, self.times, self.noise = learner, context, times, noise

    def f(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.context is None:
            return self.h(t, y)
        i = torch.searchsorted(self.times, t.reshape(1).to(self.times.dtype), right=True).clamp(max=len(self.times) - 1)
        return self.learner.posterior_drift(torch.cat([y, self.context.index_select(1, i)[:, 0]], -1))

    def g(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        g = torch.nn.functional.softplus(self.learner.diffusion_net(y)) * self.learner.rate.sqrt()
        return g if self.noise else torch.zeros_like(g)

    def h(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.learner.prior_drift(y)


class LatentSDE(HistoryLearner):
    """Options: ``latent`` (dimension of the latent state), ``hidden`` (encoder and network width),
    ``depth``/``activation`` of the drifts and the diffusion, ``context`` (history samples before
    the start), ``substeps`` (Euler-Maruyama steps per sample), ``kl_weight`` (1: the ELBO),
    ``noise`` (the likelihood's observation noise std in standardised units, fixed as in Li et al.'s
    experiments, or ``None`` to learn one per variable), ``dt`` (history step of rollouts; from the data).

    Li, Wong, Chen & Duvenaud 2020, "Scalable Gradients for Stochastic Differential Equations",
    AISTATS (torchsde). The ODE-RNN encoder of ``latent_ode`` runs backwards over the window and
    gives q(z0) and a context at every sample; the posterior SDE (drift from the latent state and
    the context of the next observation, diagonal diffusion shared with the prior) explains the
    window, the prior SDE (its own drift, same diffusion) generates. Trained on the ELBO: Gaussian
    likelihood of the observed samples through a linear decoder, KL of q(z0) to N(0, I) and the
    path KL of posterior to prior (torchsde's ``logqp``). A forecast runs the posterior over the
    history, then the prior from the history's last time; samples are decoded without observation
    noise and their spread around the sample mean is multiplied by the buffer ``spread`` (one
    factor per variable, 1 after training; :func:`calibrate` fits it on validation data, because
    the ELBO tends to shrink the diffusion).
    """

    name = "latent_sde"
    reference = "Li, Wong, Chen & Duvenaud 2020, Scalable Gradients for Stochastic Differential Equations, AISTATS"
    supports = Capabilities(kinds=("sde", "ode"), stochastic=True, irregular=True, objectives=("likelihood",),
                            has_vector_field=False)
    defaults = {"latent": 4, "hidden": 32, "depth": 2, "activation": "softplus", "context": 8, "substeps": 2,
                "kl_weight": 1.0, "noise": None, "objective": "likelihood", "dt": None}

    def __init__(self, dim: int, n_inputs: int = 0, **options: Any):
        super().__init__(dim, n_inputs, **options)
        o = self.options
        check_real(o["kl_weight"], "kl_weight", 0.0)
        if o["noise"] is not None:
            check_real(o["noise"], "noise (observation noise std, standardised units)", MIN_OBSERVATION_STD)
        latent, hidden, depth, activation = o["latent"], o["hidden"], o["depth"], o["activation"]
        self.gru = nn.GRUCell(2 * dim, hidden)
        self.encoder_field = Scaled(mlp(hidden, hidden, hidden, 1, "tanh"), self)
        self.posterior = nn.Linear(hidden, 2 * latent)
        self.posterior_drift = Scaled(mlp(latent + hidden, latent, hidden, depth, activation), self)
        self.prior_drift = Scaled(mlp(latent, latent, hidden, depth, activation), self)
        self.diffusion_net = mlp(latent, latent, hidden, depth, activation)
        self.decoder = nn.Linear(latent, dim)
        fixed = o["noise"] is not None
        self.log_std = nn.Parameter(torch.full((dim,), math.log(o["noise"] if fixed else 0.1)), requires_grad=not fixed)
        self.register_buffer("spread", torch.ones(dim))

    def after_fit(self, model: Any, ds: xr.Dataset) -> None:
        """Calibrate the samples' spread on the validation split (:func:`calibrate`): the ELBO shrinks
        the diffusion (Li et al. 2020), so uncalibrated intervals are too narrow. Without a usable
        validation split the spread stays 1 and a warning says so."""
        if "split" not in ds.coords or "val" not in set(ds["split"].values.tolist()):
            warnings.warn("latent_sde: no validation split to calibrate the samples' spread on; its intervals are "
                          "likely too narrow (split the data, then call workbench.learners.latent.calibrate)",
                          stacklevel=3)
            return
        try:
            calibrate(model, ds)
        except DatasetError as exc:
            warnings.warn(f"latent_sde: the spread was not calibrated ({exc.problem})", stacklevel=3)

    def _encode(self, z: torch.Tensor, t: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Context (B, L, hidden) and the mean and log-variance of q(z0) at ``t[:, 0]``."""
        context = ode_rnn_backwards(self.gru, self.encoder_field, z, t, mask)
        mean, log_var = self.posterior(context[:, 0]).chunk(2, dim=-1)
        return context, mean, log_var.clamp(-12.0, 6.0)

    def solve(self, z0: torch.Tensor, rel: torch.Tensor, dynamics: LatentDynamics, entropy: int,
              logqp: bool = False) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Euler-Maruyama from ``z0`` (B, latent) over relative times ``rel`` (T,): the path (B, T, latent)
        and, with ``logqp``, the path KL (B,). ``entropy`` seeds the Brownian motion."""
        if len(rel) < 2:
            return z0[:, None], (z0.new_zeros(z0.shape[0]) if logqp else None)
        step = float((rel[1:] - rel[:-1]).min()) / self.options["substeps"]
        width = z0.shape[1] + int(logqp)  # logqp integrates the KL as one more (noise-free) coordinate
        bm = torchsde.BrownianInterval(t0=rel[0], t1=rel[-1], size=(z0.shape[0], width), dtype=z0.dtype,
                                       device=z0.device, entropy=entropy)
        out = torchsde.sdeint(dynamics, z0, rel, bm=bm, method="euler", dt=step, logqp=logqp)
        self.last_nfe = self.options["substeps"] * (len(rel) - 1)
        if logqp:
            path, log_ratio = out
            return path.transpose(0, 1), log_ratio.sum(0)
        return out.transpose(0, 1), None

    def loss(self, batch: Batch, horizon: int, objective: str) -> torch.Tensor:
        """Negative ELBO per observed value of the window (Li et al. 2020, eq. 10)."""
        rel = batch.t[0] - batch.t[0, 0]
        context, mean, log_var = self._encode(batch.z, batch.t, batch.mask)
        z0 = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        entropy = int(torch.randint(0, 2 ** 31 - 1, ()))  # the Brownian motion follows torch's seed
        path, path_kl = self.solve(z0, rel, LatentDynamics(self, context, rel), entropy, logqp=True)
        x = self.decoder(path)
        log_std = self.log_std.clamp_min(math.log(MIN_OBSERVATION_STD))
        nll = 0.5 * ((x - batch.z) / log_std.exp()) ** 2 + log_std + 0.5 * math.log(2 * math.pi)
        weight = batch.mask.to(x.dtype)[..., None]
        kl = 0.5 * (mean ** 2 + log_var.exp() - 1 - log_var).sum() + path_kl.sum()
        values = (weight.sum() * self.dim).clamp_min(1.0)
        return ((nll * weight).sum() + self.options["kl_weight"] * kl) / values

    def encode_end(self, z: torch.Tensor, t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The noise-free posterior path from the mean of q(z0) to the history's last time."""
        context, mean, _ = self._encode(z, t, mask)
        rel = t[0] - t[0, 0]
        return self.solve(mean, rel, LatentDynamics(self, context, rel, noise=False), 0)[0][:, -1]

    def forecast(self, z: torch.Tensor, t: torch.Tensor, mask: torch.Tensor, t_out: torch.Tensor, n_samples: int = 1,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
        context, mean, log_var = self._encode(z, t, mask)
        seeds = torch.randint(0, 2 ** 31 - 1, (2,), generator=generator).tolist()
        noise = torch.randn((n_samples, *mean.shape), generator=generator, dtype=mean.dtype).to(mean.device)
        z0 = (mean + noise * (0.5 * log_var).exp()).reshape(-1, mean.shape[-1])
        rel = t[0] - t[0, 0]
        # sample s of history b is row s * B + b, as in z0
        posterior = LatentDynamics(self, context.repeat(n_samples, 1, 1), rel)
        start = self.solve(z0, rel, posterior, seeds[0])[0][:, -1]
        path = self.solve(start, (t_out - t_out[0]).to(start.dtype), LatentDynamics(self), seeds[1])[0]
        self.last_nfe = self.options["substeps"] * (len(rel) + len(t_out) - 2)
        x = self.decoder(path).reshape(n_samples, z.shape[0], len(t_out), self.dim)
        if n_samples > 1:
            centre = x.mean(0, keepdim=True)
            x = centre + self.spread * (x - centre)
        return x


# --- scoring from datasets (histories with gaps, which Model.predict does not take) ----------------

def standardised_history(model: Any, ds: xr.Dataset) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """States (N, T, D) in the learner's standardised units (0 where missing), times (T,) and mask (N, T)."""
    from ..data.schema import observation_mask

    learner = model.learner
    like = learner.scale
    x = torch.as_tensor(ds["state"].values, dtype=like.dtype, device=like.device)
    mask = torch.as_tensor(observation_mask(ds), device=like.device)
    z = torch.nan_to_num((x - learner.offset) / learner.scale)
    t = torch.as_tensor(np.array(ds["time"].values), dtype=like.dtype, device=like.device)
    return z, t, mask


def history_forecast(model: Any, ds: xr.Dataset, n_samples: int = 1, seed: int = 0) -> xr.Dataset:
    """Each trajectory of ``ds`` forecast from its first ``context + 1`` samples (gaps allowed), at the
    dataset's later times: a dataset shaped like ``model.predict(ds, on_divergence="mark")``.

    Raises:
        DatasetError: a history with fewer than two observed samples, or a dataset too short.
    """
    from ..data.schema import make_dataset

    learner = model.learner
    c = int(learner.options["context"])
    if ds.sizes["time"] < c + 2:
        raise DatasetError(f"{model.name} reads {c + 1} history samples and needs one more to predict; the dataset "
                           f"has {ds.sizes['time']}", fix=f"use longer trajectories or a model with context < {c}")
    z, t, mask = standardised_history(model, ds)
    check_histories(mask[:, : c + 1].cpu().numpy())
    samples = int(n_samples) if learner.capabilities().stochastic else 1
    learner.eval()
    with torch.no_grad():
        out = learner.forecast(z[:, : c + 1], t[: c + 1].expand(z.shape[0], -1), mask[:, : c + 1], t[c:], samples,
                               torch.Generator().manual_seed(int(seed)))
    state = (out * learner.scale + learner.offset).double().cpu().numpy()
    lost = np.logical_or.accumulate(~np.isfinite(state).all(axis=3), axis=2)
    times = ds["time"].values[c:]
    pred = make_dataset(np.where(lost[..., None], 0.0, state), times, [str(v) for v in ds["variable"].values],
                        trajectory=ds["trajectory"].values, attrs={"learner": model.name, "context_samples": c})
    pred["state"].data[lost] = np.inf
    pred["diverged_at"] = xr.DataArray(np.where(lost.any(axis=2), times[np.argmax(lost, axis=2)], np.nan),
                                       dims=("sample", "trajectory"))
    return pred



# Fraction of a history's observed samples held out to score interpolation
INTERPOLATION_HOLDOUT = 0.5


def interpolation_error(model: Any, ds: xr.Dataset, seed: int = 0) -> Optional[float]:
    """RMSE (physical units, over variables) at observed history samples held out from the encoder:
    every history keeps its first and last observed samples and half of the rest; the model
    reconstructs the held-out ones. ``None`` for models that do not reconstruct their history."""
    learner = model.learner
    if not isinstance(learner, LatentODE):
        return None
    c = int(learner.options["context"])
    z, t, mask = standardised_history(model, ds)
    z, mask, th = z[:, : c + 1], mask[:, : c + 1], t[: c + 1]
    rng = np.random.default_rng(seed)
    drop = torch.as_tensor(rng.random(tuple(mask.shape)) < INTERPOLATION_HOLDOUT, device=mask.device) & mask
    observed_index = torch.arange(c + 1, device=mask.device).expand_as(mask)
    first = torch.where(mask, observed_index, c + 1).min(1, keepdim=True).values
    last = torch.where(mask, observed_index, -1).max(1, keepdim=True).values
    drop &= (observed_index != first) & (observed_index != last)
    if not bool(drop.any()):
        return None
    learner.eval()
    with torch.no_grad():
        x = learner.reconstruct(z, th.expand(z.shape[0], -1), mask & ~drop)
    error = ((x - z) * learner.scale)[drop]
    return float(error.pow(2).mean().sqrt())


# Candidate spread factors of calibrate (log-spaced; 1 = the samples as the SDE draws them)
SPREAD_GRID = np.exp(np.linspace(math.log(0.25), math.log(8.0), 61))
# Central interval levels whose coverage calibrate matches (the whole distribution, not one interval)
CALIBRATION_LEVELS = np.linspace(0.1, 0.9, 9)


def calibrate(model: Any, ds: xr.Dataset, split: str = "val", n_samples: int = 32, seed: int = 0,
              horizon: Optional[int] = None) -> np.ndarray:
    """Fit a latent SDE's ``spread`` on ``split``: per observed variable, the factor on the samples'
    deviations from their mean whose central intervals at :data:`CALIBRATION_LEVELS` cover the
    held-out truth closest to their levels (least mean absolute miscoverage; a conformal scale,
    against the ELBO's known shrinking of the diffusion, Li et al. 2020). Forecasts of ``horizon``
    samples start from histories every ``horizon`` samples along each trajectory. The factor is a
    buffer of the learner, so it is saved with the model.

    Arguments:
        model: a fitted ``latent_sde`` model.
        ds: data with a ``split`` (the data it was fitted on).
        split: the trajectories to calibrate on (not the test ones).
        n_samples: paths per history (at least 2).
        seed: of the paths.
        horizon: forecast samples after each history, the lead times the factor is fitted for;
            default the forecast part of the training windows (``model.meta["window"]``).

    Returns:
        The fitted factors, one per observed variable (also in ``model.learner.spread``).

    Raises:
        BadParameterError: not a latent SDE, or fewer than two samples.
        DatasetError: ``split`` holds no history of two observations followed by an observed sample.
    """
    from ..data.schema import observation_mask, select_split

    learner = model.learner
    if not isinstance(learner, LatentSDE):
        raise BadParameterError(f"calibrate fits a latent SDE's spread, got learner {model.name!r}",
                                fix="fit with learner='latent_sde'")
    check_integer(n_samples, "n_samples", 2, 100_000)
    held = select_split(ds, split)
    c = int(learner.options["context"])
    if horizon is None:
        horizon = max(1, int(model.meta.get("window", c + 2)) - c - 1)
    check_integer(horizon, "horizon (forecast samples)", 1, 10**9)
    room = held.sizes["time"] - (c + 2)
    learner.spread.fill_(1.0)
    deviations: list[list[np.ndarray]] = [[] for _ in range(learner.dim)]
    for k, shift in enumerate(range(0, max(room, 0) + 1, horizon)):
        part = held.isel(time=slice(shift, shift + c + 1 + horizon))
        keep = np.flatnonzero(observation_mask(part)[:, : c + 1].sum(1) >= 2) if room >= 0 else []
        if not len(keep):
            continue
        part = part.isel(trajectory=keep)
        paths = np.moveaxis(history_forecast(model, part, n_samples, seed + k)["state"].values[:, :, 1:], 0, -1)
        centre = paths.mean(-1)
        target = part["state"].values[:, c + 1:]
        for d in range(learner.dim):
            usable = np.isfinite(target[..., d]) & np.isfinite(paths[..., d, :]).all(-1)
            # the truth's and the samples' deviations from the sample mean: a factor f scales the latter
            deviations[d].append(np.column_stack([(target - centre)[..., d][usable],
                                                  (paths[..., d, :] - centre[..., d, None])[usable]]))
    if not any(len(parts) for parts in deviations):
        raise DatasetError(f"calibrate found no {split!r} history of two observations followed by an observed "
                           "sample", fix="resplit the data (a val split of longer trajectories) or calibrate on "
                                         "another split")
    factors = np.ones(learner.dim)
    for d, parts in enumerate(deviations):
        if not parts:
            continue
        both = np.concatenate(parts)
        truth, members = both[:, :1], both[:, 1:]
        errors = []
        for factor in SPREAD_GRID:
            # the truth's level in the scaled ensemble (ties count half): inside the central interval
            # of level L when |2 pit - 1| <= L
            pit = ((factor * members < truth).mean(1) + 0.5 * (factor * members == truth).mean(1))
            covered = (np.abs(2 * pit - 1)[:, None] <= CALIBRATION_LEVELS).mean(0)
            errors.append(np.abs(covered - CALIBRATION_LEVELS).mean())
        factors[d] = SPREAD_GRID[int(np.argmin(errors))]
    learner.spread.copy_(torch.as_tensor(factors, dtype=learner.spread.dtype))
    return factors


register_learner(LatentODE)
register_learner(NeuralCDE)
register_learner(LatentSDE)

"""Forecast combination: a weighted mean of member learners' point forecasts, per horizon.

The classic strong baseline of the M-competitions is the combination of a few simple forecasters
(M4's "Comb" of simple, Holt and damped exponential smoothing; Makridakis, Spiliotis &
Assimakopoulos, "The M4 Competition", IJF 36, 2020); weights from validation errors follow Bates &
Granger ("The combination of forecasts", Oper. Res. Q. 20, 1969). Options:

* ``members``: ``[{"learner": name, "options": {...}}, ...]``, closed-form learners for a direct
  fit (``learner="auto"`` also assembles fitted members of any kind, see
  :meth:`Combination.assemble`); by default ARIMA, ETS and Theta;
* ``weights``: ``(H, M)`` rows of non-negative weights summing to 1, row ``h`` for the ``h + 1``-th
  step ahead (steps past the last row use it); ``None`` for equal weights.

Every member keeps its own standardisation (its ``offset``/``scale`` buffers), so members fitted
separately on the same data can be combined; a rollout maps the history into each member's units,
rolls each out and weights their paths in the data's units. With a stochastic member the
combination is stochastic: sample ``s`` is the weighted sum of every member's sample ``s`` (a
deterministic member's one path repeated), which for the backbones' quantile-ordered members is
quantile averaging (Lichtendahl, Grushka-Cockayne & Winkler, "Is it better to average
probabilities or quantiles?", Manag. Sci. 59, 2013); its point forecast, their mean, is the
weighted mean of the members' points. ``learner="auto"`` replaces that spread by conformal
intervals (``model.meta["calibration"]``). A direct fit fits
every member on the whole training history (train and validation periods as one series, like the
statistical backbones). Saved as the members' tensors (prefixed ``members.<i>.``) and the options.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import BadParameterError, UnsupportedError
from .base import Capabilities, DataInfo, InputSignal, Learner

MAX_MEMBERS = 16
# the M4-style combination of the three statistical backbones
DEFAULT_MEMBERS = ({"learner": "arima", "options": {}}, {"learner": "ets", "options": {}},
                   {"learner": "theta", "options": {}})
# a weight row may miss 1 by rounding in JSON
WEIGHT_TOLERANCE = 1e-6


class Combination(Learner):
    """A weighted combination of member learners (see the module docstring)."""

    name = "combination"
    whole_series = True
    reference = "Bates & Granger 1969; Makridakis et al. 2020 (M4 Comb)"
    supports = Capabilities(kinds=("ode", "sde"), stochastic=True, irregular=False, training="closed_form",
                            inputs=True, has_vector_field=False, has_equations=False)
    defaults: Mapping[str, Any] = {"members": DEFAULT_MEMBERS, "weights": None}

    def __init__(self, dim: int, n_inputs: int = 0, **options: Any):
        from . import get_learner

        super().__init__(dim, n_inputs, **options)
        members = self.options["members"]
        if not isinstance(members, (list, tuple)) or not 1 <= len(members) <= MAX_MEMBERS or \
                not all(isinstance(m, Mapping) and isinstance(m.get("learner"), str) for m in members):
            raise BadParameterError(f"a combination needs members=[{{'learner': name, 'options': {{...}}}}, ...] "
                                    f"(1 to {MAX_MEMBERS}), got {members!r}",
                                    fix="e.g. members=[{'learner': 'arima'}, {'learner': 'ets'}, {'learner': 'theta'}]")
        classes = [get_learner(m["learner"]) for m in members]
        if any(cls is Combination for cls in classes):
            raise BadParameterError("a combination's member cannot itself be a combination",
                                    fix="list the inner combination's members instead")
        self.members = nn.ModuleList(cls(dim, n_inputs, **dict(m.get("options") or {}))
                                     for cls, m in zip(classes, members))
        self.options["members"] = [{"learner": m["learner"], "options": dict(m.get("options") or {})} for m in members]
        self.options["weights"] = check_weights(self.options["weights"], len(members))

    @classmethod
    def options_from_data(cls, info: DataInfo, options: Mapping[str, Any]) -> dict[str, Any]:
        from . import get_learner

        options = dict(options)
        members = options.get("members", cls.defaults["members"])
        if isinstance(members, (list, tuple)) and all(isinstance(m, Mapping) for m in members):
            options["members"] = [{"learner": m.get("learner"),
                                   "options": get_learner(m.get("learner")).options_from_data(
                                       info, dict(m.get("options") or {}))} for m in members]
        return options

    @classmethod
    def fresh_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` with what the data decided for each member undecided again (a refit on other data)."""
        return {**options, "members": [{"learner": m["learner"], "options": undecided(m["learner"], m.get("options"))}
                                       for m in options.get("members", cls.defaults["members"])]}

    def capabilities(self) -> Capabilities:
        caps = [m.capabilities() for m in self.members]
        return replace(self.supports, context=max(c.context for c in caps), stochastic=any(c.stochastic for c in caps),
                       inputs=all(c.inputs for c in caps), kinds=tuple(k for k in self.supports.kinds
                                                                      if all(k in c.kinds for c in caps)))

    def set_scaling(self, offset: torch.Tensor, scale: torch.Tensor, rate: float = 1.0) -> None:
        super().set_scaling(offset, scale, rate)
        for member in self.members:
            member.set_scaling(offset, scale, rate)

    def fit_closed_form(self, train: Any, val: Optional[Any], times: torch.Tensor) -> dict[str, float]:
        """Fit every member on the same data (each must fit in closed form)."""
        gradient = [m.name for m in self.members if m.capabilities().training != "closed_form"]
        if gradient:
            raise UnsupportedError(f"a combination fits only closed-form members directly; {gradient} train by "
                                   "gradient", fix="use learner='auto', which combines separately fitted members, "
                                                   "or drop them from members")
        for member in self.members:
            member.time_budget = getattr(self, "time_budget", None)
            member.fit_closed_form(train, val, times)
        return {}

    def assemble(self, fitted: Sequence[Learner]) -> "Combination":
        """Take the tensors (and standardisations) of members fitted elsewhere, one per ``members`` entry.

        The combination's own standardisation (the model's, in which its rollout receives
        histories) becomes the first member's; each member keeps the one it was fitted with.
        """
        if len(fitted) != len(self.members):
            raise BadParameterError(f"assemble needs {len(self.members)} fitted members, got {len(fitted)}")
        for own, other in zip(self.members, fitted):
            if type(own) is not type(other):
                raise BadParameterError(f"member {own.name!r} cannot take the tensors of a {other.name!r}")
            own.load_state_dict(other.state_dict())
        Learner.set_scaling(self, fitted[0].offset, fitted[0].scale, float(fitted[0].rate))
        return self

    def rollout(self, z0: torch.Tensor, t: torch.Tensor, n_samples: int = 1,
                generator: Optional[torch.Generator] = None, inputs: Optional[InputSignal] = None,
                context: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``n_samples`` paths (one where every member is deterministic), see the module docstring."""
        history = z0[:, None] if context is None else torch.cat([context, z0[:, None]], 1)
        physical = history * self.scale + self.offset
        weights = torch.as_tensor(np.asarray(self.options["weights"]), dtype=z0.dtype, device=z0.device)
        steps = len(t) - 1
        rows = weights[torch.clamp(torch.arange(steps), max=len(weights) - 1)]             # (steps, M)
        samples = max(1, int(n_samples)) if self.capabilities().stochastic else 1
        total = torch.zeros(samples, z0.shape[0], steps, z0.shape[-1], dtype=z0.dtype, device=z0.device)
        for m, member in enumerate(self.members):
            total = total + rows[None, None, :, m, None] * physical_paths(member, physical, t, samples, generator,
                                                                           inputs)
        start = physical[None, :, -1:].expand(samples, -1, -1, -1)
        return (torch.cat([start, total], 2) - self.offset) / self.scale


def physical_paths(learner: Learner, physical: torch.Tensor, t: torch.Tensor, n_samples: int,
                   generator: Optional[torch.Generator] = None, inputs: Optional[InputSignal] = None) -> torch.Tensor:
    """A learner's paths ``(S, B, len(t) - 1, D)`` after the last of the histories ``physical``
    ``(B, C, D)`` in the data's units, through its own standardisation (its ``offset``/``scale``):
    how a composite learner rolls out a part fitted separately. ``S`` is ``n_samples`` for a
    stochastic learner, else 1."""
    caps = learner.capabilities()
    own = (physical[:, -(caps.context + 1):] - learner.offset) / learner.scale
    path = learner.rollout(own[:, -1].contiguous(), t, n_samples if caps.stochastic else 1, generator=generator,
                           inputs=inputs, context=own[:, :-1].contiguous() if caps.context else None)
    return path[:, :, 1:] * learner.scale + learner.offset


def undecided(learner: str, options: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """``learner``'s fitted ``options`` with what the data decided undecided again, for a fit on other
    data: a map's step ``dt`` (:meth:`Learner.options_from_data`; a calendar axis's median step can
    move with the data), and what its ``fresh_options`` names where it has one (the backbones'
    ``context``, the composites' parts)."""
    from . import get_learner

    cls = get_learner(learner)
    own = {k: v for k, v in (options or {}).items() if not (k == "dt" and "dt" in cls.defaults)}
    fresh = getattr(cls, "fresh_options", None)
    return fresh(own) if fresh else own


def check_weights(weights: Any, members: int) -> list[list[float]]:
    """``weights`` as ``(H, M)`` rows (equal weights for ``None``; a flat list is one row).

    Raises:
        BadParameterError: wrong shape, a negative or non-finite weight, or a row not summing to 1.
    """
    if weights is None:
        return [[1.0 / members] * members]
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        w = np.full(0, np.nan)
    if w.ndim == 1:
        w = w[None]
    if w.ndim != 2 or w.shape[0] < 1 or w.shape[1] != members or not np.isfinite(w).all() or (w < 0).any() or \
            (np.abs(w.sum(1) - 1) > WEIGHT_TOLERANCE).any():
        raise BadParameterError(f"combination weights must be rows of {members} non-negative numbers summing to 1 "
                                f"(one row per horizon), got {weights!r}",
                                fix="normalise them, or give weights=None for equal weights")
    return w.tolist()


__all__ = ["Combination", "check_weights", "physical_paths", "undecided"]

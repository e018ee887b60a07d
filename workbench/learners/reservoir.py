"""Reservoir computing, fitted in closed form by ridge regression: next-generation reservoir
computing (NVAR; Gauthier, Bollt, Griffith & Barbosa, "Next generation reservoir computing",
Nat. Commun. 12, 5564, 2021) and the echo state network (Jaeger 2001; Jaeger & Haas, Science 304,
78, 2004; for chaotic forecasting Pathak, Hunt, Girvan, Lu & Ott, Phys. Rev. Lett. 120, 024102, 2018).

Both are maps on the data's sample grid (step ``dt``) that predict the increment
``z_{n+1} - z_n`` from features of the past; both need past samples before the start state
(their ``context``): NVAR its delays, the ESN a washout that synchronises its reservoir.
"""
from __future__ import annotations

import math
from dataclasses import replace
from itertools import combinations_with_replacement
from typing import Any, Mapping, Optional

import torch

from ..errors import BadParameterError, UnsupportedError
from ..safety import check_integer, check_real
from .base import Capabilities, DataInfo, InputSignal, Learner, step_indices
from .closed_form import (NormalEquations, check_work, complete, largest_within, monomial_count, rows_per_chunk,
                          validation_loss, validation_valid_steps)

# ridge="auto" tries these half-decades and keeps the readout that forecasts the validation data longest
RIDGE_GRID = tuple(10.0 ** (k / 2) for k in range(-24, 3))
# Work ceilings, checked when a learner is built (so also when a saved model is loaded). NVAR: the
# normal equations hold F^2 floats and "auto" solves them once per RIDGE_GRID weight; 2,000
# features fit 10,000 rows in a few seconds (F^2 rows = 4e10 operations). ESN: the spectral radius
# is a dense n x n eigenvalue problem (about 10 n^3 operations: 9 s at n = 1,000 on a loaded
# 2-core machine, 22 s at 2,000) and the readout has 2n features.
NVAR_MAX_FEATURES = 2000
ESN_MAX_SIZE = 1000
# the default washout is at most this fraction of the shortest trajectory, so a time-split
# series' short chunks (16-31 samples) keep samples to fit after the reservoir synchronises
ESN_WASHOUT_FRACTION = 0.5


class ReservoirMap(Learner):
    """Shared parts: options ``dt`` (the map's step, set from the data) and ``ridge`` (a Tikhonov
    weight, or ``"auto"``: see :meth:`solve_readout`); subclasses give :meth:`features` of a history
    window and :meth:`iterate`."""

    supports = Capabilities(kinds=("ode",), irregular=False, objectives=("trajectory",), training="closed_form",
                            has_vector_field=False)
    published_ridge: float  # the paper's weight, used by "auto" when there is no validation data

    def __init__(self, dim: int, n_inputs: int = 0, **options: Any):
        super().__init__(dim, n_inputs, **options)
        check_real(self.options["dt"], f"{self.name}: dt", low=0.0, low_open=True)
        if self.options["ridge"] != "auto":  # zero or inf gives a singular or NaN readout
            check_real(self.options["ridge"], f"{self.name}: ridge (or 'auto')", low=0.0, low_open=True)

    def solve_readout(self, equations: NormalEquations, val, times: torch.Tensor) -> dict[str, float]:
        """Set the readout from the accumulated normal equations and return the fit's scores
        (``train_loss``, ``val_loss``, the ``ridge`` used).

        A number as ``ridge`` is used as is. ``"auto"`` solves for every weight of ``RIDGE_GRID`` and keeps
        the readout whose closed-loop rollouts over the validation trajectories (up to 1,000 samples)
        stay valid longest (:func:`validation_valid_steps`), ties broken by the loss over their first 16 samples
        (regularisation chosen on validation data, as Lukosevicius 2012, "A practical guide to applying
        echo state networks", recommends). Long runs matter: on Lorenz-63 NVAR's 16-sample
        loss is as low at 1e-6 as at the published 2.5e-6, but at 1e-6 the map runs away after 0.7
        Lyapunov times; and the published weight of one system can make the map run away on another
        (NVAR's 2.5e-6 diverges on Rossler within 20 samples). Without validation data it falls back
        to the published weight.
        """
        def fitted(ridge: float) -> float:
            self.readout.copy_(equations.solve(ridge))
            return validation_loss(self, val, times) if val is not None and val.n else float("nan")

        def candidate(ridge: float) -> tuple[float, float]:
            try:
                loss = fitted(ridge)
            except BadParameterError:  # singular at this weight: a larger one will do
                return math.inf, math.inf
            steps = validation_valid_steps(self, val, times)  # NaN: validation runs too short to score
            return -steps if math.isfinite(steps) else 0.0, loss if math.isfinite(loss) else math.inf

        ridge = self.options["ridge"]
        if ridge == "auto" and val is not None and val.n:
            scores = {r: candidate(r) for r in RIDGE_GRID}
            best = min(RIDGE_GRID, key=scores.__getitem__)
            ridge = best if math.isfinite(scores[best][1]) else self.published_ridge  # every weight ran away
        elif ridge == "auto":
            ridge = self.published_ridge
        val_loss = fitted(ridge)
        return {"train_loss": equations.mean_squared_residual(self.readout), "val_loss": val_loss, "ridge": ridge}

    def capabilities(self) -> Capabilities:
        return replace(self.supports, context=self.context)

    @property
    def context(self) -> int:
        raise NotImplementedError

    def rollout(self, z0: torch.Tensor, t: torch.Tensor, n_samples: int = 1,
                generator: Optional[torch.Generator] = None, inputs: Optional[InputSignal] = None,
                context: Optional[torch.Tensor] = None) -> torch.Tensor:
        index = step_indices(t, self.options["dt"], self.name)
        if self.context and (context is None or context.shape[1] < self.context):
            raise UnsupportedError(f"{self.name} needs {self.context} samples of context before the start state; "
                                   "predict from a dataset (its first samples warm the model up)")
        history = z0[:, None] if not self.context else torch.cat([context[:, -self.context:], z0[:, None]], 1)
        path = self.iterate(history, int(index[-1]))
        self.last_nfe = int(index[-1])
        return path[:, index].unsqueeze(0).expand(n_samples, -1, -1, -1)

    def iterate(self, history: torch.Tensor, steps: int) -> torch.Tensor:
        """States ``(B, steps + 1, D)`` from the last sample of ``history (B, context + 1, D)`` on."""
        raise NotImplementedError


class NVAR(ReservoirMap):
    """Next-generation reservoir computing: a nonlinear vector autoregression.

    Features at sample ``n``: a constant, the linear part ``[z_n, z_{n-s}, ..., z_{n-(k-1)s}]`` and
    every monomial of it of degree 2..``degree``; the readout ``W`` maps them to ``z_{n+1} - z_n``.

    Options: ``delays`` (k), ``skip`` (s), ``degree``, ``ridge`` (Tikhonov weight, or ``"auto"``: chosen
    on validation data, falling back to Gauthier et al.'s 2.5e-6 for Lorenz-63), ``dt``.
    """

    name = "nvar"
    reference = "Gauthier et al. 2021, Next generation reservoir computing, Nat. Commun. 12, 5564"
    defaults = {"delays": 2, "skip": 1, "degree": 2, "ridge": "auto", "dt": 1.0}
    published_ridge = 2.5e-6

    def __init__(self, dim: int, n_inputs: int = 0, **options: Any):
        super().__init__(dim, n_inputs, **options)
        o = self.options
        for key in ("delays", "skip", "degree"):
            check_integer(o[key], f"{self.name}: {key}", low=1)
        self._check_features(dim, o["delays"], o["degree"])
        n_linear = o["delays"] * dim
        self.monomials = [torch.tensor(list(combinations_with_replacement(range(n_linear), p)), dtype=torch.long)
                          for p in range(2, o["degree"] + 1)]
        n_features = 1 + n_linear + sum(len(m) for m in self.monomials)
        self.register_buffer("readout", torch.zeros(n_features, dim))

    @staticmethod
    def _check_features(dim: int, delays: int, degree: int) -> None:
        """Refuse ``delays`` and ``degree`` whose feature count is over :data:`NVAR_MAX_FEATURES`."""
        count = monomial_count(delays * dim, degree)
        nbytes = 8 * (count * count + count * degree)  # normal equations, monomial index table
        largest_delays = largest_within(lambda k: monomial_count(k * dim, degree), NVAR_MAX_FEATURES)
        largest_degree = largest_within(lambda d: monomial_count(delays * dim, d), NVAR_MAX_FEATURES)
        check_work("nvar", f"delays={delays}, degree={degree}", "features", count, NVAR_MAX_FEATURES, nbytes,
                   count ** 3 * len(RIDGE_GRID) / 3,
                   f"with {dim} variables use delays <= {largest_delays} at degree={degree}" +
                   (f", or degree <= {largest_degree} at delays={delays}" if largest_degree else
                    f"; no degree fits with delays={delays}"))

    @property
    def context(self) -> int:
        return (self.options["delays"] - 1) * self.options["skip"]

    def features(self, window: torch.Tensor) -> torch.Tensor:
        """Features ``(..., F)`` of history windows ``(..., context + 1, D)`` (oldest first)."""
        taps = window.flip(-2)[..., :: self.options["skip"], :]  # z_n, z_{n-s}, ...
        linear = taps.flatten(-2)
        parts = [torch.ones_like(linear[..., :1]), linear]
        parts += [linear[..., m].prod(-1) for m in self.monomials]
        return torch.cat(parts, dim=-1)

    def fit_closed_form(self, train, val, times: torch.Tensor) -> dict[str, float]:
        """Ridge regression of the increments on the features over every training window."""
        complete(train, self)
        z = train.z.double()
        c = self.context
        if z.shape[1] < c + 2:
            raise UnsupportedError(f"nvar needs trajectories of at least {c + 2} samples; got {z.shape[1]}")
        equations = NormalEquations()
        windows = z.unfold(1, c + 1, 1).transpose(-1, -2)[:, :-1]  # (N, T - c - 1, c + 1, D)
        targets = z[:, c + 1:] - z[:, c:-1]
        rows, flat_targets = windows.reshape(-1, c + 1, self.dim), targets.reshape(-1, self.dim)
        chunk = rows_per_chunk(8.0 * self.readout.shape[0] * self.options["degree"])  # monomials gather degree factors
        for start in range(0, len(rows), chunk):
            equations.add(self.features(rows[start:start + chunk]), flat_targets[start:start + chunk])
        scores = self.solve_readout(equations, val, times)
        # from the rows themselves: the normal equations' sums lose the tiny residuals of exact fits
        residual = torch.cat([self.features(rows[start:start + chunk]) @ self.readout.double()
                              - flat_targets[start:start + chunk] for start in range(0, len(rows), chunk)])
        return {**scores, "train_loss": float((residual ** 2).mean())}

    def iterate(self, history: torch.Tensor, steps: int) -> torch.Tensor:
        readout = self.readout.to(history.dtype)
        window, out = history, [history[:, -1]]
        for _ in range(steps):
            nxt = window[:, -1] + self.features(window) @ readout
            window = torch.cat([window[:, 1:], nxt[:, None]], dim=1)
            out.append(nxt)
        return torch.stack(out, dim=1)


class EchoStateNetwork(ReservoirMap):
    """A leaky echo state network driven by the state, with a ridge readout and closed-loop forecasts.

    ``r_{n+1} = (1 - a) r_n + a tanh(W r_n + W_in z_n + b)`` with a sparse random ``W`` (``degree``
    non-zeros per row on average) scaled to spectral radius ``radius``; the readout maps
    ``[1, z_n, r_{n+1}, r_{n+1}^2]`` to ``z_{n+1} - z_n`` (the squares break the reservoir's odd
    symmetry, Pathak et al. 2018). Fitted on the training trajectories after ``washout`` samples;
    a forecast first drives the reservoir with the ``washout`` samples before its start.

    Options: ``size`` (reservoir units), ``radius``, ``degree``, ``input_scale``, ``bias_scale``,
    ``leak`` (a), ``washout``, ``ridge`` (Tikhonov weight, or ``"auto"``: chosen on validation data,
    falling back to 1e-6), ``seed`` (the random reservoir), ``dt``.
    """

    name = "esn"
    reference = "Jaeger & Haas 2004, Science 304, 78; Pathak et al. 2018, Phys. Rev. Lett. 120, 024102"
    defaults = {"size": 400, "radius": 0.9, "degree": 3, "input_scale": 0.5, "bias_scale": 0.5, "leak": 1.0,
                "washout": 100, "ridge": "auto", "seed": 0, "dt": 1.0}
    published_ridge = 1e-6

    def __init__(self, dim: int, n_inputs: int = 0, **options: Any):
        super().__init__(dim, n_inputs, **options)
        o = self.options
        n = check_integer(o["size"], "esn: size", low=1)
        # building: W, its mask and the eigenvalue workspace (3 n^2 floats, 10 n^3 operations); fitting:
        # normal equations over 2n features, solved once per RIDGE_GRID weight
        check_work("esn", f"size={n}", "reservoir units", n, ESN_MAX_SIZE, 8.0 * (3 * n * n + (2 * n) ** 2),
                   10.0 * n ** 3 + len(RIDGE_GRID) * (2.0 * n) ** 3 / 3,
                   f"use size <= {ESN_MAX_SIZE} (Pathak et al. 2018 used a few thousand units; this ceiling keeps "
                   "a fit within seconds)")
        check_integer(o["washout"], "esn: washout", low=1)
        if not (0 < o["leak"] <= 1 and o["radius"] >= 0 and o["degree"] > 0):
            raise BadParameterError(f"esn: need 0 < leak <= 1, radius >= 0, degree > 0; got {o['leak']}, "
                                    f"{o['radius']}, {o['degree']}")
        gen = torch.Generator().manual_seed(int(o["seed"]))
        weights = (torch.rand(n, n, generator=gen, dtype=torch.float64) * 2 - 1)
        weights *= torch.rand(n, n, generator=gen, dtype=torch.float64) < min(1.0, o["degree"] / n)
        radius = torch.linalg.eigvals(weights).abs().max().real
        weights *= o["radius"] / radius if radius > 0 else 0.0
        self.register_buffer("weights", weights.float())
        self.register_buffer("input_weights",
                             ((torch.rand(n, dim, generator=gen, dtype=torch.float64) * 2 - 1) * o["input_scale"]).float())
        self.register_buffer("bias", ((torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1) * o["bias_scale"]).float())
        self.register_buffer("readout", torch.zeros(1 + dim + 2 * n, dim))

    @classmethod
    def options_from_data(cls, info: DataInfo, options: Mapping[str, Any]) -> dict[str, Any]:
        """As :meth:`Learner.options_from_data`, and unless given, ``washout`` follows the data: the default
        100 samples, or :data:`ESN_WASHOUT_FRACTION` of shorter trajectories (at least 1), so the chunks
        of a time-split series (16-31 samples) keep samples to fit and to validate on."""
        options = super().options_from_data(info, options)
        if info.length:
            fraction = int(ESN_WASHOUT_FRACTION * info.length)
            options.setdefault("washout", max(1, min(cls.defaults["washout"], fraction)))
        return options

    @property
    def context(self) -> int:
        return self.options["washout"]

    def update(self, r: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """One reservoir step driven by the state ``z``."""
        a = self.options["leak"]
        drive = r @ self.weights.to(r.dtype).T + z @ self.input_weights.to(r.dtype).T + self.bias.to(r.dtype)
        return (1 - a) * r + a * torch.tanh(drive)

    @staticmethod
    def features(z: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.ones_like(z[..., :1]), z, r, r * r], dim=-1)

    def _drive(self, z: torch.Tensor, r: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Reservoir states after each input sample: ``(B, T, N)`` for inputs ``z (B, T, D)``,
        starting from ``r`` (zeros by default)."""
        if r is None:
            r = torch.zeros(z.shape[0], self.options["size"], dtype=z.dtype, device=z.device)
        states = []
        for k in range(z.shape[1]):
            r = self.update(r, z[:, k])
            states.append(r)
        return torch.stack(states, dim=1)

    def fit_closed_form(self, train, val, times: torch.Tensor) -> dict[str, float]:
        """Drive the reservoir with each training trajectory and regress the increments on the features."""
        complete(train, self)
        z = train.z.double()
        w = self.options["washout"]
        if z.shape[1] < w + 2:
            raise UnsupportedError(f"esn needs trajectories longer than its washout ({w} samples) plus 2; got "
                                   f"{z.shape[1]}; lower washout=")
        equations = NormalEquations()
        # time steps per accumulation, all trajectories at once (features and reservoir states per row)
        chunk = rows_per_chunk(8.0 * z.shape[0] * (self.readout.shape[0] + self.options["size"]))
        with torch.no_grad():
            r = self._drive(z[:, :w])[:, -1]
            for start in range(w, z.shape[1] - 1, chunk):
                stop = min(start + chunk, z.shape[1] - 1)
                states = self._drive(z[:, start:stop], r)  # r_{n+1} after consuming z_n
                r = states[:, -1]
                x = self.features(z[:, start:stop], states).reshape(-1, self.readout.shape[0])
                y = (z[:, start + 1:stop + 1] - z[:, start:stop]).reshape(-1, self.dim)
                equations.add(x, y)
            return self.solve_readout(equations, val, times)

    def iterate(self, history: torch.Tensor, steps: int) -> torch.Tensor:
        r = self._drive(history[:, :-1])[:, -1]
        z, out = history[:, -1], [history[:, -1]]
        readout = self.readout.to(z.dtype)
        for _ in range(steps):
            r = self.update(r, z)
            z = z + self.features(z, r) @ readout
            out.append(z)
        return torch.stack(out, dim=1)

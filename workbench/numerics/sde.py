"""The adapters between workbench SDEs and torchsde: the problem (drift and diffusion) and a
Brownian motion for fixed steps."""
from __future__ import annotations

import math
from typing import Callable, Union

import numpy as np
import torch
import torchsde
from torch import nn

TimeField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# standard normals drawn at a time: 2 MiB of float64, cache-sized, whatever the batch
BLOCK_NORMALS = 2**18


class TorchsdeProblem(nn.Module):
    """An Ito SDE ``dy = f(t, y) dt + g(t, y) dW`` in the form ``torchsde.sdeint`` expects.

    Arguments:
        drift: ``f(t, y)`` with ``y`` of shape (batch, dim).
        diffusion: ``g(t, y)``: (batch, dim) for diagonal, additive and scalar noise (the
            additive case is one independent Brownian motion per state), (batch, dim, m) for
            general noise.
        noise_type: ``"diagonal"``, ``"additive"``, ``"scalar"`` or ``"general"``.
    """

    sde_type = "ito"

    def __init__(self, drift: TimeField, diffusion: TimeField, noise_type: str):
        super().__init__()
        self.drift, self.diffusion, self.noise_type = drift, diffusion, noise_type

    def f(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.drift(t, y)

    def g(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The diffusion matrix in torchsde's shape for the noise type (its shape checks and Milstein's
        derivative terms call this; the steps themselves use :meth:`g_prod`)."""
        g = self.diffusion(t, y)
        if self.noise_type == "additive":
            return torch.diag_embed(g)
        if self.noise_type == "scalar":
            return g.unsqueeze(-1)
        return g

    def g_prod(self, t: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``g(t, y) v`` for a Brownian increment ``v`` of shape (batch, m): shape (batch, dim).

        torchsde's own product for additive and scalar noise multiplies the (batch, dim, m) matrix
        of :meth:`g` with ``v``; here additive noise is diagonal (m = dim) and scalar noise one
        column (m = 1), so an elementwise product gives the same numbers without building the
        matrix. Telling torchsde the noise is additive (rather than diagonal) still matters: it
        selects Milstein without derivative terms and the additive-noise SRK tableau.
        """
        g = self.diffusion(t, y)
        if self.noise_type == "general":
            return torch.bmm(g, v.unsqueeze(-1)).squeeze(-1)
        return g * v


class BrownianIncrements(torchsde.BaseBrownian):
    """A Brownian motion for a fixed-step solve, sampled one step at a time in order.

    A fixed-step solver asks for ``W(t1) - W(t0)``, then ``W(t2) - W(t1)``, and so on. Each answer
    is ``sqrt(tb - ta)`` times a fresh standard normal: exactly the law of Brownian motion on the
    solver's grid. With ``space_time`` each step also gets its space-time Lévy area
    ``H ~ N(0, (tb - ta) / 12)``, independent of the increment, returned as torchsde's
    ``U = (tb - ta) (W / 2 + H)`` (what its SRK needs). ``torchsde.BrownianInterval`` gives the same
    law but keeps a tree of splits so it can answer queries in any order (adaptive steps, adjoints,
    refinement), which costs about two normals and a tree walk per step; here a step costs a slice
    of a pre-drawn block. Normals come from numpy's generator, so a seed gives the same path on
    every device.

    Arguments:
        t0: start time, where queries begin.
        size: ``(batch, noise_channels)``.
        dtype, device: of the returned increments.
        seed: seeds numpy's generator for the normals (an int or a ``numpy.random.SeedSequence``).
        space_time: also sample the space-time Lévy area (``return_U=True`` queries).

    Raises:
        RuntimeError: a query that does not start where the previous one ended, or one asking
        for the full Lévy area (``return_A``): those need ``torchsde.BrownianInterval``.

    Reference: torchsde ``_brownian/brownian_interval.py`` (``_H_to_U``); Foster, Lyons &
    Oberhauser (2020), An optimal polynomial approximation of Brownian motion, SIAM J. Numer.
    Anal. 58(3):1393-1421 (space-time Lévy area).
    """

    __slots__ = ("_block", "_device", "_draws", "_dtype", "_rng", "_size", "_t", "_used")

    def __init__(self, t0: float, size: tuple[int, int], dtype: torch.dtype, device: Union[str, torch.device],
                 seed: Union[int, np.random.SeedSequence], space_time: bool = False):
        self._t, self._size, self._dtype, self._device = float(t0), tuple(size), dtype, torch.device(device)
        self._draws = 2 if space_time else 1  # normals per channel and step: the increment, then H
        self._rng = np.random.default_rng(seed)
        self._block, self._used = torch.empty(0), 0

    def __call__(self, ta, tb=None, return_U=False, return_A=False):
        if tb is None or float(ta) != self._t or float(tb) < self._t or return_A:
            raise RuntimeError(f"BrownianIncrements answers increments in order from t={self._t} without Lévy "
                               f"area; got ta={ta}, tb={tb}, return_A={return_A}: use torchsde.BrownianInterval")
        if return_U and self._draws == 1:
            raise RuntimeError("this BrownianIncrements was made without space_time, so it has no Lévy area U")
        ta, tb = self._t, float(tb)
        self._t = tb
        draws = self._next_normals()
        w = draws[0] * math.sqrt(tb - ta)
        if not return_U:
            return w
        return w, (tb - ta) * (0.5 * w + draws[1] * math.sqrt((tb - ta) / 12))

    def _next_normals(self) -> torch.Tensor:
        """The next step's standard normals: (1 or 2, batch, channels), slicing a block drawn ahead."""
        if self._used == len(self._block):
            steps = max(1, BLOCK_NORMALS // (self._draws * math.prod(self._size)))
            draws = self._rng.standard_normal((steps, self._draws, *self._size))
            self._block, self._used = torch.from_numpy(draws).to(self._device, self._dtype), 0
        self._used += 1
        return self._block[self._used - 1]

    def __repr__(self) -> str:
        return f"BrownianIncrements(t={self._t}, size={self._size}, space_time={self._draws == 2})"

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def shape(self) -> tuple[int, int]:
        return self._size

    @property
    def levy_area_approximation(self) -> str:
        return "space-time" if self._draws == 2 else "none"

"""From a dataset to training tensors: standardisation, splits, and windows (multiple shooting)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
import xarray as xr

from ..data.schema import json_attr, observation_mask, select_split, validate
from ..data.time import is_regular, median_step
from ..errors import DatasetError
from ..learners.base import Batch, DataInfo


@dataclass
class Standardiser:
    """z = (x - mean) / std per variable, fitted on observed training samples."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, states: np.ndarray, mask: np.ndarray) -> "Standardiser":
        observed = states[mask]
        std = observed.std(0)
        floor = max(float(np.abs(observed).max()), 1.0) * 1e-6
        return cls(mean=observed.mean(0), std=np.where(std > floor, std, 1.0))

    def to_z(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std

    def to_json(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_json(cls, data: dict[str, Any], size: int, what: str) -> "Standardiser":
        """Rebuild from :meth:`to_json` output, checking ``size`` entries of finite, positive scales."""
        mean = np.asarray(data["mean"], dtype=float)
        std = np.asarray(data["std"], dtype=float)
        if mean.shape != (size,) or std.shape != (size,) or not np.isfinite(mean).all() \
                or not (np.isfinite(std) & (std > 0)).all():
            raise DatasetError(f"the {what} standardisation must hold {size} finite means and positive scales")
        return cls(mean=mean, std=std)


@dataclass
class Split:
    """Standardised tensors of one split: states ``z`` (N, T, D), ``mask`` (N, T) bool, optional
    true derivatives ``dz`` (N, T, D) and inputs ``u`` (N, T, U)."""

    z: torch.Tensor
    mask: torch.Tensor
    dz: Optional[torch.Tensor] = None
    u: Optional[torch.Tensor] = None

    @property
    def n(self) -> int:
        return self.z.shape[0]


@dataclass
class Prepared:
    """A dataset made ready for training: standardisers, split tensors, the time axis and the
    training split's :func:`characteristic_rate`."""

    scaler: Standardiser
    input_scaler: Optional[Standardiser]
    train: Split
    val: Optional[Split]
    times: torch.Tensor
    rate: float


# Samples spanned by the differences that measure a dataset's rate of change: white measurement noise
# adds sqrt(2) sigma / (lag dt) to a difference quotient, a quarter of what one-sample differences
# suffer, while 4 samples stay short of the periods of data sampled finely enough to learn from.
RATE_LAG = 4


def characteristic_rate(split: Split, times: torch.Tensor, lag: int = RATE_LAG) -> float:
    """How fast the standardised state changes, per unit of time: the root mean square over
    observed sample pairs ``lag`` apart (fewer on short series) and over variables of
    ``(z[i + lag] - z[i]) / (t[i + lag] - t[i])``; 1.0 where there is no such pair.

    Continuous-time learners multiply their network's output by it, so the network works in units
    of the data's own time scale whatever the unit of the time axis (seconds or days), and its
    outputs start at the size of the field it must learn (Lorenz-63 at dt = 0.01: rate 7.2).
    """
    k = min(lag, len(times) - 1)
    if k < 1:
        return 1.0
    z, mask, t = split.z.double(), split.mask, times.double()
    quotients = (z[:, k:] - z[:, :-k]) / (t[k:] - t[:-k])[None, :, None]
    both = mask[:, k:] & mask[:, :-k]
    if not bool(both.any()):
        return 1.0
    rate = float(quotients.pow(2).mean(-1)[both].mean().sqrt())
    return rate if math.isfinite(rate) and rate > 0 else 1.0


def input_names(ds: xr.Dataset) -> list[str]:
    """Names of the dataset's exogenous inputs (empty when it has none)."""
    return [str(v) for v in ds["input_variable"].values] if "input" in ds else []


def data_info(ds: xr.Dataset, q: Optional[list[str]] = None, p: Optional[list[str]] = None) -> DataInfo:
    """Kind, dimension, sampling regularity (:func:`workbench.data.time.is_regular`, every sample
    observed), median step, canonical split and inputs of a dataset."""
    ds = validate(ds)  # learners are chosen from these facts: refuse malformed data before that
    t = ds["time"].values
    names = [str(v) for v in ds["variable"].values]
    facts = json_attr(ds, "facts", {}) or {}
    q = q or facts.get("q")
    p = p or facts.get("p")
    qp = None
    if q and p:
        missing = [v for v in [*q, *p] if v not in names]
        if missing:
            raise DatasetError(f"canonical coordinates {missing} are not variables of this dataset ({names})")
        qp = ([names.index(v) for v in q], [names.index(v) for v in p])
    kind = str(ds.attrs.get("kind", "ode"))
    # measured data ("observed", see workbench.data.imports) has no known system: every learner may try it,
    # deterministic ones as an ODE's (nsde accepts both kinds)
    return DataInfo(kind="ode" if kind == "observed" else kind, dim=len(names),
                    regular=bool(is_regular(t) and observation_mask(ds).all()),
                    dt=median_step(t),
                    has_derivative="derivative" in ds, qp_split=qp, names=names, inputs=input_names(ds),
                    length=int(ds.sizes["time"]), system=ds.attrs.get("system") or None)


def prepare(ds: xr.Dataset, device: torch.device, dtype: torch.dtype = torch.float32) -> Prepared:
    """Standardisers fitted on the training split, train and validation tensors, and times.

    Without a ``split`` coordinate every trajectory trains and nothing validates.
    """
    ds = validate(ds)
    if "sample" in ds["state"].dims:
        raise DatasetError("this dataset holds predictions (it has a 'sample' dim); fit on observed or simulated data")
    has_split = "split" in ds.coords
    train = select_split(ds, "train") if has_split else ds
    if train.sizes["trajectory"] == 0:
        raise DatasetError("the dataset has no training trajectories (split == 'train'); resplit it")
    val = select_split(ds, "val") if has_split else None
    if val is not None and val.sizes["trajectory"] == 0:
        val = None
    mask = observation_mask(train)
    scaler = Standardiser.fit(train["state"].values, mask)
    input_scaler = Standardiser.fit(train["input"].values, np.ones_like(mask)) if "input" in ds else None
    as_t = lambda a: torch.tensor(a, dtype=dtype, device=device)  # noqa: E731

    def tensors(part: xr.Dataset) -> Split:
        z = np.nan_to_num(scaler.to_z(part["state"].values))
        dz = part["derivative"].values / scaler.std if "derivative" in part else None
        u = input_scaler.to_z(part["input"].values) if input_scaler is not None else None
        return Split(z=as_t(z), mask=torch.tensor(observation_mask(part), device=device),
                     dz=None if dz is None else as_t(np.nan_to_num(dz)), u=None if u is None else as_t(u))

    times = torch.tensor(ds["time"].values, dtype=dtype, device=device)
    # large time values leave float32 no digits for the steps (1e12 + 0.1 == 1e12): refuse, not train on dt = 0
    if len(times) > 1 and not np.allclose(torch.diff(times).double().cpu().numpy(), np.diff(ds["time"].values),
                                          rtol=0.1, atol=0.0):
        raise DatasetError(f"the time values (up to {float(np.abs(ds['time'].values).max()):.3g}) are too large for "
                           f"their spacing in {dtype}; subtract the start time, e.g. "
                           "ds.assign_coords(time=ds.time - ds.time[0]), or fit with precision='float64'")
    train_split = tensors(train)
    return Prepared(scaler, input_scaler, train_split, None if val is None else tensors(val), times,
                    characteristic_rate(train_split, times))


def evenly_spaced(times: torch.Tensor) -> bool:
    """Whether ``times`` (T,) are evenly spaced up to the rounding of their dtype, so that windows
    from different starts share one relative time vector (one batched solve). Not a test of regular
    sampling (that is :func:`workbench.data.time.is_regular`, where months are regular): a solve on
    shared times is exact only when the steps are equal.

    Each time is rounded to half a unit in the last place of the largest one, so a step may be off
    by up to one such unit: in float32, samples every 0.01 up to t = 10 have steps differing by
    ~1e-6, 1e-4 of the step. A purely relative test read that grid as irregular, which made every
    training batch share one window start (at most one distinct window per trajectory in a batch);
    the slack of a few units keeps such grids uniform.
    """
    steps = (times[1:] - times[:-1]).double()
    if steps.numel() == 0:
        return True
    rounding = 4 * torch.finfo(times.dtype).eps * float(times.abs().max())
    return bool(torch.allclose(steps, steps[0].expand_as(steps), rtol=1e-5, atol=rounding))


# Validation windows per run (but at least one per trajectory): enough to estimate the loss, few
# enough to score every epoch (512 windows forward only cost about a tenth of the default epoch, 25
# steps of 64 windows forward and backward; most validation sets tile into far fewer).
EVALUATION_WINDOWS, EVALUATION_BATCH, IRREGULAR_STARTS = 512, 512, 32


class WindowSampler:
    """Random windows of ``length`` consecutive samples, the multiple-shooting minibatches.

    On a uniform time grid windows start anywhere; on a non-uniform grid all windows of a batch
    share their start so they share relative times (one batched solve).
    """

    def __init__(self, split: Split, times: torch.Tensor, length: int, generator: torch.Generator):
        self.split, self.times, self.gen = split, times, generator
        self.uniform = evenly_spaced(times)

        self.length = max(2, min(length, len(times)))
        self.n_start = len(times) - self.length + 1
        # a window must start at an observed sample: its first state seeds the rollout
        self.starts = split.mask[:, : self.n_start].nonzero().cpu()
        if len(self.starts) == 0:
            raise DatasetError("no trajectory has an observed sample early enough to start a training window; "
                               "use a shorter window or data with fewer missing samples")

    def _gather(self, traj: torch.Tensor, start: torch.Tensor) -> Batch:
        device = self.split.z.device
        traj, start = traj.to(device), start.to(device)
        index = start[:, None] + torch.arange(self.length, device=device)
        s = self.split
        rows = traj[:, None]
        return Batch(z=s.z[rows, index], t=self.times[index], mask=s.mask[rows, index],
                     dz=None if s.dz is None else s.dz[rows, index], u=None if s.u is None else s.u[rows, index])

    def sample(self, batch_size: int) -> Batch:
        if self.uniform:
            pick = torch.randint(0, len(self.starts), (batch_size,), generator=self.gen)
            traj, start = self.starts[pick].unbind(-1)
        else:
            row = self.starts[torch.randint(0, len(self.starts), (1,), generator=self.gen)][0]
            observed = self.split.mask[:, int(row[1])].nonzero().squeeze(-1).cpu()
            traj = observed[torch.randint(0, len(observed), (batch_size,), generator=self.gen)]
            start = row[1].expand(batch_size)
        return self._gather(traj, start)

    def fixed(self, max_windows: int = EVALUATION_WINDOWS) -> list[Batch]:
        """Deterministic evaluation windows on every trajectory, near :func:`evaluation_starts`: each
        sample weighs about as much as it does in the random training windows, so the validation loss
        estimates the loss being minimised. Each start moves to the trajectory's nearest observed
        sample, so a trajectory observed only between the starts is scored too, and repeats are
        dropped. On a uniform grid the windows form batches of at most ``EVALUATION_BATCH``; on a
        non-uniform grid windows that share a start form a batch (their relative times agree: one
        solve each), from at most ``IRREGULAR_STARTS`` starts per trajectory."""
        observed = self.split.mask[:, : self.n_start].cpu()
        per_trajectory = max_windows // observed.shape[0] if self.uniform else IRREGULAR_STARTS
        position = torch.arange(self.n_start, dtype=torch.float64)
        scored = observed.any(1).nonzero().squeeze(-1)
        pairs = []
        for s in evaluation_starts(self.n_start, self.length, per_trajectory):
            distance = torch.where(observed[scored], (position - s).abs(), math.inf)
            pairs.append(torch.stack([scored, distance.argmin(1)], -1))
        traj, start = torch.cat(pairs).unique(dim=0).unbind(-1)
        if self.uniform:
            return [self._gather(traj[i:i + EVALUATION_BATCH], start[i:i + EVALUATION_BATCH])
                    for i in range(0, len(traj), EVALUATION_BATCH)]
        return [self._gather(traj[start == s], start[start == s]) for s in start.unique()]


def evaluation_starts(n_start: int, length: int, per_trajectory: int) -> list[int]:
    """Window starts that tile a trajectory (``length - 1`` apart, the last one flush with its end);
    where there are more than ``per_trajectory`` (at least 1) tiles, the centres of that many equal
    strata of the starts instead.

    Why tiles or strata: a few evenly spaced starts that include both ends over-weight them. With
    four per trajectory on Lorenz-63 started off the attractor, the first window (the transient:
    0.1% of the training windows) made a quarter of the validation loss and held it 100x above the
    loss on the attractor, so early stopping and the best-epoch choice tracked the transient.
    """
    tiles = list(range(0, n_start, max(1, length - 1)))
    if tiles[-1] != n_start - 1:
        tiles.append(n_start - 1)
    keep = max(1, per_trajectory)
    if len(tiles) <= keep:
        return tiles
    return sorted(set(((np.arange(keep) + 0.5) * n_start / keep).astype(int).tolist()))

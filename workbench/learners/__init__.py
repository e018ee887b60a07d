"""Learner registry: one module per family, registered by name."""
from __future__ import annotations

import warnings
from difflib import get_close_matches
from typing import Any, Optional

import xarray as xr

from ..errors import UnknownNameError, UnsupportedError, WorkbenchError
from .anode import AugmentedNODE
from .base import Batch, Capabilities, DataInfo, InputSignal, Learner, refusal
from .discrete import LinearMultistepMap, ResNetMap, RungeKuttaMap
from .ensemble import Ensemble
from .hnn import HamiltonianNN
from .node import NeuralODE
from .nsde import NeuralSDE
from .reservoir import NVAR, EchoStateNetwork
from .sindy import SINDy
from .sonode import SecondOrderNODE

LEARNERS: dict[str, type[Learner]] = {
    cls.name: cls for cls in (NeuralODE, AugmentedNODE, SecondOrderNODE, HamiltonianNN, ResNetMap,
                              RungeKuttaMap, LinearMultistepMap, NeuralSDE, Ensemble, SINDy, NVAR, EchoStateNetwork)
}


def get_learner(name: str) -> type[Learner]:
    """The learner class registered as ``name``."""
    try:
        return LEARNERS[name]
    except (KeyError, TypeError):
        close = get_close_matches(str(name), list(LEARNERS), n=2)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise UnknownNameError(f"unknown learner {name!r}; {hint}available: {', '.join(sorted(LEARNERS))}") from None


def learners() -> list[str]:
    """Names of all registered learners."""
    return sorted(LEARNERS)


def build(name: str, info: DataInfo, options: Optional[dict[str, Any]] = None) -> Learner:
    """Construct learner ``name`` for data described by ``info`` and refuse data it cannot fit.

    Raises:
        UnknownNameError, BadParameterError: unknown learner or options.
        UnsupportedError: the learner's declared capabilities do not cover the data.
    """
    cls = get_learner(name)
    module = cls(info.dim, len(info.inputs), **cls.options_from_data(info, options or {}))
    reason = refusal(module.capabilities(), info, name)
    if reason:
        raise UnsupportedError(reason)
    return module


def compatibility(ds: xr.Dataset, q: Optional[list[str]] = None, p: Optional[list[str]] = None,
                  **options: Any) -> dict[str, Optional[str]]:
    """Each learner's verdict on a dataset: None when ``fit`` can fit it, else the reason and the fix.

    The verdict comes from :func:`workbench.training.fit.plan_fit`, the check ``fit`` itself runs
    (after preparing a measured series), so the two never disagree. The app and ``workbench
    learners`` read this.

    Arguments:
        ds: the dataset.
        q, p: canonical coordinate names (HNN).
        options: options every learner would get (series options such as ``fill_gaps=True``).

    Returns:
        Learner name -> None, or the error message ``fit`` would raise before training.
    """
    from ..training.fit import plan_fit  # the fit loop imports this package: import it lazily

    verdicts: dict[str, Optional[str]] = {}
    for name in learners():
        try:
            with warnings.catch_warnings():  # advice for a fit (e.g. "a 1-D ODE cannot oscillate"), not a verdict
                warnings.simplefilter("ignore")
                plan_fit(ds, name, dict(options), q, p)
            verdicts[name] = None
        except WorkbenchError as exc:
            verdicts[name] = str(exc)
    return verdicts


__all__ = ["Batch", "Capabilities", "DataInfo", "InputSignal", "LEARNERS", "Learner", "build", "compatibility",
           "get_learner", "learners"]

"""Learner registry: one module per family, registered by name."""
from __future__ import annotations

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
                  ) -> dict[str, Optional[str]]:
    """Each learner's verdict on a dataset: None when it can fit it with its defaults, else the
    reason and the fix (what ``fit`` would say). The app and ``workbench learners`` read this."""
    from ..windows import data_info

    info = data_info(ds, q, p)
    verdicts: dict[str, Optional[str]] = {}
    for name in learners():
        try:
            build(name, info)
            verdicts[name] = None
        except WorkbenchError as exc:
            verdicts[name] = str(exc)
    return verdicts


__all__ = ["Batch", "Capabilities", "DataInfo", "InputSignal", "LEARNERS", "Learner", "build", "compatibility",
           "get_learner", "learners"]

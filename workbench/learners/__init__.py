"""Learner registry: one module per family, registered by name."""
from __future__ import annotations

from difflib import get_close_matches

from ..errors import UnknownNameError
from .anode import AugmentedNODE
from .base import Batch, DataInfo, Learner, Supports
from .discrete import LinearMultistepMap, ResNetMap, RungeKuttaMap
from .ensemble import Ensemble
from .hnn import HamiltonianNN
from .node import NeuralODE
from .nsde import NeuralSDE
from .sonode import SecondOrderNODE

LEARNERS: dict[str, type[Learner]] = {
    cls.name: cls for cls in (NeuralODE, AugmentedNODE, SecondOrderNODE, HamiltonianNN, ResNetMap,
                              RungeKuttaMap, LinearMultistepMap, NeuralSDE, Ensemble)
}


def get_learner(name: str) -> type[Learner]:
    """The learner class registered as ``name``."""
    try:
        return LEARNERS[name]
    except KeyError:
        close = get_close_matches(str(name), list(LEARNERS), n=2)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise UnknownNameError(f"unknown learner {name!r}; {hint}available: {', '.join(sorted(LEARNERS))}") from None


def learners() -> list[str]:
    """Names of all registered learners."""
    return sorted(LEARNERS)


__all__ = ["Batch", "DataInfo", "LEARNERS", "Learner", "Supports", "get_learner", "learners"]

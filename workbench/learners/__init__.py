"""Learner registry: one module per family, registered by name."""
from __future__ import annotations

import warnings
from dataclasses import replace
from difflib import get_close_matches
from typing import Any, Optional

import xarray as xr

from ..errors import BadParameterError, UnknownNameError, UnsupportedError, WorkbenchError
from .anode import AugmentedNODE
from .base import TRAINING_STYLES, Batch, Capabilities, DataInfo, InputSignal, Learner, refusal
from .combination import Combination
from .discrete import LinearMultistepMap, ResNetMap, RungeKuttaMap
from .ensemble import Ensemble
from .hnn import HamiltonianNN
from .hybrid import Hybrid
from .mechanistic import Mechanistic
from .node import NeuralODE
from .nsde import NeuralSDE
from .reservoir import NVAR, EchoStateNetwork
from .sindy import SINDy
from .sonode import SecondOrderNODE
from .statistical import STATISTICAL_LEARNERS
from .ude import UniversalDE

LEARNERS: dict[str, type[Learner]] = {
    cls.name: cls for cls in (NeuralODE, AugmentedNODE, SecondOrderNODE, HamiltonianNN, ResNetMap,
                              RungeKuttaMap, LinearMultistepMap, NeuralSDE, Ensemble, SINDy, NVAR, EchoStateNetwork,
                              Mechanistic, *STATISTICAL_LEARNERS, UniversalDE, Combination, Hybrid)
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


def register_learner(cls: type[Learner], *, overwrite: bool = False) -> type[Learner]:
    """Make a learner class usable by name in ``fit``, ``evaluate``, the CLI and the app.

    Arguments:
        cls: a :class:`Learner` subclass with a snake_case ``name``, a :class:`Capabilities` in
            ``supports`` and, for its training style, ``loss`` (gradient) or ``fit_closed_form``
            (closed form), plus ``rollout``.
        overwrite: replace a learner registered under the same name.

    Returns:
        ``cls``, so the call can decorate a class.

    Raises:
        BadParameterError: not a learner class, a malformed name or declaration, or a taken name.
    """
    if not (isinstance(cls, type) and issubclass(cls, Learner)):
        raise BadParameterError(f"register_learner takes a Learner subclass, got {cls!r}",
                                fix="subclass workbench.learners.Learner")
    name = cls.name
    if not isinstance(name, str) or not name or not name.replace("_", "a").isalnum() or name != name.lower():
        raise BadParameterError(f"learner name {name!r} is not snake_case", fix="set name = 'my_learner' on the class")
    if not isinstance(cls.supports, Capabilities) or cls.supports.training not in TRAINING_STYLES:
        raise BadParameterError(f"learner {name!r} must declare supports = Capabilities(training=one of "
                                f"{TRAINING_STYLES})", fix="declare what it can fit with Capabilities(...)")
    needed = ("rollout", "loss" if cls.supports.training == "gradient" else "fit_closed_form")
    missing = [m for m in needed if getattr(cls, m) is getattr(Learner, m)]
    if missing:
        raise BadParameterError(f"learner {name!r} does not implement {missing}",
                                fix="implement them (see workbench.learners.Learner)")
    if name in LEARNERS and LEARNERS[name] is not cls and not overwrite:
        raise BadParameterError(f"a learner named {name!r} is already registered",
                                fix="pick another name or pass overwrite=True")
    # what the class implements, not what it forgot to declare: a missing drift is no vector field
    cls.supports = replace(cls.supports, has_vector_field=cls.supports.has_vector_field and cls.drift is not Learner.drift,
                           has_equations=cls.supports.has_equations and cls.equations is not Learner.equations)
    LEARNERS[name] = cls
    return cls


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
                  series: Any = None, **options: Any) -> dict[str, Optional[str]]:
    """Each learner's verdict on a dataset: None when ``fit`` can fit it, else the reason and the fix.

    The verdict comes from :func:`workbench.training.fitting.plan_fit`, the check ``fit`` itself runs
    (after preparing a measured series), so the two never disagree. The app and ``workbench
    learners`` read this.

    Arguments:
        ds: the dataset.
        q, p: canonical coordinate names (HNN).
        series: the :class:`~workbench.data.series.SeriesRecipe` every fit would use, if any.
        options: options every learner would get (recipe fields as keywords, such as
            ``fill_gaps=True``, when ``series`` is not given).

    Returns:
        Learner name -> None, or the error message ``fit`` would raise before training.
    """
    from ..training.fitting import plan_fit  # the fit loop imports this package: import it lazily

    verdicts: dict[str, Optional[str]] = {}
    for name in learners():
        try:
            with warnings.catch_warnings():  # advice for a fit (e.g. "a 1-D ODE cannot oscillate"), not a verdict
                warnings.simplefilter("ignore")
                plan_fit(ds, name, dict(options), q, p, series=series)
            verdicts[name] = None
        except WorkbenchError as exc:
            verdicts[name] = str(exc)
    return verdicts


# families that register themselves through register_learner (it must exist before they import)
from . import latent  # noqa: E402,F401  (latent_ode, ncde, latent_sde)

__all__ = ["Batch", "Capabilities", "DataInfo", "InputSignal", "LEARNERS", "Learner", "build", "compatibility",
           "get_learner", "learners", "register_learner"]

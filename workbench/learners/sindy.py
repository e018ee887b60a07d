"""Sparse identification of nonlinear dynamics (SINDy): ``dx/dt = Xi theta(x)`` with a sparse
coefficient matrix ``Xi`` over a library ``theta`` of candidate terms. Brunton, Proctor & Kutz,
"Discovering governing equations from data by sparse identification of nonlinear dynamical
systems", PNAS 113, 3932 (2016); weak form: Messenger & Bortz, Multiscale Model. Simul. 19, 1474
(2021); ensembles: Fasel, Kutz, Brunton & Brunton, Proc. R. Soc. A 478, 20210904 (2022).

The regression is PySINDy's (de Silva et al. 2020, Kaptanoglu et al. 2022, JOSS); the fitted
coefficients, in physical units, live in buffers and the library is evaluated in torch, so a saved
model needs no pickle and predicts on CPU or GPU.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Iterator, Optional

import numpy as np
import torch

from ..errors import BadParameterError, UnsupportedError
from ..solvers import integrate_batch
from .base import Capabilities, InputSignal, Learner
from .closed_form import complete, validation_loss

DERIVATIVES = ("auto", "weak", "smoothed", "finite", "stored")
OPTIMIZERS = ("stlsq", "sr3")
GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu",
         "nu", "xi", "pi", "rho", "sigma", "tau", "phi", "chi", "psi", "omega", "Gamma", "Delta", "Theta",
         "Lambda", "Xi", "Pi", "Sigma", "Phi", "Psi", "Omega"}


def polynomial_powers(dim: int, degree: int, include_bias: bool) -> np.ndarray:
    """Exponents ``(P, dim)`` of PySINDy's polynomial library, in its own term order."""
    import pysindy as ps

    return ps.PolynomialLibrary(degree=degree, include_bias=include_bias).fit(np.zeros((2, dim))).powers_


@contextmanager
def _seeded_numpy(seed: int) -> Iterator[None]:
    """PySINDy's ensembles and weak-form subdomains draw from numpy's global generator: seed it for
    the fit and restore the caller's state afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


class SINDy(Learner):
    """Sparse regression of the vector field on a polynomial (and optional Fourier) library.

    Options:
        degree: highest total degree of the polynomial terms.
        include_bias: include the constant term.
        fourier: number of frequencies ``k = 1..fourier`` of ``sin(k x_i)``, ``cos(k x_i)`` terms (0: none).
        optimizer: ``"stlsq"`` (sequentially thresholded least squares, Brunton et al. 2016) or ``"sr3"``
            (sparse relaxed regularised regression with an L0 penalty, Zheng et al. 2019).
        threshold: coefficients below this magnitude (physical units) are zeroed; for SR3 it sets the
            L0 weight ``threshold^2 / 2``.
        alpha: ridge weight inside STLSQ's least-squares steps.
        derivative: ``"weak"`` (integral form on ``weak_windows`` test-function subdomains: robust to
            noise), ``"smoothed"`` (Savitzky-Golay smoothed finite differences), ``"finite"`` (second-order
            centred differences), ``"stored"`` (the dataset's ``derivative``), or ``"auto"`` (stored when
            the data has it, else weak).
        weak_windows: number of weak-form subdomains.
        ensemble: bagged models (0: none); with ``ensemble = K`` the median is the model and
            ``predict(n_samples=...)`` draws paths from the K coefficient samples.
        seed: seeds PySINDy's random draws (bagging, weak-form subdomains).
        rtol: relative tolerance of the rollout solver (DOP853, per trajectory).
    """

    name = "sindy"
    reference = "Brunton, Proctor & Kutz 2016, PNAS 113, 3932 (SINDy); PySINDy"
    supports = Capabilities(kinds=("ode",), irregular=False, objectives=("derivative",), training="closed_form")
    defaults = {"degree": 2, "include_bias": True, "fourier": 0, "optimizer": "stlsq", "threshold": 0.1,
                "alpha": 0.05, "derivative": "auto", "weak_windows": 200, "ensemble": 0, "seed": 0, "rtol": 1e-8}

    def __init__(self, dim: int, n_inputs: int = 0, **options: Any):
        super().__init__(dim, n_inputs, **options)
        o = self.options
        if o["derivative"] not in DERIVATIVES:
            raise BadParameterError(f"sindy: unknown derivative {o['derivative']!r}; use one of {DERIVATIVES}")
        if o["optimizer"] not in OPTIMIZERS:
            raise BadParameterError(f"sindy: unknown optimizer {o['optimizer']!r}; use one of {OPTIMIZERS}")
        for key in ("degree", "fourier", "ensemble", "weak_windows"):
            if isinstance(o[key], bool) or not isinstance(o[key], int) or o[key] < (1 if key == "weak_windows" else 0):
                raise BadParameterError(f"sindy: {key} must be a non-negative integer, got {o[key]!r}")
        if o["degree"] == 0 and o["fourier"] == 0:
            raise BadParameterError("sindy: the library is empty; use degree >= 1 or fourier >= 1")
        if not (o["threshold"] >= 0 and o["alpha"] >= 0 and o["rtol"] > 0):
            raise BadParameterError("sindy: threshold and alpha must be >= 0 and rtol > 0")
        powers = polynomial_powers(dim, o["degree"], o["include_bias"]) if o["degree"] else np.zeros((0, dim))
        self.register_buffer("powers", torch.as_tensor(powers, dtype=torch.float64))
        n_terms = len(powers) + 2 * o["fourier"] * dim
        self.register_buffer("coefficients", torch.zeros(dim, n_terms))
        self.register_buffer("coefficient_samples", torch.zeros(o["ensemble"], dim, n_terms))

    def capabilities(self) -> Capabilities:
        return replace(self.supports, stochastic=self.options["ensemble"] > 0)

    # --- the library in torch ----------------------------------------------------------------------
    def library(self, x: torch.Tensor) -> torch.Tensor:
        """Library terms ``theta(x)`` (B, F) at physical states ``x`` (B, D), in PySINDy's order:
        polynomial terms, then ``sin(k x_i), cos(k x_i)`` for ``k = 1..fourier`` and each ``i``."""
        terms = []
        if len(self.powers):
            terms.append(torch.prod(x.unsqueeze(1) ** self.powers.to(x.dtype), dim=-1))
        for k in range(1, self.options["fourier"] + 1):
            trig = torch.stack([torch.sin(k * x), torch.cos(k * x)], dim=-1)  # (B, D, 2)
            terms.append(trig.reshape(x.shape[0], -1))
        return torch.cat(terms, dim=-1)

    def term_names(self, names: list[str], latex: bool = False) -> list[str]:
        """Human-readable library terms for variables ``names``."""
        symbols = [_latex_symbol(n) for n in names] if latex else list(names)
        out = []
        for row in self.powers.long().tolist():
            factors = [s if p == 1 else (f"{s}^{{{p}}}" if latex else f"{s}^{p}")
                       for s, p in zip(symbols, row) if p]
            out.append(" ".join(factors) if factors else "1")
        for k in range(1, self.options["fourier"] + 1):
            for s in symbols:
                arg = s if k == 1 else f"{k} {s}"
                out += [f"\\sin({arg})", f"\\cos({arg})"] if latex else [f"sin({arg})", f"cos({arg})"]
        return out

    def _physical_drift(self, x: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
        theta = self.library(x)
        if coefficients.ndim == 2:
            return theta @ coefficients.T.to(x.dtype)
        return torch.einsum("bf,bdf->bd", theta, coefficients.to(x.dtype))

    def drift(self, z: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self._physical_drift(z * self.scale + self.offset, self.coefficients) / self.scale

    def member_drifts(self, z: torch.Tensor) -> torch.Tensor:
        if not len(self.coefficient_samples):
            return self.drift(z)[None]
        x = z * self.scale + self.offset
        return torch.stack([self._physical_drift(x, c) for c in self.coefficient_samples]) / self.scale

    # --- fitting -----------------------------------------------------------------------------------
    def _pysindy_model(self, times: np.ndarray, derivative: str):
        import pysindy as ps

        o = self.options
        parts = []
        if o["degree"]:
            parts.append(ps.PolynomialLibrary(degree=o["degree"], include_bias=o["include_bias"]))
        if o["fourier"]:
            parts.append(ps.FourierLibrary(n_frequencies=o["fourier"]))
        library = parts[0] if len(parts) == 1 else ps.ConcatLibrary(parts)
        if o["optimizer"] == "stlsq":
            optimizer = ps.STLSQ(threshold=o["threshold"], alpha=o["alpha"])
        else:
            optimizer = ps.SR3(reg_weight_lam=o["threshold"] ** 2 / 2, regularizer="L0", unbias=True)
        if o["ensemble"]:
            optimizer = ps.EnsembleOptimizer(optimizer, bagging=True, n_models=o["ensemble"])
        if derivative == "weak":
            library = ps.WeakPDELibrary(function_library=library, spatiotemporal_grid=times, K=o["weak_windows"])
            return ps.SINDy(optimizer=optimizer, feature_library=library)
        method = ps.SmoothedFiniteDifference() if derivative == "smoothed" else ps.FiniteDifference()
        return ps.SINDy(optimizer=optimizer, feature_library=library, differentiation_method=method)

    def fit_closed_form(self, train, val, times: torch.Tensor) -> dict[str, float]:
        """Fit the coefficients on the training trajectories in physical units (``x = z scale + offset``).

        Returns:
            ``{"val_loss": ...}`` (see :func:`~workbench.learners.closed_form.validation_loss`; NaN
            without validation data), ``"terms"`` (non-zero coefficients) and ``"train_loss"``
            (mean squared standardised error of the fitted drift against the stored or
            finite-difference derivative).
        """
        complete(train, self)
        scale, offset = self.scale.double().cpu().numpy(), self.offset.double().cpu().numpy()
        x = train.z.double().cpu().numpy() * scale + offset
        t = times.double().cpu().numpy()
        derivative = self.options["derivative"]
        if derivative == "auto":
            derivative = "stored" if train.dz is not None else "weak"
        if derivative == "stored" and train.dz is None:
            raise UnsupportedError("sindy: derivative='stored' needs a 'derivative' variable in the dataset "
                                   "(simulate(..., derivative=True)); use derivative='weak' or 'smoothed'")
        x_dot = list(train.dz.double().cpu().numpy() * scale) if derivative == "stored" else None
        with _seeded_numpy(self.options["seed"]), warnings.catch_warnings():  # the weak library draws at construction
            warnings.simplefilter("ignore")  # PySINDy warns on ill-conditioning it then handles
            try:
                model = self._pysindy_model(t, derivative)
                model.fit(list(x), t=t, x_dot=x_dot)
            except (ValueError, np.linalg.LinAlgError) as exc:
                raise BadParameterError(f"sindy: PySINDy could not fit this data ({exc}); try derivative='smoothed', "
                                        "fewer weak_windows, a lower degree or longer trajectories") from None
        coefficients = np.asarray(model.coefficients(), dtype=np.float64)
        self.coefficients.copy_(torch.as_tensor(coefficients))
        if self.options["ensemble"]:
            self.coefficient_samples.copy_(torch.as_tensor(np.asarray(model.optimizer.coef_list)))
        scores = {"terms": float(np.count_nonzero(coefficients)), "train_loss": self._derivative_loss(train, times)}
        scores["val_loss"] = validation_loss(self, val, times) if val is not None and val.n else float("nan")
        return scores

    def _derivative_loss(self, train, times: torch.Tensor) -> float:
        if train.dz is not None:
            target, z = train.dz, train.z
        else:  # centred differences on the sample grid
            dt = (times[2:] - times[:-2]).reshape(1, -1, 1)
            target, z = (train.z[:, 2:] - train.z[:, :-2]) / dt, train.z[:, 1:-1]
        with torch.no_grad():
            pred = self.drift(z.reshape(-1, self.dim)).reshape(z.shape)
        return float(((pred - target) ** 2).mean())

    # --- use ---------------------------------------------------------------------------------------
    def rollout(self, z0: torch.Tensor, t: torch.Tensor, n_samples: int = 1,
                generator: Optional[torch.Generator] = None, inputs: Optional[InputSignal] = None,
                context: Optional[torch.Tensor] = None) -> torch.Tensor:
        batch = z0.shape[0]
        if len(self.coefficient_samples):
            pick = torch.randint(len(self.coefficient_samples), (n_samples,), generator=generator)
            coefficients = self.coefficient_samples[pick.to(self.coefficient_samples.device)]
            coefficients = coefficients.repeat_interleave(batch, dim=0)  # (n_samples * B, D, F)
        else:
            coefficients = self.coefficients
        rows = z0.repeat(n_samples if coefficients.ndim == 3 else 1, 1)

        def field(tt: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            return self._physical_drift(z * self.scale + self.offset, coefficients) / self.scale

        rtol = max(self.options["rtol"], 1e3 * torch.finfo(z0.dtype).eps)
        out, stats = integrate_batch(field, rows, t - t[0], method="dop853", rtol=rtol, atol=rtol, bound=1e8)
        self.last_nfe = stats.nfe
        if coefficients.ndim == 3:
            return out.reshape(n_samples, batch, len(t), self.dim)
        return out.unsqueeze(0).expand(n_samples, -1, -1, -1)

    def equations(self, names: list[str], latex: bool = False, precision: int = 4) -> list[str]:
        """The discovered equations, one per variable, e.g. ``dx/dt = -10 x + 10 y``.

        Arguments:
            names: the dataset's variable names.
            latex: LaTeX (``\\frac{dx}{dt} = ...``) instead of plain text.
            precision: significant digits of the coefficients.
        """
        if len(names) != self.dim:
            raise BadParameterError(f"sindy: {len(names)} names for {self.dim} variables")
        terms = self.term_names(names, latex)
        out = []
        for name, row in zip(names, self.coefficients.double().cpu().tolist()):
            lhs = f"\\frac{{d{_latex_symbol(name)}}}{{dt}}" if latex else f"d{name}/dt"
            rhs = ""
            for c, term in zip(row, terms):
                if c == 0:
                    continue
                magnitude = f"{abs(c):.{precision}g}"
                body = magnitude if term == "1" else f"{magnitude} {term}"
                rhs += (" - " if c < 0 else " + ") + body if rhs else ("-" if c < 0 else "") + body
            out.append(f"{lhs} = {rhs or '0'}")
        return out


def _latex_symbol(name: str) -> str:
    """A variable name as a LaTeX symbol: Greek names as letters, longer names upright."""
    if name in GREEK:
        return f"\\{name}"
    if len(name) == 1:
        return name
    return "\\mathrm{" + name.replace("_", "\\_") + "}"

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

import math
import warnings
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Iterator, Optional

import numpy as np
import torch

from ..errors import BadParameterError, DivergenceError, ResourceLimitError, SolverStallError, UnsupportedError
from ..safety import check_integer, check_real
from ..numerics import integrate_batch
from .base import Capabilities, InputSignal, Learner
from .closed_form import check_work, complete, largest_within, monomial_count, validation_loss

DERIVATIVES = ("auto", "weak", "smoothed", "finite", "stored")
OPTIMIZERS = ("stlsq", "sr3")
# Work ceilings, checked when the learner is built (so also when a saved model is loaded) and, for
# the operations that depend on the data, before the regression. A 40-variable degree-2 library has
# 861 terms; degree 3 has 12,341 and its regression would run for minutes.
SINDY_MAX_TERMS = 1000
SINDY_MAX_ENSEMBLE = 1000
SINDY_MAX_WEAK_WINDOWS = 10_000
SINDY_MAX_OPERATIONS = 5e10  # bounds the least-squares work of one fit to tens of seconds on a small CPU
STLSQ_SWEEPS = 10  # least-squares solves per target and model that the operation estimate assumes
# degree="auto" fits each of these degrees (those within SINDY_MAX_TERMS) and keeps the lowest whose
# validation loss is within DEGREE_TOLERANCE (relative) + DEGREE_FLOOR (absolute) of the best
AUTO_DEGREES = (1, 2, 3, 4, 5)
DEGREE_TOLERANCE, DEGREE_FLOOR = 0.1, 1e-6
# threshold="auto": THRESHOLD_AT_UNIT_RATE per unit time, times the data's standardised rate of
# change where that is below 1 (slow measured series, e.g. degC per day), so slow terms survive
THRESHOLD_AT_UNIT_RATE = 0.1
# a fit leaving more than this fraction of the derivative's variance unexplained warns
UNEXPLAINED_WARNING = 0.1
# rollout step budget: per output sample, and at least this many (a bad model stops in seconds)
ROLLOUT_STEPS_PER_SAMPLE, ROLLOUT_MIN_STEPS = 20, 2000
GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu",
         "nu", "xi", "pi", "rho", "sigma", "tau", "phi", "chi", "psi", "omega", "Gamma", "Delta", "Theta",
         "Lambda", "Xi", "Pi", "Sigma", "Phi", "Psi", "Omega"}


def polynomial_powers(dim: int, degree: int, include_bias: bool) -> np.ndarray:
    """Exponents ``(P, dim)`` of PySINDy's polynomial library, in its own term order."""
    import pysindy as ps

    return ps.PolynomialLibrary(degree=degree, include_bias=include_bias).fit(np.zeros((2, dim))).powers_


def polynomial_terms(dim: int, degree: int, include_bias: bool) -> float:
    """Terms of the polynomial library, counted without building it."""
    return monomial_count(dim, degree) - (0 if include_bias else 1) if degree else 0.0


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
        degree: highest total degree of the polynomial terms, or ``"auto"`` (default): each of
            ``AUTO_DEGREES`` within the term ceiling is fitted and the lowest whose validation loss is
            within 10% of the best is kept (the training derivative loss without validation data);
            ``history[-1]["degree"]`` records the choice.
        include_bias: include the constant term.
        fourier: number of frequencies ``k = 1..fourier`` of ``sin(k x_i)``, ``cos(k x_i)`` terms (0: none).
        optimizer: ``"stlsq"`` (sequentially thresholded least squares, Brunton et al. 2016) or ``"sr3"``
            (sparse relaxed regularised regression with an L0 penalty, Zheng et al. 2019).
        threshold: coefficients below this magnitude (physical units) are zeroed; for SR3 it sets the
            L0 weight ``threshold^2 / 2``. ``"auto"`` (default): 0.1, or 0.1 times the data's
            standardised rate of change per unit time where that is below 1 (a series measured in
            days changes by a few percent a day, and a fixed 0.1 would zero every term).
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
    supports = Capabilities(kinds=("ode",), irregular=False, objectives=("derivative",), training="closed_form",
                            has_equations=True)
    defaults = {"degree": "auto", "include_bias": True, "fourier": 0, "optimizer": "stlsq", "threshold": "auto",
                "alpha": 0.05, "derivative": "auto", "weak_windows": 200, "ensemble": 0, "seed": 0, "rtol": 1e-8}

    def __init__(self, dim: int, n_inputs: int = 0, **options: Any):
        super().__init__(dim, n_inputs, **options)
        o = self.options
        if o["derivative"] not in DERIVATIVES:
            raise BadParameterError(f"sindy: unknown derivative {o['derivative']!r}; use one of {DERIVATIVES}")
        if o["optimizer"] not in OPTIMIZERS:
            raise BadParameterError(f"sindy: unknown optimizer {o['optimizer']!r}; use one of {OPTIMIZERS}")
        if o["degree"] != "auto":
            check_integer(o["degree"], "sindy: degree (or 'auto')", low=0)
        check_integer(o["fourier"], "sindy: fourier", low=0)
        check_integer(o["ensemble"], "sindy: ensemble", low=0)
        check_integer(o["weak_windows"], "sindy: weak_windows", low=1)
        if o["threshold"] != "auto":
            check_real(o["threshold"], "sindy: threshold (or 'auto')", low=0.0)
        check_real(o["alpha"], "sindy: alpha", low=0.0)
        check_real(o["rtol"], "sindy: rtol", low=0.0, low_open=True)
        if o["degree"] == 0 and o["fourier"] == 0:
            raise BadParameterError("sindy: the library is empty", fix="use degree >= 1 or fourier >= 1")
        self._check_sizes(dim)
        self.register_buffer("powers", torch.zeros(0, dim, dtype=torch.float64))
        self.register_buffer("coefficients", torch.zeros(dim, 0))
        self.register_buffer("coefficient_samples", torch.zeros(o["ensemble"], dim, 0))
        self._set_degree(self.degrees()[0])

    def _check_sizes(self, dim: int) -> None:
        """Refuse a library over :data:`SINDY_MAX_TERMS` terms, an ensemble over :data:`SINDY_MAX_ENSEMBLE`
        models or more than :data:`SINDY_MAX_WEAK_WINDOWS` weak-form subdomains, before anything is built."""
        o = self.options
        for key, ceiling in (("ensemble", SINDY_MAX_ENSEMBLE), ("weak_windows", SINDY_MAX_WEAK_WINDOWS)):
            check_work("sindy", f"{key}={o[key]}", "models" if key == "ensemble" else "subdomains", o[key], ceiling,
                       8.0 * o[key] * dim * SINDY_MAX_TERMS, float(o[key]) * dim * SINDY_MAX_TERMS ** 2,
                       f"use {key} <= {ceiling}")
        degree = 1 if o["degree"] == "auto" else o["degree"]
        fourier_terms = 2.0 * o["fourier"] * dim
        count = polynomial_terms(dim, degree, o["include_bias"]) + fourier_terms
        poly = lambda d: polynomial_terms(dim, d, o["include_bias"])  # noqa: E731
        largest_degree = largest_within(lambda d: poly(d) + fourier_terms, SINDY_MAX_TERMS)
        largest_fourier = max(0, int((SINDY_MAX_TERMS - poly(degree)) // (2 * dim)))
        check_work("sindy", f"degree={o['degree']}, fourier={o['fourier']} on {dim} variables", "library terms", count,
                   SINDY_MAX_TERMS, 8.0 * count * (count + dim * max(1, o["ensemble"])),
                   count ** 2 * dim * STLSQ_SWEEPS,
                   f"use degree <= {largest_degree} at fourier={o['fourier']}, or fourier <= {largest_fourier} at "
                   f"degree={degree}")

    def degrees(self) -> list[int]:
        """The polynomial degrees to fit: the chosen one, or for ``"auto"`` those of ``AUTO_DEGREES``
        whose library stays within :data:`SINDY_MAX_TERMS`."""
        o = self.options
        if o["degree"] != "auto":
            return [o["degree"]]
        fits = lambda d: polynomial_terms(self.dim, d, o["include_bias"]) + 2 * o["fourier"] * self.dim  # noqa: E731
        return [d for d in AUTO_DEGREES if fits(d) <= SINDY_MAX_TERMS]

    def _set_degree(self, degree: int) -> None:
        """Size the library and coefficient buffers for polynomial ``degree``."""
        powers = polynomial_powers(self.dim, degree, self.options["include_bias"]) if degree else np.zeros((0, self.dim))
        n_terms = len(powers) + 2 * self.options["fourier"] * self.dim
        dtype, device = self.coefficients.dtype, self.coefficients.device
        self.powers = torch.as_tensor(powers, dtype=dtype, device=device)  # saved weights share one float type
        self.coefficients = torch.zeros(self.dim, n_terms, dtype=dtype, device=device)
        self.coefficient_samples = torch.zeros(self.options["ensemble"], self.dim, n_terms, dtype=dtype, device=device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        # a degree chosen by "auto" is known from the saved library: size the buffers to it first
        powers = state_dict.get(prefix + "powers")
        if self.options["degree"] == "auto" and powers is not None and powers.shape != self.powers.shape:
            degree = int(powers.sum(-1).max()) if len(powers) else 0
            if degree not in self.degrees() or powers.ndim != 2 or powers.shape[1] != self.dim:
                raise ValueError(f"sindy: saved library of shape {tuple(powers.shape)} is not a degree in "
                                 f"{self.degrees()} for {self.dim} variables")
            self._set_degree(degree)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

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
    def _pysindy_model(self, times: np.ndarray, derivative: str, degree: int, threshold: float):
        import pysindy as ps

        o = self.options
        parts = []
        if degree:
            parts.append(ps.PolynomialLibrary(degree=degree, include_bias=o["include_bias"]))
        if o["fourier"]:
            parts.append(ps.FourierLibrary(n_frequencies=o["fourier"]))
        library = parts[0] if len(parts) == 1 else ps.ConcatLibrary(parts)
        if o["optimizer"] == "stlsq":
            optimizer = ps.STLSQ(threshold=threshold, alpha=o["alpha"])
        else:
            optimizer = ps.SR3(reg_weight_lam=threshold ** 2 / 2, regularizer="L0", unbias=True)
        if o["ensemble"]:
            optimizer = ps.EnsembleOptimizer(optimizer, bagging=True, n_models=o["ensemble"])
        if derivative == "weak":
            library = ps.WeakPDELibrary(function_library=library, spatiotemporal_grid=times, K=o["weak_windows"])
            return ps.SINDy(optimizer=optimizer, feature_library=library)
        method = ps.SmoothedFiniteDifference() if derivative == "smoothed" else ps.FiniteDifference()
        return ps.SINDy(optimizer=optimizer, feature_library=library, differentiation_method=method)

    def threshold(self) -> float:
        """The STLSQ threshold in physical units: the option, or for ``"auto"``
        ``THRESHOLD_AT_UNIT_RATE * min(1, rate)`` with the data's standardised rate of change."""
        if self.options["threshold"] != "auto":
            return float(self.options["threshold"])
        return THRESHOLD_AT_UNIT_RATE * min(1.0, float(self.rate))

    def _check_operations(self, degree: int, n_trajectories: int, length: int, derivative: str) -> None:
        """Refuse a regression whose estimated operations exceed :data:`SINDY_MAX_OPERATIONS`."""
        o = self.options
        terms = polynomial_terms(self.dim, degree, o["include_bias"]) + 2 * o["fourier"] * self.dim
        rows = n_trajectories * (o["weak_windows"] if derivative == "weak" else length)
        operations = (max(1, o["ensemble"]) * rows * terms ** 2 * self.dim * STLSQ_SWEEPS
                      + n_trajectories * length * terms * STLSQ_SWEEPS)
        if operations > SINDY_MAX_OPERATIONS:
            raise ResourceLimitError(
                f"sindy: degree={degree} with {int(terms)} library terms, ensemble={o['ensemble']} and {rows} "
                f"regression rows needs about {operations:.3g} operations, over the ceiling of "
                f"{SINDY_MAX_OPERATIONS:.3g}",
                fix="lower degree, fourier or ensemble, use fewer weak_windows, or fit fewer trajectories")

    def _regress(self, x: list, t: np.ndarray, x_dot: Optional[list], derivative: str, degree: int,
                 threshold: float) -> None:
        """One PySINDy regression of polynomial ``degree``; sets the coefficient buffers."""
        with _seeded_numpy(self.options["seed"]), warnings.catch_warnings():  # the weak library draws at construction
            warnings.simplefilter("ignore")  # PySINDy warns on ill-conditioning it then handles
            try:
                model = self._pysindy_model(t, derivative, degree, threshold)
                model.fit(x, t=t, x_dot=x_dot)
            except (ValueError, np.linalg.LinAlgError) as exc:
                raise BadParameterError(f"sindy: PySINDy could not fit this data ({exc})",
                                        fix="try derivative='smoothed', fewer weak_windows, a lower degree or longer "
                                            "trajectories") from None
        self._set_degree(degree)
        coefficients = np.asarray(model.coefficients(), dtype=np.float64)
        self.coefficients.copy_(torch.as_tensor(coefficients))
        if self.options["ensemble"]:
            self.coefficient_samples.copy_(torch.as_tensor(np.asarray(model.optimizer.coef_list)))

    def _score(self, train, val, times: torch.Tensor) -> float:
        """The loss that chooses the degree: validation rollouts, or the training derivative loss
        without validation data; ``inf`` when the equations' rollouts blow up or stall."""
        if val is None or not val.n:
            return self._derivative_loss(train, times)
        try:
            loss = validation_loss(self, val, times)
        except (DivergenceError, SolverStallError):
            return math.inf
        return loss if math.isfinite(loss) else math.inf

    def fit_closed_form(self, train, val, times: torch.Tensor) -> dict[str, float]:
        """Fit the coefficients on the training trajectories in physical units (``x = z scale + offset``),
        for each candidate degree (see the ``degree`` option), keeping the best.

        Returns:
            ``{"val_loss": ...}`` (see :func:`~workbench.learners.closed_form.validation_loss`; NaN
            without validation data), ``"terms"`` (non-zero coefficients), ``"train_loss"``
            (mean squared standardised error of the fitted drift against the stored or
            finite-difference derivative), ``"unexplained"`` (that loss over the derivative's
            variance), the ``"degree"`` and ``"threshold"`` used.

        Raises:
            ResourceLimitError: the regression's estimated work is over the ceiling.
            DivergenceError: every candidate's equations blow up or stall on the validation data.
        """
        complete(train, self)
        scale, offset = self.scale.double().cpu().numpy(), self.offset.double().cpu().numpy()
        x = train.z.double().cpu().numpy() * scale + offset
        t = times.double().cpu().numpy()
        derivative = self.options["derivative"]
        if derivative == "auto":
            derivative = "stored" if train.dz is not None else "weak"
        if derivative == "stored" and train.dz is None:
            raise UnsupportedError("sindy: derivative='stored' needs a 'derivative' variable in the dataset",
                                   fix="simulate(..., derivative=True), or use derivative='weak' or 'smoothed'")
        x_dot = list(train.dz.double().cpu().numpy() * scale) if derivative == "stored" else None
        degrees = self.degrees()
        for degree in degrees:
            self._check_operations(degree, x.shape[0], x.shape[1], derivative)
        threshold, scores = self.threshold(), {}
        for degree in degrees:
            self._regress(list(x), t, x_dot, derivative, degree, threshold)
            scores[degree] = self._score(train, val, times)
        best = min(scores.values())
        if not math.isfinite(best):
            raise DivergenceError(f"sindy: the equations found with degree {' / '.join(map(str, degrees))} blow up "
                                  "or stall within the validation windows",
                                  fix="use derivative='weak' on noisy data, a larger threshold, embed=... for a "
                                      "measured series, or a learner for measured series (nvar, esn)")
        chosen = min(d for d in degrees if scores[d] <= best * (1 + DEGREE_TOLERANCE) + DEGREE_FLOOR)
        if chosen != degrees[-1]:
            self._regress(list(x), t, x_dot, derivative, chosen, threshold)
        result = {"terms": float(np.count_nonzero(self.coefficients.cpu().numpy())),
                  "train_loss": self._derivative_loss(train, times), "degree": float(chosen),
                  "threshold": threshold}
        result["unexplained"] = self._unexplained(train, times, result["train_loss"])
        result["val_loss"] = scores[chosen] if val is not None and val.n else float("nan")
        self._warn_if_unexplained(result["unexplained"], chosen)
        return result

    def _warn_if_unexplained(self, unexplained: float, degree: int) -> None:
        """Say when the library leaves much of the derivative unexplained, and what to try."""
        if not unexplained > UNEXPLAINED_WARNING:
            return
        if self.options["degree"] == "auto":
            advice = (f"no polynomial up to degree {degree} explains the data: try fourier=..., embed=... for a "
                      "measured series, or a neural learner")
        else:
            advice = f"try degree={degree + 1} or degree='auto' (chosen on validation data)"
        warnings.warn(f"sindy: the degree-{degree} library leaves {unexplained:.0%} of the derivative's variance "
                      f"unexplained on the training data, far above what noise explains; {advice}", stacklevel=2)

    @staticmethod
    def _derivative_target(train, times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised derivatives and the states they belong to: stored, else centred differences."""
        if train.dz is not None:
            return train.dz, train.z
        dt = (times[2:] - times[:-2]).reshape(1, -1, 1)
        return (train.z[:, 2:] - train.z[:, :-2]) / dt, train.z[:, 1:-1]

    def _derivative_loss(self, train, times: torch.Tensor) -> float:
        target, z = self._derivative_target(train, times)
        with torch.no_grad():
            pred = self.drift(z.reshape(-1, self.dim)).reshape(z.shape)
        return float(((pred - target) ** 2).mean())

    def _unexplained(self, train, times: torch.Tensor, loss: float) -> float:
        """The fraction of the derivative's variance that the fitted drift leaves unexplained beyond
        the noise: for centred differences, white noise of variance ``s^2`` adds ``s^2 / (2 dt^2)``
        to the loss, with ``s^2`` from the second differences (``6 s^2`` for white noise; the
        signal's own curvature makes this an overestimate, so the warning errs on the quiet side)."""
        target = self._derivative_target(train, times)[0].reshape(-1, self.dim).double()
        noise = 0.0
        if train.dz is None and train.z.shape[1] > 2:
            z = train.z.double()
            second = (z[:, 2:] - 2 * z[:, 1:-1] + z[:, :-2]).reshape(-1, self.dim)
            dt = float((times[1:] - times[:-1]).double().median())
            noise = float(second.var(0, unbiased=False).mean()) / 6 / (2 * dt * dt)
        return max(loss - noise, 0.0) / max(float(target.var(0, unbiased=False).mean()), 1e-300)

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

        scale, offset = self.scale.double(), self.offset.double()

        def field(tt: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            return self._physical_drift(z * scale + offset, coefficients) / scale

        # the tolerance follows the caller's precision; the solve runs in float64, where a
        # discovered field that is zero or tiny (slow measured series) cannot underflow the step
        rtol = max(self.options["rtol"], 1e3 * torch.finfo(z0.dtype).eps)
        budget = max(ROLLOUT_MIN_STEPS, ROLLOUT_STEPS_PER_SAMPLE * len(t))
        try:
            out, stats = integrate_batch(field, rows.double(), (t - t[0]).double(), method="dop853", rtol=rtol,
                                         atol=rtol, bound=1e8, max_steps=budget)
        except (DivergenceError, SolverStallError) as exc:
            raise type(exc)(f"sindy: the discovered equations cannot be integrated ({exc.problem})",
                            fix="the model blows up or is stiff here: refit with degree='auto', a larger threshold "
                                "or derivative='weak', or predict over a shorter horizon") from None
        out = out.to(z0.dtype)
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

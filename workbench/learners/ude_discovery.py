"""The residual of a universal differential equation as sparse equations, chosen on the data.

Rackauckas et al. 2020 (UDE then SINDy): the trained network is evaluated along the fitted
trajectories and a sparse regression over a polynomial library names the terms it stands for. One
threshold does not fit every residual, so the choice follows Mangan, Kutz, Brunton & Proctor 2017
("Model selection for dynamical systems via sparse regression and information criteria", Proc. R.
Soc. A 473, 20170009): sequentially thresholded least squares (Brunton et al. 2016) over a fixed
grid of thresholds gives a short list of candidate term sets; each candidate's coefficients (with
the known part's estimated constants and the initial states) are re-fitted to the *data* by
trajectory matching, and the candidate with the lowest Bayesian information criterion is kept. The
network only proposes terms; the data decide which, and with which coefficients.

The rule has no per-problem setting: the library is scaled to unit root-mean-square columns and
each equation's target to unit root-mean-square, so the thresholds are relative contributions; the
criterion's variance is floored at :data:`VARIANCE_FLOOR` of the standardised data.

A network residual below :data:`RESOLUTION` of the data's rate of change proposes no terms (the
known part is re-fitted alone).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

# STLSQ thresholds (relative contribution of a unit-rms term to a unit-rms residual) whose supports
# are the candidates: a log grid from terms worth 1% of the residual to terms worth all of it
THRESHOLDS = np.geomspace(1e-2, 1.0, 40)
STLSQ_SWEEPS = 10
# candidates re-fitted to the data, sparsest first (a dense candidate of a degree-2 library seldom
# survives the information criterion, and each re-fit is a trajectory optimisation)
MAX_CANDIDATES = 8
REFIT_ITERATIONS = 50
# resolution of the standardised data: a misfit variance below RESOLUTION**2 is no evidence for more
# terms (on noise-free data the solver's own error would otherwise buy terms of 1e-5), and a residual
# below RESOLUTION of the data's rate of change proposes none
RESOLUTION = 1e-3
VARIANCE_FLOOR = RESOLUTION ** 2
# cosine between a library term and a constant's sensitivity above which they are one function
PARALLEL = 1 - 1e-6


@dataclass
class Candidate:
    """A term set (D, P) bool, its re-fitted coefficients (D, P), constants, initial states and score."""

    support: np.ndarray
    coefficients: np.ndarray
    theta: np.ndarray
    x0: torch.Tensor
    ssr: float
    bic: float


def stlsq_supports(library: np.ndarray, target: np.ndarray, allowed: Optional[np.ndarray] = None,
                   sensitivity: Optional[np.ndarray] = None) -> list[np.ndarray]:
    """The distinct term sets of STLSQ over :data:`THRESHOLDS`, sparsest first.

    Arguments:
        library: library terms (M, P) at the fitted states.
        target: the network's residual (M, D) at the same states.
        allowed: (D, P) terms each equation may use (default all); a term that an estimated
            constant of the known part already multiplies is left out (:func:`redundant_terms`),
            or the two could trade their values freely.
        sensitivity: the known part's derivatives with respect to its estimated constants
            (M, D, p), regressed beside the terms and never thresholded: the network may have
            taken over part of a constant's term while the constant was off.

    Returns:
        Boolean supports (D, P), from the sparsest (largest threshold) to the densest; the empty
        set (no residual term) comes first.
    """
    rms = np.sqrt((library ** 2).mean(0)).clip(1e-300)
    a = library / rms
    dim, terms = target.shape[1], library.shape[1]
    allowed = np.ones((dim, terms), bool) if allowed is None else allowed
    found: dict[bytes, np.ndarray] = {}
    empty = np.zeros((dim, terms), bool)
    found[empty.tobytes()] = empty
    for threshold in THRESHOLDS[::-1]:
        support = empty.copy()
        for i, y in enumerate(target.T):
            if allowed[i].any():
                kept = _unit_rms(sensitivity[:, i]) if sensitivity is not None else np.zeros((len(y), 0))
                scale = max(float(np.sqrt((y ** 2).mean())), 1e-300)
                support[i, allowed[i]] = _stlsq(a[:, allowed[i]], kept, y / scale, threshold)
        found.setdefault(support.tobytes(), support)
    return sorted(found.values(), key=lambda s: int(s.sum()))


def _unit_rms(columns: np.ndarray) -> np.ndarray:
    """The non-zero columns of (M, k), each scaled to unit root-mean-square."""
    rms = np.sqrt((columns ** 2).mean(0))
    return columns[:, rms > 0] / rms[rms > 0]


def _stlsq(a: np.ndarray, kept: np.ndarray, y: np.ndarray, threshold: float) -> np.ndarray:
    """STLSQ's support over the columns of ``a``, with the columns of ``kept`` always in the regression."""
    keep = np.ones(a.shape[1], bool)
    for _ in range(STLSQ_SWEEPS):
        coefficients = np.zeros(a.shape[1])
        coefficients[keep] = np.linalg.lstsq(np.hstack([a[:, keep], kept]), y, rcond=None)[0][:int(keep.sum())]
        new = np.abs(coefficients) >= threshold
        if (new == keep).all() or not new.any():
            return new
        keep = new
    return keep


def starting_point(support: np.ndarray, library: np.ndarray, target: np.ndarray,
                   sensitivity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares coefficients (D, P) of a support's terms and shifts (p,) of the estimated
    constants (in the units ``sensitivity`` was taken in) that together best match the network's
    residual: where a re-fit to the data starts."""
    m, dim = target.shape
    blocks = []
    for i, row in enumerate(support):
        block = np.zeros((m, dim, int(row.sum())))
        block[:, i] = library[:, row]
        blocks.append(block.reshape(m * dim, -1))
    design = np.hstack(blocks + [sensitivity.reshape(m * dim, -1)])
    solution = np.linalg.lstsq(design, target.reshape(-1), rcond=None)[0] if design.shape[1] else np.zeros(0)
    coefficients = np.zeros(support.shape)
    coefficients[support] = solution[:int(support.sum())]
    return coefficients, solution[int(support.sum()):]


def redundant_terms(library: np.ndarray, sensitivity: np.ndarray) -> np.ndarray:
    """Library terms that an estimated constant already multiplies: (D, P) bool.

    Arguments:
        library: library terms (M, P) at the fitted states.
        sensitivity: the known part's derivative with respect to each estimated constant (M, D, p).

    Returns:
        True where term ``k`` of equation ``i`` is parallel (to :data:`PARALLEL`) to
        ``d known_i / d theta_j`` for some ``j``: the same function of the state.
    """
    a = library / np.linalg.norm(library, axis=0).clip(1e-300)
    out = np.zeros((sensitivity.shape[1], library.shape[1]), bool)
    for i in range(sensitivity.shape[1]):
        for j in range(sensitivity.shape[2]):
            g = sensitivity[:, i, j]
            norm = float(np.linalg.norm(g))
            if norm > 0:
                out[i] |= np.abs(a.T @ (g / norm)) > PARALLEL
    return out


def choose(supports: list[np.ndarray], library: np.ndarray, target: np.ndarray, sensitivity: np.ndarray,
           refit: Callable[[np.ndarray, np.ndarray, np.ndarray],
                           Optional[tuple[np.ndarray, np.ndarray, torch.Tensor, float]]],
           n_observations: int, n_fixed_unknowns: int, out_of_time: Callable[[], bool]) -> list[Candidate]:
    """Re-fit up to :data:`MAX_CANDIDATES` supports to the data and score them by BIC.

    Arguments:
        supports: candidate term sets (D, P), sparsest first.
        library, target, sensitivity: the network's residual regression (each candidate's starting
            point, :func:`starting_point`).
        refit: ``refit(support, coefficients, shift) -> (coefficients, theta, x0, ssr)`` or None
            where the re-fit diverges; ``ssr`` in the units the BIC's likelihood assumes
            (standardised data).
        n_observations: observed values in the data.
        n_fixed_unknowns: unknowns of every candidate (initial states and estimated constants).
        out_of_time: stop after the current candidate (at least one is always scored).

    Returns:
        The scored candidates, best (lowest BIC) first.
    """
    scored = []
    for support in supports[:MAX_CANDIDATES]:
        result = refit(support, *starting_point(support, library, target, sensitivity))
        if result is not None and math.isfinite(result[3]):
            coefficients, theta, x0, ssr = result
            k = int(support.sum()) + n_fixed_unknowns
            variance = max(ssr / n_observations, VARIANCE_FLOOR)
            bic = n_observations * math.log(variance) + k * math.log(n_observations)
            scored.append(Candidate(support, coefficients, theta, x0, ssr, bic))
        if scored and out_of_time():
            break
    return sorted(scored, key=lambda c: c.bic)


__all__ = ["Candidate", "choose", "redundant_terms", "starting_point", "stlsq_supports", "MAX_CANDIDATES",
           "RESOLUTION", "THRESHOLDS"]

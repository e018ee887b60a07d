"""Butcher tableaux of the explicit Runge-Kutta methods the workbench runs itself, and the rows of
their continuous extensions.

The embedded pairs with dense output are scipy's (``scipy.integrate.DOP853`` / ``RK45`` class
attributes); the fixed-step ones are the textbook methods (Hairer, Norsett & Wanner, *Solving ODEs
I*, Sec. II.1).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import scipy.integrate


@dataclass(frozen=True)
class Tableau:
    """An explicit embedded Runge-Kutta method with FSAL error estimate and dense output.

    Dense output is either a polynomial in the step fraction (``dense_p``, Dormand-Prince) or the
    DOP853 interpolant built from ``extra_stages`` more evaluations (``extra_a``, ``extra_c``,
    ``dense_d``).
    """

    name: str
    order: int
    error_order: int
    stability: float  # |h lambda| on the negative real axis where the method turns unstable
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    e_high: np.ndarray
    e_low: Optional[np.ndarray] = None  # DOP853's extra 3rd-order estimator
    dense_p: Optional[np.ndarray] = None
    extra_a: Optional[np.ndarray] = None
    extra_c: Optional[np.ndarray] = None
    dense_d: Optional[np.ndarray] = None

    @property
    def extra_stages(self) -> int:
        return 0 if self.extra_c is None else len(self.extra_c)


_D = scipy.integrate.DOP853
_R = scipy.integrate.RK45
# stability boundaries as Hairer's DOP853 and DOPRI5 codes use them in their stiffness tests
DOP853 = Tableau("dop853", 8, 7, 6.1, _D.A, _D.B, _D.C, _D.E5, _D.E3,
                 extra_a=_D.A_EXTRA, extra_c=_D.C_EXTRA, dense_d=_D.D)
DOPRI5 = Tableau("dopri5", 5, 4, 3.25, _R.A, _R.B, _R.C, _R.E, dense_p=_R.P)
TABLEAUX = {t.name: t for t in (DOP853, DOPRI5)}

# The fixed-step methods as (c, b, a): stage times after the first, weights, and the rows of the
# strictly lower triangle after the first; classic RK4, not torchdiffeq's 3/8-rule "rk4".
FUSED_METHODS = {"euler": ((), (1.0,), ()), "midpoint": ((0.5,), (0.0, 1.0), ((0.5,),)),
                 "rk4": ((0.5, 0.5, 1.0), (1 / 6, 1 / 3, 1 / 3, 1 / 6), ((0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)))}


def with_state(rows: Optional[np.ndarray], weight_of_y: float) -> Optional[np.ndarray]:
    """Tableau rows over ``k_0, k_1, ...`` as rows over the stage rows ``[y, h k_0, h k_1, ...]``."""
    if rows is None:
        return None
    rows = np.atleast_2d(np.asarray(rows, dtype=float))
    return np.hstack([np.full((len(rows), 1), weight_of_y), rows])


def dense_rows(tab: Tableau) -> np.ndarray:
    """The continuous extension's coefficients ``q_i`` as rows over ``h k_0, h k_1, ...``, for
    ``y(t + x h) = y + sum_i q_i B_i(x)`` (see ``_interpolate`` in :mod:`workbench.numerics.adaptive`).

    DOP853: the 7th-order interpolant of Hairer et al. (three extra stages, scipy's coefficients),
    whose first three coefficients are ``y_new - y = sum b_j h k_j``, ``h f_old - (y_new - y)`` and
    ``2 (y_new - y) - h (f_new + f_old)``; dopri5: the 4th-order interpolant of Dormand & Prince
    (Shampine 1986), as in scipy's RK45.
    """
    if tab.dense_p is not None:
        return np.asarray(tab.dense_p, dtype=float).T
    width = np.asarray(tab.dense_d).shape[1]
    stages = len(tab.b)
    delta, f_old, f_new = np.zeros(width), np.zeros(width), np.zeros(width)
    delta[:stages], f_old[0], f_new[stages] = tab.b, 1.0, 1.0
    return np.vstack([delta, f_old - delta, 2 * delta - f_new - f_old, tab.dense_d])

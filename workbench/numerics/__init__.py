"""Numerics: the batched Runge-Kutta solvers (tableaux, adaptive and fixed step) and the SDE integrators
that ``simulate`` and the learners share."""

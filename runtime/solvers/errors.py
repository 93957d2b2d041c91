"""Failures of the plain-torch solvers, worded like torchdiffeq's so runtime.ode reports them alike."""
from __future__ import annotations


class SolverError(Exception):
    """The step count ran out, the step size underflowed or the state turned non-finite."""

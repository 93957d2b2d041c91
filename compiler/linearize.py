"""Symbolic linearisation of the dynamics around an equilibrium (for LQR references)."""
from __future__ import annotations

import sympy as sp
from sympy.core.function import AppliedUndef

from . import ir


def linearize(dynamics: dict[str, sp.Expr], states: list[str], controls: list[str],
              equilibrium: dict[str, float]) -> tuple[list[list[float]], list[list[float]]]:
    """A = ∂f/∂x and B = ∂f/∂u at (x = equilibrium, u = 0), with SymPy Jacobians.

    `dynamics` must keep the controls as free symbols (the open-loop dynamics)."""
    x = sp.Matrix([ir.state_symbol(s) for s in states])
    u = sp.Matrix([sp.Symbol(c, real=True) for c in controls])
    f = sp.Matrix([dynamics[s] for s in states])
    point = {ir.state_symbol(s): equilibrium[s] for s in states}
    point.update({sp.Symbol(c, real=True): 0 for c in controls})
    a = f.jacobian(x).xreplace(point)
    b = f.jacobian(u).xreplace(point)
    for matrix in (a, b):
        if matrix.atoms(AppliedUndef) or matrix.free_symbols:
            raise ValueError("the dynamics do not reduce to numbers at the equilibrium")
    return ([[float(v) for v in a.row(i)] for i in range(a.rows)],
            [[float(v) for v in b.row(i)] for i in range(b.rows)])

"""Symbolic derivatives `d(expr, name)`, through implicit layers by the implicit function theorem."""
from __future__ import annotations

import sympy as sp

from . import ir

SYMBOLIC_UNKNOWNS_LIMIT = 3   # implicit systems up to this size are differentiated symbolically


def _implicit_derivatives(wrt: sp.Symbol, implicits: list[ir.Implicit]) -> dict[sp.Symbol, sp.Expr]:
    """d(unknown)/d(wrt) for every implicit unknown (report eq. 2.17: dy/dx = -(∂φ/∂y)⁻¹ ∂φ/∂x),
    following earlier unknowns that an equation uses."""
    derivatives: dict[sp.Symbol, sp.Expr] = {}
    for implicit in implicits:
        if implicit.jacobian is None:
            raise ValueError(f"the equation of '{implicit.name}' calls a net of its unknown")
        if len(implicit.unknowns) > SYMBOLIC_UNKNOWNS_LIMIT:
            raise ValueError(f"'{implicit.name}' has more than {SYMBOLIC_UNKNOWNS_LIMIT} unknowns")
        direct = sp.Matrix([sp.diff(r, wrt) + sum(sp.diff(r, u) * du for u, du in derivatives.items())
                            for r in implicit.residual])
        jacobian = sp.Matrix(implicit.jacobian)
        solution = -(jacobian.LUsolve(direct)) if jacobian.rows > 1 else -direct / jacobian[0, 0]
        derivatives.update(zip(implicit.unknowns, solution))
    return derivatives


def total_derivative(expr: sp.Expr, wrt: sp.Symbol, implicits: list[ir.Implicit]) -> sp.Expr:
    """d expr / d wrt, where implicit unknowns in expr move with wrt."""
    used = [i for i in implicits if expr.free_symbols & set(i.unknowns) or _feeds(i, implicits, expr)]
    derivatives = _implicit_derivatives(wrt, used) if used else {}
    result = sp.diff(expr, wrt) + sum(sp.diff(expr, u) * du for u, du in derivatives.items())
    if result.has(sp.Derivative) or result.has(sp.Subs):
        raise ValueError("it depends on a net, whose derivative is not symbolic")
    return result


def _feeds(implicit: ir.Implicit, implicits: list[ir.Implicit], expr: sp.Expr) -> bool:
    """Whether `implicit` is used by expr through a later implicit's equation."""
    later = implicits[implicits.index(implicit) + 1:]
    return any(expr.free_symbols & set(j.unknowns) and any(r.free_symbols & set(implicit.unknowns)
                                                           for r in j.residual) for j in later)

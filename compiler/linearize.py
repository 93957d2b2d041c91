"""Symbolic linearisation of the dynamics around an equilibrium (for LQR references)."""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy.core.function import AppliedUndef

from . import ir
from .derivative import jacobian


@dataclass
class Linearisation:
    """A = ∂f/∂x, B = ∂f/∂u and the rates f at the point (0 at an equilibrium)."""

    A: list[list[float]]
    B: list[list[float]]
    rates: list[float]


def linearize(dynamics: dict[str, sp.Expr], implicits: list[ir.Implicit], states: list[str], controls: list[str],
              equilibrium: dict[str, float]) -> Linearisation:
    """A and B at (x = equilibrium, u = 0), by `derivative.jacobian` (implicit unknowns by the
    implicit function theorem, evaluated at their solution at the point).

    `dynamics` and the implicit residuals must keep the controls as free symbols (open loop)."""
    x = [ir.state_symbol(s) for s in states]
    u = [sp.Symbol(c, real=True) for c in controls]
    f = [dynamics[s] for s in states]
    point: dict[sp.Symbol, sp.Expr] = {ir.state_symbol(s): sp.Float(equilibrium[s]) for s in states}
    point.update({symbol: sp.Integer(0) for symbol in u})
    point.update(_implicit_values(implicits, point))
    a = _at_point(jacobian(f, x, implicits), point)
    b = _at_point(jacobian(f, u, implicits), point)
    rates = sp.Matrix(f).xreplace(point)
    for matrix in (a, b, rates):
        if matrix.atoms(AppliedUndef) or matrix.free_symbols:
            raise ValueError("the dynamics do not reduce to numbers at the equilibrium")
        if not all(v.is_real and v.is_finite for v in matrix):
            raise ValueError("the dynamics or their derivatives are not finite real numbers at the equilibrium")
    return Linearisation([[float(v) for v in a.row(i)] for i in range(a.rows)],
                         [[float(v) for v in b.row(i)] for i in range(b.rows)], [float(v) for v in rates])


KINKS = (sp.Heaviside, sp.DiracDelta, sp.sign)   # the derivatives of max, min, sign and abs


def _at_point(derivatives: sp.Matrix, point: dict[sp.Symbol, sp.Expr]) -> sp.Matrix:
    """`derivatives` at `point`; a ValueError where one depends on a kink at the point: a Heaviside,
    DiracDelta or sign (the derivatives of max, min, abs and sign) of a quantity that is 0 there,
    or a `where` on its boundary there whose sides differ (the one-sided derivatives differ, and
    SymPy's Heaviside(0) = 1/2 or the piece that happens to hold would be a silent choice). A kink
    whose term vanishes there (the derivative of v*abs(v), max(x, 0)^2) is no obstacle."""
    undecided: set[sp.Symbol] = set()

    def kink() -> sp.Symbol:
        symbol = sp.Dummy("kink")       # its value at the point is not decided
        undecided.add(symbol)
        return symbol

    def at_kink(function):
        def rebuild(argument, *rest):
            return kink() if argument.xreplace(point).is_zero else function(argument, *rest)
        return rebuild

    def at_piecewise(*pieces):
        """The value of the piece that holds at the point, or of every piece up to it whose
        condition is on its boundary there, when they agree."""
        values = []
        for value, condition in (piece.args for piece in pieces):
            boundary = isinstance(condition, sp.core.relational.Relational) and \
                (condition.lhs - condition.rhs).xreplace(point).is_zero
            held = condition.xreplace(point)
            if held not in (sp.true, sp.false) and not boundary:
                return sp.Piecewise(*pieces)        # not decided by the point alone
            if boundary or held == sp.true:
                values.append(value.xreplace(point))
            if held == sp.true and not boundary:
                break
        return values[0] if all((v - values[0]).is_zero for v in values[1:]) else kink()

    for function in KINKS:
        derivatives = derivatives.replace(function, at_kink(function))
    values = derivatives.replace(sp.Piecewise, at_piecewise).xreplace(point)
    if any(entry.free_symbols & undecided for entry in values):
        raise ValueError("they are not differentiable at the point (min, max, abs, sign or where of a quantity "
                         "that is 0 there)")
    return values


def _implicit_values(implicits: list[ir.Implicit], point: dict[sp.Symbol, sp.Expr]) -> dict[sp.Symbol, sp.Expr]:
    """The implicit unknowns solved at the point (in order: later equations may use earlier unknowns)."""
    values: dict[sp.Symbol, sp.Expr] = {}
    for implicit in implicits:
        residual = [r.xreplace(point).xreplace(values) for r in implicit.residual]
        if any(s not in implicit.unknowns for r in residual for s in r.free_symbols):
            continue   # depends on something that is not fixed at the point: left symbolic
        try:
            solution = sp.nsolve(residual, implicit.unknowns, [0.0] * len(implicit.unknowns), tol=1e-14)
        except (ValueError, ZeroDivisionError, TypeError, NotImplementedError) as err:
            raise ValueError(f"cannot solve '{implicit.name}' at the equilibrium ({err})") from None
        values.update({u: sp.Float(float(v)) for u, v in zip(implicit.unknowns, solution)})
    return values

"""Every symbolic derivative the compiler takes: `d(expr, name)`, the linearisation of the
dynamics (LQR) and the forward-sensitivity equations of design studies. Implicit unknowns follow
by the implicit function theorem; lets, controls and defs are substituted before; a net's
derivative (not symbolic) and a point of the solution that moves with the variable (a state
differentiated by a param: a sensitivity) are ValueErrors, which callers turn into located errors."""
from __future__ import annotations

import sympy as sp

from . import ir
from .split_dynamics import TieMax, TieMin, guarded, torch_min_max, unguarded

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


def total_derivative(expr: sp.Expr, wrt: sp.Symbol, implicits: list[ir.Implicit],
                     moving: dict[sp.Symbol, str] | None = None) -> sp.Expr:
    """d expr / d wrt, where implicit unknowns in expr move with wrt. `moving` maps the symbols
    that depend on wrt in a way that is not symbolic (states along the solution) to their text:
    one in expr, or in an equation it uses, is an error, never a silent 0."""
    used = [i for i in implicits if expr.free_symbols & set(i.unknowns) or _feeds(i, implicits, expr)]
    _not_moving(expr, used, wrt, moving or {})
    derivatives = _implicit_derivatives(wrt, used) if used else {}
    result = sp.diff(expr, wrt) + sum(sp.diff(expr, u) * du for u, du in derivatives.items())
    if result.has(sp.Derivative) or result.has(sp.Subs):
        raise ValueError("it depends on a net, whose derivative is not symbolic")
    return result


def spec_derivative(expr: sp.Expr, wrt: sp.Symbol, implicits: list[ir.Implicit],
                    moving: dict[sp.Symbol, str]) -> sp.Expr:
    """The spec's `d(expr, wrt)`: `total_derivative` with autograd's conventions where SymPy has
    distributions (the generated code prints neither): min and max pass the derivative of the
    argument they select, half of each at a tie (TieMin, TieMax), sign's derivative is 0 (no DiracDelta),
    atan2's is 0 at the origin and a power's as torch's (split_dynamics.guarded)."""
    result = unguarded(total_derivative(guarded(torch_min_max(expr)), wrt, implicits, moving))
    return result.replace(TieMax, sp.Max).replace(TieMin, sp.Min)   # the torch printer's min and max


def _feeds(implicit: ir.Implicit, implicits: list[ir.Implicit], expr: sp.Expr) -> bool:
    """Whether `implicit` is used by expr through a later implicit's equation."""
    later = implicits[implicits.index(implicit) + 1:]
    return any(expr.free_symbols & set(j.unknowns) and any(r.free_symbols & set(implicit.unknowns)
                                                           for r in j.residual) for j in later)


def residual_jacobian(residual: list[sp.Expr], unknowns: list[sp.Symbol]) -> list[list[sp.Expr]]:
    """∂φ/∂y of an implicit equation: the partial derivative, the unknowns' own (the IFT's matrix)."""
    return [[sp.diff(r, u) for u in unknowns] for r in residual]


def jacobian(exprs: list[sp.Expr], wrts: list[sp.Symbol], implicits: list[ir.Implicit]) -> sp.Matrix:
    """∂exprs/∂wrts (one row per expression), each entry a `total_derivative`."""
    return sp.Matrix([[total_derivative(e, w, implicits) for w in wrts] for e in exprs])


def _not_moving(expr: sp.Expr, used: list[ir.Implicit], wrt: sp.Symbol, moving: dict[sp.Symbol, str]) -> None:
    symbols = set(expr.free_symbols)
    for implicit in used:
        symbols.update(*(r.free_symbols for r in implicit.residual))
    found = sorted(moving[s] for s in symbols & set(moving) if s != wrt)
    if found:
        raise ValueError(f"'{found[0]}' is a value of the solution, which changes with '{wrt}' in a way "
                         "that is not symbolic; d() does not compute sensitivities of the dynamics "
                         "(it treats states as independent only in d(expr, state))")


def solution_symbols(states: list[str], accumulated: list[str], wrt: sp.Symbol) -> dict[sp.Symbol, str]:
    """The symbols that move with a param along the solution: states at any time, and the final
    values of integrals/totals (`accumulated`). Differentiating by a state, the states at the same
    time are independent variables (a partial derivative); their initial and final values are not."""
    found: dict[sp.Symbol, str] = {}
    for name in states:
        found[ir.state_symbol(name)] = name
        found[ir.initial_symbol(name)] = f"{name}(0)"
        found[ir.final_symbol(name)] = f"{name}(T)"
    found.update({ir.final_symbol(name): "an integral or total" for name in accumulated})
    if wrt in found and found[wrt] in states:
        found = {s: text for s, text in found.items() if text not in states}
    return found

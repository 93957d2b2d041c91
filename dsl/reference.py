"""`reference lqr(Q=..., R=..., max_ratio=...) at state=value, ...`: a reference solution the
runtime computes from the spec (an LQR controller of the linearised dynamics)."""
from __future__ import annotations

from . import ast
from .check import CheckedSpec
from .errors import did_you_mean
from .expressions import ExpressionChecks
from .settings import literal

REFERENCES = ("lqr",)
LQR_OPTIONS = ("Q", "R", "max_ratio")


def check_reference(checker: ExpressionChecks, reference: ast.ReferenceStmt, out: CheckedSpec) -> None:
    """The reference call, its options and its equilibrium."""
    call = reference.call
    if call.func != "lqr":
        raise checker.error(f"unknown reference '{call.func}'", call.func_span,
                            did_you_mean(call.func, REFERENCES) or "available: " + ", ".join(REFERENCES))
    if call.args:
        raise checker.error("give the weights by name: lqr(Q=..., R=...)", call.args[0].span)
    options = {k.name: k for k in call.kwargs}
    for k in call.kwargs:
        if k.name not in LQR_OPTIONS:
            raise checker.error(f"unknown option '{k.name}' for lqr()", k.span,
                                did_you_mean(k.name, LQR_OPTIONS) or "options: " + ", ".join(LQR_OPTIONS))
    for required in ("Q", "R"):
        if required not in options:
            raise checker.error(f"lqr() needs {required}=...", call.span,
                                "Q weighs the states, R the controls: lqr(Q=diag(...), R=...)")
    _check_problem(checker, reference, out)
    shaped = any(b.shape for b in out.states.values()) or any(out.lets[n].shape for n in out.controls if n in out.lets)
    sizes = (None, None) if shaped else (len(out.states), len(out.controls))   # entries: counted by the compiler
    check_matrix(checker, options["Q"].value, sizes[0], "Q (one row per state)")
    check_matrix(checker, options["R"].value, sizes[1], "R (one row per control)")
    if "max_ratio" in options:
        value = literal(options["max_ratio"].value, checker.error)
        if not isinstance(value, (int, float)) or value < 1:
            raise checker.error("max_ratio must be a number >= 1", options["max_ratio"].value.span)
    _check_equilibrium(checker, reference, out)


def _check_problem(checker: ExpressionChecks, reference: ast.ReferenceStmt, out: CheckedSpec) -> None:
    """An LQR reference needs controls and a fixed horizon."""
    if not out.controls:
        raise checker.error("an LQR reference needs a 'control'", reference.span)
    if not out.horizon:
        raise checker.error("an LQR reference needs a fixed 'horizon'", reference.span)


def _check_equilibrium(checker: ExpressionChecks, reference: ast.ReferenceStmt, out: CheckedSpec) -> None:
    """`at x=0, v=0`: constant values of states, each given once."""
    seen = set()
    for name, value, span in reference.at:
        kind = checker.kinds.get(name)
        if kind != "state":
            raise checker.error(f"the equilibrium ('at') gives states, but '{name}' is "
                                + (f"a {kind}" if kind else "not declared"), span,
                                "controls are 0 at the equilibrium" if kind == "control"
                                else did_you_mean(name, out.states) or "states: " + ", ".join(out.states))
        if name in seen:
            raise checker.error(f"'{name}' is given twice", span)
        seen.add(name)
        checker.check_expr(value, "equilibrium", {"const"})


def check_matrix(checker: ExpressionChecks, expr: ast.Expr, size: int | None, what: str) -> None:
    """A size x size constant matrix: diag(...), [[...], ...], or one value when size is 1 (size
    None: any size, which the compiler checks against the entries of shaped states and controls)."""
    if size is None:
        rows = [r.items if isinstance(r, ast.Array) else [r] for r in expr.items] if isinstance(expr, ast.Array) \
            else [expr.args] if isinstance(expr, ast.Call) and expr.func == "diag" else [[expr]]
        for e in (e for row in rows for e in row):
            checker.check_expr(e, "a matrix entry", {"const"})
        return
    if isinstance(expr, ast.Call) and expr.func == "diag":
        if len(expr.args) != size:
            raise checker.error(f"{what}: diag() needs {size} entries, got {len(expr.args)}", expr.span)
        entries = list(expr.args)
    elif isinstance(expr, ast.Array):
        rows = [r.items if isinstance(r, ast.Array) else None for r in expr.items]
        if len(rows) != size or any(r is None or len(r) != size for r in rows):
            raise checker.error(f"{what}: expected a {size}x{size} matrix", expr.span)
        entries = [e for r in rows for e in r]
    elif size == 1:
        entries = [expr]
    else:
        raise checker.error(f"{what}: expected diag(...) or a {size}x{size} matrix", expr.span)
    for e in entries:
        checker.check_expr(e, "a matrix entry", {"const"})

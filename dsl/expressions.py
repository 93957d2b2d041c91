"""Resolving expressions: every name and call an expression uses, against the kinds of names
the place allows (`check_expr`), and which part of an expression varies along a trajectory.

A kind adds names and functions of its own with `register_name_check` and `register_call_check`
(a Bayesian design study's `information_gain` and `var(theta)`, dsl/bayes_design.py).
"""
from __future__ import annotations

from typing import Callable

from . import ast
from .errors import did_you_mean
from .functions import CONSTANTS, FINAL_TIME, FUNCTIONS, TIME, TRAJECTORY
from .walk import children, index_bounds, walk

NameCheck = Callable[["ExpressionChecks", str, ast.Span, str, set[str]], None]   # (checker, name, span, where, allowed)
CallClaim = Callable[["ExpressionChecks", ast.Call], bool]
CallCheck = Callable[["ExpressionChecks", ast.Call, str, set[str], set[str]], None]   # (..., where, allowed, local)

NAME_CHECKS: dict[str, NameCheck] = {}
CALL_CHECKS: list[tuple[CallClaim, CallCheck]] = []


def register_name_check(names: set[str] | frozenset[str], check: NameCheck) -> None:
    """Names a kind gives a meaning to (not declared in the spec): `check` validates each use."""
    for name in names:
        NAME_CHECKS[name] = check


def register_call_check(claims: CallClaim, check: CallCheck) -> None:
    """Calls a kind handles itself: for a call `claims` accepts, `check` replaces the usual checks."""
    CALL_CHECKS.append((claims, check))


class ExpressionChecks:
    """The checker's expression methods (mixed into dsl.checker.Checker, which gives the state)."""

    kinds: dict[str, str]
    follows: dict[str, str | None]
    spec: ast.Spec
    error: Callable

    def check_expr(self, expr: ast.Expr, where: str, allowed: set[str], local: set[str] = frozenset(),
                   comparison_ok: bool = False) -> None:
        """Resolve every name and call in expr; `allowed` lists the kinds of names it may use."""
        if isinstance(expr, ast.Name):
            self.check_name(expr.id, expr.span, where, allowed, local)
        elif isinstance(expr, ast.Call):
            self.check_call(expr, where, allowed, local)
        elif isinstance(expr, ast.Index):
            self.check_expr(expr.operand, where, allowed, local)
            for bound in index_bounds(expr):
                self.check_index(bound)
        elif isinstance(expr, ast.Compare) and not comparison_ok:
            raise self.error(f"a comparison cannot be used as a value in {where}", expr.span,
                             "comparisons belong in 'stop when', 'expect' and where(cond, a, b)")
        else:
            for child in children(expr):
                self.check_expr(child, where, allowed, local)

    def check_index(self, expr: ast.Expr) -> None:
        """An index or slice bound: a constant integer made of numbers, consts and + - * /."""
        for part in walk(expr):
            if isinstance(part, ast.Name) and self.kinds.get(part.id) == "const":
                continue
            if not isinstance(part, (ast.Number, ast.BinOp, ast.Neg)) or isinstance(part, ast.BinOp) and part.op == "@":
                raise self.error("an index must be a constant integer", part.span,
                                 "use numbers and consts, e.g. x[0], x[n - 1], A[:, 1:3]")

    def check_name(self, name: str, span: ast.Span, where: str, allowed: set[str], local: set[str]) -> None:
        """A name used in an expression: declared, and of a kind `allowed` here."""
        if name in local or name in CONSTANTS:
            return
        if name in NAME_CHECKS:
            NAME_CHECKS[name](self, name, span, where, allowed)
            return
        if name == TIME:
            kind = "time"
        elif name == FINAL_TIME:
            kind = "final_time"
        elif name in FUNCTIONS and name not in self.kinds:
            raise self.error(f"'{name}' is a function; call it as {name}(...)", span)
        else:
            kind = self.kinds.get(name)
        if kind is None:
            raise self.error(f"undefined name '{name}'", span,
                             did_you_mean(name, list(self.kinds) + list(local) + [TIME, FINAL_TIME, "pi"])
                             or "declare it with const, param, state, let or control")
        if kind in ("def", "net"):
            raise self.error(f"'{name}' is a {kind}; call it with arguments", span)
        if kind not in allowed:
            meaning = {"time": "the time t", "final_time": "the final time T"}.get(kind, f"the {kind} '{name}'")
            raise self.error(f"{meaning} cannot be used in {where}", span)

    def check_call(self, call: ast.Call, where: str, allowed: set[str], local: set[str]) -> None:
        """A call: a built-in function, a state at a time, a def or a net, or a kind's own call."""
        name = call.func
        if call.kwargs:
            raise self.error(f"{name}() takes no 'name=value' arguments", call.kwargs[0].span)
        for claims, check in CALL_CHECKS:
            if claims(self, call):
                check(self, call, where, allowed, local)
                return
        kind = self.kinds.get(name)
        if name in FUNCTIONS and name not in local and name not in self.kinds:
            self.check_builtin_call(call, where, allowed, local)
        elif kind == "state":
            self.check_state_at(call, allowed)
        elif kind in ("def", "net"):
            self.check_user_call(call, kind, where, allowed, local)
        elif kind is not None:
            raise self.error(f"'{name}' is a {kind}, not a function", call.func_span)
        else:
            candidates = list(FUNCTIONS) + [n for n, k in self.kinds.items() if k in ("def", "net")]
            raise self.error(f"unknown function '{name}'", call.func_span,
                             did_you_mean(name, candidates) or "see the function table in docs/language.md")

    def check_builtin_call(self, call: ast.Call, where: str, allowed: set[str], local: set[str]) -> None:
        """A function of dsl/functions.py: its number of arguments and where it may be used."""
        name, nargs = call.func, len(call.args)
        low, high = FUNCTIONS[name]
        if nargs < low or (high is not None and nargs > high):
            want = f"{low}" if low == high else f"at least {low}"
            raise self.error(f"{name}() takes {want} argument{'s' if low != 1 else ''}, got {nargs}", call.span)
        if name in TRAJECTORY:
            if "trajectory" not in allowed:
                raise self.error(f"{name}(...) can only be used in an objective or expect", call.span)
            inner = allowed - {"trajectory", "final_time"} if name == "integral" else allowed
            self.check_expr(call.args[0], where, inner, local)
            return
        if name == "randn" and where != "param":
            raise self.error("randn() draws initial values: use it in a 'param' declaration", call.span)
        if name == "d":
            target = call.args[1]
            if not isinstance(target, ast.Name) or self.kinds.get(target.id) not in ("param", "state"):
                raise self.error("d(expr, name) differentiates with respect to a param or a state",
                                 target.span, "e.g. d(y, a) with 'param a'")
        for i, a in enumerate(call.args):
            self.check_expr(a, where, allowed, local, comparison_ok=(name == "where" and i == 0))
        if name == "where" and not isinstance(call.args[0], ast.Compare):
            raise self.error("where() needs a comparison first: where(cond, a, b)", call.args[0].span)

    def check_state_at(self, call: ast.Call, allowed: set[str]) -> None:
        """`x(0)`, `x(T)` or, in a design study, `x(tobs)`: a state at a time."""
        name = call.func
        if "trajectory" not in allowed:
            raise self.error(f"'{name}(...)' (a state at a time) can only be used in an objective or expect",
                             call.span, f"use '{name}' for its current value")
        arg = call.args[0] if len(call.args) == 1 else None
        ok = isinstance(arg, ast.Name) and arg.id == FINAL_TIME or isinstance(arg, ast.Number) and arg.value == 0
        if not ok and not (isinstance(arg, ast.Name) and self.kinds.get(arg.id) == "design"):
            raise self.error(f"a state can be taken at 0 or at T: {name}(0) or {name}(T)", call.span,
                             "or, in a design study, at a design time")

    def check_user_call(self, call: ast.Call, kind: str, where: str, allowed: set[str], local: set[str]) -> None:
        """A call of a def or a net: its number of arguments, and nets only where they may run."""
        name, nargs = call.func, len(call.args)
        expected = len(self.spec_def(name).params) if kind == "def" else len(self.spec_net(name).inputs)
        if nargs != expected:
            raise self.error(f"{kind} '{name}' takes {expected} argument{'s' if expected != 1 else ''}, "
                             f"got {nargs}", call.span)
        if kind == "net" and "net" not in allowed:
            raise self.error(f"net '{name}' cannot be used in {where}", call.span)
        for a in call.args:
            self.check_expr(a, where, allowed, local)

    def spec_def(self, name: str) -> ast.DefStmt:
        """The `def` statement of `name`."""
        return next(s for s in self.spec.statements if isinstance(s, ast.DefStmt) and s.name == name)

    def spec_net(self, name: str) -> ast.NetStmt:
        """The `net` statement of `name`."""
        return next(s for s in self.spec.statements if isinstance(s, ast.NetStmt) and s.name == name)

    def varying(self, expr: ast.Expr, local: frozenset[str] = frozenset()
                ) -> tuple[ast.Name | ast.Call, str] | None:
        """The first part of expr that changes along a trajectory, with the state (or t) it follows.

        States at a time (x(0), x(T)) and integral(...) are fixed; lets, controls and defs vary
        as recorded in `self.follows`.
        """
        if isinstance(expr, ast.Name) and expr.id not in local:
            if self.kinds.get(expr.id) == "state" or expr.id == TIME:
                return expr, expr.id
            return (expr, self.follows[expr.id]) if self.follows.get(expr.id) else None
        if isinstance(expr, ast.Call) and (expr.func in ("integral", "total") or self.kinds.get(expr.func) == "state"):
            return None
        for child in children(expr):
            found = self.varying(child, local)
            if found:
                return found
        if isinstance(expr, ast.Call) and self.follows.get(expr.func):
            return expr, self.follows[expr.func]
        return None

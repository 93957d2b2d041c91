"""Lower a checked spec to the SymPy IR.

Expressions are built from the syntax tree with SymPy constructors and the fixed function table
only — spec text never reaches sympify/parse_expr/eval. Consts become exact numbers, defs and
lets are substituted inline, `integral(...)` becomes an extra state of the ODE.
"""
from __future__ import annotations

import math
from typing import Callable

import sympy as sp

from ..dsl import ast
from ..dsl.check import CheckedSpec
from ..dsl.errors import SpecError
from . import ir
from .design import DesignLowering
from .functions import COMPARISONS, CONSTANTS, ELEMENTWISE, batch_mean
from .linearize import linearize

INTEGRAL_PREFIX = "integral_"


class _Lowering:
    def __init__(self, checked: CheckedSpec) -> None:
        self.checked = checked
        self.env: dict[str, sp.Expr] = dict(CONSTANTS)
        self.nets = {name: sp.Function(name) for name in checked.nets}
        self.integrals: dict[str, sp.Expr] = {}   # integral state name -> integrand
        self.design: DesignLowering | None = None   # a sequential design study (compiler/design.py)

    def error(self, message: str, span: ast.Span, hint: str | None = None) -> SpecError:
        spec = self.checked.spec
        return SpecError(message, span, spec.source, spec.filename, hint)

    # -- expressions
    def expr(self, node: ast.Expr, local: dict[str, sp.Expr] | None = None,
             at_time: Callable[[str, ast.Call], sp.Expr] | None = None) -> sp.Expr:
        """SymPy expression of an AST expression. `at_time` lowers `x(T)`, `integral(.)`, `mean(.)`."""
        local = local or {}

        def go(n: ast.Expr) -> sp.Expr:
            if isinstance(n, ast.Number):
                return sp.Integer(int(n.value)) if n.value.is_integer() and abs(n.value) < 2**53 \
                    else sp.Float(n.text if "." in n.text or "e" in n.text.lower() else n.value, 17)
            if isinstance(n, ast.Name):
                if n.id in local:
                    return local[n.id]
                if n.id == "t":
                    return ir.TIME
                if n.id == "T":
                    return self.final_time()
                return self.env[n.id]
            if isinstance(n, ast.Neg):
                return -go(n.operand)
            if isinstance(n, ast.BinOp):
                a, b = go(n.left), go(n.right)
                if n.op == "+":
                    return a + b
                if n.op == "-":
                    return a - b
                if n.op == "*":
                    return a * b
                if n.op == "/":
                    if b == 0:
                        raise self.error("division by zero", n.span)
                    return a / b
                return self.power(a, b, n.span)
            if isinstance(n, ast.Compare):
                return COMPARISONS[n.op](go(n.left), go(n.right))
            if isinstance(n, ast.Call):
                return self.call(n, go, at_time)
            raise self.error("this expression is not supported here", n.span)

        return go(node)

    def power(self, base: sp.Expr, exponent: sp.Expr, span: ast.Span) -> sp.Expr:
        """base^exponent; numeric powers are kept exact only while small, else folded to a float."""
        if base.is_Number and exponent.is_Number and not (exponent.is_Integer and abs(exponent) <= 64
                                                          and abs(base) < 2**64):
            try:
                value = float(base) ** float(exponent)
            except (OverflowError, ZeroDivisionError):
                value = math.inf
            if not isinstance(value, float) or not math.isfinite(value):
                raise self.error("this power is not a finite real number", span)
            return sp.Float(value, 17)
        return base ** exponent

    def call(self, n: ast.Call, go, at_time) -> sp.Expr:
        args = [go(a) for a in n.args] if n.func not in ("integral", "mean", "sens") and n.func not in \
            self.checked.states else []
        if n.func in self.checked.defs:
            d = self.checked.defs[n.func]
            return self.expr(d.body, dict(zip(d.params, args)))
        if n.func in self.nets:
            return self.nets[n.func](*args)
        if n.func in ELEMENTWISE:
            return ELEMENTWISE[n.func](*args)
        if at_time is None:  # checker guarantees trajectory calls only occur where at_time is given
            raise self.error(f"{n.func}(...) is not allowed here", n.span)
        return at_time(n.func, n)

    def final_time(self) -> sp.Expr:
        horizon = self.checked.horizon
        return self.constant(horizon.value, "horizon") if horizon else ir.FINAL_TIME

    def constant(self, node: ast.Expr, what: str) -> sp.Expr:
        value = self.expr(node)
        if value.free_symbols:
            raise self.error(f"{what} must be a constant", node.span)
        if not value.is_real or not value.is_finite:
            raise self.error(f"{what} is not a finite real number ({value})", node.span)
        return value

    # -- terminal expressions (objective, expects)
    def terminal(self, node: ast.Expr, at: str | None) -> sp.Expr:
        """An expression over the whole trajectory: states at 0/T, integrals, batch means."""
        states = self.checked.states

        def at_time(func: str, call: ast.Call) -> sp.Expr:
            if func in states:
                arg = call.args[0]
                return ir.initial_symbol(func) if isinstance(arg, ast.Number) else ir.final_symbol(func)
            if func == "integral":
                name = f"{INTEGRAL_PREFIX}{len(self.integrals)}"
                self.integrals[name] = self.expr(call.args[0])
                return ir.final_symbol(name)
            if self.design and self.design.handles(call):
                return self.design.call(call, at_time)
            inner = self.expr(call.args[0], at_time=at_time)  # mean
            return batch_mean(self.pointwise_to_final(inner) if at else inner)

        value = self.expr(node, at_time=at_time)
        if at is not None:
            value = self.pointwise_to_final(value)
        return value

    def pointwise_to_final(self, value: sp.Expr) -> sp.Expr:
        subs = {ir.state_symbol(s): ir.final_symbol(s) for s in self.checked.states}
        subs[ir.TIME] = self.final_time()
        return value.xreplace(subs)

    # -- the whole problem
    def run(self) -> ir.Problem:
        c = self.checked
        for name, b in c.consts.items():
            self.env[name] = self.constant(b.value, f"const '{name}'")
        params = {}
        for name, b in c.params.items():
            if b.distribution is None:   # uncertain params are declared by the design study
                params[name] = float(self.constant(b.value, f"param '{name}'"))
            self.env[name] = sp.Symbol(name, real=True)
        if c.observation:
            self.design = DesignLowering(self)
            params.update(self.design.declare())
        for name in c.states:
            self.env[name] = ir.state_symbol(name)
        initial: dict[str, sp.Expr | ir.Distribution] = {}
        for name, b in c.states.items():
            if b.distribution is not None:
                a, bb = (float(self.constant(x, "distribution parameter")) for x in b.distribution.args)
                if b.distribution.func == "normal" and bb < 0:
                    raise self.error("normal(mean, std) needs std >= 0", b.distribution.args[1].span)
                if b.distribution.func == "uniform" and bb <= a:
                    raise self.error("uniform(low, high) needs low < high", b.distribution.span)
                initial[name] = ir.Distribution(b.distribution.func, a, bb)
            else:
                initial[name] = self.expr(b.value)
        for name, s in c.lets.items():
            self.env[name] = self.expr(s.value)
        dynamics = {name: self.expr(c.ders[name].value) for name in c.states}
        controls = {name: self.env[name] for name in c.controls}
        if self.design:
            self.design.lower_observation()   # defines information_gain for the objective and expects

        obj = c.objective
        objective = ir.Objective(obj.sense, self.terminal(obj.expr, obj.at), _text(c, obj.expr))
        expectations = [self.expectation(e) for e in c.expects]

        stop = None
        if c.stop:
            cond = c.stop.condition
            lhs, rhs = self.expr(cond.left), self.expr(cond.right)
            function = lhs - rhs if cond.op in (">", ">=") else rhs - lhs
            max_time = float(self.constant(c.stop.max_time, "the stop time limit"))
            if max_time <= 0:
                raise self.error("the stop time limit must be positive", c.stop.max_time.span)
            stop = ir.StopEvent(function, max_time, _text(c, cond))
        horizon = None
        if c.horizon:
            horizon = float(self.constant(c.horizon.value, "horizon"))
            if horizon <= 0:
                raise self.error("the horizon must be positive", c.horizon.value.span)

        self.check_batch_reduction(objective, c.objective.span)
        references = [self.lqr(r, horizon) for r in c.references]
        plots = [self.plot(p) for p in c.plots]
        dynamics.update(self.integrals)
        for name in self.integrals:
            initial[name] = sp.Integer(0)
        study = None
        if self.design:   # sensitivity states; time rescaled to end at the observation time (s in [0, 1])
            study = self.design.finish(dynamics, initial, objective, expectations)
            horizon = 1.0 if dynamics else None
        return ir.Problem(
            name=c.name, title=c.title, states=list(dynamics), initial=initial, params=params,
            nets={n: ir.Net(n, stmt.inputs, opts) for n, (stmt, opts) in c.nets.items()},
            dynamics=dynamics, controls=controls, horizon=horizon, stop=stop, objective=objective,
            expectations=expectations, ode=c.ode, training=c.training, batch=c.batch, user_states=list(c.states),
            references=references, plots=plots, design=study,
        )

    def range(self, low: ast.Expr, high: ast.Expr, span: ast.Span) -> tuple[float, float]:
        bounds = float(self.constant(low, "range")), float(self.constant(high, "range"))
        if bounds[1] <= bounds[0]:
            raise self.error("a range must be increasing: [low, high] with low < high", span)
        return bounds

    def plot(self, p: ast.PlotStmt) -> ir.Plot:
        low, high = self.range(p.low, p.high, p.span)
        return ir.Plot([self.expr(e) for e in p.exprs], [_text(self.checked, e) for e in p.exprs],
                       (p.var, low, high))

    def open_loop_dynamics(self) -> dict[str, sp.Expr]:
        """The dynamics with each control kept as a free symbol (for linearisation)."""
        c = self.checked
        closed_env = self.env
        self.env = dict(closed_env)
        try:
            for name, s in c.lets.items():
                self.env[name] = sp.Symbol(name, real=True) if s.kind == "control" else self.expr(s.value)
            return {name: self.expr(c.ders[name].value) for name in c.states}
        finally:
            self.env = closed_env

    def lqr(self, r: ast.ReferenceStmt, horizon: float) -> ir.LqrReference:
        c = self.checked
        options = {k.name: k.value for k in r.call.kwargs}
        equilibrium = {name: 0.0 for name in c.states}
        for name, value, _ in r.at:
            equilibrium[name] = float(self.constant(value, "equilibrium value"))
        try:
            A, B = linearize(self.open_loop_dynamics(), list(c.states), c.controls, equilibrium)
        except ValueError as err:
            raise self.error(f"cannot linearise the dynamics: {err}", r.span,
                             "the dynamics must not call nets except through controls") from None
        max_ratio = float(self.constant(options["max_ratio"], "max_ratio")) if "max_ratio" in options else None
        return ir.LqrReference(self.matrix(options["Q"]), self.matrix(options["R"]),
                               [equilibrium[s] for s in c.states], A, B, max_ratio, _text(c, r.call))

    def matrix(self, node: ast.Expr) -> list[list[float]]:
        """A constant matrix from diag(...), [[...]] or a single value (shapes checked already)."""
        if isinstance(node, ast.Call):
            values = [float(self.constant(a, "matrix entry")) for a in node.args]
            return [[values[i] if i == j else 0.0 for j in range(len(values))] for i in range(len(values))]
        if isinstance(node, ast.Array):
            return [[float(self.constant(e, "matrix entry")) for e in row.items] for row in node.items]
        return [[float(self.constant(node, "matrix entry"))]]

    def expectation(self, e: ast.ExpectStmt) -> ir.Expectation:
        c = self.checked
        if e.over:
            var, low, high = e.over
            left, right = self.expr(e.left), self.expr(e.right)
            over = (var, *self.range(low, high, e.over_span))
        else:
            left, right = self.terminal(e.left, e.at), self.terminal(e.right, e.at)
            over = None
        return ir.Expectation(_text(c, e).removeprefix("expect").strip(), e.op, left, right, e.tolerance,
                              e.relative, e.rms, over, e.span)

    def check_batch_reduction(self, objective: ir.Objective, span: ast.Span) -> None:
        if self.checked.batch == 1:
            return
        outside = objective.expr.replace(lambda x: isinstance(x, batch_mean), lambda x: sp.Integer(0))
        per_trajectory = {ir.initial_symbol(s) for s in self.checked.states} | \
                         {ir.final_symbol(s) for s in self.checked.states}
        if outside.free_symbols & per_trajectory:
            raise self.error("with a batch, the objective must be reduced: wrap it in mean(...)", span)


def _text(checked: CheckedSpec, node) -> str:
    """The source text of a node (single line)."""
    span = node.span
    lines = checked.spec.source.splitlines()
    if span.line == span.end_line:
        return lines[span.line - 1][span.column - 1: span.end_column - 1].strip()
    return lines[span.line - 1][span.column - 1:].strip() + " ..."


def lower(checked: CheckedSpec) -> ir.Problem:
    """Lower a checked spec to a `Problem` of SymPy expressions."""
    return _Lowering(checked).run()

"""The core of the lowering: declarations, objective, expects and plots of a checked spec, and
`lower`, which runs the spec's time-model lowering, then the IR passes and its study's step.

Each time model (compiler.ode, compiler.discrete) subclasses `Lowering` and registers itself in
`compiler.kinds`; each study may register a step (an IR -> IR pass) and its own calls there.
"""
from __future__ import annotations

from dataclasses import replace

import sympy as sp
from sympy.core.function import AppliedUndef

from ..dsl import ast
from ..dsl.check import CheckedSpec
from . import bounds, ir, kinds
from .constraints import constraint_functions, free_final_time
from .derivative import residual_jacobian
from .expressions import ExpressionLowering, source_text
from .functions import batch_mean
from .passes import at_final, final_values, running_costs, to_minimize
from .values import ShapeError, component_names, elementwise, entries, is_matrix, same_shape, shape, shaped, \
    show


class Lowering(ExpressionLowering):
    """Declarations and the parts every time model shares; a time model adds `run`."""

    # -- declarations
    def declare_states(self) -> dict[str, sp.Expr | ir.Distribution]:
        """State components (x or x[i]) with their initial values."""
        initial: dict[str, sp.Expr | ir.Distribution] = {}
        for name, b in self.checked.states.items():
            dims = self.dims(b.shape, b.span)
            components = component_names(name, dims)
            symbols = [ir.state_symbol(c) for c in components]
            self.env[name] = shaped(dims, symbols)
            if b.distribution is not None:
                distribution = self.distribution(b.distribution)
                initial.update({c: distribution for c in components})
            else:
                value = self.declared(name, dims, self.expr(b.value), b.value.span)
                initial.update(zip(components, entries(value)))
        self.state_components = list(initial)
        return initial

    def distribution(self, call: ast.Call) -> ir.Distribution:
        """normal(mean, std) or uniform(low, high) with constant arguments."""
        a, b = (float(self.constant(x, "distribution parameter")) for x in call.args)
        if call.func == "normal" and b < 0:
            raise self.error("normal(mean, std) needs std >= 0", call.args[1].span)
        if call.func == "uniform" and b <= a:
            raise self.error("uniform(low, high) needs low < high", call.span)
        return ir.Distribution(call.func, a, b)

    def declare_params(self) -> dict[str, ir.Param]:
        """Trainable params with their initial entries; an uncertain one is left to its study."""
        params = {}
        for name, b in self.checked.params.items():
            dims = self.dims(b.shape, b.span)
            if b.distribution is not None:   # an uncertain param: declared by the design study
                if dims:
                    raise self.error("uncertain params are scalars", b.span)
                self.env[name] = sp.Symbol(name, real=True)
                continue
            value = self.declared(name, dims, self.expr(b.value, shape_of=dims), b.value.span)
            if any(s not in self.random for e in entries(value) for s in e.free_symbols):
                raise self.error(f"the initial value of '{name}' must be constant (or use randn())", b.value.span)
            params[name] = ir.Param(name, dims, entries(value))
            symbols = [sp.Symbol(c, real=True) for c in component_names(name, dims)]
            self.env[name] = shaped(dims, symbols)
            if b.bound is not None:
                params[name] = self.bounded_param(params[name], b, symbols)
        return params

    def bounded_param(self, param: ir.Param, b: ast.Binding, symbols: list[sp.Symbol]) -> ir.Param:
        """A param with a bound: the generated code holds raw values (compiler.bounds), the spec sees
        the bounded ones; the initial values must lie strictly inside."""
        low, high = (None if v is None else float(self.constant(v, "a bound")) for v in (b.bound.low, b.bound.high))
        if low is not None and high is not None and not low < high:
            raise self.error("a bound [low, high] needs low < high", b.bound.span)
        if any(not e.is_number for e in param.initial):
            raise self.error("a bounded param starts at a number, not a random draw", b.value.span)
        values = [float(e) for e in param.initial]
        outside = next((v for v in values if not bounds.inside(v, low, high)), None)
        if outside is not None:
            raise self.error(f"the initial value {outside:g} of '{b.name}' is not inside its bound", b.value.span,
                             "a bounded param starts strictly inside (the bound itself is never reached)")
        self.env[b.name] = shaped(param.shape, [bounds.bounded(s, low, high) for s in symbols])
        raw = [sp.Float(bounds.raw_value(v, low, high)) for v in values]
        return ir.Param(param.name, param.shape, raw, (low, high))

    def stop_time_limit(self) -> float:
        """The `within T` of `stop when ...`: a positive constant (both lowering paths use it)."""
        limit = self.checked.stop.max_time
        max_time = float(self.constant(limit, "the stop time limit"))
        if max_time <= 0:
            raise self.error("the stop time limit must be positive", limit.span)
        return max_time

    def declare_named(self) -> None:
        """Lets, controls and implicit unknowns, in dependency order."""
        c = self.checked
        for name in c.order:
            if name in c.lets:
                s = c.lets[name]
                dims = self.dims(s.shape, s.span) if s.shape else None
                self.env[name] = self.declared(name, dims, self.expr(s.value), s.value.span)
            else:
                self.declare_implicit(c.implicits[name])

    def declare_implicit(self, s: ast.ImplicitStmt) -> None:
        """`solve y: lhs = rhs`: unknowns, residual and (when symbolic) its Jacobian."""
        dims = self.dims(s.shape, s.span)
        if len(dims) > 1:
            raise self.error("an implicit unknown is a scalar or a vector", s.span)
        unknowns = [sp.Symbol(c, real=True) for c in component_names(s.name, dims)]
        self.env[s.name] = sp.ImmutableMatrix(unknowns) if dims else unknowns[0]
        lhs, rhs = self.expr(s.lhs), self.expr(s.rhs)
        try:
            residual = entries(elementwise(lambda a, b: a - b, lhs, rhs))
        except ShapeError as err:
            raise self.error(f"the two sides of the equation differ: {err}", s.span) from None
        if len(residual) != len(unknowns):
            raise self.error(f"the equation has {len(residual)} entries for {len(unknowns)} unknowns", s.span)
        matrix = sp.Matrix(residual)
        opaque = any(a.free_symbols & set(unknowns) for a in matrix.atoms(AppliedUndef))
        jacobian = None if opaque else residual_jacobian(residual, unknowns)
        if jacobian is not None and all(j == 0 for row in jacobian for j in row):
            raise self.error(f"the equation does not depend on '{s.name}'", s.span)
        self.implicits.append(ir.Implicit(s.name, unknowns, residual, jacobian, self.checked.solvers[s.name],
                                          s.span.line, source_text(self.checked, s)))

    def declare_consts(self) -> None:
        """Consts: exact values in the environment."""
        for name, b in self.checked.consts.items():
            dims = self.dims(b.shape, b.span) if b.shape else None
            value = self.declared(name, dims, self.expr(b.value), b.value.span)
            if any(e.free_symbols for e in entries(value)):
                raise self.error(f"const '{name}' must be constant", b.value.span)
            self.env[name] = value

    def objective_and_expectations(self) -> tuple[ir.Objective, list[ir.Expectation]]:
        """The objective (a number) and the expects."""
        obj = self.checked.objective
        value = self.terminal(obj.expr, obj.at)
        if is_matrix(value):
            raise self.error(f"the objective must be a number, got {show(shape(value))}", obj.expr.span,
                             "reduce it, e.g. with sum(...), norm(...) or smin(...)")
        objective = ir.Objective(obj.sense, value, source_text(self.checked, obj.expr), obj.at)
        expectations = [self.expectation(e) for e in self.checked.expects]
        self.check_batch_reduction(objective, obj.span)
        return objective, expectations

    def range(self, low: ast.Expr, high: ast.Expr, span: ast.Span) -> tuple[float, float]:
        """Constant bounds low < high of `over` and `plot` ranges."""
        bounds = float(self.constant(low, "range")), float(self.constant(high, "range"))
        if bounds[1] <= bounds[0]:
            raise self.error("a range must be increasing: [low, high] with low < high", span)
        return bounds

    def range_variable(self, name: str, span: ast.Span) -> str:
        """The scalar state a range runs over."""
        if is_matrix(self.env[name]):
            raise self.error(f"a range runs over a scalar state; '{name}' is {show(shape(self.env[name]))}", span)
        return name

    def plot(self, p: ast.PlotStmt) -> ir.Plot:
        """Pointwise expressions drawn over a range."""
        low, high = self.range(p.low, p.high, p.span)
        exprs = [self.expr(e) for e in p.exprs]
        for e, node in zip(exprs, p.exprs):
            if is_matrix(e):
                raise self.error("a plot draws numbers", node.span)
        return ir.Plot(exprs, [source_text(self.checked, e) for e in p.exprs],
                       (self.range_variable(p.var, p.var_span), low, high))

    def expectation(self, e: ast.ExpectStmt) -> ir.Expectation:
        """An expect: terminal (maybe `at end`) or pointwise `over` a range."""
        c = self.checked
        if e.over:
            var, low, high = e.over
            left, right = self.expr(e.left), self.expr(e.right)
            over = (self.range_variable(var, e.over_span), *self.range(low, high, e.over_span))
        else:
            left, right = self.terminal(e.left, e.at), self.terminal(e.right, e.at)
            over = None
        if is_matrix(left) or is_matrix(right):
            try:
                left, right = (entries(v) for v in same_shape(left, right))
            except ShapeError as err:
                raise self.error(f"the two sides differ: {err}", e.span) from None
        else:
            left, right = [left], [right]
        return ir.Expectation(source_text(c, e).removeprefix("expect").strip(), e.op, left, right, e.tolerance,
                              e.relative, e.rms, over, e.span,
                              None if e.over else e.at)

    def check_batch_reduction(self, objective: ir.Objective, span: ast.Span) -> None:
        """With a batch, the objective reduces the trajectories with mean(...)."""
        if self.checked.batch == 1:
            return
        expr = objective.expr if objective.at is None else \
            at_final(objective.expr, self.state_components, self.final_time())
        outside = expr.replace(lambda x: isinstance(x, batch_mean), lambda x: sp.Integer(0))
        per_trajectory = {ir.initial_symbol(s) for s in self.state_components} | \
                         {ir.final_symbol(s) for s in self.state_components}
        if outside.free_symbols & per_trajectory:
            raise self.error("with a batch, the objective must be reduced: wrap it in mean(...)", span)


def lower(checked: CheckedSpec) -> ir.Problem:
    """Lower a checked spec to a `Problem` of SymPy expressions: the time model's lowering, then
    the passes (`at end` values, running costs to states), the study's step, and maximize ->
    minimize."""
    problem = kinds.time_model(checked.time_model).lower(checked)
    problem = replace(problem, time_model=checked.time_model, study=checked.study,
                      study_settings=dict(checked.study_settings))
    if problem.tensor is None:     # the tensor path takes `at end` values and running costs itself
        problem = running_costs(final_values(problem))
    problem = constraint_functions(free_final_time(problem))
    return to_minimize(kinds.study_step(checked.study)(problem, checked))

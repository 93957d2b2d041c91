"""The continuous-time lowering (`der(x) = ...`, and specs without states): dynamics, the stop
event, the horizon and LQR references; and the generated module of an ODE problem.
Registered as the time models "ode" and "static".
"""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from ..dsl import ast
from ..dsl.check import CheckedSpec
from ..dsl.errors import SpecError
from . import ir, kinds
from .codegen import Layout, generate_module, net_outputs
from .constraints import declare_optimal_control, direct_method, lower_constraints
from .derivative import residual_jacobian
from .expressions import source_text
from .linearize import linearize
from .lower import Lowering
from .lqr_check import equilibrium_problem, riccati_problem
from .lqr_weights import lqr_weights
from .program import Program, checks_and_plots
from .tensor_codegen import generate_tensor_module
from .tensor_lower import lower_tensor, size_rule
from .values import component_names, elementwise, entries, is_matrix, shape


class OdeLowering(Lowering):
    """Lowers a continuous-time spec (or one without states)."""

    def run(self) -> ir.Problem:
        """The problem, before the passes."""
        c = self.checked
        factory = kinds.study_lowering(c.study)
        self.study = factory(self) if factory else None
        self.declare_consts()
        params = self.declare_params()
        open_loops, free_time = declare_optimal_control(self, params)
        if self.study:
            params.update(self.study.declare())
        initial = self.declare_states()
        self.declare_named()
        dynamics = self.dynamics()
        controls = {}
        for name in [*c.controls, *c.open_loops]:
            value = self.env[name]
            controls.update(zip(component_names(name, shape(value)), entries(value)))
        if self.study:
            self.study.lower_statements()   # e.g. information_gain, for the objective and expects
        objective, expectations = self.objective_and_expectations()
        constraints = lower_constraints(self)
        stop, horizon = self.stop_event(), self.horizon()
        references = [self.lqr(r) for r in c.references]
        plots = [self.plot(p) for p in c.plots]
        problem = ir.Problem(
            name=c.name, title=c.title, states=list(dynamics), initial=initial, params=params,
            nets={n: ir.Net(n, stmt.inputs, opts, self.input_sizes(n)) for n, (stmt, opts) in c.nets.items()}
            | open_loops,
            dynamics=dynamics, controls=controls, horizon=horizon, stop=stop, objective=objective,
            expectations=expectations, ode=c.ode, training=c.training, batch=c.batch, user_states=list(dynamics),
            references=references, plots=plots, implicits=self.implicits, random_symbols=self.random,
            final_time=self.final_time(), running_costs=dict(self.integrals), constraints=constraints,
            free_time=free_time, direct=direct_method(self, constraints, dynamics))
        return self.study.finish(problem) if self.study else problem

    def dynamics(self) -> dict[str, sp.Expr]:
        """d/dt of each state component."""
        c, dynamics = self.checked, {}
        for name, b in c.states.items():
            der = c.ders[name]
            value = self.declared(f"der({name})", self.dims(b.shape, b.span), self.expr(der.value), der.value.span,
                                  f"state {name}")
            dynamics.update(zip(component_names(name, self.dims(b.shape, b.span)), entries(value)))
        return dynamics

    def stop_event(self) -> ir.StopEvent | None:
        """`stop when a > b within T`: a zero crossing of a - b."""
        c = self.checked
        if not c.stop:
            return None
        cond = c.stop.condition
        lhs, rhs = self.expr(cond.left), self.expr(cond.right)
        if is_matrix(lhs) or is_matrix(rhs):
            raise self.error("a stop condition compares numbers", cond.span)
        function = lhs - rhs if cond.op in (">", ">=") else rhs - lhs
        return ir.StopEvent(function, self.stop_time_limit(), source_text(c, cond))

    def horizon(self) -> float | None:
        """The horizon, a positive number, when the spec gives one."""
        c = self.checked
        if not c.horizon:
            return None
        horizon = float(self.constant(c.horizon.value, "horizon"))
        if horizon <= 0:
            raise self.error("the horizon must be positive", c.horizon.value.span)
        return horizon

    def open_loop_dynamics(self) -> tuple[dict[str, sp.Expr], list[ir.Implicit]]:
        """The dynamics and the implicit equations with each control kept as a free symbol (for
        linearisation)."""
        c = self.checked
        closed_env = self.env
        self.env = dict(closed_env)
        try:
            for name in c.order:
                if name in c.lets:
                    s = c.lets[name]
                    self.env[name] = self.control_symbols(name) if s.kind == "control" else self.expr(s.value)
            implicits = []
            for i in self.implicits:
                stmt = c.implicits[i.name]
                residual = entries(elementwise(lambda a, b: a - b, self.expr(stmt.lhs), self.expr(stmt.rhs)))
                jacobian = None if i.jacobian is None else residual_jacobian(residual, i.unknowns)
                implicits.append(replace(i, residual=residual, jacobian=jacobian))
            dynamics = {}
            for name, b in c.states.items():
                dims = self.dims(b.shape, b.span)
                value = self.declared(f"der({name})", dims, self.expr(c.ders[name].value), c.ders[name].value.span)
                dynamics.update(zip(component_names(name, dims), entries(value)))
            return dynamics, implicits
        finally:
            self.env = closed_env

    def control_symbols(self, name: str) -> sp.Expr:
        """A control as free symbols (one per entry) for the linearisation."""
        value = self.env[name]
        symbols = [sp.Symbol(comp, real=True) for comp in component_names(name, shape(value))]
        return sp.ImmutableMatrix(value.rows, value.cols, symbols) if is_matrix(value) else symbols[0]

    def lqr(self, r: ast.ReferenceStmt) -> ir.LqrReference:
        """Linearise at the `at` point (states and controls entry by entry), check the weights and the
        Riccati problem (compiler.lqr_check)."""
        c = self.checked
        states = [comp for s, b in c.states.items() for comp in component_names(s, self.dims(b.shape, b.span))]
        controls = [comp for u in c.controls for comp in component_names(u, shape(self.env[u]))]
        w = lqr_weights(self, r, states, controls)
        try:
            lin = linearize(*self.open_loop_dynamics(), states, controls, w.equilibrium)
        except ValueError as err:
            raise self.error(f"cannot linearise the dynamics: {err}", r.span,
                             "the dynamics must be differentiable at the point, and call nets only through controls") from None
        if problem := equilibrium_problem(lin.rates, states) or riccati_problem(lin.A, lin.B, w.Q, w.R, states):
            raise self.error(problem, r.span, "LQR linearises at the `at` point with every control 0")
        return ir.LqrReference(w.Q, w.R, [w.equilibrium[s] for s in states], lin.A, lin.B, w.max_ratio,
                               source_text(c, r.call))


def generate_tensor(problem: ir.Problem) -> Program:
    """The generated module of a problem on the tensor path."""
    layout = Layout(states=list(problem.states), params=list(problem.params.values()), nets=list(problem.nets),
                    implicits=[])
    source = generate_tensor_module(problem.tensor, list(problem.nets))
    return Program(problem, layout, source, list(problem.tensor.functions), {})


def lower_ode(checked: CheckedSpec) -> ir.Problem:
    """Lower a checked continuous-time spec (before the passes): on the tensor path or scalarised,
    by the size rule (`tensor_lower.size_rule`). A spec with a small matrix that uses a construct
    the tensor path lacks is scalarised; the scalar path reports the spec's own errors, if any."""
    rule = size_rule(checked)
    if rule == "tensor":
        return lower_tensor(checked)
    if rule == "matrix":
        try:
            return lower_tensor(checked)
        except SpecError:
            pass
    return OdeLowering(checked).run()


def generate_ode(problem: ir.Problem) -> Program:
    """The generated module of an ODE problem: dynamics, initial values, event, objective,
    controls, the study's functions (`Problem.functions`), expects and plots."""
    if problem.tensor is not None:
        return generate_tensor(problem)
    layout = Layout(states=list(problem.states), params=list(problem.params.values()), nets=list(problem.nets),
                    implicits=problem.implicits, net_outputs=net_outputs(list(problem.nets.values())), mlp_columns=True)
    functions: dict[str, tuple[list[sp.Expr], str]] = {}
    if problem.states:
        functions["dynamics"] = ([problem.dynamics[s] for s in problem.states], "stack")
        fixed_initial = [problem.initial[s] for s in problem.states
                         if not isinstance(problem.initial[s], ir.Distribution)]
        functions["initial"] = (fixed_initial, "tuple")
    if problem.stop:
        functions["event"] = ([problem.stop.function], "tuple")
    functions["objective"] = ([problem.objective.expr], "tuple")
    if problem.controls:
        functions["controls"] = (list(problem.controls.values()), "tuple")
    functions.update(problem.functions)
    fixed = set(layout.symbol_code()) - {ir.state_symbol(s) for s in problem.states} - {ir.TIME}
    ranges = checks_and_plots(problem, functions, fixed)
    return Program(problem, layout, generate_module(functions, layout), list(functions), ranges)


for _name in ("ode", "static"):
    kinds.register_time_model(_name, kinds.TimeModel(lower_ode, generate_ode))

"""Discrete-time specs: lowering of `next`, `noise`, `truth`/`estimate`, open-loop controls and
`total(...)`, and their generated functions (registered as the time model "rollout").

Everything the rollout feeds in at a step is a *column* of the generated functions' `s`
(see `ir.Discrete`): the states, the noise draws, the estimated entries and the controls. The
dynamics are lowered with every control as its column symbol (open loop), so the same `step`
function plays a planned control, a baseline input or an open-loop sequence; the closed-loop
controls are a separate function of the states. `total(expr)` is evaluated on the whole
trajectory at once after the rollout (one batched call over the steps) and summed.
"""
from __future__ import annotations

import sympy as sp

from ..dsl import ast
from ..dsl.check import CheckedSpec
from ..dsl.errors import SpecError
from . import ir, kinds
from .codegen import Layout, generate_module, net_outputs
from .lower import Lowering
from .program import Program, checks_and_plots
from .tensor_codegen import build_function, generate_tensor_module
from .tensor_discrete import (TENSOR_FUNCTIONS, declares_large, discrete_rule, lower_large_discrete,
                              lower_tensor_discrete)
from .values import Value, component_names, entries, shape, shaped

class RolloutLowering(Lowering):
    """Lowers a discrete-time spec."""

    def __init__(self, checked: CheckedSpec) -> None:
        super().__init__(checked)
        self.discrete = checked.discrete
        self.total_count = 0
        self.closed: dict[sp.Symbol, sp.Expr] = {}   # closed-loop control column -> its value

    def shape_declarations(self) -> dict[str, tuple[tuple[ast.Expr, ...], ast.Span]]:
        found = super().shape_declarations()
        d = self.discrete
        found.update({name: (s.shape, s.span) for name, s in [*d.noises.items(), *d.truths.items(),
                                                              *d.sequences.items()]})
        return found

    def total(self, call: ast.Call) -> Value:
        """total(expr) = Σ_{t=0}^{T-1} expr at step t, entry by entry (its shape is kept)."""
        inner = self.expr(call.args[0])
        components = component_names(f"{ir.TOTAL_PREFIX}{self.total_count}", shape(inner))
        self.total_count += 1
        self.totals.update(zip(components, entries(inner)))
        finals = [ir.final_symbol(c) for c in components]
        return shaped(shape(inner), finals)

    def pointwise(self, value: Value) -> Value:
        """`at end`: the closed-loop controls are taken at the final state."""
        return value.xreplace(self.closed)

    def terminal(self, node: ast.Expr, at: str | None = None) -> Value:
        """A terminal expression: the estimates are constant along a rollout (read from sT); noise
        and open-loop controls have no value at the end."""
        value = super().terminal(node, at)
        estimates = [s for name in self.discrete.truths for s in entries(self.env[name])]
        value = value.xreplace({s: ir.final_symbol(s.name) for s in estimates})
        stepwise = {s for name in [*self.discrete.noises, *self.discrete.sequences] for s in entries(self.env[name])}
        if any(e.free_symbols & stepwise for e in entries(value)):
            raise self.error("noise and open-loop controls have no value at the end of a rollout", node.span,
                             "sum them over the steps with total(...)")
        return value

    def plot(self, p: ast.PlotStmt) -> ir.Plot:
        """Pointwise: the closed-loop controls are functions of the states (so a grid can be used)."""
        plot = super().plot(p)
        plot.exprs = [e.xreplace(self.closed) for e in plot.exprs]
        return plot

    def expectation(self, e: ast.ExpectStmt) -> ir.Expectation:
        expectation = super().expectation(e)
        if expectation.over:
            expectation.left = [v.xreplace(self.closed) for v in expectation.left]
            expectation.right = [v.xreplace(self.closed) for v in expectation.right]
        return expectation

    def columns(self, name: str, shape_nodes: tuple[ast.Expr, ...], span: ast.Span) -> list[str]:
        """Declare `name` as column symbols (a noise, an estimate, a control); its components."""
        dims = self.dims(shape_nodes, span)
        components = component_names(name, dims)
        symbols = [ir.state_symbol(c) for c in components]
        self.env[name] = shaped(dims, symbols)
        return components

    def declare_truth(self, s: ast.Binding) -> ir.Estimate:
        dims = self.dims(s.shape, s.span)
        truth = self.declared(s.name, dims, self.expr(s.value), s.value.span)
        components = self.columns(s.name, s.shape, s.span)
        values = []
        for value in entries(truth):
            if value.free_symbols or not value.is_real or not value.is_finite:
                raise self.error(f"the truth of '{s.name}' must be finite real numbers", s.value.span)
            values.append(float(value))
        return ir.Estimate(s.name, components, values, self.discrete.estimates[s.name].method)

    def declare_named_discrete(self) -> dict[str, sp.Expr]:
        """Lets, implicit unknowns and controls in dependency order. Controls stay column symbols in
        the environment; their closed-loop values (earlier controls substituted) are returned."""
        c = self.checked
        closed: dict[str, sp.Expr] = {}
        for name in c.order:
            if name in c.implicits:
                self.declare_implicit(c.implicits[name])
                continue
            s = c.lets[name]
            dims = self.dims(s.shape, s.span) if s.shape else None
            value = self.declared(name, dims, self.expr(s.value), s.value.span)
            if s.kind == "let":
                self.env[name] = value
                continue
            components = component_names(name, shape(value))
            values = [e.xreplace(self.closed) for e in entries(value)]
            symbols = [ir.state_symbol(x) for x in components]
            closed.update(zip(components, values))
            self.closed.update(zip(symbols, values))
            self.env[name] = shaped(shape(value), symbols)
            self.check_causal(s, values)
        return closed

    def check_causal(self, s: ast.LetStmt, values: list[sp.Expr]) -> None:
        """A closed-loop control is computed before the controls of its step: it may not depend on
        one through an implicit equation."""
        used = set().union(*(v.free_symbols for v in values))
        for implicit in reversed(self.implicits):
            if used & set(implicit.unknowns):
                used |= set().union(*(r.free_symbols for r in implicit.residual))
        if used & set(self.closed):
            raise self.error(f"the control '{s.name}' depends on a control through an implicit equation", s.span,
                             "write the equation in terms of the states instead")

    def steps(self) -> int:
        node = self.discrete.steps.value
        value = self.constant(node, "steps")
        if not value.is_Integer or value < 1:
            raise self.error("steps must be a positive integer", node.span)
        return int(value)

    def energies(self) -> dict[str, float]:
        """The mean energy E of each open-loop control declared with `energy E`."""
        found = {}
        for name, s in self.discrete.sequences.items():
            if s.energy is not None:
                value = self.constant(s.energy, "an energy")
                if not value > 0:
                    raise self.error("an energy must be positive", s.energy.span)
                found[name] = float(value)
        return found

    def baseline(self, controls: dict[str, list[str]]) -> ir.Baseline | None:
        s = self.discrete.baseline
        if s is None:
            return None
        return ir.Baseline(s.control, controls[s.control], self.distribution(s.distribution))

    def check_played(self, step: dict[str, sp.Expr], baseline: ir.Baseline) -> None:
        """Playing the baseline replaces one control; the dynamics must not need any other."""
        d = self.discrete
        others = [name for name in [*d.sequences, *self.checked.controls] if name != baseline.control]
        for name in others:
            symbols = set(entries(self.env[name]))
            if any(value.free_symbols & symbols for value in step.values()):
                raise self.error(f"the dynamics use the control '{name}' besides '{baseline.control}', which the "
                                 "baseline replaces", d.baseline.span,
                                 f"let '{baseline.control}' carry every input, e.g. control {baseline.control} = ...")

    def run(self) -> ir.Problem:
        """The problem, before the passes (an identify study adds the least-squares model)."""
        c, d = self.checked, self.discrete
        self.declare_consts()
        params = self.declare_params()
        initial = self.declare_states()
        noises = [ir.Noise(name, self.columns(name, s.shape, s.span), self.distribution(s.distribution))
                  for name, s in d.noises.items()]
        estimates = [self.declare_truth(s) for s in d.truths.values()]
        sequences = {name: self.columns(name, s.shape, s.span) for name, s in d.sequences.items()}
        closed = self.declare_named_discrete()
        step = self.next_step()
        objective, expectations = self.objective_and_expectations()
        plots = [self.plot(p) for p in c.plots]
        controls = {**sequences, **{name: component_names(name, shape(self.env[name])) for name in c.controls}}
        baseline = self.baseline(controls)
        if baseline is not None:
            self.check_played(step, baseline)
        discrete = ir.Discrete(
            steps=self.steps(), states=list(step), noises=noises, estimates=estimates, sequences=sequences,
            controls=closed, step=step, totals=self.totals, identify=d.identify_options, baseline=baseline,
            energies=self.energies())
        return ir.Problem(
            name=c.name, title=c.title, states=discrete.columns, initial=initial, params=params,
            nets={n: ir.Net(n, stmt.inputs, opts, self.input_sizes(n)) for n, (stmt, opts) in c.nets.items()},
            dynamics=step, controls={col: ir.state_symbol(col) for col in discrete.control_columns},
            horizon=float(discrete.steps), stop=None, objective=objective, expectations=expectations, ode=c.ode,
            training=c.training, batch=c.batch, user_states=list(step), plots=plots, implicits=self.implicits,
            random_symbols=self.random, discrete=discrete, final_time=self.final_time())

    def next_step(self) -> dict[str, sp.Expr]:
        """The value at the next step of each state component."""
        c, step = self.checked, {}
        for name, b in c.states.items():
            dims = self.dims(b.shape, b.span)
            s = self.discrete.nexts[name]
            value = self.declared(f"next({name})", dims, self.expr(s.value), s.value.span)
            step.update(zip(component_names(name, dims), entries(value)))
        return step


def lower_discrete(checked: CheckedSpec) -> ir.Problem:
    """Lower a checked discrete-time spec (before the passes). A spec that declares a matrix also
    gets its step, controls, totals and objective as tensor code where the tensor path supports
    it (compiler.tensor_discrete); else they stay scalarised. A spec with a declaration above the
    scalar entry limit is lowered as tensors only."""
    if declares_large(checked):
        return lower_large_discrete(checked)
    lowering = RolloutLowering(checked)
    problem = lowering.run()
    if discrete_rule(lowering.env):
        try:
            problem.discrete.tensor = lower_tensor_discrete(checked, problem)
        except SpecError:
            pass
    return problem


def generate_discrete(problem: ir.Problem) -> Program:
    """The generated module of a discrete-time problem, one column per entry of
    `ir.Discrete.columns`: step, initial, controls, totals, objective, the study's functions
    (`Problem.functions`), expects and plots."""
    d = problem.discrete
    layout = Layout(states=d.columns, params=list(problem.params.values()), nets=list(problem.nets),
                    implicits=problem.implicits, net_outputs=net_outputs(list(problem.nets.values())))
    if problem.tensor is not None:          # tensor-only (compiler.tensor_discrete.LargeDiscreteLowering)
        source = generate_tensor_module(problem.tensor, list(problem.nets))
        return Program(problem, layout, source, list(problem.tensor.functions), {})
    functions: dict[str, tuple[list[sp.Expr], str]] = {
        "step": ([d.step[s] for s in d.states], "stack"),
        "initial": ([problem.initial[s] for s in d.states if not isinstance(problem.initial[s], ir.Distribution)],
                    "tuple"),
    }
    if d.controls:
        functions["controls"] = (list(d.controls.values()), "stack")
    if d.totals:
        functions["totals"] = (list(d.totals.values()), "stack")
    functions["objective"] = ([problem.objective.expr], "tuple")
    functions.update(problem.functions)
    fixed = set(layout.symbol_code()) - {ir.state_symbol(s) for s in d.columns} - {ir.TIME}
    ranges = checks_and_plots(problem, functions, fixed)
    if d.tensor is None:
        return Program(problem, layout, generate_module(functions, layout), list(functions), ranges)
    scalar = {name: value for name, value in functions.items() if name not in TENSOR_FUNCTIONS}
    source = "\n\n".join([generate_module(scalar, layout, "build_scalar"),
                           build_function(d.tensor, list(problem.nets), "build_tensor", len(layout.params)),
                           MERGED_BUILD])
    return Program(problem, layout, source, [*scalar, *d.tensor.functions], ranges)


MERGED_BUILD = '''def build(params, nets):
    """The scalar functions and the tensor ones (step, controls, totals, objective)."""
    return {**build_scalar(params, nets), **build_tensor(params, nets)}
'''


kinds.register_time_model("rollout", kinds.TimeModel(lower_discrete, generate_discrete))

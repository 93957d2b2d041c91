"""Rewrites of the IR as passes: each takes a `Problem` and returns a new one, never changing its
input (the way CVXPY's reductions chain). `lower.lower` runs `final_values`, `running_costs`, the
study's step (e.g. `sensitivity_states` of a design study) and `to_minimize`, in this order.

Results map back without an inverse: the objective keeps its expression and sense (the runtime
minimises `scale * objective` and reports the objective as written), extra states are columns
after the spec's own (`Problem.user_states`).
"""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from ..dsl.check import CheckedSpec
from . import ir
from .derivative import total_derivative
from .expressions import spec_error

NOT_GENERATED = (sp.Derivative, sp.Subs, sp.Heaviside, sp.DiracDelta)   # derivatives the codegen cannot print


def at_final(expr: sp.Expr, states: list[str], final_time: sp.Expr) -> sp.Expr:
    """A pointwise expression taken at the end: each state x -> x(T), t -> the final time."""
    subs = {ir.state_symbol(s): ir.final_symbol(s) for s in states}
    subs[ir.TIME] = final_time
    return expr.xreplace(subs)


def final_values(problem: ir.Problem) -> ir.Problem:
    """`at end` / `at stop` objectives and expects -> expressions of the final values."""
    def final(expr: sp.Expr) -> sp.Expr:
        return at_final(expr, problem.user_states, problem.final_time)

    objective = problem.objective
    if objective.at is not None:
        objective = replace(objective, expr=final(objective.expr), at=None)
    expectations = [replace(e, left=[final(v) for v in e.left], right=[final(v) for v in e.right], at=None)
                    if e.at is not None else e for e in problem.expectations]
    return replace(problem, objective=objective, expectations=expectations)


def running_costs(problem: ir.Problem) -> ir.Problem:
    """Each `integral(f)` -> an extra state with d/dt = f from 0; its final value is the integral."""
    if not problem.running_costs:
        return problem
    dynamics = {**problem.dynamics, **problem.running_costs}
    initial = {**problem.initial, **{name: sp.Integer(0) for name in problem.running_costs}}
    return replace(problem, states=list(dynamics), dynamics=dynamics, initial=initial, running_costs={})


def to_minimize(problem: ir.Problem) -> ir.Problem:
    """maximize f -> minimize -f: the objective's scale is -1 (its expression and sense stay)."""
    scale = -1.0 if problem.objective.sense == "maximize" else 1.0
    return replace(problem, objective=replace(problem.objective, scale=scale))


def sensitivity_state(state: str, param: str) -> str:
    """The forward-sensitivity state ∂state/∂param (not a valid spec name, so no clash)."""
    return f"d{state}/d{param}"


def check_differentiable(derivative: sp.Expr, param: str, error) -> None:
    """The derivative must be printable by the codegen; `error(message, hint)` locates the failure."""
    found = [type(a).__name__ for a in derivative.atoms(*NOT_GENERATED)]
    if found:
        raise error(f"cannot differentiate with respect to '{param}': the derivative needs {found[0]}, "
                    "which the generated code cannot evaluate",
                    "min, max and sign of quantities that depend on states or uncertain params have no "
                    "usable derivative")


def sensitivity_states(problem: ir.Problem, checked: CheckedSpec) -> ir.Problem:
    """A design study's step: forward-sensitivity states dS/dt = ∂f/∂x S + ∂f/∂theta,
    S(0) = ∂x0/∂theta for every state and uncertain param; time rescaled to s = t / tau on [0, 1],
    tau the observation time, which is put in for T everywhere (objective, expects, the study's
    generated functions)."""
    if problem.tensor is not None:   # the tensor path's lowering did this on nodes (compiler.tensor_design)
        return problem
    study = problem.design
    dynamics, initial = dict(problem.dynamics), dict(problem.initial)
    tau = study.observation_time
    if dynamics:
        for param in study.uncertain:
            _add_sensitivities(problem, checked, param, dynamics, initial)
        dynamics = {name: tau * f.xreplace({ir.TIME: ir.TIME * tau}) for name, f in dynamics.items()}
    at_tau = {ir.FINAL_TIME: tau if tau is not None else sp.Integer(0)}
    objective = replace(problem.objective, expr=problem.objective.expr.xreplace(at_tau))
    _depends_on_designs(checked, study, objective.expr, dynamics, initial)
    expectations = [replace(e, left=[v.xreplace(at_tau) for v in e.left], right=[v.xreplace(at_tau) for v in e.right])
                    for e in problem.expectations]
    functions = {name: ([v.xreplace(at_tau) for v in values], how) for name, (values, how) in problem.functions.items()}
    return replace(problem, states=list(dynamics), dynamics=dynamics, initial=initial, objective=objective,
                   expectations=expectations, functions=functions, horizon=1.0 if dynamics else None)


def _add_sensitivities(problem: ir.Problem, checked: CheckedSpec, param: str, dynamics: dict[str, sp.Expr],
                       initial: dict[str, sp.Expr]) -> None:
    """The sensitivity states of one uncertain param (implicit unknowns move with the states and
    theta, by the implicit function theorem)."""
    states, implicits, p = list(problem.dynamics), problem.implicits, sp.Symbol(param, real=True)
    for state in states:
        f = dynamics[state]
        span = checked.ders[state].span if state in checked.ders else checked.observation.span
        try:
            rhs = total_derivative(f, p, implicits) + sum(
                (total_derivative(f, ir.state_symbol(k), implicits) *
                 ir.state_symbol(sensitivity_state(k, param)) for k in states), sp.Integer(0))
        except ValueError as err:
            raise spec_error(checked, f"cannot differentiate the dynamics with respect to '{param}': {err}",
                             span) from None
        check_differentiable(rhs, param, lambda message, hint: spec_error(checked, message, span, hint))
        dynamics[sensitivity_state(state, param)] = rhs
        initial[sensitivity_state(state, param)] = total_derivative(initial[state], p, implicits)


def _depends_on_designs(checked: CheckedSpec, study: ir.DesignStudy, expr: sp.Expr, dynamics: dict[str, sp.Expr],
                        initial: dict[str, sp.Expr]) -> None:
    """The objective must change with a design (directly or through the states), or there is nothing to plan."""
    raws = {sp.Symbol(d.raw, real=True) for d in study.designs}
    through_states = any(e.free_symbols & raws for e in [*dynamics.values(), *initial.values()])
    states = {at(s) for s in dynamics for at in (ir.final_symbol, ir.initial_symbol)}
    if not expr.free_symbols & raws and not (through_states and expr.free_symbols & states):
        raise spec_error(checked, "the objective does not depend on any design, so there is nothing to choose",
                         checked.objective.span, "e.g. maximize information_gain")


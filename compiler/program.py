"""From the IR to a `Program`: the generated torch source plus what the runtime needs to run it."""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from . import ir
from .codegen import Layout, generate_module


@dataclass(frozen=True)
class RangeFunction:
    """A generated function evaluated over a range of one state (`expect ... over`, `plot`):
    on a grid of the state when it depends on nothing else, else along the trajectory."""

    function: str
    over: tuple[str, float, float]
    on_grid: bool


@dataclass
class Program:
    """Generated source, its layout, and how to evaluate its range functions."""

    problem: ir.Problem
    layout: Layout
    source: str
    functions: list[str]
    ranges: dict[str, RangeFunction]


def _on_grid(exprs: list[sp.Expr], var: str, params: set[sp.Symbol]) -> bool:
    used = set().union(*(e.free_symbols for e in exprs))
    return not (used - params - {ir.state_symbol(var)})


def generate(problem: ir.Problem) -> Program:
    """Generate the torch module for a problem."""
    layout = Layout(states=list(problem.states), params=list(problem.params), nets=list(problem.nets))
    functions: dict[str, tuple[list[sp.Expr], bool]] = {}
    if problem.states:
        functions["dynamics"] = ([problem.dynamics[s] for s in problem.states], True)
        fixed = [problem.initial[s] for s in problem.states if not isinstance(problem.initial[s], ir.Distribution)]
        functions["initial"] = (fixed, False)
    if problem.stop:
        functions["event"] = ([problem.stop.function], False)
    functions["objective"] = ([problem.objective.expr], False)
    if problem.controls:
        functions["controls"] = (list(problem.controls.values()), False)
    if problem.design:   # the observed expression and its sensitivities, at the observation time
        functions["observation"] = ([problem.design.observation, *problem.design.sensitivities], False)
    params = {sp.Symbol(p, real=True) for p in problem.params}
    ranges = {}
    for i, e in enumerate(problem.expectations):
        functions[f"expect_{i}"] = ([e.left, e.right], False)
        if e.over:
            ranges[f"expect_{i}"] = RangeFunction(f"expect_{i}", e.over, _on_grid([e.left, e.right], e.over[0], params))
    for i, p in enumerate(problem.plots):
        functions[f"plot_{i}"] = (p.exprs, False)
        ranges[f"plot_{i}"] = RangeFunction(f"plot_{i}", p.over, _on_grid(p.exprs, p.over[0], params))
    return Program(problem, layout, generate_module(functions, layout), list(functions), ranges)

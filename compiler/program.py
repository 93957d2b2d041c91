"""From the IR to a `Program`: the generated torch source plus what the runtime needs to run it."""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from . import ir
from .codegen import Layout, generate_module


@dataclass
class Program:
    """Generated source and its layout. `grid_expectations[i]` is True when `over` check i depends
    only on its range variable (so it is evaluated on a grid), False when along the trajectory."""

    problem: ir.Problem
    layout: Layout
    source: str
    functions: list[str]
    grid_expectations: list[bool]


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
    params = {sp.Symbol(p, real=True) for p in problem.params}
    grid = []
    for i, e in enumerate(problem.expectations):
        functions[f"expect_{i}"] = ([e.left, e.right], False)
        if e.over:
            others = (e.left.free_symbols | e.right.free_symbols) - params - {ir.state_symbol(e.over[0])}
            grid.append(not others)
        else:
            grid.append(False)
    return Program(problem, layout, generate_module(functions, layout), list(functions), grid)

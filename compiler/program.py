"""From the IR to a `Program`: the generated torch source plus what the runtime needs to run it."""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from . import ir, kinds
from .codegen import Layout


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


def _on_grid(exprs: list[sp.Expr], var: str, fixed: set[sp.Symbol], implicits: list[ir.Implicit]) -> bool:
    """Whether the expressions depend on no state but `var` (implicit unknowns followed to their inputs)."""
    used = set().union(*(e.free_symbols for e in exprs))
    for implicit in reversed(implicits):
        if used & set(implicit.unknowns):
            used |= set().union(*(r.free_symbols for r in implicit.residual)) - set(implicit.unknowns)
    unknowns = {u for i in implicits for u in i.unknowns}
    return not (used - fixed - unknowns - {ir.state_symbol(var)})


def checks_and_plots(problem: ir.Problem, functions: dict, fixed: set[sp.Symbol]) -> dict[str, RangeFunction]:
    """Add the functions of the expects and plots; return how to evaluate those over a range."""
    ranges = {}
    for i, e in enumerate(problem.expectations):
        functions[f"expect_{i}"] = ([*e.left, *e.right], "tuple")
        if e.over:
            ranges[f"expect_{i}"] = RangeFunction(f"expect_{i}", e.over,
                                                  _on_grid([*e.left, *e.right], e.over[0], fixed, problem.implicits))
    for i, p in enumerate(problem.plots):
        functions[f"plot_{i}"] = (p.exprs, "tuple")
        ranges[f"plot_{i}"] = RangeFunction(f"plot_{i}", p.over, _on_grid(p.exprs, p.over[0], fixed, problem.implicits))
    return ranges


def generate(problem: ir.Problem) -> Program:
    """Generate the torch module for a problem, as its time model does (compiler.kinds)."""
    return kinds.time_model(problem.time_model).generate(problem)

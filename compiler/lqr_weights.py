"""The parts of an LQR reference that both lowerings read the same way: the weights Q and R (checked
against the state and control entries) and the equilibrium point, from the scalar lowering's exact
constants. The linearisation itself is path-specific (SymPy entry by entry, or autograd at run time
on the tensor path)."""
from __future__ import annotations

from dataclasses import dataclass

from ..dsl import ast
from .lower import Lowering
from .lqr_check import weight_problem
from .values import component_names, entries, is_matrix


@dataclass
class LqrWeights:
    """Q and R, the equilibrium (state entry -> value) and the optional cost-ratio bound."""

    Q: list[list[float]]
    R: list[list[float]]
    equilibrium: dict[str, float]
    max_ratio: float | None


def lqr_weights(lowering: Lowering, r: ast.ReferenceStmt, states: list[str], controls: list[str]) -> LqrWeights:
    """Q, R and the `at` point of `reference lqr(...)` for these state and control entries; located
    errors for weights of the wrong size or sign and for a point that is not constant."""
    options = {k.name: k.value for k in r.call.kwargs}
    Q, R = constant_matrix(lowering, options["Q"]), constant_matrix(lowering, options["R"])
    for what, weights, size, of in (("Q", Q, len(states), "state"), ("R", R, len(controls), "control")):
        if len(weights) != size or any(len(row) != size for row in weights):
            raise lowering.error(f"{what} (one row per {of} entry): expected a {size}x{size} matrix, got "
                                 f"{len(weights)} row(s) of {', '.join(sorted({str(len(w)) for w in weights}))}",
                                 options[what].span,
                                 f"the {of} entries: {', '.join(states if of == 'state' else controls)}")
    if problem := weight_problem(Q, R):
        raise lowering.error(problem, r.call.span)
    equilibrium = {name: 0.0 for name in states}
    c = lowering.checked
    for name, value, span in r.at:
        dims = lowering.dims(c.states[name].shape, c.states[name].span)
        point = lowering.declared(name, dims, lowering.expr(value), span)
        for comp, entry in zip(component_names(name, dims), entries(point)):
            if entry.free_symbols or not entry.is_real:
                raise lowering.error("the equilibrium value must be a constant", value.span)
            equilibrium[comp] = float(entry)
    max_ratio = float(lowering.constant(options["max_ratio"], "max_ratio")) if "max_ratio" in options else None
    return LqrWeights(Q, R, equilibrium, max_ratio)


def constant_matrix(lowering: Lowering, node: ast.Expr) -> list[list[float]]:
    """A constant matrix from any constant expression: diag(...) (of numbers or of a vector), [[...]]
    (rows of numbers or vectors), a const matrix, or a single value (sizes are checked by the caller)."""
    value = lowering.expr(node)
    if any(e.free_symbols or not e.is_real for e in entries(value)):
        raise lowering.error("the weights must be constant", node.span)
    if not is_matrix(value):
        return [[float(value)]]
    if value.cols == 1 and value.rows > 1 and not isinstance(node, ast.Array):
        raise lowering.error(f"expected a square matrix, got a vector of {value.rows}", node.span,
                             "diag(v) makes a diagonal matrix of a vector")
    return [[float(value[i, j]) for j in range(value.cols)] for i in range(value.rows)]

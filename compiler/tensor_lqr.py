"""LQR references on the tensor path: the weights and the point as on the scalar path
(`lqr_weights`), and a generated function `lqr_open_loop` (the state dynamics with each control
replaced by extra input columns after the model's columns) that the runtime linearises by autograd
at the equilibrium (`runtime.reference`), where the scalar path differentiates entry by entry with SymPy."""
from __future__ import annotations

from ..dsl import ast
from . import ir
from . import tensors as tn
from .expressions import source_text
from .lower import Lowering
from .lqr_weights import lqr_weights
from .values import component_names

OPEN_LOOP = "lqr_open_loop"   # the generated function: s (..., columns + control entries) -> the states' rates
HINT = "the dynamics must be differentiable at the point, and call nets only through controls"


def tensor_references(scalar: Lowering, references: list[ast.ReferenceStmt], states: list[str],
                      controls: dict[str, tn.Node], dynamics: list[tn.Node], columns: int,
                      implicits: list[tn.TensorImplicit]) -> tuple[list[ir.LqrReference], list[tn.Node]]:
    """The references (A and B None: linearised at run time) and the outputs of `lqr_open_loop`
    (the dynamics of `states` with the controls read from the columns from `columns` on)."""
    entries = [comp for u, node in controls.items() for comp in component_names(u, node.shape)]
    out = [_reference(scalar, r, states, entries) for r in references]
    if not references:
        return out, []
    open_loop = _open_loop(dynamics, controls, columns)
    _refuse_non_constant(scalar, references[0], open_loop, controls, implicits)
    return out, open_loop


def _reference(scalar: Lowering, r: ast.ReferenceStmt, states: list[str], controls: list[str]) -> ir.LqrReference:
    """One reference with its checked weights and point; A and B are left to the runtime."""
    w = lqr_weights(scalar, r, states, controls)
    return ir.LqrReference(w.Q, w.R, [w.equilibrium[s] for s in states], None, None, w.max_ratio,
                           source_text(scalar.checked, r.call), r.span.line)


def _open_loop(dynamics: list[tn.Node], controls: dict[str, tn.Node], columns: int) -> list[tn.Node]:
    """The dynamics with each control node replaced by a state leaf of the columns after `columns`."""
    leaves, start = {}, columns
    for node in controls.values():
        leaves[id(node)] = tn.leaf("state", node.shape, (start, start + node.size, "s"), batched=True)
        start += node.size
    return tn.substitute(dynamics, leaves)


def _refuse_non_constant(scalar: Lowering, r: ast.ReferenceStmt, open_loop: list[tn.Node],
                         controls: dict[str, tn.Node], implicits: list[tn.TensorImplicit]) -> None:
    """A located error where the open-loop dynamics (or an implicit equation they solve) read
    something that is not fixed at the point: a net, a param, the time, an initial or final state,
    or (inside an implicit equation) a control."""
    solved = _solved(open_loop, implicits)
    varying = {"net": "a net", "netmap": "a net", "param": "a param", "time": "the time t",
               "final_time": "the final time T", "randn": "a random draw"}
    for node in tn.walk(open_loop + solved):
        what = varying.get(node.op) or (node.op == "state" and node.attr[2] != "s" and "an initial or final state")
        if what:
            raise scalar.error(f"cannot linearise the dynamics: they read {what} at the equilibrium", r.span, HINT)
    if any(n is c for n in tn.walk(solved) for c in controls.values()):
        raise scalar.error("cannot linearise the dynamics: an implicit equation reads a control (not supported "
                           "on the tensor path)", r.span, HINT)


def _solved(outputs: list[tn.Node], implicits: list[tn.TensorImplicit]) -> list[tn.Node]:
    """The residuals of the implicit equations the outputs solve, directly or through other ones."""
    found: list[tn.TensorImplicit] = []
    read = tn.walk(outputs)
    while new := [i for i in implicits if all(i is not f for f in found) and any(n is i.unknown for n in read)]:
        found += new
        read = tn.walk([i.residual for i in new])
    return [i.residual for i in found]

"""Optimal control statements: `subject to` constraints, open-loop controls (`control u in [a, b]
piecewise(N=50)`) and a free final time (`horizon free in [a, b]`). Registered as statement
handlers and checks of dsl.checker; the compiler's side is compiler/constraints.py."""
from __future__ import annotations

from . import ast
from .check import CheckedSpec
from .checker import Checker, register_check, register_statement
from .functions import FINAL_TIME, TIME
from .passes import CONSTANT
from .settings import call_settings
from .walk import walk

CHOSEN = {"state", "param", "control", "net", "let", "implicit", "design"}   # kinds the solve decides


def declare_open_loop(checker: Checker, out: CheckedSpec, s: ast.OpenLoopStmt) -> None:
    """An open-loop control is a control that varies with the time t."""
    checker.declare(s.name, "control", s.name_span)
    checker.follows[s.name] = TIME
    out.open_loops[s.name] = (s, call_settings("control", s.call, checker.error))


def collect_constraint(checker: Checker, out: CheckedSpec, s: ast.ConstraintStmt) -> None:
    if s.op == "!=":
        raise checker.error("a constraint cannot use '!='", s.span, "use ==, <= or >=")
    if s.op in ("<", ">"):
        raise checker.error(f"a strict inequality '{s.op}' cannot be enforced", s.span,
                            f"use '{s.op}=' (the solution may lie on the bound)")
    out.constraints.append(s)


def collect_free_horizon(checker: Checker, out: CheckedSpec, s: ast.FreeHorizonStmt) -> None:
    if out.free_horizon or out.horizon:
        raise checker.error("'horizon' is given twice", s.span)
    out.free_horizon = s


def _first(out: CheckedSpec) -> ast.Span | None:
    """The first optimal-control statement of the spec, or None when it has none."""
    spans = [s.span for s in out.constraints] + [s.span for s, _ in out.open_loops.values()]
    spans += [out.free_horizon.span] if out.free_horizon else []
    return min(spans, key=lambda span: (span.line, span.column)) if spans else None


def check_structure(checker: Checker, out: CheckedSpec) -> None:
    """Where constraints, open-loop controls and a free final time can be honoured."""
    first = _first(out)
    if first is None:
        return
    if out.discrete is not None:
        raise checker.error("constraints, piecewise controls and 'horizon free' are for continuous-time specs",
                            first, "discrete-time specs use 'control u over steps'")
    if out.study != "train":
        raise checker.error(f"constraints, piecewise controls and 'horizon free' are not supported in a {out.study} "
                            "study", first, "they belong to a trained spec (train adam/lbfgs, no study statement)")
    if out.batch > 1:
        raise checker.error("constraints, piecewise controls and 'horizon free' need a single trajectory "
                            "(batch 1)", first)
    if out.free_horizon and (out.horizon or out.stop):
        raise checker.error("give either 'horizon free', 'horizon' or 'stop when', not two of them",
                            out.free_horizon.span)
    for s, _ in out.open_loops.values():
        if out.stop:
            raise checker.error("a piecewise control needs a 'horizon' (fixed or free): its intervals divide [0, T]",
                                s.span, "end the trajectory with 'horizon free in [a, b]' and a terminal constraint")
    for what, span in [("'horizon free'", out.free_horizon.span if out.free_horizon else None),
                       *[("a piecewise control", s.span) for s, _ in out.open_loops.values()],
                       *[("a path constraint ('always')", s.span) for s in out.constraints if s.always]]:
        if span is not None and not out.states:
            raise checker.error(f"{what} needs states: a static problem has no trajectory", span,
                                "declare states with 'state' and their dynamics with 'der'")


def check_direct(checker: Checker, out: CheckedSpec) -> None:
    """What the direct method (`solve direct(...)`, runtime/direct.py) can solve: one trajectory of
    a continuous-time spec over a fixed or free horizon, chosen by open-loop controls and params,
    with terminal constraints and path inequalities."""
    if out.direct is None:
        return
    span = out.direct_span
    if out.discrete is not None or not out.states:
        raise checker.error("the direct method needs states with dynamics 'der(x) = ...'", span,
                            "discrete-time and static specs are trained (remove 'solve direct')")
    if out.study != "train":
        raise checker.error(f"the direct method does not run a {out.study} study", span)
    if out.stop or not (out.horizon or out.free_horizon):
        raise checker.error("the direct method needs a 'horizon' (fixed or free): its intervals divide [0, T]",
                            out.stop.span if out.stop else span, "end with 'horizon 2' or 'horizon free in [a, b]'")
    refused = [(stmt.span, "a net", "a net has too many weights for its dense KKT system; use an open-loop "
                "control 'control u in [a, b] piecewise(N=50)'") for stmt, _ in out.nets.values()]
    refused += [(s.span, "an equality path constraint ('==' always)", "it enforces path inequalities at the "
                 "points of the trajectory: eliminate a state with the equality (a 'let'), or solve by training "
                 "(remove 'solve direct')") for s in out.constraints if s.always and s.op == "=="]
    refused += [(span_, "'train'", "the direct method solves by Newton steps; remove the 'train' statement")
                for span_ in out.train_spans]
    refused += [(b.span, "a random initial state", "give the state a value") for b in out.states.values()
                if b.distribution is not None]
    refused += [(s.span, "an implicit layer ('solve y: ...')", None) for s in out.implicits.values()]
    refused += [(b.span, "a vector or matrix param", "declare its entries as scalar params") for b in
                out.params.values() if b.shape]
    if refused:
        where, what, hint = min(refused, key=lambda r: (r[0].line, r[0].column))
        raise checker.error(f"the direct method does not support {what}", where, hint)
    if out.batch > 1:
        raise checker.error("the direct method solves a single trajectory (batch 1)", span)
    counts = {options.N for _, options in out.open_loops.values()}
    for s, options in out.open_loops.values():
        if options.N != (out.direct.N or options.N) or len(counts) > 1:
            raise checker.error(f"the piecewise control '{s.name}' has N={options.N} intervals, the direct method "
                                f"N={out.direct.N or min(counts)}", s.call.span,
                                "give every piecewise control the direct method's N")


def check_expressions(checker: Checker, out: CheckedSpec, dynamic: set[str]) -> None:
    """Constant ranges; constraint sides that the solve can change."""
    if out.free_horizon:
        dynamic.add("final_time")
        for bound in (out.free_horizon.low, out.free_horizon.high):
            checker.check_expr(bound, "horizon range", CONSTANT)
    for s, _ in out.open_loops.values():
        for bound in (s.low, s.high):
            if bound is not None:
                checker.check_expr(bound, "control range", CONSTANT)
    for s in out.constraints:
        allowed = dynamic if s.always else dynamic | {"final_time", "trajectory"}
        for side in (s.left, s.right):
            checker.check_expr(side, "a constraint", allowed)
        if not _chosen(checker, out, s):
            raise checker.error("the constraint does not depend on anything the solve chooses", s.span,
                                "constrain states, controls, params or a free final time T")


def _chosen(checker: Checker, out: CheckedSpec, s: ast.ConstraintStmt) -> bool:
    """Whether a side of the constraint uses a state, control, param, net or a free T."""
    for side in (s.left, s.right):
        for node in walk(side):
            name = node.id if isinstance(node, ast.Name) else node.func if isinstance(node, ast.Call) else None
            if name is None:
                continue
            if checker.kinds.get(name) in CHOSEN or name == "integral" or \
                    (name == FINAL_TIME and out.free_horizon is not None):
                return True
    return False


def check_fixed_times(checker: Checker, out: CheckedSpec) -> None:
    """A terminal constraint uses states only at a time (x(T), x(0)); a path one holds for all t."""
    for s in out.constraints:
        if s.always:
            continue
        for side in (s.left, s.right):
            found = checker.varying(side)
            if found is not None:
                node = found[0]
                shown = node.id if isinstance(node, ast.Name) else f"{node.func}(...)"
                raise checker.error(f"'{shown}' changes along the trajectory", node.span,
                                    "write x(T) for a terminal constraint, or end with 'always' for a path "
                                    "constraint that holds at every time")


register_statement(ast.OpenLoopStmt, declare_open_loop, declares=True)
register_statement(ast.ConstraintStmt, collect_constraint)
register_statement(ast.FreeHorizonStmt, collect_free_horizon)
register_check("structure", check_structure)
register_check("structure", check_direct)
register_check("expressions", check_expressions)
register_check("final", check_fixed_times)

"""The checker's passes over the whole spec: resolving every expression where it stands, the
dependency order of named expressions, and the fixed times of objectives and expects."""
from __future__ import annotations

from typing import Callable, Iterable

from . import ast
from .check import CheckedSpec
from .distributions import check_distribution
from .errors import did_you_mean
from .expressions import ExpressionChecks
from .functions import TIME
from .reference import check_reference
from .settings import ErrorFactory
from .walk import walk

DYNAMIC = {"const", "param", "state", "def", "let", "control", "net", "time", "implicit", "design"}
CONSTANT = {"const"}


def check_expressions(checker: ExpressionChecks, out: CheckedSpec, hooks: Iterable[Callable[..., None]]) -> None:
    """Resolve every expression of the spec; `hooks(checker, out, dynamic)` check a kind's own."""
    _check_declarations(checker, out)
    dynamic = set(DYNAMIC)
    if out.horizon:
        checker.check_expr(out.horizon.value, "horizon", CONSTANT)
        dynamic.add("final_time")
    for hook in hooks:
        hook(checker, out, dynamic)
    for d in out.defs.values():
        checker.check_expr(d.body, "def", dynamic - {"state", "let", "control"}, local=set(d.params))
    for s in out.lets.values():
        checker.check_expr(s.value, s.kind, dynamic)
    for s in out.implicits.values():
        checker.check_expr(s.lhs, "an implicit equation", dynamic)
        checker.check_expr(s.rhs, "an implicit equation", dynamic)
    for s in out.ders.values():
        checker.check_expr(s.value, "dynamics", dynamic)
    if out.stop:
        checker.check_expr(out.stop.condition, "stop condition", dynamic, comparison_ok=True)
        checker.check_expr(out.stop.max_time, "stop time", CONSTANT)
    _check_objective_and_expects(checker, out, dynamic)
    for plot in out.plots:
        check_range_variable(checker, plot.var, plot.var_span, out)
        checker.check_expr(plot.low, "range", CONSTANT)
        checker.check_expr(plot.high, "range", CONSTANT)
        for e in plot.exprs:
            checker.check_expr(e, "plot", dynamic)
    for reference in out.references:
        check_reference(checker, reference, out)


def _check_declarations(checker: ExpressionChecks, out: CheckedSpec) -> None:
    """Shapes, constant values, initial values and random initial states."""
    for b in [*out.consts.values(), *out.params.values(), *out.states.values()]:
        for dim in b.shape:
            checker.check_expr(dim, "a shape", CONSTANT)
    for item in [*out.lets.values(), *out.implicits.values()]:
        for dim in item.shape:
            checker.check_expr(dim, "a shape", CONSTANT)
    for b in out.consts.values():
        checker.check_expr(b.value, "const", CONSTANT)
    for b in out.params.values():
        checker.check_expr(b.value, "param", CONSTANT)
    for b in out.states.values():
        if b.value is not None:
            checker.check_expr(b.value, "initial value", {"const", "param", "design"})
        else:
            check_distribution(checker, b.distribution)


def _check_objective_and_expects(checker: ExpressionChecks, out: CheckedSpec, dynamic: set[str]) -> None:
    terminal = dynamic | {"final_time", "trajectory"}
    checker.check_expr(out.objective.expr, "objective", terminal)
    for e in out.expects:
        allowed = terminal
        if e.over:
            var, low, high = e.over
            if checker.kinds.get(var) != "state":
                raise checker.error(f"'over' needs a state, got '{var}'", e.over_span, did_you_mean(var, out.states))
            checker.check_expr(low, "range", CONSTANT)
            checker.check_expr(high, "range", CONSTANT)
            allowed = dynamic
        checker.check_expr(e.left, "expect", allowed)
        checker.check_expr(e.right, "expect", allowed)
        if e.op == "==" and e.tolerance is None:
            raise checker.error("'==' in expect needs a tolerance", e.span, "add e.g. 'tol 1e-6' or 'tol 1%'")
        if e.op != "==" and (e.tolerance is not None or e.rms):
            raise checker.error("'tol' and 'rms' only apply to '=='", e.span)
        if e.op == "!=":
            raise checker.error("expect cannot use '!='", e.span, "use ==, <, >, <= or >=")
        if e.rms and not e.over:
            raise checker.error("'rms' needs an 'over' range", e.span)


def check_range_variable(checker: ExpressionChecks, name: str, span: ast.Span, out: CheckedSpec) -> None:
    """The variable of a plot range: a state."""
    if checker.kinds.get(name) != "state":
        raise checker.error(f"a range needs a state, got '{name}'", span, did_you_mean(name, out.states))


def named_exprs(item: ast.LetStmt | ast.ImplicitStmt) -> list[ast.Expr]:
    """The expressions of a let, control or implicit equation (value or sides first, then its shape)."""
    if isinstance(item, ast.ImplicitStmt):
        return [item.lhs, item.rhs, *item.shape]
    return [item.value, *item.shape]


def sorted_by_dependencies(table: dict, exprs_of: Callable, error: ErrorFactory) -> dict:
    """`table` sorted topologically by the names its expressions use; a cycle is an error."""
    deps = {name: ({n.id for e in exprs_of(item) if e is not None for n in walk(e)
                    if isinstance(n, ast.Name) and n.id in table} |
                   {c.func for e in exprs_of(item) if e is not None for c in walk(e)
                    if isinstance(c, ast.Call) and c.func in table})
                  - ({name} if isinstance(item, ast.ImplicitStmt) else set())   # its own equation
            for name, item in table.items()}
    ordered: dict = {}
    for root in table:
        if root in ordered:
            continue
        path, pending = [root], [iter(sorted(deps[root]))]  # depth first, without recursion
        while path:
            following = next(pending[-1], None)
            if following is None:
                pending.pop()
                done = path.pop()
                ordered[done] = table[done]
            elif following in path:
                cycle = path[path.index(following):] + [following]
                raise error("circular definition: " + " -> ".join(cycle), table[following].name_span,
                            "a name cannot depend on itself")
            elif following not in ordered:
                path.append(following)
                pending.append(iter(sorted(deps[following])))
    return ordered


def check_fixed_times(checker: ExpressionChecks, out: CheckedSpec, defs: dict[str, ast.DefStmt]) -> None:
    """An objective or expect without 'at' (or 'over') may use states only at a time: x(0), x(T).

    `defs` and `out.lets` come in dependency order, so each is followed once, without recursion.
    """
    for name, d in defs.items():
        found = checker.varying(d.body, frozenset(d.params))
        checker.follows[name] = found[1] if found else None
    for name in out.order:
        item = out.lets.get(name) or out.implicits[name]
        found = next(filter(None, map(checker.varying, named_exprs(item)[:2])), None)
        checker.follows[name] = found[1] if found else None
    at = "at stop" if out.stop else "at end"
    terms = [out.objective.expr] if out.objective.at is None else []
    terms += [side for e in out.expects if e.at is None and e.over is None for side in (e.left, e.right)]
    for term in terms:
        found = checker.varying(term)
        if found is None:
            continue
        node, varying = found
        if isinstance(node, ast.Name) and node.id == TIME:
            message = f"the time 't' has no fixed value here: use T, or add '{at}'"
        elif isinstance(node, ast.Name) and node.id == varying:
            message = f"the state '{varying}' needs a time here: write {varying}(T), {varying}(0) or add '{at}'"
        else:
            what = "the time 't'" if varying == TIME else f"the state '{varying}'"
            shown = node.id if isinstance(node, ast.Name) else f"{node.func}(...)"
            message = f"'{shown}' changes along the trajectory (it depends on {what}): add '{at}'"
            if out.discrete is not None and varying == TIME:   # noise, open-loop controls
                message = f"'{shown}' changes at every step: sum it over the steps with total(...)"
        accumulate = "total(...) sums" if out.discrete else "integral(...) accumulates"
        raise checker.error(message, node.span, "an objective or expect is evaluated once, on the whole "
                                                f"trajectory; {accumulate} along it")

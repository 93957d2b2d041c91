"""Discrete-time rollouts: `next`, `steps`, `noise` and open-loop controls (`control u[d] over
steps`), their structure and their expressions.

A spec is discrete-time as soon as it uses one of these statements (or one of the identification
statements of dsl/identification.py, which are recorded in the same `DiscreteSpec`). The module
registers its handlers and checks with dsl.checker; everything wrong is a located SpecError.
"""
from __future__ import annotations

from . import ast
from .check import CheckedSpec, DiscreteSpec
from .checker import Checker, register_check, register_statement
from .distributions import check_distribution
from .errors import did_you_mean
from .functions import TIME
from .kinds import first_word
from .walk import walk

KINDS = {"noise", "truth", "final_time"}   # name kinds that discrete-time expressions may use


def record(out: CheckedSpec, span: ast.Span) -> DiscreteSpec:
    """The spec's discrete-time record, made at its first discrete-time statement (`span`)."""
    out.discrete = out.discrete or DiscreteSpec(span)
    return out.discrete


def declare_noise(checker: Checker, out: CheckedSpec, s: ast.NoiseStmt) -> None:
    checker.declare(s.name, "noise", s.name_span)
    checker.follows[s.name] = TIME       # a new draw at every step
    record(out, s.span).noises[s.name] = s


def declare_sequence(checker: Checker, out: CheckedSpec, s: ast.SequenceStmt) -> None:
    checker.declare(s.name, "control", s.name_span)
    checker.follows[s.name] = TIME
    record(out, s.span).sequences[s.name] = s


def collect_next(checker: Checker, out: CheckedSpec, s: ast.NextStmt) -> None:
    d = record(out, s.span)
    if s.state in d.nexts:
        raise checker.error(f"next({s.state}) is given twice", s.span, f"first on line {d.nexts[s.state].span.line}")
    d.nexts[s.state] = s


def collect_steps(checker: Checker, out: CheckedSpec, s: ast.StepsStmt) -> None:
    d = record(out, s.span)
    if d.steps is not None:
        raise checker.error("'steps' is given twice", s.span)
    d.steps = s


def check_structure(checker: Checker, out: CheckedSpec) -> None:
    """The continuous-time structure checks' discrete counterpart."""
    d = out.discrete
    if d is None:
        return
    _unplanned(checker, d)
    _not_continuous(checker, out, d)
    for name, s in d.nexts.items():
        kind = checker.kinds.get(name)
        if kind is None:
            raise checker.error(f"next() of undeclared name '{name}'", s.state_span,
                                did_you_mean(name, out.states) or "declare it with 'state'")
        if kind != "state":
            raise checker.error(f"next() needs a state, but '{name}' is a {kind}", s.state_span,
                                "only states have dynamics")
    for name, b in out.states.items():
        if name not in d.nexts:
            raise checker.error(f"state '{name}' has no dynamics", b.span, f"add 'next({name}) = ...'")
    if not out.states:
        raise checker.error("a discrete-time spec needs a state", d.first, "add e.g. 'state x = 0' and 'next(x) = ...'")
    if d.steps is None:
        raise checker.error("a discrete-time spec needs 'steps N'", next(iter(out.states.values())).span,
                            "the number of steps of a rollout, e.g. 'steps 30'")
    if out.objective is None:
        raise checker.error("the spec has no objective", ast.Span(1, 1, 1, 2),
                            "add 'minimize <expr>' or 'maximize <expr>'")
    for holder in [out.objective, *out.expects]:
        if holder.at == "stop":
            raise checker.error("'at stop' needs a 'stop when' statement", holder.span, "use 'at end' (or x(T))")
    for holder in [out.objective.expr, *[side for e in out.expects for side in (e.left, e.right)]]:
        for node in walk(holder):
            if isinstance(node, ast.Call) and node.func == "integral" and node.func not in checker.kinds:
                raise checker.error("integral() is for continuous time; a discrete-time spec sums over steps",
                                    node.span, "use total(...)")


def _not_continuous(checker: Checker, out: CheckedSpec, d: DiscreteSpec) -> None:
    """No `der`, `horizon`, `stop when` or `solve ode(...)` in a discrete-time spec."""
    if out.ders:
        der = min(out.ders.values(), key=lambda s: (s.span.line, s.span.column))
        if (der.span.line, der.span.column) > (d.first.line, d.first.column):
            span, hint = der.span, f"the spec is discrete-time from line {d.first.line}: write next({der.state}) = ..."
        else:
            span, hint = d.first, f"der({der.state}) on line {der.span.line} makes the spec continuous-time"
        raise checker.error("a spec is either continuous-time (der) or discrete-time (next, steps, noise, ...), "
                            "not both", span, hint)
    for holder, what in ((out.horizon, "'horizon'"), (out.stop, "'stop when'")):
        if holder is not None:
            raise checker.error(f"a discrete-time spec counts steps: {what} does not apply", holder.span,
                                "use 'steps N'")
    solve = next((s for s in out.spec.statements if isinstance(s, ast.SettingsStmt) and s.kind == "solve"), None)
    if solve is not None:
        raise checker.error("a discrete-time spec has no ODE to solve", solve.span, "remove 'solve ode(...)'")


def _unplanned(checker: Checker, d: DiscreteSpec) -> None:
    """An LQR reference linearises continuous-time dynamics: an error naming both statements.
    (The statements of a study that does not accept rollouts are rejected by dsl.kinds.check_axes.)"""
    reference = next((s for s in checker.spec.statements if isinstance(s, ast.ReferenceStmt)), None)
    discrete = first_word(checker.spec, d.first)
    if reference is not None:
        raise checker.error("'reference' is not supported in a discrete-time spec: it belongs to an LQR reference, "
                            "which linearises continuous-time dynamics", reference.span,
                            f"the spec is discrete-time because of '{discrete}' on line {d.first.line}")


def check_expressions(checker: Checker, out: CheckedSpec, dynamic: set[str]) -> None:
    """The expressions of the discrete-time statements; the dynamics may use noises and unknowns
    (lets, objectives and expects are checked by dsl.passes with `dynamic`)."""
    d = out.discrete
    if d is None:
        return
    dynamic |= KINDS
    constant = {"const"}
    for group in (d.noises.values(), d.sequences.values()):
        for s in group:
            for dim in s.shape:
                checker.check_expr(dim, "a shape", constant)
    for s in d.noises.values():
        check_distribution(checker, s.distribution)
    for s in d.sequences.values():
        if s.energy is not None:
            checker.check_expr(s.energy, "an energy", constant)
    if d.steps is not None:
        checker.check_expr(d.steps.value, "steps", constant)
    for s in d.nexts.values():
        checker.check_expr(s.value, "dynamics", dynamic)


register_statement(ast.NoiseStmt, declare_noise, declares=True)
register_statement(ast.SequenceStmt, declare_sequence, declares=True)
register_statement(ast.NextStmt, collect_next, declares=True)
register_statement(ast.StepsStmt, collect_steps, declares=True)
register_check("structure", check_structure)
register_check("expressions", check_expressions)

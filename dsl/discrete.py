"""The checker's part for discrete-time specs: `next`, `steps`, `noise`, `truth`, `estimate`,
`identify`, `baseline` and open-loop controls (`control u[d] over steps`).

A spec is discrete-time as soon as it uses one of these statements; `check.py` hands them to
`collect` while declaring names, and calls `check_structure` and `check_expressions` instead of
(or besides) its continuous-time checks. Everything wrong is a located SpecError.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, get_args

from pydantic import ValidationError

from . import ast
from .errors import SpecError, did_you_mean
from .functions import TIME
from .options import IdentifyOptions, TrainOptions

if TYPE_CHECKING:
    from .check import CheckedSpec, _Checker

STATEMENTS = get_args(ast.DiscreteStatement)
KINDS = {"noise", "truth", "final_time"}   # name kinds that discrete-time expressions may use
METHODS = ("ols",)
PLANNERS = ("adam", "sgd")                 # per-coordinate updates keep the realisations independent


@dataclass
class DiscreteSpec:
    """The discrete-time statements of a checked spec."""

    first: ast.Span                                   # the first discrete-time statement
    nexts: dict[str, ast.NextStmt] = field(default_factory=dict)
    steps: ast.StepsStmt | None = None
    noises: dict[str, ast.NoiseStmt] = field(default_factory=dict)
    truths: dict[str, ast.Binding] = field(default_factory=dict)
    estimates: dict[str, ast.EstimateStmt] = field(default_factory=dict)   # truth name -> statement
    sequences: dict[str, ast.SequenceStmt] = field(default_factory=dict)
    identify: ast.IdentifyStmt | None = None
    identify_options: IdentifyOptions | None = None
    baseline: ast.BaselineStmt | None = None


def _declared_elsewhere(spec: ast.Spec) -> set[str]:
    """Names declared by other statements: a `truth` of one of them (an uncertain param) belongs
    to a design study; a `truth` of a new name declares an unknown to identify."""
    names = {b.name for st in spec.statements if isinstance(st, ast.DeclStmt) for b in st.bindings}
    return names | {st.name for st in spec.statements if isinstance(st, (ast.LetStmt, ast.DefStmt, ast.NetStmt,
                                                                          ast.ImplicitStmt, ast.DesignStmt))}


def collect(checker: "_Checker", out: "CheckedSpec", s: ast.DiscreteStatement) -> None:
    """Record one discrete-time statement (pass 1 of the checker); declare the names it introduces."""
    if isinstance(s, ast.TruthStmt) and all(b.name in _declared_elsewhere(checker.spec) for b in s.bindings):
        return   # the truths of declared names (uncertain params) belong to design studies (dsl.design)
    d = out.discrete = out.discrete or DiscreteSpec(s.span)
    if isinstance(s, ast.NoiseStmt):
        checker.declare(s.name, "noise", s.name_span)
        checker.follows[s.name] = TIME       # a new draw at every step
        d.noises[s.name] = s
    elif isinstance(s, ast.TruthStmt):
        for b in s.bindings:
            if b.name not in _declared_elsewhere(checker.spec):
                checker.declare(b.name, "truth", b.name_span)
                d.truths[b.name] = b
    elif isinstance(s, ast.SequenceStmt):
        checker.declare(s.name, "control", s.name_span)
        checker.follows[s.name] = TIME
        d.sequences[s.name] = s
    elif isinstance(s, ast.NextStmt):
        if s.state in d.nexts:
            raise checker.error(f"next({s.state}) is given twice", s.span,
                                f"first on line {d.nexts[s.state].span.line}")
        d.nexts[s.state] = s
    elif isinstance(s, ast.EstimateStmt):
        for name, span in zip(s.names, s.name_spans):
            if name in d.estimates:
                raise checker.error(f"'{name}' is estimated twice", span,
                                    f"first on line {d.estimates[name].span.line}")
            d.estimates[name] = s
    else:
        attribute = {ast.StepsStmt: "steps", ast.IdentifyStmt: "identify", ast.BaselineStmt: "baseline"}[type(s)]
        if getattr(d, attribute) is not None:
            raise checker.error(f"'{attribute}' is given twice", s.span)
        setattr(d, attribute, s)


def check_structure(checker: "_Checker", out: "CheckedSpec") -> None:
    """The continuous-time structure checks' discrete counterpart."""
    from .check import walk
    d = out.discrete
    _unplanned(checker, out, d)
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
    _check_identification(checker, out, d)


UNPLANNED = {   # statement -> what it belongs to, for statements discrete-time specs do not support
    ast.DesignStmt: ("design", "a sequential design study, which is continuous-time (der, horizon)"),
    ast.ObserveStmt: ("observe", "a sequential design study, which is continuous-time (der, horizon)"),
    ast.RoundsStmt: ("rounds", "a sequential design study, which is continuous-time (der, horizon)"),
    ast.ReferenceStmt: ("reference", "an LQR reference, which linearises continuous-time dynamics"),
}


def _unplanned(checker: "_Checker", out: "CheckedSpec", d: DiscreteSpec) -> None:
    """A statement of another kind of study in a discrete-time spec: an error naming both statements."""
    line = checker.spec.source.split("\n")[d.first.line - 1][d.first.column - 1:]
    discrete = line.split()[0].split("=")[0] if line.split() else "next"
    found = [(s.span, *UNPLANNED[type(s)]) for s in checker.spec.statements if type(s) in UNPLANNED]
    found += [(b.distribution.span, "param ~ normal(...)", "a sequential design study (an uncertain param), "
               "which is continuous-time (der, horizon)") for b in out.params.values() if b.distribution is not None]
    if found:
        span, what, belongs = min(found, key=lambda f: (f[0].line, f[0].column))
        raise checker.error(f"'{what}' is not supported in a discrete-time spec: it belongs to {belongs}", span,
                            f"the spec is discrete-time because of '{discrete}' on line {d.first.line}")


def _check_identification(checker: "_Checker", out: "CheckedSpec", d: DiscreteSpec) -> None:
    for name, s in d.estimates.items():
        if checker.kinds.get(name) != "truth":
            span = s.name_spans[s.names.index(name)]
            raise checker.error(f"'estimate' needs an unknown declared with 'truth', got '{name}'", span,
                                did_you_mean(name, d.truths) or f"declare it: truth {name} = ...")
        if s.method not in METHODS:
            raise checker.error(f"unknown estimator '{s.method}'", s.method_span,
                                did_you_mean(s.method, METHODS) or "available: " + ", ".join(METHODS))
    for name, s in d.truths.items():
        if name not in d.estimates:
            raise checker.error(f"the truth of '{name}' is hidden from the planner, which needs an estimate",
                                s.name_span, f"add 'estimate {name} by ols'")
        if d.identify is None:
            raise checker.error("a 'truth' is only used by an 'identify' study", s.span,
                                "add e.g. 'identify epochs=3, first=10, growth=3'")
    if d.baseline is not None:
        b = d.baseline
        if checker.kinds.get(b.control) != "control":
            raise checker.error(f"'baseline' replaces a control, got '{b.control}'", b.control_span,
                                did_you_mean(b.control, [*out.controls, *d.sequences]))
        checker.check_distribution(b.distribution)
        if d.identify is None:
            raise checker.error("a 'baseline' is only used by an 'identify' study", b.span)
    if d.identify is None:
        return
    from .check import literal
    s = d.identify
    data = {}
    for name, value, span in s.options:
        if name not in IdentifyOptions.model_fields:
            raise checker.error(f"unknown option '{name}' for identify", span,
                                did_you_mean(name, IdentifyOptions.model_fields)
                                or "options: " + ", ".join(IdentifyOptions.model_fields))
        if name in data:
            raise checker.error(f"option '{name}' is given twice", span)
        data[name] = literal(value, checker.error)
    try:
        d.identify_options = IdentifyOptions.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        option = str(first["loc"][0]) if first["loc"] else ""
        span = next((value.span for name, value, _ in s.options if name == option), s.span)
        raise checker.error(f"invalid value for '{option}': {first['msg']}", span) from None
    if not d.estimates:
        raise checker.error("'identify' needs an unknown to estimate", s.span,
                            "declare it with 'truth A[d, d] = ...' and 'estimate A by ols'")
    if d.baseline is None:
        raise checker.error("'identify' needs the random inputs of its first epoch and baseline", s.span,
                            "add e.g. 'baseline u ~ normal(0, gamma/sqrt(d))'")
    if out.params:
        name, b = next(iter(out.params.items()))
        raise checker.error(f"'identify' plans controls (nets and 'control ... over steps'), not the param '{name}'",
                            b.span, "make it a const, or a net")
    trains = [st for st in out.spec.statements if isinstance(st, ast.SettingsStmt) and st.kind == "train"]
    for st, options in zip(trains, out.training):
        if problem := _training_problem(options):
            message, hint, option = problem
            span = next((k.span for k in st.call.kwargs if k.name == option), st.call.span)
            raise checker.error(message, span, hint)
    for holder in [*out.expects, *out.plots]:
        raise checker.error("an 'identify' study reports estimation errors, not expects or plots", holder.span,
                            "see result.json's 'identify' entry and identify.png")


def _training_problem(options: TrainOptions) -> tuple[str, str, str | None] | None:
    """(message, hint, option at fault) when an identify study cannot train with `options`."""
    if options.optimizer not in PLANNERS:
        return (f"'identify' plans with {' or '.join(PLANNERS)}, not {options.optimizer}",
                "their per-coordinate updates keep the realisations independent", None)
    if options.clip is not None:
        return "'identify' does not clip gradients: one norm would couple the realisations", "remove clip", "clip"
    return None


def check_overridden_training(out: "CheckedSpec") -> None:
    """The identify rules of `_check_identification`, applied to settings changed by `--set`."""
    if out.discrete is None or out.discrete.identify is None:
        return
    for options in out.training:
        if problem := _training_problem(options):
            raise SpecError(problem[0], None, filename="--set", hint=problem[1])


def check_expressions(checker: "_Checker", out: "CheckedSpec", dynamic: set[str]) -> None:
    """The expressions of the discrete-time statements (lets, objectives and expects are checked by
    check.py with `dynamic`, which includes KINDS)."""
    d = out.discrete
    constant = {"const"}
    for group in (d.noises.values(), d.truths.values(), d.sequences.values()):
        for s in group:
            for dim in s.shape:
                checker.check_expr(dim, "a shape", constant)
    for s in d.noises.values():
        checker.check_distribution(s.distribution)
    for s in d.truths.values():
        checker.check_expr(s.value, "a truth", constant)
    for s in d.sequences.values():
        if s.energy is not None:
            checker.check_expr(s.energy, "an energy", constant)
    if d.steps is not None:
        checker.check_expr(d.steps.value, "steps", constant)
    for s in d.nexts.values():
        checker.check_expr(s.value, "dynamics", dynamic)


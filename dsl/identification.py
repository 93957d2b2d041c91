"""Adaptive identification studies (report §5.3): `truth` of an unknown, `estimate A by ols`,
`identify ...` and `baseline u ~ ...` in a discrete-time spec. The module registers its handlers
and checks with dsl.checker and the study `identify` (rollouts only) with dsl.kinds."""
from __future__ import annotations

from . import ast
from .check import CheckedSpec, DiscreteSpec, register_override_check
from .checker import Checker, register_check, register_statement
from .discrete import record
from .distributions import check_distribution
from .errors import SpecError, did_you_mean
from .kinds import TIME_MODEL_WORDS, register_study
from .options import IdentifyOptions, TrainOptions
from .settings import validate_options

METHODS = ("ols",)
PLANNERS = ("adam", "sgd")                 # per-coordinate updates keep the realisations independent


def declared_elsewhere(spec: ast.Spec) -> set[str]:
    """Names declared by other statements: a `truth` of one of them (an uncertain param) belongs
    to a design study; a `truth` of a new name declares an unknown to identify."""
    names = {b.name for st in spec.statements if isinstance(st, ast.DeclStmt) for b in st.bindings}
    return names | {st.name for st in spec.statements if isinstance(st, (ast.LetStmt, ast.DefStmt, ast.NetStmt,
                                                                          ast.ImplicitStmt, ast.DesignStmt))}


def declare_truth(checker: Checker, out: CheckedSpec, s: ast.TruthStmt) -> None:
    """`truth A[d, d] = ...` of new names declares unknowns (the truths of declared names, uncertain
    params, belong to design studies: dsl.bayes_design)."""
    elsewhere = declared_elsewhere(checker.spec)
    if all(b.name in elsewhere for b in s.bindings):
        return
    d = record(out, s.span)
    for b in s.bindings:
        if b.name not in elsewhere:
            checker.declare(b.name, "truth", b.name_span)
            d.truths[b.name] = b


def collect_estimate(checker: Checker, out: CheckedSpec, s: ast.EstimateStmt) -> None:
    d = record(out, s.span)
    for name, span in zip(s.names, s.name_spans):
        if name in d.estimates:
            raise checker.error(f"'{name}' is estimated twice", span, f"first on line {d.estimates[name].span.line}")
        d.estimates[name] = s


def collect_once(attribute: str):
    """A handler recording the one `identify` or `baseline` statement."""
    def collect(checker: Checker, out: CheckedSpec, s: ast.IdentifyStmt | ast.BaselineStmt) -> None:
        d = record(out, s.span)
        if getattr(d, attribute) is not None:
            raise checker.error(f"'{attribute}' is given twice", s.span)
        setattr(d, attribute, s)
    return collect


def check_identification(checker: Checker, out: CheckedSpec) -> None:
    """Unknowns, estimates, the baseline and the `identify` study itself."""
    d = out.discrete
    if d is None:
        return
    _check_unknowns(checker, d)
    if d.baseline is not None:
        b = d.baseline
        if checker.kinds.get(b.control) != "control":
            raise checker.error(f"'baseline' replaces a control, got '{b.control}'", b.control_span,
                                did_you_mean(b.control, [*out.controls, *d.sequences]))
        check_distribution(checker, b.distribution)
        if d.identify is None:
            raise checker.error("a 'baseline' is only used by an 'identify' study", b.span)
    if d.identify is not None:
        _check_identify(checker, out, d)


def _check_unknowns(checker: Checker, d: DiscreteSpec) -> None:
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


def _check_identify(checker: Checker, out: CheckedSpec, d: DiscreteSpec) -> None:
    s = d.identify
    d.identify_options = validate_options(IdentifyOptions, s.options, "identify", s.span, checker.error)
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
        if problem := training_problem(options):
            message, hint, option = problem
            span = next((k.span for k in st.call.kwargs if k.name == option), st.call.span)
            raise checker.error(message, span, hint)
    for holder in [*out.expects, *out.plots]:
        raise checker.error("an 'identify' study reports estimation errors, not expects or plots", holder.span,
                            "see result.json's 'identify' entry and identify.png")


def training_problem(options: TrainOptions) -> tuple[str, str, str | None] | None:
    """(message, hint, option at fault) when an identify study cannot train with `options`."""
    if options.optimizer not in PLANNERS:
        return (f"'identify' plans with {' or '.join(PLANNERS)}, not {options.optimizer}",
                "their per-coordinate updates keep the realisations independent", None)
    if options.clip is not None:
        return "'identify' does not clip gradients: one norm would couple the realisations", "remove clip", "clip"
    return None


def check_overridden_training(out: CheckedSpec) -> None:
    """The training rules of an identify study, applied to settings changed by `--set`."""
    if out.discrete is None or out.discrete.identify is None:
        return
    for options in out.training:
        if problem := training_problem(options):
            raise SpecError(problem[0], None, filename="--set", hint=problem[1])


def check_truths(checker: Checker, out: CheckedSpec, dynamic: set[str]) -> None:
    """The shapes and values of the unknowns: constants."""
    if out.discrete is None:
        return
    for s in out.discrete.truths.values():
        for dim in s.shape:
            checker.check_expr(dim, "a shape", {"const"})
        checker.check_expr(s.value, "a truth", {"const"})


def detect(checker: Checker, out: CheckedSpec) -> tuple[ast.Span, str, str] | None:
    """The first statement of an identification study: `identify`, `estimate`, `baseline` or the
    `truth` of an unknown (for dsl.kinds.check_axes); the `identify` statement when there is one."""
    elsewhere = declared_elsewhere(checker.spec)
    found = [s for s in checker.spec.statements if type(s) in STATEMENT_WORDS
             and not (isinstance(s, ast.TruthStmt) and all(b.name in elsewhere for b in s.bindings))]
    found.sort(key=lambda s: not isinstance(s, ast.IdentifyStmt))
    return (found[0].span, STATEMENT_WORDS[type(found[0])], "an identification study") if found else None


STATEMENT_WORDS = {ast.IdentifyStmt: "identify", ast.EstimateStmt: "estimate", ast.BaselineStmt: "baseline",
                   ast.TruthStmt: "truth"}


register_statement(ast.TruthStmt, declare_truth, declares=True)
register_statement(ast.EstimateStmt, collect_estimate, declares=True)
register_statement(ast.IdentifyStmt, collect_once("identify"), declares=True)
register_statement(ast.BaselineStmt, collect_once("baseline"), declares=True)
register_check("structure", check_identification)
register_check("expressions", check_truths)
register_override_check(check_overridden_training)
register_study("identify", {"rollout"}, detect=detect, accepts=TIME_MODEL_WORDS["rollout"])

"""Problem kinds on two axes: the time model (how time passes: `ode`, `rollout`, `static`) and the
study (what is done with the model). The studies table says which time models each study accepts;
`check_axes` decides both axes once per spec and rejects a pair nobody planned.

Built-in studies: `train` (every time model, here), `design` (sequential Bayesian design,
dsl/bayes_design.py) and `identify` (adaptive identification, dsl/identification.py), which are
written with statements of their own. Any other study is registered with `register_study` and
selected in a spec with the generic statement `study NAME(key=value, ...)` (dsl/study.py).
"""
from __future__ import annotations

import keyword
from dataclasses import dataclass
from typing import Callable

from . import ast
from .check import TIME_MODELS, CheckedSpec
from .errors import SpecError
from .expressions import ExpressionChecks

TIME_MODEL_NAMES = {"ode": "continuous-time", "rollout": "discrete-time", "static": "static"}
TIME_MODEL_WORDS = {"ode": "continuous-time (der, horizon)", "rollout": "discrete-time (next, steps)",
                    "static": "static (no states)"}
ROLLOUT_STATEMENTS = (ast.NextStmt, ast.StepsStmt, ast.NoiseStmt, ast.SequenceStmt)
StudyCheck = Callable[[CheckedSpec, "ast.StudyStmt | None"], None]
# (checker, checked spec) -> (span, what the statement is called, the study it belongs to), or None
Detect = Callable[..., "tuple[ast.Span, str, str] | None"]


@dataclass(frozen=True)
class Study:
    """One row of the studies table."""

    name: str
    time_models: frozenset[str]
    check: StudyCheck | None = None
    detect: Detect | None = None   # a built-in study's own statements; None: chosen by `study NAME(...)`
    accepts: str = ""              # the time models it accepts, in words
    needs_horizon: bool = True     # False: the study decides where trajectories end (a fit: its last datum)


STUDIES: dict[str, Study] = {}


def register_study(name: str, time_models: frozenset[str] | set[str] = frozenset(TIME_MODELS),
                   check: StudyCheck | None = None, *, detect: Detect | None = None,
                   accepts: str | None = None, needs_horizon: bool = True) -> None:
    """Register the study `name` for the time models it accepts. A spec selects it with
    `study name(key=value, ...)`; `check(checked, statement)`, run at the end of the checker, may
    raise a SpecError (located at a span of the statement). `detect` and `accepts` serve the
    built-in studies that have statements of their own; `needs_horizon=False` lets continuous-time specs
of the study go without `horizon` or `stop when`."""
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"a study's name is a name, got {name!r}")
    unknown = set(time_models) - set(TIME_MODELS)
    if not time_models or unknown:
        raise ValueError(f"time models are some of {', '.join(TIME_MODELS)}, got {sorted(time_models)}")
    words = " or ".join(TIME_MODEL_WORDS[m] for m in TIME_MODELS if m in time_models)
    STUDIES[name] = Study(name, frozenset(time_models), check, detect, accepts or words, needs_horizon)


register_study("train")


def time_model(spec: ast.Spec, out: CheckedSpec) -> tuple[str, str]:
    """The spec's time model and why, in words for a hint: its first rollout statement, else its
    `der` or its states (continuous time), else static."""
    rollout = next((s for s in spec.statements if isinstance(s, ROLLOUT_STATEMENTS)), None)
    if rollout is not None:
        return "rollout", f"the spec is discrete-time because of '{first_word(spec, rollout.span)}' on line " \
                          f"{rollout.span.line}"
    if out.ders:
        der = min(out.ders.values(), key=lambda s: (s.span.line, s.span.column))
        return "ode", f"the spec is continuous-time because of '{first_word(spec, der.span)}' on line {der.span.line}"
    if out.states:
        return "ode", "the spec is continuous-time: it has states and no 'next(...)'"
    return "static", "the spec is static: it declares no state"


def first_word(spec: ast.Spec, span: ast.Span) -> str:
    """The statement at `span` as the user wrote its start: 'next(u)', 'steps', 'der(x)'."""
    line = spec.source.split("\n")[span.line - 1][span.column - 1:]
    return line.split()[0].split("=")[0] if line.split() else "?"


def check_axes(checker: ExpressionChecks, out: CheckedSpec) -> tuple[str, str, ast.Span | None]:
    """The spec's time model, its study and the statement that selects the study (None for the default
    training); a SpecError naming both statements when they do not go together."""
    model, reason = time_model(checker.spec, out)
    found = [(detected, entry) for entry in STUDIES.values()
             if entry.detect is not None and (detected := entry.detect(checker, out)) is not None]
    if out.study_statement is not None:
        s = out.study_statement
        found.append(((s.span, f"study {s.name}", f"the study '{s.name}'"), STUDIES[s.name]))
    found.sort(key=lambda f: (f[0][0].line, f[0][0].column))
    if len(found) > 1:   # at most one statement per study: its first
        first, second = found[0][0], found[1][0]
        raise checker.error(f"a spec runs one study: '{second[1]}' belongs to {second[2]}, but '{first[1]}' on "
                            f"line {first[0].line} to {first[2]}", second[0],
                            "remove the statements of one of the two studies")
    if not found:
        return model, "train", None
    (span, what, belongs), entry = found[0]
    if model not in entry.time_models:
        raise checker.error(f"'{what}' is not supported in a {TIME_MODEL_NAMES[model]} spec: it belongs to "
                            f"{belongs}, which is {entry.accepts}", span, reason)
    return model, entry.name, span


def run_study_check(checker: ExpressionChecks, out: CheckedSpec) -> None:
    """The registered check of the spec's study, its errors located in the spec."""
    entry = STUDIES[out.study]
    if entry.check is None:
        return
    try:
        entry.check(out, out.study_statement)
    except SpecError as err:
        if err.source:
            raise
        raise err.located(checker.spec.source, checker.spec.filename) from None

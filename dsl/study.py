"""The generic statement `study NAME(key=value, ...)`: selects a study registered with
`dsl.kinds.register_study`; its arguments become `CheckedSpec.study_settings`."""
from __future__ import annotations

from . import ast
from .check import CheckedSpec
from .checker import Checker, register_check, register_statement
from .errors import did_you_mean
from .kinds import STUDIES, run_study_check
from .settings import raw_options


def collect_study(checker: Checker, out: CheckedSpec, s: ast.StudyStmt) -> None:
    """One `study` statement, of a registered study selected by name, with name=value settings."""
    if out.study_statement is not None:
        raise checker.error("'study' is given twice", s.span, f"the first is on line {out.study_statement.span.line}")
    entry = STUDIES.get(s.name)
    if entry is None:
        selectable = sorted(n for n, e in STUDIES.items() if e.detect is None)
        raise checker.error(f"unknown study '{s.name}'", s.name_span,
                            did_you_mean(s.name, selectable) or "registered studies: " + ", ".join(selectable))
    if entry.detect is not None:
        raise checker.error(f"the '{s.name}' study is written with statements of its own, not with 'study'",
                            s.name_span, "see docs/language.md for its statements; 'study' selects a study "
                            "registered with impsolve.dsl.register_study")
    if s.call.args:
        raise checker.error("give the study's settings by name: study name(key=value, ...)", s.call.args[0].span)
    out.study_settings = raw_options([(k.name, k.value, k.span) for k in s.call.kwargs], f"study {s.name}",
                                     checker.error)
    out.study_statement = s


register_statement(ast.StudyStmt, collect_study)
register_check("final", run_study_check)

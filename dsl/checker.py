"""The semantic checker's core: names and their kinds, a handler table keyed by statement type,
and the order of the checks. Every problem found is a SpecError at the offending source span.

The core knows no problem kind. Each kind's module (dsl/statements.py for the statements every
spec shares, dsl/discrete.py, dsl/identification.py, dsl/bayes_design.py, dsl/study.py) registers
the handlers of its statements with `register_statement` and its checks with `register_check`;
the package's __init__ imports them, so the tables are full before a spec is checked.
"""
from __future__ import annotations

import keyword
import os
from typing import Any, Callable

from . import ast
from .check import CheckedSpec
from .errors import SpecError
from .expressions import ExpressionChecks
from .functions import RESERVED
from .kinds import check_axes
from .options import TrainOptions
from .passes import check_expressions, check_fixed_times, named_exprs, sorted_by_dependencies

MAX_NAME_LENGTH = 64
Handler = Callable[["Checker", CheckedSpec, Any], None]   # (checker, checked spec so far, statement)
PHASES = ("structure", "expressions", "final")

DECLARATIONS: dict[type, list[Handler]] = {}   # pass 1: statements that declare names
STATEMENTS: dict[type, list[Handler]] = {}     # pass 2: statements that use names
CHECKS: dict[str, list[Callable[..., None]]] = {phase: [] for phase in PHASES}


def register_statement(statement: type, handler: Handler, declares: bool = False) -> None:
    """Hand every statement of type `statement` to `handler`: in the first pass (names are declared)
    with `declares`, else in the second. Handlers of one type run in the order registered."""
    (DECLARATIONS if declares else STATEMENTS).setdefault(statement, []).append(handler)


def register_check(phase: str, check: Callable[..., None]) -> None:
    """Run `check` on every spec: 'structure' checks(checker, out) before the expressions are
    resolved, 'expressions' checks(checker, out, dynamic) while they are (`dynamic` is the set of name
    kinds the dynamics may use; a check may add to it), 'final' checks(checker, out) at the end.
    Each check returns at once for specs it does not concern."""
    if phase not in CHECKS:
        raise ValueError(f"unknown phase '{phase}' (one of {', '.join(PHASES)})")
    CHECKS[phase].append(check)


class Checker(ExpressionChecks):
    """Checks one parsed spec; `run()` gives the CheckedSpec."""

    def __init__(self, spec: ast.Spec) -> None:
        self.spec = spec
        self.kinds: dict[str, str] = {}      # name -> const/param/state/def/let/control/net/design/...
        self.spans: dict[str, ast.Span] = {}
        self.follows: dict[str, str | None] = {}  # let/control/def -> the state (or t) it varies with
        self.uncertain: set[str] = set()          # params with a prior (Bayesian design studies)

    def error(self, message: str, span: ast.Span | None, hint: str | None = None) -> SpecError:
        """A SpecError located in this spec."""
        return SpecError(message, span, self.spec.source, self.spec.filename, hint)

    # -- declarations
    def declare(self, name: str, kind: str, span: ast.Span) -> None:
        """Declare `name` as a name of `kind`; each name is declared once."""
        self.validate_identifier(name, span)
        if name in self.kinds:
            first = self.spans[name]
            raise self.error(f"'{name}' is already declared (as {self.kinds[name]} on line {first.line})", span,
                             "each name is declared once")
        self.kinds[name] = kind
        self.spans[name] = span

    def validate_identifier(self, name: str, span: ast.Span) -> None:
        """A name the spec may declare: no leading '_', not too long, no reserved or built-in word."""
        if name.startswith("_"):
            raise self.error(f"names may not start with '_' ('{name[:40]}')", span, "use a letter first")
        if len(name) > MAX_NAME_LENGTH:
            raise self.error(f"name is too long ({len(name)} characters; the limit is {MAX_NAME_LENGTH})", span)
        if keyword.iskeyword(name) or keyword.issoftkeyword(name):
            raise self.error(f"'{name}' is a reserved word", span, "choose another name")
        if name in RESERVED:
            raise self.error(f"'{name}' is a built-in name and cannot be redeclared", span)

    def validate_parameters(self, owner: str, names: tuple[str, ...], spans: tuple[ast.Span, ...],
                            builtins: tuple[str, ...] = ()) -> None:
        """The parameter names of a def or the input names of a net (which may be named `t`)."""
        for i, (name, span) in enumerate(zip(names, spans)):
            if name not in builtins:
                self.validate_identifier(name, span)
            if name in names[:i]:
                raise self.error(f"'{owner}' has the parameter '{name}' twice", span)

    # -- the order of the checks
    def run(self) -> CheckedSpec:
        """Check the spec; raise SpecError on the first problem."""
        out = self.problem()
        for table in (DECLARATIONS, STATEMENTS):
            for statement in self.spec.statements:
                for handler in table.get(type(statement), ()):
                    handler(self, out, statement)
        if not out.training:
            out.training.append(TrainOptions())
        out.time_model, out.study, out.study_span = check_axes(self, out)
        for check in CHECKS["structure"]:
            check(self, out)
        check_expressions(self, out, CHECKS["expressions"])
        out.consts = sorted_by_dependencies(out.consts, lambda b: [b.value, *b.shape], self.error)
        named = sorted_by_dependencies({**out.lets, **out.implicits}, named_exprs, self.error)
        out.order = list(named)
        out.lets = {n: v for n, v in named.items() if n in out.lets}
        defs = sorted_by_dependencies(out.defs, lambda d: [d.body], self.error)
        check_fixed_times(self, out, defs)
        for check in CHECKS["final"]:
            check(self, out)
        return out

    def problem(self) -> CheckedSpec:
        """The empty CheckedSpec, named by the `problem` statement or else by the file."""
        problem = [s for s in self.spec.statements if isinstance(s, ast.ProblemStmt)]
        if len(problem) > 1:
            raise self.error("only one 'problem' statement is allowed", problem[1].span)
        default_name = os.path.splitext(os.path.basename(self.spec.filename))[0]
        if not default_name.isidentifier() or default_name.startswith("<"):
            default_name = "problem"
        out = CheckedSpec(self.spec, problem[0].name if problem else default_name,
                          problem[0].title if problem else "")
        if problem:
            self.validate_identifier(out.name, problem[0].name_span)
        return out


def check(spec: ast.Spec) -> CheckedSpec:
    """Check a parsed spec; raise SpecError on the first problem."""
    return Checker(spec).run()

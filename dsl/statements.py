"""Handlers of the statements every spec may use: declarations, dynamics, horizon, objective,
settings, batch, expects, references and plots (registered in dsl.checker's handler table)."""
from __future__ import annotations

from . import ast
from .check import CheckedSpec
from .checker import Checker, register_statement
from .errors import did_you_mean
from .functions import TIME
from .options import NewtonOptions, settings_problem
from .settings import call_settings, literal


# ---------------------------------------------------------------- pass 1: declarations
def declare_bindings(checker: Checker, out: CheckedSpec, s: ast.DeclStmt) -> None:
    """`const`, `param`, `state`: one name per binding; consts are never drawn from a distribution."""
    table = {"const": out.consts, "param": out.params, "state": out.states}[s.kind]
    for b in s.bindings:
        checker.declare(b.name, s.kind, b.name_span)
        if b.distribution is not None and s.kind == "const":
            raise checker.error(f"a {s.kind} cannot be drawn from a distribution", b.distribution.span,
                                "use '=' with a value")
        if b.distribution is not None and s.kind == "param":
            checker.uncertain.add(b.name)   # an uncertain param: its prior (dsl/bayes_design.py)
        table[b.name] = b


def declare_def(checker: Checker, out: CheckedSpec, s: ast.DefStmt) -> None:
    checker.declare(s.name, "def", s.name_span)
    checker.validate_parameters(s.name, s.params, s.param_spans)
    out.defs[s.name] = s


def declare_let(checker: Checker, out: CheckedSpec, s: ast.LetStmt) -> None:
    checker.declare(s.name, s.kind, s.name_span)
    out.lets[s.name] = s


def declare_implicit(checker: Checker, out: CheckedSpec, s: ast.ImplicitStmt) -> None:
    checker.declare(s.name, "implicit", s.name_span)
    out.implicits[s.name] = s
    out.solvers[s.name] = call_settings("implicit", s.options, checker.error).model_copy(
        update={"method": s.options.func}) if s.options else NewtonOptions()


def declare_net(checker: Checker, out: CheckedSpec, s: ast.NetStmt) -> None:
    checker.declare(s.name, "net", s.name_span)
    checker.validate_parameters(s.name, s.inputs, s.input_spans, builtins=(TIME,))
    out.nets[s.name] = (s, call_settings("net", s.architecture, checker.error))


# ---------------------------------------------------------------- pass 2: statements using names
def collect_der(checker: Checker, out: CheckedSpec, s: ast.DerStmt) -> None:
    kind = checker.kinds.get(s.state)
    if kind is None:
        raise checker.error(f"der() of undeclared name '{s.state}'", s.state_span,
                            did_you_mean(s.state, out.states) or "declare it with 'state'")
    if kind != "state":
        raise checker.error(f"der() needs a state, but '{s.state}' is a {kind}", s.state_span,
                            "only states have dynamics")
    if s.state in out.ders:
        raise checker.error(f"der({s.state}) is given twice", s.span, f"first on line {out.ders[s.state].span.line}")
    out.ders[s.state] = s


def collect_horizon(checker: Checker, out: CheckedSpec, s: ast.HorizonStmt) -> None:
    if out.horizon:
        raise checker.error("'horizon' is given twice", s.span)
    out.horizon = s


def collect_stop(checker: Checker, out: CheckedSpec, s: ast.StopStmt) -> None:
    if out.stop:
        raise checker.error("'stop when' is given twice", s.span)
    out.stop = s


def collect_objective(checker: Checker, out: CheckedSpec, s: ast.ObjectiveStmt) -> None:
    if out.objective:
        raise checker.error("only one objective (minimize/maximize) is allowed", s.span,
                            f"the first is on line {out.objective.span.line}; add terms to it")
    out.objective = s


def collect_settings(checker: Checker, out: CheckedSpec, s: ast.SettingsStmt) -> None:
    """`solve ode(...)` (the integrator), `solve direct(...)` (the direct method) or `train adam(...)`
    (one training phase)."""
    if s.kind == "solve" and s.call.func == "direct":
        if out.direct is not None:
            raise checker.error("'solve direct' is given twice", s.span)
        out.direct, out.direct_span = call_settings("solve", s.call, checker.error), s.span
    elif s.kind == "solve":
        out.ode = call_settings("solve", s.call, checker.error)
        if problem := settings_problem(out.ode):
            raise checker.error(problem[0], s.span, problem[1])
    else:
        options = call_settings("train", s.call, checker.error)
        out.training.append(options.model_copy(update={"optimizer": s.call.func}))
        out.train_spans.append(s.span)


def collect_batch(checker: Checker, out: CheckedSpec, s: ast.BatchStmt) -> None:
    """`batch N`: N a number, or a scalar const declared as one (`const B = 100` ... `batch B`)."""
    size = s.size
    if isinstance(size, ast.Name) and size.id in out.consts:
        const = out.consts[size.id]
        size = const.value if not const.shape and isinstance(const.value, ast.Number) else size
    value = literal(size, checker.error)
    if not isinstance(value, int) or value < 1:
        raise checker.error("batch must be a positive integer", s.size.span,
                            "a number, or a const declared as one (const B = 100)")
    out.batch = value


def collect_reference(checker: Checker, out: CheckedSpec, s: ast.ReferenceStmt) -> None:
    if out.references:
        raise checker.error("only one 'reference' is allowed", s.span)
    out.references.append(s)


for _statement, _handler in ((ast.DeclStmt, declare_bindings), (ast.DefStmt, declare_def),
                             (ast.LetStmt, declare_let), (ast.ImplicitStmt, declare_implicit),
                             (ast.NetStmt, declare_net)):
    register_statement(_statement, _handler, declares=True)
for _statement, _handler in ((ast.DerStmt, collect_der), (ast.HorizonStmt, collect_horizon),
                             (ast.StopStmt, collect_stop), (ast.ObjectiveStmt, collect_objective),
                             (ast.SettingsStmt, collect_settings), (ast.BatchStmt, collect_batch),
                             (ast.ExpectStmt, lambda checker, out, s: out.expects.append(s)),
                             (ast.ReferenceStmt, collect_reference),
                             (ast.PlotStmt, lambda checker, out, s: out.plots.append(s))):
    register_statement(_statement, _handler)

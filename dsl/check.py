"""Semantic check: resolve names and kinds, sort dependencies, validate settings.

The result, a `CheckedSpec`, is what the compiler lowers. Every problem found is a SpecError
pointing at the offending source span.
"""
from __future__ import annotations

import keyword
import os
from dataclasses import dataclass, field
from typing import Iterator

from pydantic import BaseModel, ValidationError

from . import ast, design, discrete
from .discrete import DiscreteSpec
from .errors import SpecError, did_you_mean
from .functions import CONSTANTS, CRITERIA, FINAL_TIME, FUNCTIONS, RESERVED, TIME, TRAJECTORY
from .options import SETTINGS, MlpOptions, NewtonOptions, OdeOptions, TrainOptions, settings_problem

MAX_NAME_LENGTH = 64
DISTRIBUTIONS = {"normal": 2, "uniform": 2}
REFERENCES = ("lqr",)
LQR_OPTIONS = ("Q", "R", "max_ratio")


@dataclass
class CheckedSpec:
    """A spec whose names, kinds and settings are resolved; declarations in dependency order."""

    spec: ast.Spec
    name: str
    title: str
    consts: dict[str, ast.Binding] = field(default_factory=dict)
    params: dict[str, ast.Binding] = field(default_factory=dict)
    states: dict[str, ast.Binding] = field(default_factory=dict)
    defs: dict[str, ast.DefStmt] = field(default_factory=dict)
    lets: dict[str, ast.LetStmt] = field(default_factory=dict)   # lets and controls, sorted
    implicits: dict[str, ast.ImplicitStmt] = field(default_factory=dict)
    solvers: dict[str, NewtonOptions] = field(default_factory=dict)     # per implicit unknown
    order: list[str] = field(default_factory=list)   # lets, controls and implicits in dependency order
    nets: dict[str, tuple[ast.NetStmt, MlpOptions]] = field(default_factory=dict)
    ders: dict[str, ast.DerStmt] = field(default_factory=dict)
    horizon: ast.HorizonStmt | None = None
    stop: ast.StopStmt | None = None
    objective: ast.ObjectiveStmt | None = None
    ode: OdeOptions = field(default_factory=OdeOptions)
    training: list[TrainOptions] = field(default_factory=list)   # one phase per `train` statement
    batch: int = 1
    expects: list[ast.ExpectStmt] = field(default_factory=list)
    references: list[ast.ReferenceStmt] = field(default_factory=list)
    plots: list[ast.PlotStmt] = field(default_factory=list)
    # a sequential design study (report §6; dsl/design.py)
    designs: dict[str, ast.DesignStmt] = field(default_factory=dict)
    observation: "design.Observation | None" = None
    truth: dict[str, tuple[ast.Expr, ast.Span]] = field(default_factory=dict)
    rounds: int | None = None
    discrete: DiscreteSpec | None = None     # discrete-time statements (dsl.discrete), None in ODE specs
    # the problem's kind on its two axes (docs/design.md): how time passes and what is done with the model
    time_model: str = "ode"                  # "ode" (der), "rollout" (next), "static" (no states)
    study: str = "train"                     # "train", "design" (sequential Bayesian design), "identify"

    @property
    def controls(self) -> list[str]:
        return [n for n, s in self.lets.items() if s.kind == "control"]

    @property
    def uncertain(self) -> list[str]:
        """Params with a Gaussian prior (`param theta ~ normal(mean, std)`)."""
        return [n for n, b in self.params.items() if b.distribution is not None]

    def with_overrides(self, overrides: dict[str, str]) -> "CheckedSpec":
        """Apply `section.key=value` overrides (from `--set`), validated: `solve.<option>`,
        `train.<option>` (every training phase) or `trainN.<option>` (phase N only)."""
        for key, raw in overrides.items():
            section, _, option = key.partition(".")
            if section in ("solve", "ode") and option:
                self.ode = _override(self.ode, key, option, raw)
            elif section == "train" and option:
                self.training = [_override(t, key, option, raw) for t in self.training]
            elif section.startswith("train") and section[5:].isdigit() and option:
                phase = int(section[5:])
                if not 1 <= phase <= len(self.training):
                    raise SpecError(f"cannot set '{key}': the spec has {len(self.training)} training phase(s)",
                                    None, filename="--set")
                self.training[phase - 1] = _override(self.training[phase - 1], key, option, raw)
            else:
                raise SpecError(f"cannot set '{key}'", None, filename="--set",
                                hint="use train.<option>, train2.<option> or solve.<option>, e.g. train.lr=0.01")
        if problem := settings_problem(self.ode):   # the same rule as the spec's `solve ode(...)`
            raise SpecError(problem[0], None, filename="--set", hint=problem[1])
        if self.discrete is not None:
            discrete.check_overridden_training(self)
        return self


def _override(current: BaseModel, key: str, option: str, raw: str) -> BaseModel:
    if option not in type(current).model_fields:
        raise SpecError(f"unknown option '{option}' in '{key}'", None, filename="--set",
                        hint=did_you_mean(option, type(current).model_fields))
    data = current.model_dump() | {option: _parse_cli_value(raw)}
    try:
        return type(current).model_validate(data)
    except ValidationError as err:
        raise SpecError(f"invalid value for {key}: {err.errors()[0]['msg']}", None, filename="--set") from None


def _parse_cli_value(raw: str):
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


# ----------------------------------------------------------------- utilities
def children(expr: ast.Expr) -> tuple[ast.Expr, ...]:
    """The direct sub-expressions of expr."""
    if isinstance(expr, ast.Call):
        return (*expr.args, *(k.value for k in expr.kwargs))
    if isinstance(expr, (ast.BinOp, ast.Compare)):
        return (expr.left, expr.right)
    if isinstance(expr, (ast.Neg, ast.Transpose)):
        return (expr.operand,)
    if isinstance(expr, ast.Array):
        return expr.items
    return ()


def walk(expr: ast.Expr) -> Iterator[ast.Expr]:
    """All sub-expressions of expr, itself first."""
    yield expr
    for child in children(expr):
        yield from walk(child)


def literal(expr: ast.Expr, error) -> object:
    """A settings value: number, name (string), true/false, or a list of those."""
    if isinstance(expr, ast.Number):
        return int(expr.value) if expr.value.is_integer() and "." not in expr.text and "e" not in expr.text.lower() else expr.value
    if isinstance(expr, ast.Neg) and isinstance(expr.operand, ast.Number):
        return -literal(expr.operand, error)
    if isinstance(expr, ast.Name):
        return {"true": True, "false": False}.get(expr.id, expr.id)
    if isinstance(expr, ast.Array):
        return [literal(i, error) for i in expr.items]
    raise error("a settings value must be a number, a name, true/false or a list", expr.span)


# ------------------------------------------------------------------- checker
class _Checker:
    def __init__(self, spec: ast.Spec) -> None:
        self.spec = spec
        self.kinds: dict[str, str] = {}      # name -> const/param/state/def/let/control/net/design
        self.spans: dict[str, ast.Span] = {}
        self.follows: dict[str, str | None] = {}  # let/control/def -> the state (or t) it varies with
        self.uncertain: set[str] = set()          # params with a prior (design studies)

    def error(self, message: str, span: ast.Span | None, hint: str | None = None) -> SpecError:
        return SpecError(message, span, self.spec.source, self.spec.filename, hint)

    # -- declarations
    def declare(self, name: str, kind: str, span: ast.Span) -> None:
        self.validate_identifier(name, span)
        if name in self.kinds:
            first = self.spans[name]
            raise self.error(f"'{name}' is already declared (as {self.kinds[name]} on line {first.line})", span,
                             "each name is declared once")
        self.kinds[name] = kind
        self.spans[name] = span

    def validate_identifier(self, name: str, span: ast.Span) -> None:
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

    def run(self) -> CheckedSpec:
        stmts = self.spec.statements
        problem = [s for s in stmts if isinstance(s, ast.ProblemStmt)]
        if len(problem) > 1:
            raise self.error("only one 'problem' statement is allowed", problem[1].span)
        default_name = os.path.splitext(os.path.basename(self.spec.filename))[0]
        if not default_name.isidentifier() or default_name.startswith("<"):
            default_name = "problem"
        out = CheckedSpec(self.spec, problem[0].name if problem else default_name,
                          problem[0].title if problem else "")
        if problem:
            self.validate_identifier(out.name, problem[0].name_span)

        # pass 1: declarations
        for s in stmts:
            if isinstance(s, ast.DeclStmt):
                table = {"const": out.consts, "param": out.params, "state": out.states}[s.kind]
                for b in s.bindings:
                    self.declare(b.name, s.kind, b.name_span)
                    if b.distribution is not None and s.kind == "const":
                        raise self.error(f"a {s.kind} cannot be drawn from a distribution", b.distribution.span,
                                         "use '=' with a value")
                    if b.distribution is not None and s.kind == "param":
                        self.uncertain.add(b.name)   # an uncertain param: its prior (dsl/design.py)
                    table[b.name] = b
            elif isinstance(s, ast.DefStmt):
                self.declare(s.name, "def", s.name_span)
                self.validate_parameters(s.name, s.params, s.param_spans)
                out.defs[s.name] = s
            elif isinstance(s, ast.LetStmt):
                self.declare(s.name, s.kind, s.name_span)
                out.lets[s.name] = s
            elif isinstance(s, ast.ImplicitStmt):
                self.declare(s.name, "implicit", s.name_span)
                out.implicits[s.name] = s
                out.solvers[s.name] = self.settings("implicit", s.options).model_copy(
                    update={"method": s.options.func}) if s.options else NewtonOptions()
            elif isinstance(s, ast.NetStmt):
                self.declare(s.name, "net", s.name_span)
                self.validate_parameters(s.name, s.inputs, s.input_spans, builtins=(TIME,))
                out.nets[s.name] = (s, self.settings("net", s.architecture))
            elif isinstance(s, ast.DesignStmt):
                design.declare_design(self, out, s)
            elif isinstance(s, discrete.STATEMENTS):
                discrete.collect(self, out, s)

        # pass 2: statements that use names
        for s in stmts:
            if isinstance(s, ast.DerStmt):
                kind = self.kinds.get(s.state)
                if kind is None:
                    raise self.error(f"der() of undeclared name '{s.state}'", s.state_span,
                                     did_you_mean(s.state, out.states) or "declare it with 'state'")
                if kind != "state":
                    raise self.error(f"der() needs a state, but '{s.state}' is a {kind}", s.state_span,
                                     "only states have dynamics")
                if s.state in out.ders:
                    raise self.error(f"der({s.state}) is given twice", s.span,
                                     f"first on line {out.ders[s.state].span.line}")
                out.ders[s.state] = s
            elif isinstance(s, ast.HorizonStmt):
                if out.horizon:
                    raise self.error("'horizon' is given twice", s.span)
                out.horizon = s
            elif isinstance(s, ast.StopStmt):
                if out.stop:
                    raise self.error("'stop when' is given twice", s.span)
                out.stop = s
            elif isinstance(s, ast.ObjectiveStmt):
                if out.objective:
                    raise self.error("only one objective (minimize/maximize) is allowed", s.span,
                                     f"the first is on line {out.objective.span.line}; add terms to it")
                out.objective = s
            elif isinstance(s, ast.SettingsStmt):
                if s.kind == "solve":
                    out.ode = self.settings("solve", s.call)
                    if problem := settings_problem(out.ode):
                        raise self.error(problem[0], s.span, problem[1])
                else:
                    options = self.settings("train", s.call)
                    out.training.append(options.model_copy(update={"optimizer": s.call.func}))
            elif isinstance(s, ast.BatchStmt):
                value = literal(s.size, self.error)
                if not isinstance(value, int) or value < 1:
                    raise self.error("batch must be a positive integer", s.size.span)
                out.batch = value
            elif isinstance(s, ast.ExpectStmt):
                out.expects.append(s)
            elif isinstance(s, ast.ReferenceStmt):
                if out.references:
                    raise self.error("only one 'reference' is allowed", s.span)
                out.references.append(s)
            elif isinstance(s, ast.PlotStmt):
                out.plots.append(s)
            elif isinstance(s, (ast.ObserveStmt, ast.TruthStmt, ast.RoundsStmt)):
                design.collect(self, out, s)

        if not out.training:
            out.training.append(TrainOptions())
        self.check_structure(out)
        self.check_expressions(out)
        out.consts = self.sorted_by_dependencies(out.consts, lambda b: [b.value])
        named = self.sorted_by_dependencies({**out.lets, **out.implicits}, _named_exprs)
        out.order = list(named)
        out.lets = {n: v for n, v in named.items() if n in out.lets}
        defs = self.sorted_by_dependencies(out.defs, lambda d: [d.body])
        self.check_fixed_times(out, defs)
        design.check_study(self, out)
        out.time_model, out.study = problem_axes(out)
        return out

    def check_structure(self, out: CheckedSpec) -> None:
        if out.discrete is not None:
            return discrete.check_structure(self, out)
        for name, b in out.states.items():
            if name not in out.ders:
                raise self.error(f"state '{name}' has no dynamics", b.span, f"add 'der({name}) = ...'")
        if out.objective is None:
            raise self.error("the spec has no objective", ast.Span(1, 1, 1, 2),
                             "add 'minimize <expr>' or 'maximize <expr>'")
        if out.states:
            if out.horizon and out.stop:
                raise self.error("give either 'horizon' or 'stop when', not both", out.stop.span)
            if not out.horizon and not out.stop and not out.observation:   # a design study ends at its observation
                raise self.error("a spec with states needs 'horizon <T>' or 'stop when <condition> within <T>'",
                                 next(iter(out.states.values())).span)
        if out.stop:
            if not isinstance(out.stop.condition, ast.Compare) or out.stop.condition.op in ("==", "!="):
                raise self.error("'stop when' needs a condition like 'y >= l'", out.stop.condition.span,
                                 "use <, <=, > or >=")
        if out.stop and out.batch > 1:
            raise self.error("'stop when' needs a single trajectory (batch 1)", out.stop.span)
        has_distribution = any(b.distribution for b in out.states.values())
        if has_distribution and out.stop:
            raise self.error("random initial states need a fixed 'horizon'", out.stop.span)
        for at_holder in [out.objective, *out.expects]:
            if at_holder.at == "stop" and not out.stop:
                raise self.error("'at stop' needs a 'stop when' statement", at_holder.span,
                                 "use 'at end' (or x(T)) for a fixed horizon")

    def check_fixed_times(self, out: CheckedSpec, defs: dict[str, ast.DefStmt]) -> None:
        """An objective or expect without 'at' (or 'over') may use states only at a time: x(0), x(T).

        `defs` and `out.lets` come in dependency order, so each is followed once, without recursion.
        """
        for name, d in defs.items():
            found = self.varying(d.body, frozenset(d.params))
            self.follows[name] = found[1] if found else None
        for name in out.order:
            item = out.lets.get(name) or out.implicits[name]
            found = next(filter(None, map(self.varying, _named_exprs(item)[:2])), None)
            self.follows[name] = found[1] if found else None
        at = "at stop" if out.stop else "at end"
        terms = [out.objective.expr] if out.objective.at is None else []
        terms += [side for e in out.expects if e.at is None and e.over is None for side in (e.left, e.right)]
        for term in terms:
            found = self.varying(term)
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
            raise self.error(message, node.span, "an objective or expect is evaluated once, on the whole "
                                                 f"trajectory; {accumulate} along it")

    def varying(self, expr: ast.Expr, local: frozenset[str] = frozenset()
                ) -> tuple[ast.Name | ast.Call, str] | None:
        """The first part of expr that changes along a trajectory, with the state (or t) it follows.

        States at a time (x(0), x(T)) and integral(...) are fixed; lets, controls and defs vary
        as recorded in `self.follows`.
        """
        if isinstance(expr, ast.Name) and expr.id not in local:
            if self.kinds.get(expr.id) == "state" or expr.id == TIME:
                return expr, expr.id
            return (expr, self.follows[expr.id]) if self.follows.get(expr.id) else None
        if isinstance(expr, ast.Call) and (expr.func in ("integral", "total") or self.kinds.get(expr.func) == "state"):
            return None
        for child in children(expr):
            found = self.varying(child, local)
            if found:
                return found
        if isinstance(expr, ast.Call) and self.follows.get(expr.func):
            return expr, self.follows[expr.func]
        return None

    # -- settings
    def settings(self, kind: str, call: ast.Call):
        schema = SETTINGS.get((kind, call.func))
        if schema is None:
            choices = [name for (k, name) in SETTINGS if k == kind]
            raise self.error(f"unknown {kind} setting '{call.func}'", call.func_span,
                             did_you_mean(call.func, choices) or "choose one of: " + ", ".join(choices))
        if call.args:
            raise self.error(f"options of {call.func}() are given as name=value", call.args[0].span)
        data = {}
        for kw in call.kwargs:
            fields = [f for f in schema.model_fields if f not in ("optimizer", "method") or schema is OdeOptions]
            if kw.name not in fields:
                raise self.error(f"unknown option '{kw.name}' for {call.func}()", kw.span,
                                 did_you_mean(kw.name, fields) or "options: " + ", ".join(fields))
            if kw.name in data:
                raise self.error(f"option '{kw.name}' is given twice", kw.span)
            data[kw.name] = literal(kw.value, self.error)
        try:
            return schema.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            option = str(first["loc"][0]) if first["loc"] else ""
            span = next((kw.value.span for kw in call.kwargs if kw.name == option), call.span)
            raise self.error(f"invalid value for '{option}': {first['msg']}", span) from None

    # -- expressions
    def check_expressions(self, out: CheckedSpec) -> None:
        for b in [*out.consts.values(), *out.params.values(), *out.states.values()]:
            for dim in b.shape:
                self.check_expr(dim, "a shape", {"const"})
        for item in [*out.lets.values(), *out.implicits.values()]:
            for dim in item.shape:
                self.check_expr(dim, "a shape", {"const"})
        for b in out.consts.values():
            self.check_expr(b.value, "const", {"const"})
        for b in out.params.values():
            self.check_expr(b.value, "param", {"const"})
        for b in out.states.values():
            if b.value is not None:
                self.check_expr(b.value, "initial value", {"const", "param", "design"})
            else:
                self.check_distribution(b.distribution)
        dynamic = {"const", "param", "state", "def", "let", "control", "net", "time", "implicit", "design"}
        if out.horizon:
            self.check_expr(out.horizon.value, "horizon", {"const"})
            dynamic.add("final_time")
        if out.discrete is not None:
            dynamic |= discrete.KINDS
            discrete.check_expressions(self, out, dynamic)
        for d in out.defs.values():
            self.check_expr(d.body, "def", dynamic - {"state", "let", "control"}, local=set(d.params))
        for s in out.lets.values():
            self.check_expr(s.value, s.kind, dynamic)
        for s in out.implicits.values():
            self.check_expr(s.lhs, "an implicit equation", dynamic)
            self.check_expr(s.rhs, "an implicit equation", dynamic)
        for s in out.ders.values():
            self.check_expr(s.value, "dynamics", dynamic)
        if out.stop:
            self.check_expr(out.stop.condition, "stop condition", dynamic, comparison_ok=True)
            self.check_expr(out.stop.max_time, "stop time", {"const"})
        terminal = dynamic | {"final_time", "trajectory"}
        self.check_expr(out.objective.expr, "objective", terminal)
        for e in out.expects:
            allowed = terminal
            local: set[str] = set()
            if e.over:
                var, low, high = e.over
                if self.kinds.get(var) != "state":
                    raise self.error(f"'over' needs a state, got '{var}'", e.over_span,
                                     did_you_mean(var, out.states))
                self.check_expr(low, "range", {"const"})
                self.check_expr(high, "range", {"const"})
                allowed = dynamic
            self.check_expr(e.left, "expect", allowed, local=local)
            self.check_expr(e.right, "expect", allowed, local=local)
            if e.op == "==" and e.tolerance is None:
                raise self.error("'==' in expect needs a tolerance", e.span, "add e.g. 'tol 1e-6' or 'tol 1%'")
            if e.op != "==" and (e.tolerance is not None or e.rms):
                raise self.error("'tol' and 'rms' only apply to '=='", e.span)
            if e.op == "!=":
                raise self.error("expect cannot use '!='", e.span, "use ==, <, >, <= or >=")
            if e.rms and not e.over:
                raise self.error("'rms' needs an 'over' range", e.span)
        for plot in out.plots:
            self.check_range_variable(plot.var, plot.var_span, out)
            self.check_expr(plot.low, "range", {"const"})
            self.check_expr(plot.high, "range", {"const"})
            for e in plot.exprs:
                self.check_expr(e, "plot", dynamic)
        for reference in out.references:
            self.check_reference(reference, out)

    def check_range_variable(self, name: str, span: ast.Span, out: CheckedSpec) -> None:
        if self.kinds.get(name) != "state":
            raise self.error(f"a range needs a state, got '{name}'", span, did_you_mean(name, out.states))

    def check_reference(self, reference: ast.ReferenceStmt, out: CheckedSpec) -> None:
        """`reference lqr(Q=..., R=..., max_ratio=...) at state=value, ...`."""
        call = reference.call
        if call.func != "lqr":
            raise self.error(f"unknown reference '{call.func}'", call.func_span,
                             did_you_mean(call.func, REFERENCES) or "available: " + ", ".join(REFERENCES))
        if call.args:
            raise self.error("give the weights by name: lqr(Q=..., R=...)", call.args[0].span)
        options = {k.name: k for k in call.kwargs}
        for k in call.kwargs:
            if k.name not in LQR_OPTIONS:
                raise self.error(f"unknown option '{k.name}' for lqr()", k.span,
                                 did_you_mean(k.name, LQR_OPTIONS) or "options: " + ", ".join(LQR_OPTIONS))
        for required in ("Q", "R"):
            if required not in options:
                raise self.error(f"lqr() needs {required}=...", call.span,
                                 "Q weighs the states, R the controls: lqr(Q=diag(...), R=...)")
        if not out.controls:
            raise self.error("an LQR reference needs a 'control'", reference.span)
        shaped = [(n, b.shape, b.span) for n, b in out.states.items()] + [(n, out.lets[n].shape, out.lets[n].span)
                                                                          for n in out.controls if n in out.lets]
        for name, dims, span in shaped:
            if dims:
                raise self.error(f"an LQR reference needs scalar states and controls, but '{name}' has a shape",
                                 reference.span, f"'{name}' is declared with a shape on line {span.line}; "
                                 "declare one scalar per entry")
        if not out.horizon:
            raise self.error("an LQR reference needs a fixed 'horizon'", reference.span)
        self.check_matrix(options["Q"].value, len(out.states), "Q (one row per state)")
        self.check_matrix(options["R"].value, len(out.controls), "R (one row per control)")
        if "max_ratio" in options:
            value = literal(options["max_ratio"].value, self.error)
            if not isinstance(value, (int, float)) or value < 1:
                raise self.error("max_ratio must be a number >= 1", options["max_ratio"].value.span)
        seen = set()
        for name, value, span in reference.at:
            kind = self.kinds.get(name)
            if kind != "state":
                raise self.error(f"the equilibrium ('at') gives states, but '{name}' is "
                                 + (f"a {kind}" if kind else "not declared"), span,
                                 "controls are 0 at the equilibrium" if kind == "control"
                                 else did_you_mean(name, out.states) or "states: " + ", ".join(out.states))
            if name in seen:
                raise self.error(f"'{name}' is given twice", span)
            seen.add(name)
            self.check_expr(value, "equilibrium", {"const"})

    def check_matrix(self, expr: ast.Expr, size: int, what: str) -> None:
        """A size x size constant matrix: diag(...), [[...], ...], or one value when size is 1."""
        if isinstance(expr, ast.Call) and expr.func == "diag":
            if len(expr.args) != size:
                raise self.error(f"{what}: diag() needs {size} entries, got {len(expr.args)}", expr.span)
            entries = list(expr.args)
        elif isinstance(expr, ast.Array):
            rows = [r.items if isinstance(r, ast.Array) else None for r in expr.items]
            if len(rows) != size or any(r is None or len(r) != size for r in rows):
                raise self.error(f"{what}: expected a {size}x{size} matrix", expr.span)
            entries = [e for r in rows for e in r]
        elif size == 1:
            entries = [expr]
        else:
            raise self.error(f"{what}: expected diag(...) or a {size}x{size} matrix", expr.span)
        for e in entries:
            self.check_expr(e, "a matrix entry", {"const"})


    def check_distribution(self, call: ast.Call) -> None:
        if call.func not in DISTRIBUTIONS:
            raise self.error(f"unknown distribution '{call.func}'", call.func_span,
                             did_you_mean(call.func, DISTRIBUTIONS) or "use normal(mean, std) or uniform(low, high)")
        if len(call.args) != 2 or call.kwargs:
            raise self.error(f"{call.func}() takes 2 arguments", call.span)
        for a in call.args:
            self.check_expr(a, "distribution", {"const"})

    def check_expr(self, expr: ast.Expr, where: str, allowed: set[str], local: set[str] = frozenset(),
                   comparison_ok: bool = False) -> None:
        """Resolve every name and call in expr; `allowed` lists the kinds of names it may use."""
        if isinstance(expr, ast.Number):
            return
        if isinstance(expr, ast.Name):
            self.check_name(expr.id, expr.span, where, allowed, local)
        elif isinstance(expr, ast.Call):
            self.check_call(expr, where, allowed, local)
        elif isinstance(expr, ast.BinOp):
            self.check_expr(expr.left, where, allowed, local)
            self.check_expr(expr.right, where, allowed, local)
        elif isinstance(expr, ast.Neg):
            self.check_expr(expr.operand, where, allowed, local)
        elif isinstance(expr, ast.Compare):
            if not comparison_ok:
                raise self.error(f"a comparison cannot be used as a value in {where}", expr.span,
                                 "comparisons belong in 'stop when', 'expect' and where(cond, a, b)")
            self.check_expr(expr.left, where, allowed, local)
            self.check_expr(expr.right, where, allowed, local)
        elif isinstance(expr, ast.Transpose):
            self.check_expr(expr.operand, where, allowed, local)
        elif isinstance(expr, ast.Array):
            for item in expr.items:
                self.check_expr(item, where, allowed, local)

    def check_name(self, name: str, span: ast.Span, where: str, allowed: set[str], local: set[str]) -> None:
        if name in local or name in CONSTANTS:
            return
        if name in CRITERIA:
            design.check_criterion(self, name, span, where, allowed)
            return
        if name == TIME:
            kind = "time"
        elif name == FINAL_TIME:
            kind = "final_time"
        elif name in FUNCTIONS and name not in self.kinds:
            raise self.error(f"'{name}' is a function; call it as {name}(...)", span)
        else:
            kind = self.kinds.get(name)
        if kind is None:
            raise self.error(f"undefined name '{name}'", span,
                             did_you_mean(name, list(self.kinds) + list(local) + [TIME, FINAL_TIME, "pi"])
                             or "declare it with const, param, state, let or control")
        if kind in ("def", "net"):
            raise self.error(f"'{name}' is a {kind}; call it with arguments", span)
        if kind not in allowed:
            meaning = {"time": "the time t", "final_time": "the final time T"}.get(kind, f"the {kind} '{name}'")
            raise self.error(f"{meaning} cannot be used in {where}", span)

    def check_call(self, call: ast.Call, where: str, allowed: set[str], local: set[str]) -> None:
        name = call.func
        if call.kwargs:
            raise self.error(f"{name}() takes no 'name=value' arguments", call.kwargs[0].span)
        if design.is_design_call(self, call):
            design.check_design_call(self, call, where, allowed, local)
            return
        kind = self.kinds.get(name)
        nargs = len(call.args)
        if name in FUNCTIONS and name not in local and name not in self.kinds:
            low, high = FUNCTIONS[name]
            if nargs < low or (high is not None and nargs > high):
                want = f"{low}" if low == high else f"at least {low}"
                raise self.error(f"{name}() takes {want} argument{'s' if low != 1 else ''}, got {nargs}",
                                 call.span)
            if name in TRAJECTORY:
                if "trajectory" not in allowed:
                    raise self.error(f"{name}(...) can only be used in an objective or expect", call.span)
                inner = allowed - {"trajectory"} if name == "integral" else allowed
                if name == "integral":
                    inner = inner - {"final_time"}
                self.check_expr(call.args[0], where, inner, local)
                return
            if name == "randn" and where != "param":
                raise self.error("randn() draws initial values: use it in a 'param' declaration", call.span)
            if name == "d":
                target = call.args[1]
                if not isinstance(target, ast.Name) or self.kinds.get(target.id) not in ("param", "state"):
                    raise self.error("d(expr, name) differentiates with respect to a param or a state",
                                     target.span, "e.g. d(y, a) with 'param a'")
            for i, a in enumerate(call.args):
                self.check_expr(a, where, allowed, local, comparison_ok=(name == "where" and i == 0))
            if name == "where" and not isinstance(call.args[0], ast.Compare):
                raise self.error("where() needs a comparison first: where(cond, a, b)", call.args[0].span)
            return
        if kind == "state":
            if "trajectory" not in allowed:
                raise self.error(f"'{name}(...)' (a state at a time) can only be used in an objective or expect",
                                 call.span, f"use '{name}' for its current value")
            arg = call.args[0] if nargs == 1 else None
            ok = isinstance(arg, ast.Name) and arg.id == FINAL_TIME or isinstance(arg, ast.Number) and arg.value == 0
            if not ok and not (isinstance(arg, ast.Name) and self.kinds.get(arg.id) == "design"):
                raise self.error(f"a state can be taken at 0 or at T: {name}(0) or {name}(T)", call.span,
                                 "or, in a design study, at a design time")
            return
        if kind in ("def", "net"):
            if kind == "def":
                expected = len(self.spec_def(name).params)
            else:
                expected = len(self.spec_net(name).inputs)
            if nargs != expected:
                raise self.error(f"{kind} '{name}' takes {expected} argument{'s' if expected != 1 else ''}, "
                                 f"got {nargs}", call.span)
            if kind == "net" and "net" not in allowed:
                raise self.error(f"net '{name}' cannot be used in {where}", call.span)
            for a in call.args:
                self.check_expr(a, where, allowed, local)
            return
        if kind is not None:
            raise self.error(f"'{name}' is a {kind}, not a function", call.func_span)
        candidates = list(FUNCTIONS) + [n for n, k in self.kinds.items() if k in ("def", "net")]
        raise self.error(f"unknown function '{name}'", call.func_span,
                         did_you_mean(name, candidates) or "see the function table in docs/language.md")

    def spec_def(self, name: str) -> ast.DefStmt:
        return next(s for s in self.spec.statements if isinstance(s, ast.DefStmt) and s.name == name)

    def spec_net(self, name: str) -> ast.NetStmt:
        return next(s for s in self.spec.statements if isinstance(s, ast.NetStmt) and s.name == name)

    # -- dependency order
    def sorted_by_dependencies(self, table: dict, exprs_of) -> dict:
        """Topologically sort `table` by the names its expressions use; report cycles."""
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
                    raise self.error("circular definition: " + " -> ".join(cycle), table[following].name_span,
                                     "a name cannot depend on itself")
                elif following not in ordered:
                    path.append(following)
                    pending.append(iter(sorted(deps[following])))
        return ordered


def problem_axes(out: CheckedSpec) -> tuple[str, str]:
    """The time model and the study of a checked spec."""
    time_model = "rollout" if out.discrete is not None else "ode" if out.states else "static"
    if out.discrete is not None and out.discrete.identify is not None:
        return time_model, "identify"
    return time_model, "design" if out.designs else "train"


def _named_exprs(item: ast.LetStmt | ast.ImplicitStmt) -> list[ast.Expr]:
    if isinstance(item, ast.ImplicitStmt):
        return [item.lhs, item.rhs, *item.shape]
    return [item.value, *item.shape]


def check(spec: ast.Spec) -> CheckedSpec:
    """Check a parsed spec; raise SpecError on the first problem."""
    return _Checker(spec).run()

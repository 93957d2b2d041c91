"""Sequential Bayesian experimental design studies (report §6): their statements and checks.

A design study has uncertain params (`param theta ~ normal(mean, std)`: a Gaussian prior), design
variables (`design tobs in [0, 5]`), one `observe EXPR + normal(0, sigma)`, a `truth` for every
uncertain param and optionally `rounds N`. Objectives and expects may read the belief
(`mean(theta)`, `var(theta)`, `cov(a, b)`), sensitivities `sens(expr, theta)` and the criterion
`information_gain`. The module registers its handlers and checks with dsl.checker and the study
`design` with dsl.kinds.
"""
from __future__ import annotations

from . import ast
from .check import CheckedSpec, Observation
from .checker import Checker, register_check, register_statement
from .distributions import check_gaussian
from .errors import did_you_mean
from .expressions import register_call_check, register_name_check
from .functions import CRITERIA, DESIGN_FUNCTIONS, FINAL_TIME, TRAJECTORY
from .kinds import TIME_MODEL_WORDS, register_study
from .settings import literal
from .walk import walk

SENSITIVITY = "sens"
BELIEF_MEAN = "mean"
NOISE = "normal"
# what the observed expression (and the inside of sens) may use: the model at the observation time
OBSERVED = {"const", "param", "state", "def", "let", "control", "design", "trajectory"}


def declare_design(checker: Checker, out: CheckedSpec, stmt: ast.DesignStmt) -> None:
    """Pass 1: `design name in [low, high]` declares a name of kind 'design'."""
    checker.declare(stmt.name, "design", stmt.name_span)
    out.designs[stmt.name] = stmt


def collect(checker: Checker, out: CheckedSpec, stmt: ast.Statement) -> None:
    """Pass 2: `observe`, `truth` and `rounds`."""
    if isinstance(stmt, ast.ObserveStmt):
        if out.observation is not None:
            raise checker.error("only one 'observe' statement is allowed", stmt.span,
                                f"the first is on line {out.observation.span.line}")
        model, noise = _split_noise(checker, stmt.expr)
        out.observation = Observation(model, noise, stmt.span)
    elif isinstance(stmt, ast.TruthStmt):
        for name, value, span in stmt.values:
            if checker.kinds.get(name) == "truth":   # an unknown for identification (dsl.discrete)
                continue
            if name in out.truth:
                raise checker.error(f"the truth of '{name}' is given twice", span)
            out.truth[name] = (value, span)
    elif isinstance(stmt, ast.RoundsStmt):
        if out.rounds is not None:
            raise checker.error("'rounds' is given twice", stmt.span)
        count = literal(stmt.count, checker.error)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise checker.error("rounds must be a positive integer", stmt.count.span)
        out.rounds = count


def _split_noise(checker: Checker, expr: ast.Expr) -> tuple[ast.Expr, ast.Call]:
    """`a + b + normal(0, s)` -> (a + b, normal(0, s)): exactly one noise term, added at the top level."""
    terms: list[ast.Expr] = []
    pending = [expr]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.BinOp) and node.op == "+":
            pending += [node.right, node.left]
        else:
            terms.append(node)
    noises = [t for t in terms if isinstance(t, ast.Call) and t.func == NOISE]
    hint = "write the noise as a term of its own: observe <expr> + normal(0, sigma)"
    if len(noises) != 1:
        raise checker.error("an observation needs exactly one noise term normal(0, sigma)" if not noises else
                            "an observation has one noise term", (noises[1] if noises else expr).span, hint)
    model_terms = [t for t in terms if t is not noises[0]]
    if not model_terms:
        raise checker.error("the observation has no model, only noise", expr.span, hint)
    model = model_terms[0]
    for term in model_terms[1:]:
        model = ast.BinOp("+", model, term, ast.Span(model.span.line, model.span.column,
                                                     term.span.end_line, term.span.end_column))
    return model, noises[0]


# ------------------------------------------------------------ expression hooks
def is_design_call(checker: Checker, call: ast.Call) -> bool:
    """var/cov/sens, or mean(theta) of an uncertain param (the belief mean, not a batch mean)."""
    if call.func in DESIGN_FUNCTIONS:
        return True
    return call.func == BELIEF_MEAN and len(call.args) == 1 and isinstance(call.args[0], ast.Name) \
        and call.args[0].id in checker.uncertain


def check_design_call(checker: Checker, call: ast.Call, where: str, allowed: set[str], local: set[str]) -> None:
    name = call.func
    low, high = DESIGN_FUNCTIONS.get(name, TRAJECTORY.get(name))
    if not low <= len(call.args) <= high:
        want = f"{low}" if low == high else f"{low} or {high}"
        raise checker.error(f"{name}() takes {want} argument{'s' if high != 1 else ''}, got {len(call.args)}",
                            call.span)
    if "trajectory" not in allowed:
        raise checker.error(f"{name}(...) can only be used in an objective or expect", call.span,
                            "it reads the belief about the uncertain params, which the model itself does not see")
    if name != SENSITIVITY:
        for arg in call.args:
            _uncertain_argument(checker, arg, name)
        return
    expr, param = call.args
    _uncertain_argument(checker, param, name)
    checker.check_expr(expr, where, allowed & OBSERVED, local)
    _model_only(checker, expr, "sens() differentiates the model")


def check_criterion(checker: Checker, name: str, span: ast.Span, where: str, allowed: set[str]) -> None:
    """`information_gain`: in objectives and expects of a design study."""
    if "trajectory" not in allowed:
        raise checker.error(f"'{name}' can only be used in an objective or expect", span)
    if not checker.uncertain:
        raise checker.error(f"'{name}' needs a design study", span,
                            "declare uncertain params (param theta ~ normal(mean, std)) and 'observe ...'")


def _uncertain_argument(checker: Checker, arg: ast.Expr, func: str) -> None:
    if isinstance(arg, ast.Name) and arg.id in checker.uncertain:
        return
    shown = f"'{arg.id}'" if isinstance(arg, ast.Name) else "an expression"
    hint = did_you_mean(arg.id, checker.uncertain) if isinstance(arg, ast.Name) else None
    example = f"{func}(<expr>, {{}})" if func == SENSITIVITY else f"{func}({{}})"
    raise checker.error(f"{func}() needs an uncertain param (declared as 'param <name> ~ normal(mean, std)'), got {shown}",
                        arg.span, hint or ("e.g. " + example.format(sorted(checker.uncertain)[0]) if checker.uncertain
                                           else "declare one with 'param theta ~ normal(mean, std)'"))


def _model_only(checker: Checker, expr: ast.Expr, what: str) -> None:
    """No belief, criterion, integral or batch mean inside an observation or a sensitivity."""
    for node in walk(expr):
        if isinstance(node, ast.Name) and node.id in CRITERIA:
            raise checker.error(f"{what}: '{node.id}' cannot appear inside", node.span)
        if isinstance(node, ast.Call) and (node.func in DESIGN_FUNCTIONS or node.func in TRAJECTORY):
            raise checker.error(f"{what}: {node.func}(...) cannot appear inside", node.span,
                                "use the model at the observation time: states at that time, params and designs")


# --------------------------------------------------------------- the study
def check_study(checker: Checker, out: CheckedSpec) -> None:
    """Structure of a design study; nothing to do for other specs (but design statements need one)."""
    if out.observation is None:
        _not_a_study(checker, out)
        return
    obs = out.observation
    uncertain = [b for b in out.params.values() if b.distribution is not None]
    if not uncertain:
        raise checker.error("'observe' needs an uncertain param to learn about", obs.span,
                            "declare one with 'param theta ~ normal(mean, std)'")
    if not out.designs:
        raise checker.error("a design study needs a design variable", obs.span, "add 'design x in [low, high]'")
    _unsupported(checker, out)
    for b in uncertain:
        check_gaussian(checker, b.distribution, "a prior", "an uncertain param has a Gaussian prior: normal(mean, std)")
        if b.name not in out.truth:
            raise checker.error(f"the uncertain param '{b.name}' needs a truth to simulate the experiments",
                                b.span, f"add 'truth {b.name} = <value>' (the planner never sees it)")
    for name, (value, span) in out.truth.items():
        if name not in checker.uncertain:
            kind = checker.kinds.get(name)
            raise checker.error(f"'truth' is for uncertain params, but '{name}' is "
                                + (f"a {kind}" if kind else "not declared"), span,
                                did_you_mean(name, checker.uncertain))
        checker.check_expr(value, "truth", {"const"})
    for d in out.designs.values():
        checker.check_expr(d.low, "a design bound", {"const"})
        checker.check_expr(d.high, "a design bound", {"const"})
    check_gaussian(checker, obs.noise, "the noise", "the noise is normal(0, sigma)")
    allowed = OBSERVED | ({"final_time"} if out.horizon else set())
    checker.check_expr(obs.model, "observe", allowed)
    _model_only(checker, obs.model, "observe describes the experiment")
    found = checker.varying(obs.model)
    if found:
        node, varying = found
        shown = node.id if isinstance(node, ast.Name) else f"{node.func}(...)"
        example = f"{varying}({next(iter(out.designs))})" if varying in out.states else "a design"
        raise checker.error(f"'{shown}' changes along the trajectory: an experiment observes states at a time",
                            node.span, f"observe e.g. {example}")
    obs.time = _observation_time(checker, out)


def _not_a_study(checker: Checker, out: CheckedSpec) -> None:
    """Design statements without `observe` are mistakes."""
    uncertain = [b for b in out.params.values() if b.distribution is not None]
    hint = "add 'observe <expr> + normal(0, sigma)' (a design study)"
    if uncertain:
        raise checker.error(f"the uncertain param '{uncertain[0].name}' needs an experiment", uncertain[0].span, hint)
    stray = next((s for s in checker.spec.statements
                  if isinstance(s, (ast.DesignStmt, ast.RoundsStmt))
                  or isinstance(s, ast.TruthStmt) and any(checker.kinds.get(b.name) != "truth" for b in s.bindings)),
                 None)   # a truth of an estimated unknown belongs to an identification study
    if stray is not None:
        keyword = {ast.DesignStmt: "design", ast.TruthStmt: "truth", ast.RoundsStmt: "rounds"}[type(stray)]
        raise checker.error(f"'{keyword}' belongs to a design study, which needs an 'observe' statement",
                            stray.span, hint)
    each = next((e for e in out.expects if e.each_round), None)
    if each is not None:
        raise checker.error("'each round' needs a design study", each.span, hint)


def _unsupported(checker: Checker, out: CheckedSpec) -> None:
    """What the sequential design runtime does not handle."""
    if out.stop:
        raise checker.error("'stop when' is not supported in a design study", out.stop.span,
                            "the trajectory ends at the observation time")
    if out.nets:
        stmt = next(iter(out.nets.values()))[0]
        raise checker.error("nets are not supported in a design study", stmt.span,
                            "sensitivities are derived symbolically")
    if out.batch > 1:
        batch = next(s for s in checker.spec.statements if isinstance(s, ast.BatchStmt))
        raise checker.error("a design study runs one trajectory (batch 1)", batch.span)
    random = next((b for b in out.states.values() if b.distribution is not None), None)
    if random is not None:
        raise checker.error("random initial states are not supported in a design study", random.distribution.span,
                            "uncertainty belongs in uncertain params: param theta ~ normal(mean, std)")
    for stmt in [*out.references, *out.plots]:
        raise checker.error("'reference' and 'plot' are not supported in a design study", stmt.span)
    for e in out.expects:
        if e.over:
            raise checker.error("'over' is not supported in a design study", e.over_span,
                                "expects are checked on the belief and the design")


def _observation_time(checker: Checker, out: CheckedSpec) -> str | None:
    """The one time at which the states are observed: a design, T (the horizon), or none."""
    obs = out.observation
    times = _state_times(checker, obs.model)
    if len(times) > 1:
        second = times[1]
        raise checker.error(f"an experiment observes the states at one time, here at '{times[0][0]}' and "
                            f"'{second[0]}'", second[1][0])
    time = times[0][0] if times else None
    if time == FINAL_TIME and not out.horizon:
        raise checker.error("states at T need a 'horizon'", times[0][1][0],
                            f"or observe at a design time, e.g. u({next(iter(out.designs))})")
    if time is not None and time != FINAL_TIME and out.horizon:
        raise checker.error(f"the observation time '{time}' ends the trajectory: remove 'horizon'", out.horizon.span)
    if time is None and out.states:
        if not out.horizon:
            state = next(iter(out.states))
            raise checker.error("the states are never observed", obs.span,
                                f"take one at a design time, e.g. observe {state}({next(iter(out.designs))}) + ...")
        time = FINAL_TIME
    for term in [out.objective.expr, *(side for e in out.expects for side in (e.left, e.right))]:
        for other, (span, state) in _state_times(checker, term):
            if other not in (time, FINAL_TIME):
                raise checker.error(f"states are observed at '{time}' only", span, f"write {state}({time})")
    return time


def _state_times(checker: Checker, expr: ast.Expr) -> list[tuple[str, tuple[ast.Span, str]]]:
    """Distinct non-zero times at which expr takes states (x(tobs), x(T)): the place and the state."""
    found: dict[str, tuple[ast.Span, str]] = {}
    for node in walk(expr):
        if isinstance(node, ast.Call) and checker.kinds.get(node.func) == "state" and node.args \
                and isinstance(node.args[0], ast.Name):
            found.setdefault(node.args[0].id, (node.args[0].span, node.func))
    return list(found.items())


def detect(checker: Checker, out: CheckedSpec) -> tuple[ast.Span, str, str] | None:
    """The first statement that makes the spec a design study (for dsl.kinds.check_axes)."""
    belongs = "a sequential design study"
    found = [(s.span, STATEMENT_WORDS[type(s)], belongs) for s in checker.spec.statements
             if type(s) in STATEMENT_WORDS]
    found += [(b.distribution.span, "param ~ normal(...)", f"{belongs} (an uncertain param)")
              for b in out.params.values() if b.distribution is not None]
    return min(found, key=lambda f: (f[0].line, f[0].column), default=None)


STATEMENT_WORDS = {ast.DesignStmt: "design", ast.ObserveStmt: "observe", ast.RoundsStmt: "rounds"}

register_statement(ast.DesignStmt, declare_design, declares=True)
for _statement in (ast.ObserveStmt, ast.TruthStmt, ast.RoundsStmt):
    register_statement(_statement, collect)
register_name_check(CRITERIA, check_criterion)
register_call_check(is_design_call, check_design_call)
register_check("final", check_study)
register_study("design", {"ode", "static"}, detect=detect, accepts=TIME_MODEL_WORDS["ode"])

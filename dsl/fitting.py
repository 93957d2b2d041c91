"""Fits to measured data (issue 13): `data` tables, `fit` statements and param bounds, checked.

A fit study has one or more `data NAME = csv("file.csv", time=t) [with x = x0, ...]` statements
(each an experiment with its own initial states) and `fit EXPR to NAME.COLUMN [sigma S | sigma
estimated], ...`. Its objective is the Gaussian negative log-likelihood `nll` (added here, so a
spec does not write one); expects may read `nll` and `stderr(k)` of a fitted param. Param bounds
(`param k > 0 = 1`, `param k in [a, b] = v`) are checked here for every spec. The tables are
read and validated at check time (dsl/data_files.py), so `impsolve check` reports bad data.
"""
from __future__ import annotations

from dataclasses import replace

from . import ast
from .check import CheckedSpec, Dataset, FitSpec, register_override_check, register_override_section
from .checker import Checker, register_check, register_statement
from .data_files import base_folder, check_times, read_table, resolve
from .errors import SpecError, did_you_mean
from .expressions import register_call_check, register_name_check
from .kinds import TIME_MODEL_WORDS, register_study
from .options import TrainOptions

NLL = "nll"            # the objective of a fit: the negative log-likelihood at the fitted params
RMSE = "rmse"          # the root-mean-square of model - data over every fitted value (in expects)
STDERR = "stderr"      # stderr(k): the standard error of a fitted param (in expects)
DEFAULT_TIME = "t"
FITTED = {"const", "param", "state", "def", "let", "control"}   # what a fitted expression may use


def stderr_name(param: str) -> str:
    """The study param that holds the standard error of `param` (both lowerings name it so)."""
    return f"{STDERR}({param})"


def calls_stderr(checked: CheckedSpec, call: ast.Call) -> bool:
    """Whether `call` is the fit study's stderr(k) (not a declared name of the spec called stderr)."""
    c = checked
    declared = {*c.consts, *c.params, *c.states, *c.defs, *c.lets, *c.nets, *c.implicits}
    return call.func == STDERR and STDERR not in declared


def stderr_param(checked: CheckedSpec, call: ast.Call, error) -> str:
    """The fitted param of `stderr(k)`, which must be a scalar (both lowerings; `error` is theirs)."""
    name = call.args[0].id
    if checked.params[name].shape:
        raise error(f"stderr() takes a scalar param; '{name}' has entries", call.args[0].span,
                    "result.json lists the standard error of every entry")
    return name


def fixed_sigma(item: ast.FitItem, constant, error) -> float | None:
    """A fitted item's sigma: None when estimated, else its value (`constant` evaluates a const
    expression in the caller's lowering), which must be positive."""
    if item.sigma == "estimated":
        return None
    sigma = float(constant(item.sigma, "sigma"))
    if sigma <= 0:
        raise error("sigma must be positive", item.sigma.span)
    return sigma


def declare_data(checker: Checker, out: CheckedSpec, stmt: ast.DataStmt) -> None:
    """Pass 1: `data NAME = csv(...)` declares a name of kind 'data'."""
    checker.declare(stmt.name, "data", stmt.name_span)
    out.fit = out.fit or FitSpec()
    out.fit.datasets[stmt.name] = Dataset(stmt, stmt.path, DEFAULT_TIME, (), {})


def collect_fit(checker: Checker, out: CheckedSpec, stmt: ast.FitStmt) -> None:
    """Pass 2: the fitted items, each with its sigma (a pair without one takes the statement's last);
    the first `fit` adds the objective `minimize nll`."""
    user_objective = next((s for s in checker.spec.statements if isinstance(s, ast.ObjectiveStmt)), None)
    if user_objective is not None:
        raise checker.error("a fit minimises the negative log-likelihood of its data; it takes no objective",
                            user_objective.span, "remove the 'minimize'/'maximize' statement")
    last = stmt.items[-1].sigma
    if last is None:
        raise checker.error("a fit needs the noise level of its data", stmt.items[-1].span,
                            "add 'sigma 0.1' (the measurement standard deviation) or 'sigma estimated'")
    out.fit = out.fit or FitSpec()
    out.fit.items += [item if item.sigma is not None else replace(item, sigma=last) for item in stmt.items]
    if out.objective is None:
        out.objective = ast.ObjectiveStmt("minimize", ast.Name(NLL, stmt.span), None, stmt.span)


# ------------------------------------------------------------------ the data tables
def load_dataset(dataset: Dataset, path: str, spec_file: str, error, time_error=None) -> Dataset:
    """Read the table of a data statement (from `path`) and its time column; `error(message, hint)`
    locates problems of the file, `time_error` (default `error`) those of the time column."""
    table = read_table(resolve(path, spec_file), error, base_folder(spec_file))
    times = table.column(dataset.time_column, time_error or error)
    check_times(times, table, dataset.time_column, error)
    return replace(dataset, path=table.path, times=times, columns=table.columns)


def check_data_statement(checker: Checker, out: CheckedSpec, dataset: Dataset) -> Dataset:
    """The reader, its options, the experiment's initial states and the table itself."""
    stmt = dataset.statement
    if stmt.reader != "csv":
        raise checker.error(f"unknown data reader '{stmt.reader}'", stmt.reader_span, "use csv(\"file.csv\", time=t)")
    time_column, time_span = DEFAULT_TIME, stmt.path_span
    for name, value, span in stmt.options:
        if name != "time":
            raise checker.error(f"csv() has no option '{name}'", span, did_you_mean(name, ["time"]) or
                                "csv(\"file.csv\", time=<the time column>)")
        if not isinstance(value, ast.Name):
            raise checker.error("time= names the time column, e.g. time=t", value.span)
        time_column, time_span = value.id, value.span
    for name, value, span in stmt.initial:
        if checker.kinds.get(name) != "state":
            raise checker.error(f"'with' sets the experiment's initial states, but '{name}' is "
                                + (f"a {checker.kinds[name]}" if name in checker.kinds else "not declared"),
                                span, did_you_mean(name, out.states))
        checker.check_expr(value, "an initial state", {"const", "param"})
    return load_dataset(replace(dataset, time_column=time_column), stmt.path, checker.spec.filename,
                        lambda message, hint=None: checker.error(message, stmt.path_span, hint),
                        lambda message, hint=None: checker.error(message, time_span, hint))


def check_items(checker: Checker, out: CheckedSpec) -> None:
    """Each fitted item: its data set declared before the fit, its column, its expression and sigma."""
    fit = out.fit
    seen: dict[tuple[str, str], ast.FitItem] = {}
    for item in fit.items:
        if item.data not in fit.datasets:
            kind = checker.kinds.get(item.data)
            raise checker.error(f"'{item.data}' is " + (f"a {kind}, not a data set" if kind else "not a data set"),
                                item.data_span, did_you_mean(item.data, fit.datasets) or
                                f"declare it: data {item.data} = csv(\"file.csv\", time=t)")
        dataset = fit.datasets[item.data]
        if dataset.statement.span.line > item.span.line:
            raise checker.error(f"the data set '{item.data}' is used before its data statement (line "
                                f"{dataset.statement.span.line})", item.data_span, "move the 'data' statement up")
        if item.column == dataset.time_column:
            raise checker.error(f"'{item.column}' is the time column of '{item.data}'", item.column_span)
        if item.column not in dataset.columns:
            raise checker.error(f"{dataset.path} has no column '{item.column}' (its columns: "
                                f"{', '.join(dataset.columns)})", item.column_span,
                                did_you_mean(item.column, [c for c in dataset.columns if c != dataset.time_column]))
        if (item.data, item.column) in seen:
            raise checker.error(f"'{item.data}.{item.column}' is fitted twice", item.column_span,
                                f"first on line {seen[item.data, item.column].span.line}")
        seen[item.data, item.column] = item
        checker.check_expr(item.model, "a fitted expression", FITTED)
        if item.sigma != "estimated":
            checker.check_expr(item.sigma, "a sigma", {"const"})
    enough_rows(out, lambda message, hint: checker.error(message, fit.items[0].span, hint))


def enough_rows(out: CheckedSpec, error) -> None:
    """More observations than fitted numbers (params, and one sigma per estimated column)."""
    fit = out.fit
    observations = sum(len(fit.datasets[i.data].times) for i in fit.items)
    unknowns = sum(_entries(b) for b in out.params.values() if b.distribution is None)
    unknowns += sum(1 for i in fit.items if i.sigma == "estimated")
    if observations <= unknowns:
        raise error(f"too few observations: {observations} data values for {unknowns} unknowns "
                    "(params and estimated sigmas)", "add rows or columns to the data, or fix some params as consts")


def _entries(binding: ast.Binding) -> int:
    count = 1
    for dim in binding.shape:
        count *= int(dim.value) if isinstance(dim, ast.Number) else 1
    return count


def check_fit(checker: Checker, out: CheckedSpec) -> None:
    """The final check of a fit study: data sets, items, and what a fit does not support."""
    if out.study != "fit":
        lm = next((s for s in checker.spec.statements if isinstance(s, ast.SettingsStmt) and s.call.func == "lm"), None)
        if lm is not None:
            raise checker.error("lm (Levenberg-Marquardt) fits data: it needs 'data' and 'fit' statements",
                                lm.call.func_span, "use adam, sgd or lbfgs")
        _no_windows(checker)
        return
    fit = out.fit
    if not any(isinstance(s, ast.SettingsStmt) and s.kind == "train" for s in checker.spec.statements):
        out.training = [TrainOptions(optimizer="lm", steps=100)]   # a fit's default: Levenberg-Marquardt
    if not fit.items:
        stmt = next(iter(fit.datasets.values())).statement
        raise checker.error(f"the data set '{stmt.name}' is never fitted", stmt.span,
                            f"add e.g. 'fit x to {stmt.name}.<column> sigma 0.1'")
    for name, dataset in fit.datasets.items():
        fit.datasets[name] = check_data_statement(checker, out, dataset)
    check_items(checker, out)
    used = {i.data for i in fit.items}
    for name, dataset in fit.datasets.items():
        if name not in used:
            raise checker.error(f"the data set '{name}' is never fitted", dataset.statement.span)
    for stmt, what in ((out.horizon, "'horizon'"), (out.stop, "'stop when'")):
        if stmt is not None:
            raise checker.error(f"a fit ends at its last observation; {what} is not used", stmt.span,
                                "remove it")
    if out.batch > 1:
        raise checker.error("a fit runs one trajectory per data set (batch 1)",
                            next(s for s in checker.spec.statements if isinstance(s, ast.BatchStmt)).span)
    random = next((b for b in out.states.values() if b.distribution is not None), None)
    if random is not None:
        raise checker.error("a fit needs fixed initial states (fit them as params: state x = x0)",
                            random.distribution.span)


def _no_windows(checker: Checker) -> None:
    """window=/windows= (time windows of measured data) outside a fit are errors."""
    for stmt in checker.spec.statements:
        if isinstance(stmt, ast.SettingsStmt) and stmt.kind == "train":
            option = next((k for k in stmt.call.kwargs if k.name in ("window", "windows")), None)
            if option is not None:
                raise checker.error(f"{option.name}= trains on time windows of measured data; it needs 'data' "
                                    "and 'fit' statements", option.span, "remove it")


def check_overridden_windows(out: CheckedSpec) -> None:
    """`--set train.window=...` outside a fit is an error, as `window=` in the spec is (it would be ignored)."""
    if out.study != "fit" and any(t.window is not None or t.windows is not None for t in out.training):
        raise SpecError("cannot set 'window'/'windows': time windows train on measured data, and this spec has no "
                        "'data' and 'fit' statements", None, filename="--set", hint="drop the setting")


# ------------------------------------------------------------------ param bounds (every spec)
def check_bounds(checker: Checker, out: CheckedSpec) -> None:
    """A bound belongs to a param and is constant."""
    for stmt in checker.spec.statements:
        if not isinstance(stmt, ast.DeclStmt):
            continue
        for b in stmt.bindings:
            if b.bound is None:
                continue
            if stmt.kind != "param":
                raise checker.error(f"only a param can have a bound; '{b.name}' is a {stmt.kind}", b.bound.span)
            for value in (b.bound.low, b.bound.high):
                if value is not None:
                    checker.check_expr(value, "a bound", {"const"})


# ------------------------------------------------------------------ nll and stderr(k)
def _in_fit(checker: Checker) -> bool:
    return any(isinstance(s, ast.FitStmt) for s in checker.spec.statements)


def check_nll(checker: Checker, name: str, span: ast.Span, where: str, allowed: set[str]) -> None:
    """`nll` (the fit's negative log-likelihood) and `rmse` (its root-mean-square error), in its expects."""
    what = "a negative log-likelihood" if name == NLL else "the root-mean-square error of a fit"
    if not _in_fit(checker):
        raise checker.error(f"'{name}' ({what}) needs a fit", span,
                            "add 'data' and 'fit' statements")
    if "trajectory" not in allowed:
        raise checker.error(f"'{name}' can only be used in an expect", span)


def is_stderr_call(checker: Checker, call: ast.Call) -> bool:
    return call.func == STDERR and STDERR not in checker.kinds


def check_stderr(checker: Checker, call: ast.Call, where: str, allowed: set[str], local: set[str]) -> None:
    """`stderr(k)`: the standard error of the fitted param k."""
    if not _in_fit(checker):
        raise checker.error("stderr(...) needs a fit", call.span, "add 'data' and 'fit' statements")
    if "trajectory" not in allowed:
        raise checker.error("stderr(...) can only be used in an expect", call.span)
    arg = call.args[0] if len(call.args) == 1 else None
    params = [n for n, k in checker.kinds.items() if k == "param"]
    if not isinstance(arg, ast.Name) or checker.kinds.get(arg.id) != "param":
        raise checker.error("stderr() takes one fitted param, e.g. stderr(k)", (arg or call).span,
                            did_you_mean(arg.id, params) if isinstance(arg, ast.Name) else None)


# ------------------------------------------------------------------ --set data.NAME=file.csv
def override_data(checked: CheckedSpec, name: str, path: str) -> None:
    """Point the data set `name` at another file (relative to the working folder) and recheck it."""
    def error(message: str, hint: str | None = None) -> SpecError:
        return SpecError(message, None, filename="--set", hint=hint)
    if checked.fit is None or name not in checked.fit.datasets:
        known = list(checked.fit.datasets) if checked.fit else []
        raise error(f"cannot set 'data.{name}': the spec has no data set '{name}'", did_you_mean(name, known))
    dataset = load_dataset(checked.fit.datasets[name], path, "<--set>", error)
    checked.fit.datasets[name] = dataset
    for item in checked.fit.items:
        if item.data == name and item.column not in dataset.columns:
            raise error(f"{dataset.path} has no column '{item.column}' (fitted on line {item.span.line})",
                        did_you_mean(item.column, dataset.columns))
    enough_rows(checked, error)


def detect(checker: Checker, out: CheckedSpec) -> tuple[ast.Span, str, str] | None:
    """The first `data` or `fit` statement (for dsl.kinds.check_axes)."""
    found = [(s.span, "data" if isinstance(s, ast.DataStmt) else "fit", "a fit to data")
             for s in checker.spec.statements if isinstance(s, (ast.DataStmt, ast.FitStmt))]
    return min(found, key=lambda f: (f[0].line, f[0].column), default=None)


register_statement(ast.DataStmt, declare_data, declares=True)
register_statement(ast.FitStmt, collect_fit)
register_name_check({NLL, RMSE}, check_nll)
register_call_check(is_stderr_call, check_stderr)
register_check("structure", check_bounds)
register_check("final", check_fit)
register_override_section("data", override_data)
register_override_check(check_overridden_windows)
register_study("fit", {"ode"}, detect=detect, accepts=TIME_MODEL_WORDS["ode"], needs_horizon=False)

"""The Lark parse tree of a spec -> the dataclass syntax tree of dsl/ast.py."""
from __future__ import annotations

import math

from lark import v_args
from lark.visitors import Transformer_NonRecursive

from . import ast
from .errors import SpecError
from .lexing import span as _span, token_span as _token_span


@v_args(meta=True)
class ToAst(Transformer_NonRecursive):
    """Lark tree -> dataclass AST."""

    # expressions
    def number(self, meta, children):
        tok = children[0]
        if not math.isfinite(float(tok)):
            raise SpecError(f"the number {tok} is too large", _token_span(tok), hint="the limit is about 1.8e308")
        return ast.Number(float(tok), str(tok), _token_span(tok))

    def name(self, meta, children):
        tok = children[0]
        return ast.Name(str(tok), _token_span(tok))

    def call(self, meta, children):
        func, arguments = children
        args, kwargs = [], []
        for a in arguments or []:
            if isinstance(a, ast.Keyword):
                kwargs.append(a)
            elif kwargs:
                raise SpecError("a positional argument cannot follow a 'name = value' argument", a.span)
            else:
                args.append(a)
        return ast.Call(str(func), tuple(args), tuple(kwargs), _span(meta), _token_span(func))

    def arguments(self, meta, children):
        return list(children)

    def keyword_argument(self, meta, children):
        name, value = children
        return ast.Keyword(str(name), value, _span(meta))

    def _bin(op):  # noqa: N805 - helper building a method
        def method(self, meta, children):
            return ast.BinOp(op, children[0], children[1], _span(meta))
        return method

    add, sub, mul, div, matmul, pow = _bin("+"), _bin("-"), _bin("*"), _bin("/"), _bin("@"), _bin("^")

    def neg(self, meta, children):
        return ast.Neg(children[0], _span(meta))

    def compare(self, meta, children):
        left, op, right = children
        return ast.Compare(str(op), left, right, _span(meta))

    def transpose(self, meta, children):
        return ast.Transpose(children[0], _span(meta))

    def index(self, meta, children):
        return ast.Index(children[0], tuple(children[1:]), _span(meta))

    def slice(self, meta, children):
        start, stop = children
        return ast.Slice(start, stop, _span(meta))

    def array(self, meta, children):
        items = children[0]
        for item in items:
            if isinstance(item, ast.Keyword):
                raise SpecError("a matrix or list entry cannot be 'name = value'", item.span)
        return ast.Array(tuple(items), _span(meta))

    # statements
    def problem_stmt(self, meta, children):
        name, title = children
        return ast.ProblemStmt(str(name), _token_span(name), str(title)[1:-1] if title else "", _span(meta))

    def shape(self, meta, children):
        return tuple(children)

    def bind_value(self, meta, children):
        name, shape, value = children
        return ast.Binding(str(name), _token_span(name), shape or (), value, None, _span(meta))

    def bind_distribution(self, meta, children):
        name, shape, dist = children
        return ast.Binding(str(name), _token_span(name), shape or (), None, dist, _span(meta))

    def bind_bounded(self, meta, children):
        name, shape, bound, value = children
        return ast.Binding(str(name), _token_span(name), shape or (), value, None, _span(meta), bound)

    def one_sided_bound(self, meta, children):
        op, value = children
        if str(op) not in (">", ">=", "<", "<="):
            raise SpecError(f"a bound is '> low', '< high' or 'in [low, high]', not '{op}'", _token_span(op))
        low, high = (value, None) if str(op).startswith(">") else (None, value)
        return ast.Bound(low, high, str(op), _span(meta))

    def interval_bound(self, meta, children):
        low, high = children
        return ast.Bound(low, high, "in", _span(meta))

    def _decl(kind):  # noqa: N805
        def method(self, meta, children):
            return ast.DeclStmt(kind, tuple(children), _span(meta))
        return method

    const_stmt, param_stmt, state_stmt = _decl("const"), _decl("param"), _decl("state")

    def _of_expression(node):  # noqa: N805 - helper building a method
        """A statement of one expression: `horizon 5`, `steps 10`, `batch 4`, `rounds 3`, `observe ...`."""
        def method(self, meta, children):
            return node(children[0], _span(meta))
        return method

    horizon_stmt, steps_stmt, batch_stmt = _of_expression(ast.HorizonStmt), _of_expression(ast.StepsStmt), \
        _of_expression(ast.BatchStmt)
    rounds_stmt, observe_stmt = _of_expression(ast.RoundsStmt), _of_expression(ast.ObserveStmt)

    def _of_state(node):  # noqa: N805
        """`der(x) = expr` and `next(x) = expr`: a state and its dynamics."""
        def method(self, meta, children):
            state, value = children
            return node(str(state), _token_span(state), value, _span(meta))
        return method

    der_stmt, next_stmt = _of_state(ast.DerStmt), _of_state(ast.NextStmt)

    def names(self, meta, children):
        return tuple(children)

    def def_stmt(self, meta, children):
        name, params, body = children
        return ast.DefStmt(str(name), _token_span(name), tuple(map(str, params)),
                           tuple(map(_token_span, params)), body, _span(meta))

    def let_stmt(self, meta, children):
        name, shape, value = children
        return ast.LetStmt("let", str(name), _token_span(name), shape or (), value, _span(meta))

    def control_stmt(self, meta, children):
        name, shape, value = children
        return ast.LetStmt("control", str(name), _token_span(name), shape or (), value, _span(meta))

    def net_stmt(self, meta, children):
        name, inputs, arch = children
        return ast.NetStmt(str(name), _token_span(name), tuple(map(str, inputs)),
                           tuple(map(_token_span, inputs)), arch, _span(meta))

    def stop_stmt(self, meta, children):
        return ast.StopStmt(children[0], children[1], _span(meta))

    def at_stop(self, meta, children):
        return "stop"

    def at_end(self, meta, children):
        return "end"

    def objective_stmt(self, meta, children):
        sense, expr, at = children
        return ast.ObjectiveStmt(str(sense), expr, at, _span(meta))

    def solve_stmt(self, meta, children):
        return ast.SettingsStmt("solve", children[0], _span(meta))

    def implicit_stmt(self, meta, children):
        name, shape, lhs, rhs, options = children
        return ast.ImplicitStmt(str(name), _token_span(name), shape or (), lhs, rhs, options, _span(meta))

    def train_stmt(self, meta, children):
        return ast.SettingsStmt("train", children[0], _span(meta))

    def tol_clause(self, meta, children):
        number, percent = children
        if not math.isfinite(float(number)):
            raise SpecError(f"the number {number} is too large", _token_span(number), hint="the limit is about 1.8e308")
        return ("tol", float(number) / (100.0 if percent else 1.0), bool(percent), _span(meta))

    def rms_clause(self, meta, children):
        return ("rms", _span(meta))

    def over_clause(self, meta, children):
        name, low, high = children
        return ("over", (str(name), low, high), _span(meta))

    def each_round_clause(self, meta, children):
        return ("each round", _span(meta))

    def trailing_at_clause(self, meta, children):
        return ("at", children[0], _span(meta))

    def expect_stmt(self, meta, children):
        left, at, op, right, *clauses = children
        tolerance, relative, rms, over, over_span, each_round = None, False, False, None, None, False
        seen: set[str] = {"at"} if at else set()
        for clause in clauses:
            kind, span = clause[0], clause[-1]
            if kind in seen:
                raise SpecError(f"'{kind}' is given twice in this expect", span)
            seen.add(kind)
            if kind == "tol":
                tolerance, relative = clause[1], clause[2]
            elif kind == "rms":
                rms = True
            elif kind == "each round":
                each_round = True
            elif kind == "at":
                at = clause[1]
            else:
                over, over_span = clause[1], span
        return ast.ExpectStmt(left, at, str(op), right, tolerance, relative, rms, over, over_span,
                              _span(meta), each_round)

    def assignment(self, meta, children):
        name, value = children
        return (str(name), value, _token_span(name))

    def assignments(self, meta, children):
        return tuple(children)

    def reference_stmt(self, meta, children):
        call, at = children
        return ast.ReferenceStmt(call, at or (), _span(meta))

    def plot_stmt(self, meta, children):
        *exprs, var, low, high = children
        return ast.PlotStmt(tuple(exprs), str(var), _token_span(var), low, high, _span(meta))

    def design_stmt(self, meta, children):
        name, low, high = children
        return ast.DesignStmt(str(name), _token_span(name), low, high, _span(meta))

    def truth_stmt(self, meta, children):
        return ast.TruthStmt(tuple(children), _span(meta))

    # discrete time and identification
    def noise_stmt(self, meta, children):
        name, shape, distribution = children
        return ast.NoiseStmt(str(name), _token_span(name), shape or (), distribution, _span(meta))

    def estimate_stmt(self, meta, children):
        names, method = children
        return ast.EstimateStmt(tuple(map(str, names)), tuple(map(_token_span, names)), str(method),
                                _token_span(method), _span(meta))

    def identify_stmt(self, meta, children):
        return ast.IdentifyStmt(children[0] or (), _span(meta))

    def baseline_stmt(self, meta, children):
        control, distribution = children
        return ast.BaselineStmt(str(control), _token_span(control), distribution, _span(meta))

    def sequence_stmt(self, meta, children):
        name, shape, energy = children
        return ast.SequenceStmt(str(name), _token_span(name), shape or (), energy, _span(meta))

    def constraint_stmt(self, meta, children):
        left, op, right, always = children
        return ast.ConstraintStmt(left, str(op), right, always is not None, _span(meta))

    def always(self, meta, children):
        return True

    def control_range(self, meta, children):
        return tuple(children)

    def open_loop_stmt(self, meta, children):
        name, bounds, call = children
        low, high = bounds or (None, None)
        return ast.OpenLoopStmt(str(name), _token_span(name), low, high, call, _span(meta))

    def free_horizon_stmt(self, meta, children):
        return ast.FreeHorizonStmt(children[0], children[1], _span(meta))

    def study_stmt(self, meta, children):
        call = children[0]
        return ast.StudyStmt(call.func, call.func_span, call, _span(meta))

    # fitting to data
    def data_stmt(self, meta, children):
        name, reader, path, options, initial = children
        return ast.DataStmt(str(name), _token_span(name), str(reader), _token_span(reader), str(path)[1:-1],
                            _token_span(path), options or (), initial or (), _span(meta))

    def fit_item(self, meta, children):
        model, pair, sigma = children
        data, column = str(pair).split(".")
        whole = _token_span(pair)
        dot = whole.column + len(data)
        return ast.FitItem(model, data, ast.Span(whole.line, whole.column, whole.line, dot), column,
                           ast.Span(whole.line, dot + 1, whole.line, whole.end_column), sigma, _span(meta))

    def sigma_value(self, meta, children):
        return children[0]

    def sigma_estimated(self, meta, children):
        return "estimated"

    def fit_stmt(self, meta, children):
        return ast.FitStmt(tuple(children), _span(meta))

    def start(self, meta, children):
        return [c for c in children if c is not None]

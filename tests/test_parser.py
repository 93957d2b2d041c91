"""The parser: every statement kind, expression precedence, lexical details and source positions."""
from __future__ import annotations

from pathlib import Path

import pytest

from impsolve.dsl import ast, parse

ROOT = Path(__file__).resolve().parents[1]


def statements(text: str) -> list[ast.Statement]:
    return parse(text, "t.imp").statements


def one(text: str) -> ast.Statement:
    (statement,) = statements(text)
    return statement


def show(e: ast.Expr) -> str:
    """An expression fully parenthesised, to read its structure at a glance."""
    if isinstance(e, ast.Number):
        return e.text
    if isinstance(e, ast.Name):
        return e.id
    if isinstance(e, ast.Neg):
        return f"(-{show(e.operand)})"
    if isinstance(e, (ast.BinOp, ast.Compare)):
        return f"({show(e.left)}{e.op}{show(e.right)})"
    if isinstance(e, ast.Transpose):
        return f"({show(e.operand)}')"
    if isinstance(e, ast.Array):
        return "[" + ",".join(show(i) for i in e.items) + "]"
    if isinstance(e, ast.Call):
        args = [show(a) for a in e.args] + [f"{k.name}={show(k.value)}" for k in e.kwargs]
        return f"{e.func}(" + ",".join(args) + ")"
    raise TypeError(e)


def expr(text: str) -> str:
    """The structure of `text` parsed as the value of a let."""
    return show(one(f"let e = {text}").value)


def span(line: int, column: int, end_line: int, end_column: int) -> ast.Span:
    return ast.Span(line, column, end_line, end_column)


# ------------------------------------------------------------------ statements
def test_problem_with_and_without_title():
    s = one('problem zermelo "Cross a windy river"')
    assert isinstance(s, ast.ProblemStmt)
    assert (s.name, s.title) == ("zermelo", "Cross a windy river")
    assert s.name_span == span(1, 9, 1, 16)
    assert one("problem p").title == ""


def test_const_with_several_bindings():
    s = one("const v = 1, l = 2*v, w = -3")
    assert isinstance(s, ast.DeclStmt) and s.kind == "const"
    assert [b.name for b in s.bindings] == ["v", "l", "w"]
    assert [show(b.value) for b in s.bindings] == ["1", "(2*v)", "(-3)"]
    assert all(b.distribution is None and b.shape == () for b in s.bindings)
    assert [b.name_span.column for b in s.bindings] == [7, 14, 23]


def test_param():
    s = one("param k = 0.5")
    assert isinstance(s, ast.DeclStmt) and s.kind == "param"
    assert s.bindings[0].name == "k" and s.bindings[0].value == ast.Number(0.5, "0.5", span(1, 11, 1, 14))


def test_state_with_value_and_with_distribution():
    s = one("state x = 0, z ~ normal(0, 1)")
    assert isinstance(s, ast.DeclStmt) and s.kind == "state"
    x, z = s.bindings
    assert show(x.value) == "0" and x.distribution is None
    assert z.value is None and show(z.distribution) == "normal(0,1)"
    assert z.distribution.func_span == span(1, 18, 1, 24)


def test_shaped_binding_parses():
    b = one("const a[2] = [1, 2]").bindings[0]
    assert [show(d) for d in b.shape] == ["2"] and show(b.value) == "[1,2]"


def test_def():
    s = one("def w(y, z) = y*z + 1")
    assert isinstance(s, ast.DefStmt)
    assert (s.name, s.params, show(s.body)) == ("w", ("y", "z"), "((y*z)+1)")
    assert s.name_span == span(1, 5, 1, 6)
    assert s.param_spans == (span(1, 7, 1, 8), span(1, 10, 1, 11))


@pytest.mark.parametrize("kind", ["let", "control"])
def test_let_and_control(kind):
    s = one(f"{kind} u = pi * sigmoid(head(y))")
    assert isinstance(s, ast.LetStmt)
    assert (s.kind, s.name, s.shape) == (kind, "u", ())
    assert show(s.value) == "(pi*sigmoid(head(y)))"
    assert s.name_span.column == len(kind) + 2


def test_net():
    s = one("net head(y, t): mlp(hidden=[16, 16], act=tanh)")
    assert isinstance(s, ast.NetStmt)
    assert (s.name, s.inputs) == ("head", ("y", "t"))
    assert [sp.column for sp in s.input_spans] == [10, 13]
    assert show(s.architecture) == "mlp(hidden=[16,16],act=tanh)"
    assert [k.name for k in s.architecture.kwargs] == ["hidden", "act"]


def test_der():
    s = one("der(x) = v*cos(u) + w(y)")
    assert isinstance(s, ast.DerStmt)
    assert s.state == "x" and s.state_span == span(1, 5, 1, 6)
    assert show(s.value) == "((v*cos(u))+w(y))"


def test_horizon():
    s = one("horizon 2*pi")
    assert isinstance(s, ast.HorizonStmt) and show(s.value) == "(2*pi)"


def test_stop_when_within():
    s = one("stop when y >= l  within 20")
    assert isinstance(s, ast.StopStmt)
    assert isinstance(s.condition, ast.Compare) and show(s.condition) == "(y>=l)"
    assert show(s.max_time) == "20"


@pytest.mark.parametrize("text, sense, at", [
    ("minimize x at stop", "minimize", "stop"),
    ("maximize x at end", "maximize", "end"),
    ("minimize x(T)^2 + integral(u^2)", "minimize", None),
])
def test_objective(text, sense, at):
    s = one(text)
    assert isinstance(s, ast.ObjectiveStmt)
    assert (s.sense, s.at) == (sense, at)


def test_solve_and_train_settings():
    solve, train = statements("solve ode(method=dopri5, rtol=1e-6, adjoint=true)\ntrain adam(lr=0.05, steps=300)")
    assert isinstance(solve, ast.SettingsStmt) and solve.kind == "solve"
    assert show(solve.call) == "ode(method=dopri5,rtol=1e-6,adjoint=true)"
    assert isinstance(train, ast.SettingsStmt) and train.kind == "train"
    assert train.call.func == "adam" and [k.name for k in train.call.kwargs] == ["lr", "steps"]


def test_batch():
    s = one("batch 100")
    assert isinstance(s, ast.BatchStmt) and show(s.size) == "100"


def test_expect_absolute_tolerance():
    s = one("expect x at stop == 1.4125753 tol 0.5")
    assert isinstance(s, ast.ExpectStmt)
    assert (show(s.left), s.at, s.op, show(s.right)) == ("x", "stop", "==", "1.4125753")
    assert (s.tolerance, s.relative, s.rms, s.over) == (0.5, False, False, None)


def test_expect_relative_tolerance():
    s = one("expect x(T) == 2 tol 0.5%")
    assert s.tolerance == pytest.approx(0.005) and s.relative is True and s.at is None


def test_expect_rms_over_range():
    s = one("expect cos(u) == -v/w(y) over y in [0, l] tol 0.05 rms")
    assert show(s.left) == "cos(u)" and show(s.right) == "((-v)/w(y))"
    assert (s.tolerance, s.relative, s.rms) == (0.05, False, True)
    var, low, high = s.over
    assert (var, show(low), show(high)) == ("y", "0", "l")
    assert s.over_span.column == 26


def test_expect_inequality_and_clause_order():
    s = one("expect x at end < 1e-3")
    assert (s.op, s.at, s.tolerance) == ("<", "end", None)
    assert one("expect a == b rms tol 1 over y in [0, 1]").rms


# ----------------------------------------------------------------- expressions
@pytest.mark.parametrize("text, structure", [
    ("-x^2", "(-(x^2))"),
    ("2^3^2", "(2^(3^2))"),
    ("a+b*c", "(a+(b*c))"),
    ("a*b+c", "((a*b)+c)"),
    ("a/b/c", "((a/b)/c)"),
    ("a - b - c", "((a-b)-c)"),
    ("a - (b - c)", "(a-(b-c))"),
    ("a*b/c*d", "(((a*b)/c)*d)"),
    ("-a*b", "((-a)*b)"),
    ("--a", "(-(-a))"),
    ("+a", "a"),
    ("2^-x", "(2^(-x))"),
    ("-2^-x^2", "(-(2^(-(x^2))))"),
    ("a@b'", "(a@(b'))"),
    ("x''", "((x')')"),
    ("a + b < c*d", "((a+b)<(c*d))"),
    ("f(a, g(b), c=1)", "f(a,g(b),c=1)"),
    ("[[1, 2], [3, 4]]", "[[1,2],[3,4]]"),
    ("(((a)))", "a"),
])
def test_precedence_and_associativity(text, structure):
    assert expr(text) == structure


@pytest.mark.parametrize("op", ["==", "!=", "<=", ">=", "<", ">"])
def test_comparison_operators(op):
    assert expr(f"a {op} b") == f"(a{op}b)"


@pytest.mark.parametrize("text, value", [
    ("1e-6", 1e-6), ("1E+3", 1000.0), (".5", 0.5), ("2.", 2.0), ("2.5e2", 250.0), ("0", 0.0), ("007", 7.0),
])
def test_numbers(text, value):
    number = one(f"let e = {text}").value
    assert isinstance(number, ast.Number)
    assert number.value == value and number.text == text


def test_long_and_nested_expressions_within_the_depth_limit():
    assert expr("+".join(["x"] * 90)).count("+") == 89
    assert expr("(" * 1000 + "x" + ")" * 1000) == "x"        # grouping adds no depth
    assert expr("sin(" * 45 + "x" + ")" * 45).count("sin") == 45


def test_number_with_exponent_in_expression():
    assert expr("1e-6*x - .5") == "((1e-6*x)-.5)"


# --------------------------------------------------------------- lexical layout
def test_comments_and_blank_lines():
    text = "# a comment first\n\n\nconst a = 1   # trailing\n   \n# between\nconst b = 2\n\n# last"
    s = statements(text)
    assert [st.bindings[0].name for st in s] == ["a", "b"]
    assert [st.span.line for st in s] == [4, 7]


def test_indentation_crlf_and_no_final_newline():
    s = statements("  const a = 1\r\n\tconst b = 2\r\nconst c = 3")
    assert [st.bindings[0].name for st in s] == ["a", "b", "c"]
    assert s[1].span.column == 2


def test_empty_spec():
    assert statements("") == [] and statements("\n\n# only comments\n") == []


def test_call_spanning_lines():
    s = one("solve ode(method=dopri5,\n          rtol=1e-6,   # a comment inside\n\n          atol=1e-8\n)")
    assert [k.name for k in s.call.kwargs] == ["method", "rtol", "atol"]
    assert (s.span.line, s.span.end_line) == (1, 5)


def test_brackets_spanning_lines():
    s = one("net f(x,\n      y): mlp(hidden=[16,\n                       16])")
    assert s.inputs == ("x", "y") and show(s.architecture) == "mlp(hidden=[16,16])"
    assert expr("(a\n+ b)") == "(a+b)"


def test_line_continuation():
    s = statements("der(x) = 1 + \\\n    2*x\nhorizon 1")
    assert show(s[0].value) == "(1+(2*x))"
    assert s[1].span.line == 3
    assert show(one("const a = 1, \\  \n b = 2").bindings[1].value) == "2"


# -------------------------------------------------------------------- positions
def test_expression_positions():
    s = one("der(x) = v*cos(u) + w(y)")
    plus = s.value
    assert plus.span == span(1, 10, 1, 25)
    times, call_w = plus.left, plus.right
    assert times.span == span(1, 10, 1, 18)
    assert times.left.span == span(1, 10, 1, 11)                     # v
    assert times.right.span == span(1, 12, 1, 18)                    # cos(u)
    assert times.right.func_span == span(1, 12, 1, 15)
    assert times.right.args[0].span == span(1, 16, 1, 17)            # u
    assert call_w.span == span(1, 21, 1, 25)
    assert s.span == span(1, 1, 1, 25)


def test_statement_positions_on_later_lines():
    s = statements("\n# comment\nconst a = 1\n\n  minimize a^2  # done\n")
    assert s[0].span == span(3, 1, 3, 12)
    assert s[1].span == span(5, 3, 5, 15)
    assert s[1].expr.span == span(5, 12, 5, 15)


def test_keyword_argument_and_tol_positions():
    s = one("expect x(T) == 1 tol 5%")
    assert s.span == span(1, 1, 1, 24)
    call = one("train adam(lr=0.05)").call
    assert call.kwargs[0].span == span(1, 12, 1, 19)
    assert call.kwargs[0].value.span == span(1, 15, 1, 19)


def test_zermelo_parses_into_every_kind():
    spec = parse((ROOT / "specs" / "zermelo.imp").read_text(), "specs/zermelo.imp")
    kinds = [type(s).__name__ for s in spec.statements]
    assert kinds == ["ProblemStmt", "DeclStmt", "DeclStmt", "DefStmt", "DeclStmt", "NetStmt", "LetStmt",
                     "DerStmt", "DerStmt", "StopStmt", "ObjectiveStmt", "SettingsStmt", "SettingsStmt",
                     "ExpectStmt", "ExpectStmt"]
    assert spec.filename == "specs/zermelo.imp"
    expect = spec.statements[-2]
    assert (expect.tolerance, expect.relative) == (pytest.approx(0.005), True)


def test_the_parser_cache_is_used_and_a_broken_one_is_rebuilt(tmp_path, monkeypatch) -> None:
    """The LALR tables are kept in the user's cache folder; a damaged file is rebuilt silently."""
    from impsolve.dsl import lexing
    monkeypatch.delenv("IMPSOLVE_CACHE", raising=False)    # it would take precedence over XDG_CACHE_HOME
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    text = "problem p\nparam a = 1\nminimize a^2\n"
    lexing.lark_parser.cache_clear()
    try:
        first = lexing.lark_parser().parse(text)
        path = lexing.parser_cache_path(lexing.GRAMMAR_PATH.read_text())
        assert path is not None and path.parent == tmp_path / "impsolve" and path.stat().st_size > 0
        path.write_bytes(b"not a pickle")
        lexing.lark_parser.cache_clear()
        assert lexing.lark_parser().parse(text) == first
        assert path.read_bytes() != b"not a pickle"
        lexing.lark_parser.cache_clear()
        assert lexing.lark_parser().parse(text) == first      # loaded from the rebuilt file
    finally:
        lexing.lark_parser.cache_clear()

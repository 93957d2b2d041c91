"""Parse `.imp` text into the AST of `dsl.ast` with the Lark grammar in `grammar.lark`."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Iterator

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import ast
from .errors import SpecError, did_you_mean

GRAMMAR_PATH = Path(__file__).with_name("grammar.lark")
MAX_SOURCE_CHARS = 1_000_000

STATEMENT_KEYWORDS = ("problem", "const", "param", "state", "def", "let", "net", "control", "der",
                      "horizon", "stop", "minimize", "maximize", "solve", "train", "batch", "expect")

# What the user sees instead of Lark's terminal names.
TERMINAL_NAMES = {
    "NAME": "a name", "NUMBER": "a number", "STRING": "a string", "_NL": "end of line",
    "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'", "COMMA": "','", "EQUAL": "'='",
    "COLON": "':'", "TILDE": "'~'", "PLUS": "'+'", "MINUS": "'-'", "STAR": "'*'", "SLASH": "'/'",
    "CIRCUMFLEX": "'^'", "AT": "'@'", "QUOTE": "'", "COMP_OP": "a comparison (== < > <= >=)",
    "SENSE": "'minimize' or 'maximize'", "PERCENT": "'%'", "$END": "end of input",
}


class BracketNewlines:
    """Post-lexer: drop newlines inside () and [] so matrices and calls may span lines."""

    always_accept = ("_NL",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        depth = 0
        for token in stream:
            if token.type in ("LPAR", "LSQB"):
                depth += 1
            elif token.type in ("RPAR", "RSQB"):
                depth = max(0, depth - 1)
            if token.type == "_NL" and depth > 0:
                continue
            yield token


@lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark(GRAMMAR_PATH.read_text(), parser="lalr", lexer="contextual",
                postlex=BracketNewlines(), propagate_positions=True, maybe_placeholders=True)


def _span(meta_or_token) -> ast.Span:
    return ast.Span(meta_or_token.line, meta_or_token.column,
                    meta_or_token.end_line, meta_or_token.end_column)


def _token_span(tok: Token) -> ast.Span:
    return ast.Span(tok.line, tok.column, tok.end_line or tok.line,
                    tok.end_column or tok.column + len(tok))


@v_args(meta=True)
class _ToAst(Transformer):
    """Lark tree -> dataclass AST."""

    # expressions
    def number(self, meta, children):
        tok = children[0]
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

    def array(self, meta, children):
        items = children[0]
        for item in items:
            if isinstance(item, ast.Keyword):
                raise SpecError("a matrix or list entry cannot be 'name = value'", item.span)
        return ast.Array(tuple(items), _span(meta))

    # statements
    def problem_stmt(self, meta, children):
        name, title = children
        return ast.ProblemStmt(str(name), str(title)[1:-1] if title else "", _span(meta))

    def shape(self, meta, children):
        return tuple(children)

    def bind_value(self, meta, children):
        name, shape, value = children
        return ast.Binding(str(name), shape or (), value, None, _span(meta))

    def bind_distribution(self, meta, children):
        name, shape, dist = children
        return ast.Binding(str(name), shape or (), None, dist, _span(meta))

    def _decl(kind):  # noqa: N805
        def method(self, meta, children):
            return ast.DeclStmt(kind, tuple(children), _span(meta))
        return method

    const_stmt, param_stmt, state_stmt = _decl("const"), _decl("param"), _decl("state")

    def names(self, meta, children):
        return tuple(str(c) for c in children)

    def def_stmt(self, meta, children):
        name, params, body = children
        return ast.DefStmt(str(name), params, body, _span(meta))

    def let_stmt(self, meta, children):
        name, shape, value = children
        return ast.LetStmt("let", str(name), shape or (), value, _span(meta))

    def control_stmt(self, meta, children):
        name, shape, value = children
        return ast.LetStmt("control", str(name), shape or (), value, _span(meta))

    def net_stmt(self, meta, children):
        name, inputs, arch = children
        return ast.NetStmt(str(name), inputs, arch, _span(meta))

    def der_stmt(self, meta, children):
        state, value = children
        return ast.DerStmt(str(state), _token_span(state), value, _span(meta))

    def horizon_stmt(self, meta, children):
        return ast.HorizonStmt(children[0], _span(meta))

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

    def train_stmt(self, meta, children):
        return ast.SettingsStmt("train", children[0], _span(meta))

    def batch_stmt(self, meta, children):
        return ast.BatchStmt(children[0], _span(meta))

    def tol_clause(self, meta, children):
        number, percent = children
        return ("tol", float(number) / (100.0 if percent else 1.0), bool(percent), _span(meta))

    def rms_clause(self, meta, children):
        return ("rms", _span(meta))

    def over_clause(self, meta, children):
        name, low, high = children
        return ("over", (str(name), low, high), _span(meta))

    def expect_stmt(self, meta, children):
        left, at, op, right, *clauses = children
        tolerance, relative, rms, over, over_span = None, False, False, None, None
        seen: set[str] = set()
        for clause in clauses:
            kind, span = clause[0], clause[-1]
            if kind in seen:
                raise SpecError(f"'{kind}' is given twice in this expect", span)
            seen.add(kind)
            if kind == "tol":
                tolerance, relative = clause[1], clause[2]
            elif kind == "rms":
                rms = True
            else:
                over, over_span = clause[1], span
        return ast.ExpectStmt(left, at, str(op), right, tolerance, relative, rms, over, over_span,
                              _span(meta))

    def start(self, meta, children):
        return [c for c in children if c is not None]


def _expected_text(expected: set[str]) -> str:
    names = sorted({TERMINAL_NAMES.get(e, f"'{e.lower()}'" if e.isalpha() else e) for e in expected})
    if len(names) > 8:
        names = names[:8] + ["..."]
    return ", ".join(names)


def _syntax_error(err: UnexpectedInput, source: str, filename: str) -> SpecError:
    line, column = err.line if err.line > 0 else 1, err.column if err.column > 0 else 1
    if isinstance(err, UnexpectedCharacters):
        char = source[err.pos_in_stream] if err.pos_in_stream < len(source) else "?"
        shown = repr(char)[1:-1]
        return SpecError(f"unexpected character '{shown}'", ast.Span(line, column, line, column + 1),
                         source, filename, hint="names use letters, digits and '_'; strings use double quotes")
    if isinstance(err, UnexpectedEOF) or (isinstance(err, UnexpectedToken) and err.token.type == "$END"):
        lines = source.splitlines() or [""]
        last = len(lines)
        col = len(lines[-1]) + 1
        expected = getattr(err, "expected", set())
        return SpecError("unexpected end of input", ast.Span(last, col, last, col + 1), source, filename,
                         hint=f"expected {_expected_text(set(expected))}" if expected else None)
    assert isinstance(err, UnexpectedToken)
    tok = err.token
    shown = "end of line" if tok.type == "_NL" else f"'{tok}'"
    hint = f"expected {_expected_text(set(err.expected))}"
    if tok.type == "NAME" and "DER" in err.expected:  # a statement was expected here
        guess = did_you_mean(str(tok), STATEMENT_KEYWORDS)
        return SpecError(f"unknown statement '{tok}'", _token_span(tok), source, filename,
                         hint=guess or "a statement starts with one of: " + ", ".join(STATEMENT_KEYWORDS))
    if str(tok) == "=" and "COMP_OP" in err.expected:
        hint = "use '==' to compare; '=' only binds a name"
    end_col = column + max(1, len(str(tok))) if tok.type != "_NL" else column + 1
    return SpecError(f"unexpected {shown}", ast.Span(line, column, line, end_col), source, filename, hint=hint)


def parse(source: str, filename: str = "<spec>") -> ast.Spec:
    """Parse spec text; raise SpecError (with line:col) on any syntax error."""
    if len(source) > MAX_SOURCE_CHARS:
        raise SpecError(f"spec is too large ({len(source)} characters; the limit is {MAX_SOURCE_CHARS})",
                        None, source, filename)
    if "\x00" in source:
        line = source[: source.index("\x00")].count("\n") + 1
        col = source.index("\x00") - (source.rfind("\n", 0, source.index("\x00")) + 1) + 1
        raise SpecError("the spec contains a NUL byte", ast.Span(line, col, line, col + 1), source, filename)
    try:
        tree = _lark().parse(source)
        statements = _ToAst().transform(tree)
    except UnexpectedInput as err:
        raise _syntax_error(err, source, filename) from None
    except VisitError as err:
        if isinstance(err.orig_exc, SpecError):
            raise err.orig_exc.located(source, filename) from None
        raise
    except RecursionError:
        raise SpecError("expression is nested too deeply", None, source, filename) from None
    return ast.Spec(statements, source, filename)

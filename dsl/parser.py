"""Parse `.imp` text into the AST of `dsl.ast` with the Lark grammar in `grammar.lark`."""
from __future__ import annotations

import math
import re
from copy import copy
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from lark import Lark, Token, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError
from lark.visitors import Transformer_NonRecursive

from . import ast
from .errors import SpecError, did_you_mean

GRAMMAR_PATH = Path(__file__).with_name("grammar.lark")
MAX_SOURCE_CHARS = 1_000_000
MAX_TOKENS = 10_000  # names, numbers and symbols: keeps parsing well under a second (about 30 us a token)
MAX_DEPTH = 100  # syntax tree levels: keeps the recursive checker and compiler off Python's recursion limit

STATEMENT_KEYWORDS = ("problem", "const", "param", "state", "def", "let", "net", "control", "der",
                      "horizon", "stop", "minimize", "maximize", "solve", "train", "batch", "expect",
                      "reference", "plot", "design", "observe", "truth", "rounds", "next", "steps", "noise",
                      "estimate", "identify", "baseline")

# What the user sees instead of Lark's names for the pattern terminals; literal ones show their text.
TERMINAL_NAMES = {
    "NAME": "a name", "NUMBER": "a number", "STRING": "a string", "_NL": "end of line",
    "COMP_OP": "a comparison (== != < > <= >=)", "SENSE": "'minimize' or 'maximize'", "$END": "end of input",
}
EXPRESSION_START = {"a name", "a number", "'('", "'['", "'+'", "'-'"}
OPERATORS = {"'+'", "'-'", "'*'", "'/'", "'^'", "'@'", "\"'\""}
WORD_CHAR = re.compile(r"[A-Za-z0-9_]")
WORD = re.compile(r"[A-Za-z0-9_]+")
# One token per match, with the blanks, comments and line continuations before it (counted by _check_size).
TOKEN_SCAN = re.compile(r'(?:\s|#[^\n]*(?![^\n])|\\)*("[^"\n]*"?|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|\w+|[=!<>]=|\S|\Z)')
# Binary and unary operators: an operand must follow them.
OPERATOR_TEXTS = {"+", "-", "*", "/", "@", "^"}

# Common mistakes recognised by the parser state they fail in (lark's match_examples): label -> examples.
# Each example is tried as the first statement and after others (see _example_label).
SYNTAX_EXAMPLES = {
    "implicit without colon": ["solve y = 1", "solve y[2] = 1", "solve y y = 1"],
    "implicit with ==": ["solve y: y == 1", "solve y[2]: y == 1", "solve y: y < 1"],
    "implicit without =": ["solve y: y", "solve y[2]: y", "solve y: y using newton()"],
}
SYNTAX_MESSAGES = {  # label -> message (with {token}) and hint
    "implicit without colon": ("unexpected {token} in an implicit equation: ':' must follow the unknown",
                               "write 'solve y: lhs = rhs' (or 'solve ode(...)' for integrator settings)"),
    "implicit with ==": ("unexpected {token} in an implicit equation",
                         "an implicit equation uses one '=': solve y: lhs = rhs"),
    "implicit without =": ("unexpected {token}: an implicit equation needs '='",
                           "write it as lhs = rhs, e.g. solve y: y = tanh(y)"),
}


class _GluedWord(Exception):
    """A keyword that the lexer split off the front of a longer word ('constant' -> 'const' 'ant')."""

    def __init__(self, keyword: Token, rest: Token) -> None:
        super().__init__(str(keyword))
        self.keyword, self.rest = keyword, rest


def _is_keyword(token: Token) -> bool:
    return token.type != "NAME" and str(token).isalpha()


def _glued(previous: Token, token: Token) -> bool:
    """Whether `token` continues the word of `previous` (a keyword, or a number before a keyword)."""
    return (token.start_pos == previous.end_pos and WORD_CHAR.match(str(token)) is not None
            and (_is_keyword(previous) or previous.type == "NUMBER" and _is_keyword(token)))


class BracketNewlines:
    """Post-lexer: drop newlines inside () and [] so matrices and calls may span lines.

    It also stops a keyword glued to the word after it: where a name cannot follow, the contextual
    lexer matches the keyword as a prefix, so 'constant = 1' would read as 'const ant = 1' and
    'tol1' as 'tol 1'. A keyword must end where its word ends.
    """

    always_accept = ("_NL",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        depth = 0
        previous: Token | None = None
        for token in stream:
            if previous is not None and _glued(previous, token):
                raise _GluedWord(previous, token)
            previous = token
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


def _position(source: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    return source.count("\n", 0, offset) + 1, offset - source.rfind("\n", 0, offset)


def _char_span(source: str, offset: int) -> ast.Span:
    line, column = _position(source, offset)
    return ast.Span(line, column, line, column + 1)


@v_args(meta=True)
class _ToAst(Transformer_NonRecursive):
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

    def _decl(kind):  # noqa: N805
        def method(self, meta, children):
            return ast.DeclStmt(kind, tuple(children), _span(meta))
        return method

    const_stmt, param_stmt, state_stmt = _decl("const"), _decl("param"), _decl("state")

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

    def implicit_stmt(self, meta, children):
        name, shape, lhs, rhs, options = children
        return ast.ImplicitStmt(str(name), _token_span(name), shape or (), lhs, rhs, options, _span(meta))

    def train_stmt(self, meta, children):
        return ast.SettingsStmt("train", children[0], _span(meta))

    def batch_stmt(self, meta, children):
        return ast.BatchStmt(children[0], _span(meta))

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

    def observe_stmt(self, meta, children):
        return ast.ObserveStmt(children[0], _span(meta))

    def truth_stmt(self, meta, children):
        return ast.TruthStmt(tuple(children), _span(meta))

    def rounds_stmt(self, meta, children):
        return ast.RoundsStmt(children[0], _span(meta))

    # discrete time and identification
    def next_stmt(self, meta, children):
        state, value = children
        return ast.NextStmt(str(state), _token_span(state), value, _span(meta))

    def steps_stmt(self, meta, children):
        return ast.StepsStmt(children[0], _span(meta))

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

    def start(self, meta, children):
        return [c for c in children if c is not None]


def _describe(terminal: str) -> str:
    """A terminal in the user's words: its text in quotes, or a word for a pattern."""
    if terminal in TERMINAL_NAMES:
        return TERMINAL_NAMES[terminal]
    definition = next((t for t in _lark().terminals if t.name == terminal), None)
    if definition is None or definition.pattern.type != "str":
        return terminal.lower()
    text = definition.pattern.value
    return f'"{text}"' if "'" in text else f"'{text}'"


def _expected_text(expected: set[str]) -> str | None:
    """'expected ...' for a set of Lark terminals, with operands and operators summarised."""
    words = {_describe(e) for e in expected}
    if {"a name", "a number"} <= words:
        words = words - EXPRESSION_START | {"an expression"}
    if len(words & OPERATORS) > 2:
        words = words - OPERATORS | {"an operator"}
    if "end of line" in words:
        words.discard("end of input")
    shown = sorted(words)
    if not shown:
        return None
    return "expected " + (", ".join(shown[:-1]) + " or " if len(shown) > 1 else "") + shown[-1]


def _expected(err: UnexpectedInput) -> set[str]:
    """The terminals that would let the parser go on where it failed.

    Lark's own list holds LALR look-aheads that fail after a reduction, and the end of line that the
    contextual lexer always accepts; so each candidate is tried on a copy of the parser state.
    """
    state = getattr(err, "state", None)
    if state is None or not hasattr(state, "parse_conf"):
        return set(getattr(err, "expected", ()))
    conf = copy(state.parse_conf)
    conf.callbacks = {}  # build no trees while trying
    accepted = set()
    for terminal in state.parse_conf.states[state.position]:
        if terminal.isupper():
            trial = state.copy(deepcopy_values=False)
            trial.parse_conf = conf
            try:
                trial.feed_token(Token(terminal, ""), is_end=terminal == "$END")
            except UnexpectedToken:
                continue
            accepted.add(terminal)
    return accepted


BRACKET_SCAN = re.compile(r'#[^\n]*|"[^"\n]*"?|[()\[\]]')


def _open_brackets(source: str, end: int) -> list[int]:
    """Offsets of the '(' and '[' still open at offset `end` (comments and strings skipped)."""
    stack: list[int] = []
    for match in BRACKET_SCAN.finditer(source, 0, end):
        if match.group() in ("(", "["):
            stack.append(match.start())
        elif match.group() in (")", "]") and stack:
            stack.pop()
    return stack


def _starts_line(source: str, offset: int) -> bool:
    return not source[source.rfind("\n", 0, offset) + 1:offset].strip()


def _character_error(err: UnexpectedCharacters, source: str, filename: str) -> SpecError:
    """A character that starts no token: an unterminated string, or a stray character."""
    offset, char = err.pos_in_stream, source[err.pos_in_stream]
    if char == '"':
        line, column = _position(source, offset)
        end = source.find("\n", offset)
        width = (len(source) if end < 0 else end) - offset
        return SpecError("unterminated string", ast.Span(line, column, line, column + width), source, filename,
                         "a string ends with '\"' on the same line")
    shown = char if char.isprintable() else repr(char)[1:-1]
    hint = ("'\\' continues a statement on the next line only as the last character of a line" if char == "\\"
            else "names use letters, digits and '_'; strings use double quotes")
    return SpecError(f"unexpected character '{shown}'", _char_span(source, offset), source, filename, hint)


def _glued_word_error(err: _GluedWord, source: str, filename: str) -> SpecError:
    """'constant', 'tolerance', 'horizon1', '5rms': a keyword run into the word it starts or ends."""
    first, rest = err.keyword, err.rest
    end = WORD.match(source, rest.start_pos).end()
    word = source[first.start_pos:end]
    line, column = _position(source, first.start_pos)
    span = ast.Span(line, column, line, column + len(word))
    if not _is_keyword(first):  # a number, then a keyword
        return SpecError(f"unexpected '{word}'", span, source, filename,
                         f"put a space between the number and '{rest}'")
    if str(first) in STATEMENT_KEYWORDS and _starts_line(source, first.start_pos):
        return SpecError(f"unknown statement '{word}'", span, source, filename,
                         did_you_mean(word, STATEMENT_KEYWORDS)
                         or "a statement starts with one of: " + ", ".join(STATEMENT_KEYWORDS))
    return SpecError(f"unexpected '{word}'", span, source, filename,
                     f"did you mean '{first}'? A keyword is a word of its own: put a space after it")


def _last_token(err: UnexpectedInput, types) -> Token | None:
    """The last token of the statement being parsed whose type is in `types`, if any."""
    state = getattr(err, "state", None)
    for value in reversed(getattr(state, "value_stack", None) or ()):
        if isinstance(value, Token):
            if value.type == "_NL":
                return None
            if value.type in types:
                return value
    return None


def _example_label(err: UnexpectedInput, token: Token) -> str | None:
    """The common mistake (a key of SYNTAX_EXAMPLES) whose examples fail in the same parser state."""
    if not isinstance(err, UnexpectedToken) or not _last_token(err, ("SOLVE",)):
        return None
    # the LALR stack differs for a first statement, a later one, and after a leading blank line or comment
    examples = {label: [f"{before}{text}{after}" for text in texts
                        for before in ("", "const c = 1\n", "\n", "\nconst c = 1\n") for after in ("", "\n")]
                for label, texts in SYNTAX_EXAMPLES.items()}
    label = err.match_examples(_lark().parse, examples, token_type_match_fallback=True, use_accepts=False)
    if label == "implicit with ==" and token.type != "COMP_OP":
        return None
    if label == "implicit without =" and token.type not in ("_NL", "$END", "USING"):
        return None
    return label


def _syntax_error(err: UnexpectedInput, source: str, filename: str) -> SpecError:
    """A located SpecError, in the user's words, for a Lark parse error."""
    if isinstance(err, UnexpectedCharacters):
        return _character_error(err, source, filename)

    def error(message: str, span: ast.Span, hint: str | None = None) -> SpecError:
        return SpecError(message, span, source, filename, hint)

    token: Token | None = getattr(err, "token", None)
    at_end = token is None or token.type == "$END"
    stack = getattr(getattr(err, "state", None), "value_stack", None)
    previous = stack[-1] if stack and isinstance(stack[-1], Token) else None   # the token shifted last
    if not at_end and previous is not None and _glued(previous, token):   # the lexer split a word
        return _glued_word_error(_GluedWord(previous, token), source, filename)
    offset = len(source) if at_end else token.start_pos
    open_here = _open_brackets(source, offset)
    # A bracket left open to the end swallows the following lines: blame the bracket.
    if open_here and open_here[-1] in _open_brackets(source, len(source)):
        if at_end or _starts_line(source, offset):
            hint = ("the spec ends before it is closed" if at_end else
                    f"newlines inside ( ) and [ ] are ignored, so line {token.line} is read as part of it")
            return error(f"'{source[open_here[-1]]}' is never closed", _char_span(source, open_here[-1]), hint)
    expected = _expected(err)
    if at_end:
        return error("unexpected end of input", _char_span(source, len(source.rstrip())), _expected_text(expected))
    if str(token) in (")", "]") and not open_here:
        return error(f"unmatched '{token}'", _token_span(token), "no bracket is open here")
    shown = "end of line" if token.type == "_NL" else f"'{token}'"
    span = _char_span(source, offset) if token.type == "_NL" else _token_span(token)
    if "DER" in expected:  # a statement was expected here
        keywords = "a statement starts with one of: " + ", ".join(STATEMENT_KEYWORDS)
        if token.type == "NAME":
            return error(f"unknown statement '{token}'", span,
                         did_you_mean(str(token), STATEMENT_KEYWORDS) or keywords)
        return error(f"expected a statement, got {shown}", span, keywords)
    if token.type == "STRING":
        inner = str(token)[1:-1]
        hint = (f"write the value without quotes: {inner}" if open_here and inner.isidentifier()
                else "a string can only be the title: problem name \"title\"")
        return error(f"unexpected string {token}", span, hint)
    label = _example_label(err, token)
    if label is not None:
        message, hint = SYNTAX_MESSAGES[label]
        return error(message.format(token=shown), span, hint)
    if str(token) == "=" and "COMP_OP" in expected:
        where = {"EXPECT": " in an expect", "WHEN": " in 'stop when'"}
        keyword = _last_token(err, tuple(where))
        following = source[offset + 1:offset + 2]
        hint = (f"did you mean '{following}='?" if following in ("<", ">")
                else "use '==' to compare; '=' only binds a name")
        return error(f"unexpected '='{where[keyword.type] if keyword else ''}", span, hint)
    if str(token) == "=" and offset > 0 and source[offset - 1] == "=":
        line, column = _position(source, offset - 1)
        return error("unexpected '=='", ast.Span(line, column, line, column + 2),
                     "'=' defines a name; '==' compares, in expect, stop when and where(...)")
    if previous is not None and str(previous) in OPERATOR_TEXTS and "NUMBER" in expected:
        if str(previous) == "*" and str(token) == "*" and previous.end_pos == offset:
            return error("unexpected '**'", ast.Span(previous.line, previous.column, previous.line, previous.column + 2),
                         "use '^' for powers: x^2")
        return error(f"unexpected {shown}: missing operand after '{previous}'", span, _expected_text(expected))
    return error(f"unexpected {shown}", span, _expected_text(expected))


def _check_depth(tree: Tree, source: str, filename: str) -> None:
    """Reject a statement whose syntax tree is deeper than MAX_DEPTH."""
    for statement in tree.children:
        stack = [(statement, 1)]
        while stack:
            node, depth = stack.pop()
            if depth > MAX_DEPTH:
                raise SpecError(f"expression is nested too deeply (more than {MAX_DEPTH} levels)",
                                _span(statement.meta), source, filename, "split it into parts with 'let'")
            stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))


def _check_size(source: str, filename: str) -> None:
    """Reject a spec beyond MAX_SOURCE_CHARS characters or MAX_TOKENS tokens, at the place it crosses
    the limit (the token count is cheap: it stops at the limit)."""
    if len(source) > MAX_SOURCE_CHARS:
        raise SpecError(f"spec is too large ({len(source)} characters; the limit is {MAX_SOURCE_CHARS})",
                        _char_span(source, MAX_SOURCE_CHARS), source, filename,
                        "the rest of the spec from here on is over the limit")
    for count, match in enumerate(TOKEN_SCAN.finditer(source), 1):
        if count > MAX_TOKENS and match.group(1):
            raise SpecError(f"spec is too long (more than {MAX_TOKENS} names, numbers and symbols)",
                            _char_span(source, match.start(1)), source, filename,
                            f"the limit keeps parsing under a second; a spec rarely needs {MAX_TOKENS // 10}")


def parse(source: str, filename: str = "<spec>") -> ast.Spec:
    """Parse spec text; raise SpecError (with line:col) on any syntax error."""
    _check_size(source, filename)
    if "\x00" in source:
        raise SpecError("the spec contains a NUL byte", _char_span(source, source.index("\x00")), source, filename,
                        "a spec is plain text")
    try:
        tree = _lark().parse(source)
    except UnexpectedInput as err:
        raise _syntax_error(err, source, filename) from None
    except _GluedWord as err:
        raise _glued_word_error(err, source, filename) from None
    _check_depth(tree, source, filename)
    try:
        statements = _ToAst().transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, SpecError):
            raise err.orig_exc.located(source, filename) from None
        raise
    return ast.Spec(statements, source, filename)

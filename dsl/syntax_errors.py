"""Syntax errors in the user's words: a located SpecError for each Lark parse error, with
what was expected, the bracket left open, or the common mistake it looks like."""
from __future__ import annotations

import re
from copy import copy

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from . import ast
from .errors import SpecError, did_you_mean
from .lexing import STATEMENT_KEYWORDS, GluedWord, char_span, glued, is_keyword, lark_parser, position, token_span

# What the user sees instead of Lark's names for the pattern terminals; literal ones show their text.
TERMINAL_NAMES = {
    "NAME": "a name", "NUMBER": "a number", "STRING": "a string", "_NL": "end of line",
    "COMP_OP": "a comparison (== != < > <= >=)", "SENSE": "'minimize' or 'maximize'", "$END": "end of input",
}
EXPRESSION_START = {"a name", "a number", "'('", "'['", "'+'", "'-'"}
OPERATORS = {"'+'", "'-'", "'*'", "'/'", "'^'", "'@'", "\"'\""}
WORD = re.compile(r"[A-Za-z0-9_]+")
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



def _describe(terminal: str) -> str:
    """A terminal in the user's words: its text in quotes, or a word for a pattern."""
    if terminal in TERMINAL_NAMES:
        return TERMINAL_NAMES[terminal]
    definition = next((t for t in lark_parser().terminals if t.name == terminal), None)
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
        line, column = position(source, offset)
        end = source.find("\n", offset)
        width = (len(source) if end < 0 else end) - offset
        return SpecError("unterminated string", ast.Span(line, column, line, column + width), source, filename,
                         "a string ends with '\"' on the same line")
    shown = char if char.isprintable() else repr(char)[1:-1]
    hint = ("'\\' continues a statement on the next line only as the last character of a line" if char == "\\"
            else "names use letters, digits and '_'; strings use double quotes")
    return SpecError(f"unexpected character '{shown}'", char_span(source, offset), source, filename, hint)


def glued_word_error(err: GluedWord, source: str, filename: str) -> SpecError:
    """'constant', 'tolerance', 'horizon1', '5rms': a keyword run into the word it starts or ends."""
    first, rest = err.keyword, err.rest
    end = WORD.match(source, rest.start_pos).end()
    word = source[first.start_pos:end]
    line, column = position(source, first.start_pos)
    span = ast.Span(line, column, line, column + len(word))
    if not is_keyword(first):  # a number, then a keyword
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
    label = err.match_examples(lark_parser().parse, examples, token_type_match_fallback=True, use_accepts=False)
    if label == "implicit with ==" and token.type != "COMP_OP":
        return None
    if label == "implicit without =" and token.type not in ("_NL", "$END", "USING"):
        return None
    return label


def syntax_error(err: UnexpectedInput, source: str, filename: str) -> SpecError:
    """A located SpecError, in the user's words, for a Lark parse error."""
    if isinstance(err, UnexpectedCharacters):
        return _character_error(err, source, filename)

    def error(message: str, span: ast.Span, hint: str | None = None) -> SpecError:
        return SpecError(message, span, source, filename, hint)

    token: Token | None = getattr(err, "token", None)
    at_end = token is None or token.type == "$END"
    stack = getattr(getattr(err, "state", None), "value_stack", None)
    previous = stack[-1] if stack and isinstance(stack[-1], Token) else None   # the token shifted last
    if not at_end and previous is not None and glued(previous, token):   # the lexer split a word
        return glued_word_error(GluedWord(previous, token), source, filename)
    offset = len(source) if at_end else token.start_pos
    open_here = _open_brackets(source, offset)
    # A bracket left open to the end swallows the following lines: blame the bracket.
    if open_here and open_here[-1] in _open_brackets(source, len(source)):
        if at_end or _starts_line(source, offset):
            hint = ("the spec ends before it is closed" if at_end else
                    f"newlines inside ( ) and [ ] are ignored, so line {token.line} is read as part of it")
            return error(f"'{source[open_here[-1]]}' is never closed", char_span(source, open_here[-1]), hint)
    expected = _expected(err)
    if at_end:
        return error("unexpected end of input", char_span(source, len(source.rstrip())), _expected_text(expected))
    if str(token) in (")", "]") and not open_here:
        return error(f"unmatched '{token}'", token_span(token), "no bracket is open here")
    shown = "end of line" if token.type == "_NL" else f"'{token}'"
    span = char_span(source, offset) if token.type == "_NL" else token_span(token)
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
    return _operator_error(err, token, previous, expected, source, filename) \
        or error(f"unexpected {shown}", span, _expected_text(expected))


def _operator_error(err: UnexpectedInput, token: Token, previous: Token | None, expected: set[str], source: str,
                    filename: str) -> SpecError | None:
    """'=' where a comparison belongs, '==' where '=' does, a missing operand, '**': else None."""
    offset = token.start_pos
    shown = "end of line" if token.type == "_NL" else f"'{token}'"
    span = char_span(source, offset) if token.type == "_NL" else token_span(token)
    if str(token) == "=" and "COMP_OP" in expected:
        where = {"EXPECT": " in an expect", "WHEN": " in 'stop when'"}
        keyword = _last_token(err, tuple(where))
        following = source[offset + 1:offset + 2]
        hint = (f"did you mean '{following}='?" if following in ("<", ">")
                else "use '==' to compare; '=' only binds a name")
        return SpecError(f"unexpected '='{where[keyword.type] if keyword else ''}", span, source, filename, hint)
    if str(token) == "=" and offset > 0 and source[offset - 1] == "=":
        line, column = position(source, offset - 1)
        return SpecError("unexpected '=='", ast.Span(line, column, line, column + 2), source, filename,
                         "'=' defines a name; '==' compares, in expect, stop when and where(...)")
    if previous is not None and str(previous) in OPERATOR_TEXTS and "NUMBER" in expected:
        if str(previous) == "*" and str(token) == "*" and previous.end_pos == offset:
            stars = ast.Span(previous.line, previous.column, previous.line, previous.column + 2)
            return SpecError("unexpected '**'", stars, source, filename, "use '^' for powers: x^2")
        return SpecError(f"unexpected {shown}: missing operand after '{previous}'", span, source, filename,
                         _expected_text(expected))
    return None

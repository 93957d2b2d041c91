"""Lexing `.imp` text: the Lark parser of dsl/grammar.lark, its post-lexer, the statement
keywords, and source positions as syntax-tree spans."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from lark import Lark, Token

from . import ast

GRAMMAR_PATH = Path(__file__).with_name("grammar.lark")
STATEMENT_KEYWORDS = ("problem", "const", "param", "state", "def", "let", "net", "control", "der",
                      "horizon", "stop", "minimize", "maximize", "solve", "train", "batch", "expect",
                      "reference", "plot", "design", "observe", "truth", "rounds", "next", "steps", "noise",
                      "estimate", "identify", "baseline", "study")

WORD_CHAR = re.compile(r"[A-Za-z0-9_]")


class GluedWord(Exception):
    """A keyword that the lexer split off the front of a longer word ('constant' -> 'const' 'ant')."""

    def __init__(self, keyword: Token, rest: Token) -> None:
        super().__init__(str(keyword))
        self.keyword, self.rest = keyword, rest


def is_keyword(token: Token) -> bool:
    return token.type != "NAME" and str(token).isalpha()


def glued(previous: Token, token: Token) -> bool:
    """Whether `token` continues the word of `previous` (a keyword, or a number before a keyword)."""
    return (token.start_pos == previous.end_pos and WORD_CHAR.match(str(token)) is not None
            and (is_keyword(previous) or previous.type == "NUMBER" and is_keyword(token)))


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
            if previous is not None and glued(previous, token):
                raise GluedWord(previous, token)
            previous = token
            if token.type in ("LPAR", "LSQB"):
                depth += 1
            elif token.type in ("RPAR", "RSQB"):
                depth = max(0, depth - 1)
            if token.type == "_NL" and depth > 0:
                continue
            yield token


@lru_cache(maxsize=1)
def lark_parser() -> Lark:
    return Lark(GRAMMAR_PATH.read_text(), parser="lalr", lexer="contextual",
                postlex=BracketNewlines(), propagate_positions=True, maybe_placeholders=True)


def span(meta_or_token) -> ast.Span:
    return ast.Span(meta_or_token.line, meta_or_token.column,
                    meta_or_token.end_line, meta_or_token.end_column)


def token_span(tok: Token) -> ast.Span:
    return ast.Span(tok.line, tok.column, tok.end_line or tok.line,
                    tok.end_column or tok.column + len(tok))


def position(source: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    return source.count("\n", 0, offset) + 1, offset - source.rfind("\n", 0, offset)


def char_span(source: str, offset: int) -> ast.Span:
    line, column = position(source, offset)
    return ast.Span(line, column, line, column + 1)



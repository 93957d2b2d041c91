"""Lexing `.imp` text: the Lark parser of dsl/grammar.lark, its post-lexer, the statement
keywords, and source positions as syntax-tree spans."""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import lark
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


def cache_folder() -> Path | None:
    """This user's impsolve cache folder (`$IMPSOLVE_CACHE`, else `$XDG_CACHE_HOME/impsolve` or
    `~/.cache/impsolve`), made with mode 700 (never the shared temp folder: the parser tables are
    unpickled and the native solvers loaded from there). None if it cannot be made."""
    try:
        root = Path(os.environ.get("IMPSOLVE_CACHE")
                    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "impsolve")
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    except (OSError, RuntimeError):
        return None
    return root


def parser_cache_path(grammar: str) -> Path | None:
    """Where the grammar's LALR tables are kept between runs (in `cache_folder()`), named by the
    grammar's hash and Lark's version. None if the folder cannot be made."""
    root = cache_folder()
    if root is None:
        return None
    digest = hashlib.sha256(grammar.encode()).hexdigest()[:16]
    return root / f"grammar-{digest}-lark{lark.__version__}.pickle"


def build_parser(grammar: str) -> Lark:
    return Lark(grammar, parser="lalr", lexer="contextual", postlex=BracketNewlines(),
                propagate_positions=True, maybe_placeholders=True)


@lru_cache(maxsize=1)
def lark_parser() -> Lark:
    """The parser, loaded from the user cache when it is there (building the LALR tables takes
    ~0.15 s, a quarter of `impsolve check`), else built and saved (atomically, by a rename)."""
    grammar = GRAMMAR_PATH.read_text()
    path = parser_cache_path(grammar)
    if path is not None and path.exists():
        try:
            with path.open("rb") as f:
                return Lark.load(f)
        except Exception:   # a cache file that cannot be read is rebuilt below
            pass
    parser = build_parser(grammar)
    if path is not None:
        save_parser(parser, path)
    return parser


def save_parser(parser: Lark, path: Path) -> None:
    """Write the parser to a temporary file beside `path`, then rename it (readers never see half
    a file); a folder that cannot be written just means no cache."""
    try:
        file = tempfile.NamedTemporaryFile(dir=path.parent, prefix=".grammar-", delete=False)
    except OSError:
        return
    try:
        with file:
            parser.save(file)
        os.replace(file.name, path)
    except OSError:
        Path(file.name).unlink(missing_ok=True)


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



"""Parse `.imp` text into the AST of `dsl.ast` with the Lark grammar in `grammar.lark`: size and
depth limits, the parse (dsl/lexing.py), syntax errors (dsl/syntax_errors.py), the tree (dsl/tree.py)."""
from __future__ import annotations

import re

from lark import Tree
from lark.exceptions import UnexpectedInput, VisitError

from . import ast
from .errors import SpecError
from .lexing import GluedWord, char_span, lark_parser, span
from .syntax_errors import glued_word_error, syntax_error
from .tree import ToAst

MAX_SOURCE_CHARS = 1_000_000
MAX_TOKENS = 10_000  # names, numbers and symbols: keeps parsing well under a second (about 30 us a token)
MAX_DEPTH = 100  # syntax tree levels: keeps the recursive checker and compiler off Python's recursion limit
# One token per match, with the blanks, comments and line continuations before it (counted by _check_size).
TOKEN_SCAN = re.compile(r'(?:\s|#[^\n]*(?![^\n])|\\)*("[^"\n]*"?|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|\w+|[=!<>]=|\S|\Z)')


def _check_depth(tree: Tree, source: str, filename: str) -> None:
    """Reject a statement whose syntax tree is deeper than MAX_DEPTH."""
    for statement in tree.children:
        stack = [(statement, 1)]
        while stack:
            node, depth = stack.pop()
            if depth > MAX_DEPTH:
                raise SpecError(f"expression is nested too deeply (more than {MAX_DEPTH} levels)",
                                span(statement.meta), source, filename, "split it into parts with 'let'")
            stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))


def _check_size(source: str, filename: str) -> None:
    """Reject a spec beyond MAX_SOURCE_CHARS characters or MAX_TOKENS tokens, at the place it crosses
    the limit (the token count is cheap: it stops at the limit)."""
    if len(source) > MAX_SOURCE_CHARS:
        raise SpecError(f"spec is too large ({len(source)} characters; the limit is {MAX_SOURCE_CHARS})",
                        char_span(source, MAX_SOURCE_CHARS), source, filename,
                        "the rest of the spec from here on is over the limit")
    for count, match in enumerate(TOKEN_SCAN.finditer(source), 1):
        if count > MAX_TOKENS and match.group(1):
            raise SpecError(f"spec is too long (more than {MAX_TOKENS} names, numbers and symbols)",
                            char_span(source, match.start(1)), source, filename,
                            f"the limit keeps parsing under a second; a spec rarely needs {MAX_TOKENS // 10}")


def parse(source: str, filename: str = "<spec>") -> ast.Spec:
    """Parse spec text; raise SpecError (with line:col) on any syntax error."""
    _check_size(source, filename)
    if "\x00" in source:
        raise SpecError("the spec contains a NUL byte", char_span(source, source.index("\x00")), source, filename,
                        "a spec is plain text")
    try:
        tree = lark_parser().parse(source)
    except UnexpectedInput as err:
        raise syntax_error(err, source, filename) from None
    except GluedWord as err:
        raise glued_word_error(err, source, filename) from None
    _check_depth(tree, source, filename)
    try:
        statements = ToAst().transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, SpecError):
            raise err.orig_exc.located(source, filename) from None
        raise
    return ast.Spec(statements, source, filename)

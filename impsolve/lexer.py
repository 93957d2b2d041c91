"""Highlighting for `.imp`: a Pygments lexer (entry point `pygments.lexers`: `imp`) and the
TextMate grammar in editors/, both built from the grammar's keywords (dsl/grammar.lark) and the
builtin function list (dsl/functions.py), so they cannot drift from the language.
`python -m impsolve.lexer` prints the TextMate grammar (editors/imp.tmLanguage.json)."""
from __future__ import annotations

import json
import re
from pathlib import Path

from pygments.lexer import RegexLexer, words
from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, String, Text

from .dsl import functions

GRAMMAR = Path(functions.__file__).with_name("grammar.lark")


def language_keywords() -> list[str]:
    """Every quoted word of the grammar (statement keywords, clauses, `minimize`/`maximize`)."""
    return sorted(set(re.findall(r'"([A-Za-z_][A-Za-z_0-9]*)"', GRAMMAR.read_text())))


def builtin_functions() -> list[str]:
    """The builtin functions, criteria and constants of dsl/functions.py (and the time `t`)."""
    return sorted(set(functions.FUNCTIONS) | set(functions.CRITERIA))


def builtin_constants() -> list[str]:
    return sorted(set(functions.CONSTANTS))


NUMBER = r"(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?"
OPERATORS = r"==|!=|<=|>=|[<>=+\-*/@^'~%]"


class ImpLexer(RegexLexer):
    """Pygments lexer for impsolve `.imp` specs."""

    name = "impsolve"
    aliases = ["imp", "impsolve"]
    filenames = ["*.imp"]
    tokens = {
        "root": [
            (r"#[^\n]*", Comment.Single),
            (r'"[^"\n]*"', String.Double),
            (words(language_keywords(), suffix=r"\b"), Keyword),
            (words(builtin_functions(), suffix=r"\b"), Name.Builtin),
            (words(builtin_constants(), suffix=r"\b"), Name.Constant),
            (r"[A-Za-z_][A-Za-z0-9_]*", Name),
            (NUMBER, Number),
            (OPERATORS, Operator),
            (r"[()\[\],:.]", Punctuation),
            (r"\\\n", Text),
            (r"\s+", Text),
        ],
    }


def textmate_grammar() -> dict:
    """The TextMate grammar (VS Code and similar editors) with the same word lists."""
    def alternatives(names: list[str]) -> str:
        return r"\b(" + "|".join(names) + r")\b"
    return {
        "$schema": "https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json",
        "name": "impsolve",
        "scopeName": "source.imp",
        "fileTypes": ["imp"],
        "patterns": [
            {"name": "comment.line.number-sign.imp", "match": "#.*$"},
            {"name": "string.quoted.double.imp", "match": '"[^"\\n]*"'},
            {"name": "keyword.control.imp", "match": alternatives(language_keywords())},
            {"name": "support.function.builtin.imp", "match": alternatives(builtin_functions())},
            {"name": "constant.language.imp", "match": alternatives(builtin_constants())},
            {"name": "constant.numeric.imp", "match": r"\b" + NUMBER},
            {"name": "keyword.operator.imp", "match": OPERATORS},
        ],
    }


if __name__ == "__main__":
    print(json.dumps(textmate_grammar(), indent=2))

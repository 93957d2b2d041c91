"""Highlighting: the Pygments lexer and the TextMate grammar follow the grammar's word lists."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pygments = pytest.importorskip("pygments")
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename  # noqa: E402
from pygments.token import Error, Keyword, Name  # noqa: E402

from impsolve.dsl import functions  # noqa: E402
from impsolve.lexer import ImpLexer, language_keywords, textmate_grammar  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.imp"))


@pytest.mark.parametrize("spec", SPECS, ids=[s.stem for s in SPECS])
def test_every_spec_lexes_without_error_tokens(spec: Path) -> None:
    tokens = list(ImpLexer().get_tokens(spec.read_text()))
    assert not [value for kind, value in tokens if kind in Error]
    assert "".join(value for _, value in tokens) == spec.read_text().rstrip("\n") + "\n"
    assert (Keyword, "problem") in tokens


def test_keywords_and_functions_come_from_the_language() -> None:
    grammar = (ROOT / "dsl" / "grammar.lark").read_text()
    for statement in re.findall(r'^\w+_stmt: "(\w+)"', grammar, flags=re.M):
        assert statement in language_keywords()
    tokens = list(ImpLexer().get_tokens("expect sqrt(x) + trace(A) == information_gain tol 1%"))
    assert (Name.Builtin, "sqrt") in tokens and (Name.Builtin, "trace") in tokens
    assert (Name.Builtin, "information_gain") in tokens and (Keyword, "tol") in tokens
    assert (Name, "x") in tokens
    assert set(functions.FUNCTIONS) <= set(json.dumps(textmate_grammar()).replace("|", " ").replace("(", " ")
                                          .replace(")", " ").replace("\\\\b", " ").split())


def test_lexer_is_registered_through_the_entry_point() -> None:
    assert isinstance(get_lexer_by_name("imp"), ImpLexer)
    assert isinstance(get_lexer_for_filename("zermelo.imp"), ImpLexer)


def test_textmate_grammar_in_editors_is_the_generated_one() -> None:
    shipped = json.loads((ROOT / "editors" / "imp.tmLanguage.json").read_text())
    assert shipped == textmate_grammar(), "regenerate: python -m impsolve.lexer > editors/imp.tmLanguage.json"

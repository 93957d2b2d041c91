"""Golden error messages: each tests/golden_errors/NN_label.imp is a spec with one common mistake
(its first line, a comment, says which); NN_label.expected holds the full rendered SpecError
(`SpecError.render()`, the file named relative to the repository root), compared exactly.

The spec goes through parse, check and the SymPy lowering (shape mistakes surface there), as in
`impsolve.load`. Bad-data cases (fits, issue 13) read CSV files from golden_errors/data/, named
relative to the spec's folder as a spec names them; the test runs from the repository root so the
file names in the messages are the relative ones. After an intended change of a message, regenerate the expected files with

    IMPSOLVE_UPDATE_GOLDEN=1 python -m pytest tests/test_golden_errors.py

and review the diff. `IMPSOLVE_RELIABILITY_DIR=<dir>` writes the count to <dir>/golden.json.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from impsolve.api import Problem
from impsolve.dsl import SpecError, check, parse

ROOT = Path(__file__).resolve().parents[1]
FOLDER = Path(__file__).resolve().parent / "golden_errors"
CASES = sorted(FOLDER.glob("*.imp"))
UPDATE = os.environ.get("IMPSOLVE_UPDATE_GOLDEN") == "1"
NAMING = re.compile(r"\d{2,3}_[a-z0-9_A-Z]+\.imp")
LARK_NAMES = ("__ANON", "Token(", "$END", "_NL", "LPAR", "RPAR", "LSQB", "RSQB", "COMP_OP", "NUMBER", "NAME",
              "Traceback", "UnexpectedToken", "UnexpectedCharacters")


def rendered_error(path: Path) -> SpecError:
    relative = path.relative_to(ROOT).as_posix()
    try:
        Problem(check(parse(path.read_text(encoding="utf-8"), relative)))
    except SpecError as err:
        return err
    raise AssertionError(f"{relative} raised no SpecError")


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_error(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    err = rendered_error(path)
    rendered = err.render()
    expected_path = path.with_suffix(".expected")
    if UPDATE:
        expected_path.write_text(rendered + "\n", encoding="utf-8")
    assert expected_path.exists(), f"no {expected_path.name}: run with IMPSOLVE_UPDATE_GOLDEN=1"
    assert rendered == expected_path.read_text(encoding="utf-8").rstrip("\n")
    relative = path.relative_to(ROOT).as_posix()
    assert rendered.startswith(f"{relative}:{err.line}:{err.column}: error: ")
    assert not any(name in rendered for name in LARK_NAMES), rendered


def test_the_golden_set():
    assert len(CASES) >= 30
    assert all(NAMING.fullmatch(p.name) for p in CASES), [p.name for p in CASES if not NAMING.fullmatch(p.name)]
    numbers = [p.name.split("_")[0] for p in CASES]
    assert len(set(numbers)) == len(numbers), "two cases share a number"
    expected = sorted(FOLDER.glob("*.expected"))
    assert [p.stem for p in expected] == [p.stem for p in CASES], "an .imp without .expected or the reverse"
    for path in CASES:   # each file says what its mistake is
        assert path.read_text(encoding="utf-8").startswith("# "), path.name
    folder = os.environ.get("IMPSOLVE_RELIABILITY_DIR")
    if folder:
        Path(folder, "golden.json").write_text(json.dumps({"golden errors": len(CASES)}))

"""Shared paths and fixtures of the test suite (pytest puts this folder on sys.path, so test
modules `from conftest import ROOT, SPECS`)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
SPEC_FILES = sorted(SPECS.glob("*.imp"))


def spec_path(name: str) -> Path:
    """The path of specs/<name>.imp."""
    return SPECS / f"{name}.imp"


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., str]:
    """write_spec(text, name="spec.imp") writes the text into tmp_path and returns the file's path."""
    def write(text: str, name: str = "spec.imp") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)
    return write

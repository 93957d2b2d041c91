"""The generated torch source of every shipped spec is pinned (tests/golden_emit/).

A refactor of the compiler must emit the same code byte for byte; a change that is meant to alter
the generated code updates the golden file and explains the difference in its commit.
Regenerate with: for f in specs/*.imp; do impsolve compile $f --emit > tests/golden_emit/$(basename $f .imp).py; done
"""
from __future__ import annotations

from pathlib import Path

import pytest

import impsolve

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden_emit"
SPECS = sorted((ROOT / "specs").glob("*.imp"))


@pytest.mark.parametrize("spec", SPECS, ids=[s.stem for s in SPECS])
def test_emitted_source_is_unchanged(spec: Path) -> None:
    golden = GOLDEN / f"{spec.stem}.py"
    assert golden.exists(), f"no golden file for {spec.name}: generate it (see this module's docstring)"
    assert impsolve.load(spec).source() + "\n" == golden.read_text()

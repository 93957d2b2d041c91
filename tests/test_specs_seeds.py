"""Every shipped spec passes its own expects for seeds 0, 1 and 2 (issue 12: shipped specs pass anywhere).

The specs are discovered with a glob, so a new spec is covered without editing this file. Each run
prints its margin per check: error / tolerance for `==` expects (passing means below 1), value /
bound for `<` expects and for `reference lqr(max_ratio=...)` (learned cost / Riccati optimum against
max_ratio). Run with `python -m pytest -m slow tests/test_specs_seeds.py -s` to see them.
"""
from pathlib import Path

import pytest

import impsolve

from conftest import SPEC_FILES

SEEDS = [0, 1, 2]


def margin(check) -> str:
    """How far inside its tolerance a passing check is, as text."""
    if check.tolerance is not None:
        return f"error/tol {check.error / check.tolerance:.3g}"
    return f"value {check.value:.6g} vs bound {check.reference:.6g}"


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("spec", SPEC_FILES, ids=[p.stem for p in SPEC_FILES])
def test_shipped_spec_passes_its_expects(spec: Path, seed: int, tmp_path: Path) -> None:
    result = impsolve.solve(spec, seed=seed, out=tmp_path / spec.stem, device="cpu")
    for check in result.checks:
        print(f"{spec.stem} seed {seed}: {check.name}: {margin(check)}")
    failed = [c.name for c in result.checks if not c.passed]
    assert not failed, f"{spec.name} seed {seed}: failed {failed}"
    assert result.status == "ok"
    for check in result.checks:
        if check.tolerance is not None:
            assert check.error <= check.tolerance, check.name
        else:
            assert check.value <= check.reference or check.error == 0, check.name

"""Zermelo's navigation problem (report §4.2) end to end: spec -> trained heading -> checks."""
import json

import pytest

import impsolve
from impsolve.cli import main

from conftest import spec_path

SPEC = spec_path("zermelo")
OPTIMUM = 1.4125753395   # integral over [0, 2] of sqrt(w(y)^2 - v^2) / v dy (Pontryagin)
NAIVE = 2.519            # heading straight across, u = pi/2


def test_short_training_improves_on_the_initial_heading(tmp_path):
    result = impsolve.solve(SPEC, steps=25, out=tmp_path, device="cpu")
    history = result.objective.history
    assert len(history) == 25
    assert result.objective.final < history[0] < NAIVE
    assert result.values["y"] == pytest.approx(2.0, abs=1e-6)      # stopped on the far bank
    assert 0 < result.values["t_stop"] < 20
    assert [c.name for c in result.checks] == ["x at stop == 1.4125753 tol 0.5%",
                                               "cos(u) == -v/w(y) over y in [0, l] tol 0.05 rms"]
    assert (tmp_path / "expect_2.png").exists()


@pytest.mark.slow
def test_default_training_reaches_the_pontryagin_optimum(tmp_path):
    code = main([str(SPEC), "--out", str(tmp_path), "--quiet", "--device", "cpu"])
    data = json.loads((tmp_path / "result.json").read_text())
    gap = data["objective"]["final"] / OPTIMUM - 1
    assert 0 <= gap < 0.005, f"gap {gap:.4%}"
    heading = data["checks"][1]
    assert heading["error"] < 0.05
    assert code == 0 and data["status"] == "ok"

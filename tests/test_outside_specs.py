"""Specs an outside user writes, combining documented features in ways the shipped specs do not,
each with an answer known analytically (regressions of what broke when they were first run)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

import impsolve

LINE_FIT = """problem line
param a = 0, b = 0
state x = a
der(x) = b
data d = csv("line.csv", time=t)
fit x to d.y sigma 0.1
"""


def test_the_api_objective_of_a_fit_is_its_negative_log_likelihood(tmp_path: Path) -> None:
    """model() of a fit is the data's NLL at the current params (it was the unfilled `nll`, 0)."""
    (tmp_path / "line.csv").write_text("t,y\n0,1\n0.5,2\n1,3\n1.5,4\n2,5\n")
    (tmp_path / "line.imp").write_text(LINE_FIT)
    model = impsolve.load(str(tmp_path / "line.imp")).compile(device="cpu")
    objective = model()
    squares = 1 + 4 + 9 + 16 + 25   # a = b = 0: every model value is 0
    assert float(objective.detach()) == pytest.approx(squares / (2 * 0.1 ** 2) + 5 * math.log(0.1 * math.sqrt(2 * math.pi)),
                                             rel=1e-9)
    objective.backward()
    a, b = (float(p.grad) for p in model.params[:2])
    assert a == pytest.approx(-(1 + 2 + 3 + 4 + 5) / 0.01, rel=1e-6)          # d/da ½Σ(a + bt - y)²/σ²
    assert b == pytest.approx(-(0 + 1 + 3 + 6 + 10) / 0.01, rel=1e-6)         # Σ t (a + bt - y)/σ²

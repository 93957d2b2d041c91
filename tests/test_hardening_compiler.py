"""Issue 12, compiler side: derivatives that were silently 0, LQR references that were silently
wrong or crashed, eig of a non-symmetric matrix, and sums too long for Python's compiler."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import impsolve
from impsolve.dsl import SpecError
from impsolve.runtime.bayesian_design import SequentialDesign

ROOT = Path(__file__).resolve().parents[1]
DECAY = "param k = 2\nstate x = 1\nder(x) = -k*x\nhorizon 1\n"
BALANCE = """state x = 0.1, v = 0
control u = -x - v
der(x) = v
der(v) = {accel}
horizon 2
minimize integral(x^2 + u^2)
reference lqr(Q={Q}, R={R}) at x=0, v=0
"""


def spec_error(text: str) -> SpecError:
    with pytest.raises(SpecError) as caught:
        impsolve.load(text)
    return caught.value


def lqr(accel: str = "u", Q: str = "diag(1, 1)", R: str = "1", extra: str = ""):
    return impsolve.load(extra + BALANCE.format(accel=accel, Q=Q, R=R)).program.problem.references[0]


# ------------------------------------------------ item 1: d(state, param) is never a silent 0
@pytest.mark.parametrize("use, text", [("minimize d(x(T), k)", "x(T)"), ("minimize k^2\nexpect d(x, k) at end == 0 tol 1",
                                                                           "'x'"),
                                       ("minimize d(k*x(T), k)", "x(T)")])
def test_derivative_of_a_state_by_a_param_is_a_located_error(use, text):
    err = spec_error(DECAY + use)
    assert err.line == 5 + use.count("\n")
    assert text in err.message and "sensitivities" in err.message


def test_derivative_by_a_state_is_still_a_partial_derivative():
    model = impsolve.load("state x = 2\nder(x) = -d(x^3, x)\nhorizon 0.1\nminimize x(T)").compile()
    assert math.isfinite(float(model()))
    assert "Symbol" not in impsolve.load("param a = 1\nminimize d(a^3, a)").source()


# ------------------------------------------------ item 2: implicit unknowns by the IFT
def test_design_sensitivities_follow_an_implicit_unknown_of_the_dynamics():
    text = (ROOT / "specs" / "decay_design.imp").read_text().replace(
        "der(u) = -theta*u", "solve r: 2*r = r + theta*u\nder(u) = -r")
    runner = SequentialDesign(impsolve.load(text).compile(device="cpu"), seed=0)
    runner.set_theta([1.5])
    runner.set_design([0.7])
    value, g = runner.predict()
    assert value == pytest.approx(math.exp(-1.5 * 0.7), rel=1e-7)
    assert float(g[0]) == pytest.approx(-0.7 * math.exp(-1.5 * 0.7), rel=1e-6)


def test_lqr_linearisation_differentiates_an_implicit_unknown():
    reference = lqr(accel="u - r", extra="solve r: r = 0.5*tanh(r) + x\n")
    assert [a for row in reference.A for a in row] == pytest.approx([0.0, 1.0, -2.0, 0.0], abs=1e-12)  # dr/dx = 2


def test_lqr_linearisation_solves_the_implicit_unknown_at_the_point():
    reference = lqr(accel="u - r*x", extra="solve r: r = 0.5*tanh(r - x) + 1\n")
    r0 = 1.0
    for _ in range(200):
        r0 = 0.5 * math.tanh(r0) + 1
    assert reference.A[1][0] == pytest.approx(-r0, rel=1e-12)


# ------------------------------------------------ items 3 and 9: LQR settings and systems
@pytest.mark.parametrize("accel, Q, R, message", [
    ("u", "diag(1, 1)", "-1", "R must be positive definite"),
    ("u", "diag(1, 1)", "0", "R must be positive definite"),
    ("u", "diag(1, -1)", "1", "Q must be positive semidefinite"),
    ("u", "[[1, 2], [0, 1]]", "1", "Q must be symmetric"),
    ("u", "diag(0, 0)", "1", "Q is 0"),
    ("u - 9.8", "diag(1, 1)", "1", "not an equilibrium: der(v) = -9.8"),
    ("v", "diag(1, 1)", "1", "cannot be stabilised"),
])
def test_lqr_reference_rejects_what_has_no_riccati_optimum(accel, Q, R, message):
    err = spec_error(BALANCE.format(accel=accel, Q=Q, R=R))
    assert err.line == 7 and message in err.message


def test_lqr_reference_of_a_stabilisable_system_passes():
    reference = lqr()
    assert reference.A == [[0.0, 1.0], [0.0, 0.0]] and reference.B == [[0.0], [1.0]]


# ------------------------------------------------ item 5: eig reads symmetric matrices only
def test_eig_of_a_non_symmetric_matrix_is_a_located_error():
    err = spec_error("const A[2,2] = [[1, 2], [0, 3]]\nparam k = 1\nminimize sum(eig(A)) + k^2")
    assert (err.line, err.column) == (3, 14) and "symmetric" in err.message


def test_eig_of_a_symmetric_expression_is_accepted():
    model = impsolve.load("param P[2,2] = 1\nminimize sum(eig(P + P'))").compile()
    assert float(model().detach()) == pytest.approx(4.0)


# ------------------------------------------------ item 8: long sums
@pytest.mark.parametrize("objective, value", [("sum(X^2)", 36.0), ("norm(X)", 6.0)])
def test_reductions_of_a_60_by_60_param_compile(objective, value):
    model = impsolve.load(f"param X[60, 60] = 0.1\nminimize {objective}").compile()
    out = model()
    assert float(out.detach()) == pytest.approx(value, rel=1e-12)
    out.backward()
    assert torch.isfinite(model.params[0].grad).all()


def test_lqr_ratio_is_null_with_a_reason_when_the_riccati_optimum_is_0():
    text = BALANCE.format(accel="u", Q="diag(1, 1)", R="1, max_ratio=1.1").replace("x = 0.1", "x = 0") \
        + "train adam(lr=0.01, steps=2)\n"
    result = impsolve.solve(text, write=False, quiet=True)
    report = result.reference["lqr"]
    assert report["ratio"] is None and "optimum is 0" in report["ratio_reason"]
    assert all(math.isfinite(c.value) for c in result.checks)


def test_lqr_linearisation_keeps_a_control_inside_an_implicit_equation_open_loop():
    reference = lqr(accel="r", extra="solve r: r = 0.5*tanh(r) + u\n")
    assert [a for row in reference.A for a in row] == pytest.approx([0.0, 1.0, 0.0, 0.0], abs=1e-12)
    assert [b for row in reference.B for b in row] == pytest.approx([0.0, 2.0], abs=1e-12)   # dr/du = 2


def test_an_unevaluated_number_is_not_mistaken_for_a_complex_one() -> None:
    """Found by the grammar fuzz: `mean(2)''` is a number SymPy keeps unevaluated (a batch mean),
    and the finiteness check called float() on it (internal TypeError). It is a valid objective."""
    problem = impsolve.load("maximize mean(2)''\n")
    assert problem.program.problem.objective.text == "mean(2)''"

"""LQR references of vector states and controls (issue 11): the linearisation is taken entry by
entry (SymPy, the states below the scalarisation limit), so `state q[4]` gives the cart-pole's
four scalar states' A, B, K and costs exactly; Q and R are checked against the entries."""
from __future__ import annotations

from pathlib import Path

import pytest

import impsolve
from impsolve.dsl.errors import SpecError

ROOT = Path(__file__).resolve().parents[1]

VECTOR_CARTPOLE = """problem cartpole_lqr "the cart-pole of specs/cartpole_lqr.imp with one state vector"
const m = 1, M = 1, L = 1, g = 9.8
state q[4] = [0, 0, 0.1, 0]                      # x, x', phi, phi'
net policy(q): mlp(hidden=[16, 16], act=tanh)
control f = 10 * policy(q)
let den = M + m*sin(q[2])^2
der(q) = [q[1], (f + m*sin(q[2])*(L*q[3]^2 - g*cos(q[2]))) / den, q[3],
          (-f*cos(q[2]) - m*L*q[3]^2*sin(q[2])*cos(q[2]) + (M + m)*g*sin(q[2])) / (L*den)]
horizon 2
const q_x = 1e-4, q_phi = 100, r = 1e-2
minimize integral(q_x*q[0]^2 + q_phi*q[2]^2 + r*f^2)
solve ode(method=dopri5, rtol=1e-7, atol=1e-9)
train adam(lr=0.01, steps=3)
reference lqr(Q=diag(q_x, 0, q_phi, 0), R=r, max_ratio=1.02) at q=[0, 0, 0, 0]
"""


def test_a_state_vector_gives_the_scalar_states_reference() -> None:
    scalar_text = (ROOT / "specs" / "cartpole_lqr.imp").read_text()
    scalar_text = scalar_text.replace("train adam(lr=0.01, steps=500, schedule=cosine)", "train adam(lr=0.01, steps=3)")
    scalar_text = scalar_text.replace("train lbfgs(lr=1, steps=60)", "")
    vector, scalar = (impsolve.solve(text, write=False).reference["lqr"] for text in (VECTOR_CARTPOLE, scalar_text))
    assert vector["A"] == scalar["A"] and vector["B"] == scalar["B"] and vector["K"] == scalar["K"]
    for key in ("riccati_cost", "learned_cost", "ratio"):
        assert vector[key] == pytest.approx(scalar[key], rel=1e-10)


GAIN = """problem gain "a vector control of a param gain matrix (scalarised: LQR is not on the tensor path)"
state x[2] = [1, 0]
param K[2, 2] = 0.1 * randn()
control u[2] = -K @ x
der(x) = [x[1] + u[0], u[1]]
horizon 3
minimize integral(sum(x^2) + 0.1 * sum(u^2))
train adam(lr=0.05, steps=2)
reference lqr(Q=diag(1, 1), R=[[0.1, 0], [0, 0.1]]) at x=[0, 0]
"""


def test_a_vector_control_is_linearised_entry_by_entry() -> None:
    problem = impsolve.load(GAIN)
    assert "(tensor path)" not in problem.source()
    reference = impsolve.solve(GAIN, write=False).reference["lqr"]
    assert reference["A"] == [[0.0, 1.0], [0.0, 0.0]] and reference["B"] == [[1.0, 0.0], [0.0, 1.0]]
    assert reference["riccati_cost"] > 0 and reference["learned_cost"] > reference["riccati_cost"]


@pytest.mark.parametrize("change, message", [
    (("R=[[0.1, 0], [0, 0.1]]", "R=0.1"), "R (one row per control entry): expected a 2x2 matrix, got 1 row(s) of 1"),
    (("at x=[0, 0]", "at x=[0, 0, 0]"), "'x': "),
])
def test_weights_and_the_point_must_match_the_entries(change: tuple[str, str], message: str) -> None:
    with pytest.raises(SpecError) as info:
        impsolve.load(GAIN.replace(*change))
    assert message in str(info.value) and "<spec>:9:" in str(info.value)

"""LQR references of vector states and controls (issue 11): the linearisation is taken entry by
entry (SymPy, the states below the scalarisation limit), so `state q[4]` gives the cart-pole's
four scalar states' A, B, K and costs exactly; Q and R are checked against the entries. On the
tensor path it is autograd at run time through the generated open-loop dynamics, and gives the
same A, B and K (the same spec forced onto each path)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import impsolve
from impsolve.compiler import tensor_lower
from impsolve.dsl.errors import SpecError
from impsolve.runtime.errors import RunError

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


GAIN = """problem gain "a vector control of a param gain matrix (scalarised: LQR below the limit is exact)"
state x[2] = [1, 0]
param K[2, 2] = 0.1 * randn()
control u[2] = -K @ x
der(x) = [x[1] + u[0], u[1]]
horizon 3
minimize integral(sum(x^2) + 0.1 * sum(u^2))
train adam(lr=0.05, steps=2)
reference lqr(Q=diag(1, 1), R=[[0.1, 0], [0, 0.1]]) at x=[0, 0]
"""


IMPLICIT = """problem implicit_lqr "dynamics through an implicit equation (linearised by the IFT)"
state x[2] = [1, 0]
solve w: w + 0.1*w^3 = x[0]
control u[2] = -[x[0], x[1]]
der(x) = [x[1] + u[0] + 2*w - x[0], u[1]]
horizon 2
minimize integral(sum(x^2) + 0.1 * sum(u^2))
train adam(lr=0.05, steps=2)
reference lqr(Q=diag(1, 1), R=[[0.1, 0], [0, 0.1]]) at x=[0, 0]
"""


def _lqr_on(path: str, text: str, monkeypatch) -> dict:
    """The spec's LQR report, forced onto the scalar or the tensor path (the size rule's switches)."""
    with monkeypatch.context() as m:
        m.setattr(tensor_lower, "MATRICES_AS_TENSORS", path == "tensor")
        if path == "tensor":
            m.setattr(tensor_lower, "SCALARISE_LIMIT", 1)
        assert ("(tensor path)" in impsolve.load(text).source()) == (path == "tensor")
        return impsolve.solve(text, write=False).reference["lqr"]


@pytest.mark.parametrize("text", [GAIN, VECTOR_CARTPOLE, IMPLICIT], ids=["gain", "cartpole", "implicit"])
def test_the_tensor_path_linearises_as_the_scalar_path(text: str, monkeypatch) -> None:
    scalar, tensor = (_lqr_on(path, text, monkeypatch) for path in ("scalar", "tensor"))
    for key in ("A", "B", "K"):
        assert np.asarray(tensor[key]).shape == np.asarray(scalar[key]).shape
        assert np.abs(np.asarray(tensor[key]) - np.asarray(scalar[key])).max() <= 1e-10, key
    assert tensor["riccati_cost"] == pytest.approx(scalar["riccati_cost"], rel=1e-10)
    assert scalar["A"] != [[0.0] * len(scalar["A"])] * len(scalar["A"])   # a linearisation that can differ


def test_a_vector_control_is_linearised_entry_by_entry() -> None:
    assert "(tensor path)" not in impsolve.load(GAIN).source()   # the matrix rule leaves LQR to SymPy
    reference = impsolve.solve(GAIN, write=False).reference["lqr"]
    assert reference["A"] == [[0.0, 1.0], [0.0, 0.0]] and reference["B"] == [[1.0, 0.0], [0.0, 1.0]]
    assert reference["riccati_cost"] > 0 and reference["learned_cost"] > reference["riccati_cost"]


def test_a_state_above_the_limit_gets_the_analytic_riccati_gain() -> None:
    """65 decoupled states der(x_i) = -0.1 x_i + u_i (above the limit, no switch forced): A = -0.1 I,
    B = I and, with Q = R = I, K = P = (a + sqrt(a^2 + 1)) I for a = -0.1 (the scalar Riccati root)."""
    n, ones = 65, ", ".join(["1"] * 65)
    text = (f"const n = {n}\nstate x[n] = 1\nparam k = 0.5\ncontrol u[n] = -k * x\nder(x) = -0.1 * x + u\n"
            f"horizon 2\nminimize integral(sum(x^2) + sum(u^2))\ntrain adam(lr=0.05, steps=1)\n"
            f"reference lqr(Q=diag({ones}), R=diag({ones})) at x=0\n")
    assert "(tensor path)" in impsolve.load(text).source()
    reference = impsolve.solve(text, write=False).reference["lqr"]
    eye = np.eye(n)
    assert np.array_equal(reference["A"], -0.1 * eye) and np.array_equal(reference["B"], eye)
    assert np.abs(np.asarray(reference["K"]) - (-0.1 + np.sqrt(1.01)) * eye).max() <= 1e-10


def test_the_tensor_path_refuses_dynamics_that_read_a_param_outside_the_controls(monkeypatch) -> None:
    monkeypatch.setattr(tensor_lower, "SCALARISE_LIMIT", 1)
    text = GAIN.replace("state x[2] = [1, 0]", "state x[2] = [1, 0]\nparam a = 0.5").replace("u[1]]", "a * u[1]]")
    with pytest.raises(SpecError) as info:
        impsolve.load(text)
    assert "cannot linearise the dynamics: they read a param" in str(info.value) and "<spec>:10:" in str(info.value)


def test_the_tensor_path_refuses_a_net_mapped_over_the_state_in_the_dynamics(monkeypatch) -> None:
    monkeypatch.setattr(tensor_lower, "SCALARISE_LIMIT", 1)
    text = GAIN.replace("state x[2] = [1, 0]", "state x[2] = [1, 0]\nnet g(s): mlp(hidden=[4], act=tanh)")
    with pytest.raises(SpecError, match="they read a net at the equilibrium"):
        impsolve.load(text.replace("u[1]]", "u[1] + 0.1 * g(x)[1]]"))   # g of one input over x: a netmap node


def test_the_tensor_path_refuses_an_implicit_equation_of_the_dynamics_that_reads_a_param(monkeypatch) -> None:
    monkeypatch.setattr(tensor_lower, "SCALARISE_LIMIT", 1)
    text = IMPLICIT.replace("state x[2] = [1, 0]", "state x[2] = [1, 0]\nparam c = 0.0").replace("= x[0]\n", "= x[0] + c\n")
    with pytest.raises(SpecError, match="they read a param at the equilibrium"):
        impsolve.load(text)


def test_the_tensor_path_checks_the_equilibrium_at_run_time(monkeypatch) -> None:
    monkeypatch.setattr(tensor_lower, "SCALARISE_LIMIT", 1)
    with pytest.raises(RunError, match=r"line 9: lqr\(.*the point is not an equilibrium: der\(x\[0\]\) = 1"):
        impsolve.solve(GAIN.replace("at x=[0, 0]", "at x=[0, 1]"), write=False)


@pytest.mark.parametrize("change, message", [
    (("R=[[0.1, 0], [0, 0.1]]", "R=0.1"), "R (one row per control entry): expected a 2x2 matrix, got 1 row(s) of 1"),
    (("at x=[0, 0]", "at x=[0, 0, 0]"), "'x': "),
])
def test_weights_and_the_point_must_match_the_entries(change: tuple[str, str], message: str) -> None:
    with pytest.raises(SpecError) as info:
        impsolve.load(GAIN.replace(*change))
    assert message in str(info.value) and "<spec>:9:" in str(info.value)

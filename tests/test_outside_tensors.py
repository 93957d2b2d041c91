"""Specs an outside user writes with tensors, implicit equations and rollouts, run in float64 and
float32 and compared with closed forms (helper hy's checks; each test is fast)."""
from __future__ import annotations

import json

import pytest
import torch

import impsolve
from impsolve.cli import main
from impsolve.dsl import SpecError
from impsolve.runtime.implicit import default_tol

from conftest import spec_path

F64 = torch.float64

# r^3 + r = x entry by entry inside an ODE: without a tol of its own, the implicit equation must
# solve in float32 as written (the float64 default 1e-12 is below float32's precision).
IMPLICIT_ODE = """problem implicit_ode
param a = 1
state x[2] = [1, 2]
solve r[2]: r^3 + r = x
der(x) = -a * r
horizon 0.5
minimize sum(x(T)^2)
train adam(lr=0.01, steps=1)
"""


def test_the_default_tol_is_1e_12_in_float64_and_above_the_precision_in_float32():
    assert default_tol(torch.float64) == 1e-12
    assert 10 * torch.finfo(torch.float32).eps < default_tol(torch.float32) < 1e-5


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_an_implicit_vector_unknown_in_an_ode_solves_in_both_dtypes(dtype):
    objective = float(impsolve.load(IMPLICIT_ODE).compile(device="cpu", dtype=dtype)().detach())
    # reference: x' = -r(x) integrated by scipy-free RK4 in float64, r the real root of r^3 + r = x
    def rate(x):
        r = x.clone()
        for _ in range(60):
            r = r - (r ** 3 + r - x) / (3 * r ** 2 + 1)
        return -r
    x, h = torch.tensor([1.0, 2.0], dtype=F64), 0.5 / 500
    for _ in range(500):
        k1 = rate(x); k2 = rate(x + h / 2 * k1); k3 = rate(x + h / 2 * k2); k4 = rate(x + h * k3)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    assert objective == pytest.approx(float(x.square().sum()), rel=1e-6 if dtype == "float64" else 1e-5)


def test_the_shipped_deq_trains_in_float32_with_its_default_tol(tmp_path):
    out = tmp_path / "o"
    assert main([str(spec_path("deq")), "--out", str(out), "--dtype", "float32", "--quiet"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["dtype"] == "float32" and all(c["passed"] for c in result["checks"])
    assert not any("below float32 precision" in w for w in result["warnings"])


def test_the_fixed_point_layer_in_float32_agrees_with_float64_to_its_precision():
    spec = impsolve.load(spec_path("fixed_point"))
    values = [float(spec.compile(device="cpu", dtype=d)().detach()) for d in ("float64", "float32")]
    assert values[1] == pytest.approx(values[0], abs=1e-6)


def test_where_of_a_vector_comparison_is_scalarised_without_sympy_deprecation_warnings(recwarn):
    text = ("problem w\nconst c[3] = [0.3, -0.5, 0.9]\nparam w[3] = [0.3, -0.5, 0.9]\n"
            "minimize sum(where(w > 0.1, w^2, abs(w))) + sum(where(c > 0, w, 0))\ntrain adam(lr=0.01, steps=1)\n")
    problem = impsolve.load(text)
    assert "(tensor path)" not in problem.source()
    assert not [w for w in recwarn if "deprecat" in str(w.message).lower()]   # SymPy: non-Expr in a Matrix
    assert float(problem.compile(device="cpu")().detach()) == pytest.approx(0.09 + 0.5 + 0.81 + 0.3 + 0.9, rel=1e-15)


def test_a_horizon_given_by_a_const_on_the_tensor_path(tmp_path):
    # the horizon was read before the consts were declared: an internal KeyError
    text = ("problem h\nconst Tf = 2\nconst A[2, 2] = [[-1, 0], [0, -1]]\nparam k = 1\nstate x[2] = [1, 1]\n"
            "der(x) = k * (A @ x)\nhorizon Tf\nminimize sum(x(T))\ntrain adam(lr=0.01, steps=1)\n")
    problem = impsolve.load(text)
    assert "(tensor path)" in problem.source()
    assert float(problem.compile(device="cpu")().detach()) == pytest.approx(2 * torch.e ** -2, rel=1e-6)


def test_a_number_const_computed_from_a_const_above_the_limit_is_a_tensor_value():
    text = ("problem s\nconst n = 70\nconst w[n] = 1\nconst s = sum(w)\nparam k = 1\nstate x[n] = 1\n"
            "der(x) = -k * x\nhorizon 1\nminimize sum(x(T)) / s\ntrain adam(lr=0.01, steps=1)\n")
    assert float(impsolve.load(text).compile(device="cpu")().detach()) == pytest.approx(torch.e ** -1, rel=1e-6)


def test_a_const_above_the_limit_is_read_exactly_where_a_number_is_needed():
    text = ("problem s\nconst n = 70\nconst w[n] = 2\nparam k = 1\nstate x[n] = 1\n"
            "der(x) = -k * x\nhorizon sum(w)\nminimize sum(x(T))\ntrain adam(lr=0.01, steps=1)\n")
    problem = impsolve.load(text).program.problem
    assert problem.tensor is not None and problem.horizon == 140.0


LQR_VECTOR = """problem l
const q[2] = [1, 3]
const Qm[2, 2] = [[1, 0], [0, 3]]
state x[2] = [1, 0]
net p(x): mlp(hidden=[4])
control u = p(x)
der(x) = [x[1], u]
horizon 5
minimize integral(sum(x^2) + u^2)
train adam(lr=0.01, steps=2)
reference lqr(Q=WEIGHTS, R=1) at x=0
"""


@pytest.mark.parametrize("weights", ["diag(q)", "Qm", "[[1, 0], [0, 3]]", "diag(1, 3)", "[q[0]*[1, 0], [0, 3]]"])
def test_lqr_weights_of_vector_states_may_be_any_constant_matrix(weights):
    # diag(q), a const matrix or rows that are vectors were a located error or an internal AttributeError
    reference = impsolve.load(LQR_VECTOR.replace("WEIGHTS", weights)).program.problem.references[0]
    assert reference.Q == [[1.0, 0.0], [0.0, 3.0]] and reference.R == [[1.0]]


def test_lqr_weights_given_as_a_vector_are_a_located_error():
    with pytest.raises(SpecError) as err:
        impsolve.load(LQR_VECTOR.replace("WEIGHTS", "q"))
    assert ":11:17: error: expected a square matrix, got a vector of 2" in str(err.value)
    assert "diag(v) makes a diagonal matrix of a vector" in str(err.value)


def test_lqr_weights_above_the_limit_may_read_a_const_kept_as_a_tensor():
    # diag(ones) with 66 entries: 'ones' is a tensor on that path; the weights read it exactly
    text = ("problem big\nconst n = 66\nconst ones[n] = 1\nconst w[n] = 2 * ones\nstate x[n] = 1\nparam K[n] = 0.5\n"
            "control u[n] = -K * x\nder(x) = u\nhorizon 20\nminimize integral(sum(x^2) + sum(u^2))\n"
            "train adam(lr=0.05, steps=1)\nconst xe[n] = 0\nreference lqr(Q=diag(w), R=diag(ones)) at x=xe\n")
    problem = impsolve.load(text)
    assert "(tensor path)" in problem.source()
    reference = problem.program.problem.references[0]
    assert reference.Q == [[2.0 if i == j else 0.0 for j in range(66)] for i in range(66)]
    assert reference.R == [[1.0 if i == j else 0.0 for j in range(66)] for i in range(66)]


IMPLICIT_CONTROL = {
    "scalar": "state x = 1\nsolve z: z = tanh(0.2*z + x)\ncontrol u = -g * z\nder(x) = u\nhorizon 1\n"
              "minimize x(T)^2 + integral(u^2)\n",
    "tensor": "const M[2, 2] = [[0.2, 0.1], [0, 0.2]]\nstate x[2] = [1, 0.5]\nsolve z[2]: z = tanh(M @ z + x)\n"
              "control u[2] = -g * z\nder(x) = u\nhorizon 1\nminimize sum(x(T)^2) + integral(sum(u^2))\n",
    "rollout": "state x = 1\nsolve z: z = tanh(0.2*z + x)\ncontrol u = -g * z\nnext(x) = x + u\nsteps 3\n"
               "minimize x(T)^2\n",
}


@pytest.mark.parametrize("kind", sorted(IMPLICIT_CONTROL))
def test_a_control_law_through_an_implicit_layer_is_refused_by_export(kind, tmp_path, capsys, write_spec):
    # the traced law kept the example state's Newton iterations (none at x = 0): it returned u = 0 everywhere
    spec = write_spec("problem ic\nparam g = 0.5\n" + IMPLICIT_CONTROL[kind] + "train adam(lr=0.01, steps=1)\n")
    assert main([spec, "--out", str(tmp_path / "o"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["export", str(tmp_path / "o"), "--format", "torchscript"]) == 2
    err = capsys.readouterr().err
    assert "the solution of an implicit equation (solve ...): its Newton iterations depend on the state" in err
    assert not (tmp_path / "o" / "controller.pt").exists()

"""Indexing vectors and matrices (`x[i]`, `A[i, j]`, `x[a:b]`, `A[:, j]`): exact entries on both
paths, the same values and gradients on the scalar and the tensor path, discrete specs, and the
generated code reading views."""
from __future__ import annotations

import pytest
import torch

import impsolve
from impsolve.compiler import tensor_lower

STATIC = """problem entries "indexing a const matrix"
const A[2, 3] = [[1, 2, 3], [4, 5, 6]]
param p = 0
minimize p^2 + A[1, 2] + 10 * A[0, -1] + 100 * sum(A[:, 1]) + 1000 * sum(A[1]) \\
    + 10000 * sum(A[0:1, 1:3]) + 100000 * A[-1:, :1] + 1000000 * sum(A[0][1:])
train adam(lr=0.1, steps=1)
"""

DYNAMIC = """problem idx "indexing states, params and lets"
const n = 3
state x[n] = [1, 0.5, -0.2]
param K[n, n] = 0.3 * randn()
param c = 0.1
let M = [[0, 1, 0], [-1, -0.1, 0.2], [0.3, 0, -0.5]]
der(x) = M @ x + tanh(K @ x) * c + [0, x[0] * x[2], sum(K[1:, 0])]
horizon 1
minimize x(T)[0]^2 + sum(x(T)[1:]^2) + K[0, 1]^2 + sum(K[:, 2]) + sum(K[1]) + x(T)[-1] + sum(M[0:2, 1:3])
train adam(lr=0.02, steps=5)
expect x(T)[0] < 10
"""

DISCRETE = """problem walk "indexing in a discrete-time spec"
const n = 2
state x[n] = 1
param k = 0.5
next(x) = [x[0] * k, x[1] + x[0]]
steps 3
minimize x(T)[1]^2
train adam(lr=0.1, steps=1)
"""


def objective_and_grads(text: str, tensor: bool, monkeypatch) -> tuple[float, list[torch.Tensor], str]:
    monkeypatch.setattr(tensor_lower, "MATRICES_AS_TENSORS", tensor)
    problem = impsolve.load(text)
    model = problem.compile("cpu", "float64", 0)
    value = model()
    grads = torch.autograd.grad(value, list(model.parameters()))
    return float(value.detach()), grads, problem.source()


@pytest.mark.parametrize("tensor", [False, True], ids=["scalar", "tensor"])
def test_entries_rows_columns_and_slices_are_exact(tensor: bool, monkeypatch) -> None:
    value, _, source = objective_and_grads(STATIC, tensor, monkeypatch)
    assert ("(tensor path)" in source) == tensor
    assert value == 6 + 30 + 700 + 15_000 + 50_000 + 400_000 + 5_000_000


def test_both_paths_agree_on_values_and_gradients(monkeypatch) -> None:
    scalar, scalar_grads, _ = objective_and_grads(DYNAMIC, False, monkeypatch)
    tensor, tensor_grads, source = objective_and_grads(DYNAMIC, True, monkeypatch)
    assert tensor == pytest.approx(scalar, rel=1e-10)
    for a, b in zip(scalar_grads, tensor_grads):
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-12)
    assert "p_0[..., :, 2]" in source and "p_0[..., 1:3, 0]" in source   # views, not entry lists


def test_indexing_in_a_discrete_spec() -> None:
    model = impsolve.load(DISCRETE).compile("cpu", "float64", 0)
    assert float(model().detach()) == pytest.approx(2.75 ** 2, rel=1e-12)   # x = (1,1) (.5,2) (.25,2.5) (.125,2.75)

"""d(expr, name) on the tensor path (issue 11): automatic differentiation at run time
(`runtime.tensor_library.derivative`), agreeing with the scalar path's SymPy derivatives on value and
gradient; the shapes of the scalar path; nets differentiated too; located errors for a value of the
solution and for an implicit equation that reads the target."""
from __future__ import annotations

import pytest
import torch

import impsolve
from impsolve.compiler import tensor_lower
from impsolve.dsl.errors import SpecError
from impsolve.runtime.tensor_library import derivative

from conftest import assert_paths_agree

DERIVATIVES = """problem derivatives "d() of every shape"
const n = 3
state z[n] = [1, 0.5, -0.5]
param W[n, n] = 0.3 * randn()
param b[n] = 0.1
param k = 0.5
let h = tanh(W @ z + b)
let g = d(sum(h^2), z)
let J = d(h, z)
let gk = d(sum(W @ b) * k^2, k)
let gW = d(sum(tanh(W @ b)), W)
let vk = d(b * k^3, k)
der(z) = h - z + 0.1 * g + 0.05 * J @ z + 0.01 * gk + 0.01 * gW @ z + 0.01 * vk
horizon 1
minimize sum(z(T)^2) + sum(d(sum(tanh(W @ b)), b)^2)
train adam(lr=0.01, steps=2)
expect sum(d(sum(z^3), z)) at end < 100
"""

BATCHED = """problem batched_derivative "a batch of vector states, d() by the state in the integrand"
const n = 3
state x[n] ~ normal(0, 1)
param W[n, n] = 0.2 * randn()
der(x) = tanh(W @ x) - 0.5 * x
horizon 1
minimize mean(sum(x(T)^2) + integral(sum(d(sum(tanh(W @ x)^2), x)^2)))
batch 5
train adam(lr=0.01, steps=2)
"""


@pytest.mark.parametrize("text", [DERIVATIVES, BATCHED], ids=["shapes", "batch"])
def test_autograd_and_sympy_derivatives_agree(text: str, monkeypatch) -> None:
    """Value and gradient (second derivatives, where d() is in the dynamics or the objective)."""
    assert_paths_agree(text, monkeypatch)


def test_the_shapes_and_each_batch_entrys_own_derivative() -> None:
    generator = torch.Generator().manual_seed(0)
    A = torch.randn(4, 3, dtype=torch.float64, generator=generator)
    x = torch.randn(5, 3, dtype=torch.float64, generator=generator)       # a batch of 5 vectors
    f = lambda v: torch.sin(v @ A.T)                                      # noqa: E731
    expected = torch.stack([torch.func.jacrev(f)(row) for row in x])
    assert torch.allclose(derivative(f, x, 1, 1), expected, atol=1e-14)    # Jacobian 4 x 3 of each entry
    assert torch.allclose(derivative(lambda v: f(v).sum(-1), x, 0, 1), expected.sum(-2), atol=1e-14)
    k = torch.tensor(0.7, dtype=torch.float64)
    times = torch.linspace(0, 1, 6, dtype=torch.float64).reshape(6, 1)   # a value of each time: its own derivative
    assert torch.allclose(derivative(lambda v: torch.sin(v * times), k, 0, 0), times * torch.cos(k * times))
    W = torch.randn(2, 2, dtype=torch.float64, generator=generator)
    assert derivative(lambda v: (v ** 2).sum((-2, -1)), W, 0, 2).shape == (2, 2)
    assert derivative(lambda v: v * torch.ones(3, dtype=torch.float64), k, 1, 0).shape == (3,)


def test_the_derivative_layer_passes_gradcheck() -> None:
    """d() is differentiable itself (create_graph): second derivatives by gradcheck in float64."""
    generator = torch.Generator().manual_seed(1)
    A = torch.randn(3, 3, dtype=torch.float64, generator=generator).requires_grad_(True)
    x = torch.randn(2, 3, dtype=torch.float64, generator=generator).requires_grad_(True)
    layer = lambda A, x: derivative(lambda v: torch.tanh(v @ A.T), x, 1, 1)   # noqa: E731
    assert torch.autograd.gradcheck(layer, (A, x), eps=1e-6, atol=1e-8)


NET = """problem net_derivative "d() through a net and by a bounded param"
const n = 3
state z[n] = [1, 0.5, -0.5]
param r > 0 = 0.7
net f(z): mlp(hidden=[5])
der(z) = d(f(z), z) - z + d(r^2, r) * sum(z)
horizon 1
minimize sum(z(T)^2)
train adam(lr=0.01, steps=1)
"""


def test_a_net_and_a_bounded_param_are_differentiated_on_the_tensor_path(monkeypatch) -> None:
    """Nets have no symbolic derivative and a bounded param is a function of its raw value (the
    scalar path refuses both in d()); autograd differentiates both."""
    monkeypatch.setattr(tensor_lower, "SCALARISE_LIMIT", 0)
    model = impsolve.load(NET).compile("cpu", "float64", 0)
    s = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    net, r = model.nets[0], torch.exp(model.params[0])      # r > 0: the raw value is log r
    with torch.no_grad():
        got = model.functions["dynamics"](torch.tensor(0.0, dtype=torch.float64), s)
    by_hand = torch.stack([torch.func.jacrev(lambda v: net(v)[0])(row) for row in s])
    expected = by_hand - s + 2 * r * s.sum(-1, keepdim=True)
    assert float(r.detach()) == pytest.approx(0.7) and torch.allclose(got, expected.detach(), atol=1e-12)


@pytest.mark.parametrize("line, message", [
    ("let bad = d(sum(z), W)", "the value reads a value of the solution, which changes with 'W'"),
    ("solve y: y = 0.5 * cos(y) + k\nlet bad = d(y, k)", "d() through the implicit equation of 'y' is not "
                                                          "supported on the tensor path yet"),
])
def test_what_d_does_not_follow_is_located(line: str, message: str, monkeypatch) -> None:
    monkeypatch.setattr(tensor_lower, "SCALARISE_LIMIT", 0)
    text = DERIVATIVES.replace("der(z) =", f"{line}\nder(z) = bad +")
    with pytest.raises(SpecError) as info:
        impsolve.load(text)
    assert message in str(info.value)
    assert f":{text.splitlines().index(line.splitlines()[-1]) + 1}:" in str(info.value)


def test_a_value_at_the_final_time_is_not_differentiated_by_a_param(monkeypatch) -> None:
    monkeypatch.setattr(tensor_lower, "SCALARISE_LIMIT", 0)
    with pytest.raises(SpecError, match="a value of the solution, which changes with 'k'"):
        impsolve.load(DERIVATIVES.replace("expect sum(d(sum(z^3), z)) at end < 100", "expect d(sum(z(T)), k) < 1"))

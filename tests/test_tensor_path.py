"""The tensor path (compiler/tensor_*.py): agrees with the scalar path and with hand-written torch,
compiles in time independent of the sizes, and refuses what it does not support, located."""
from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import torch

import impsolve
from impsolve.compiler import tensor_lower
from impsolve.dsl.errors import SpecError
from impsolve.runtime.implicit import batched_jacobian, solve_implicit

from conftest import assert_paths_agree, value_and_grad


def neural_ode(n: int, extra: str = "") -> str:
    return f"""problem node "neural ODE"
const n = {n}
state z[n] = 1
param W[n, n] = 0.1 * randn()
param b[n] = 0.05
der(z) = tanh(W @ z + b) - z
horizon 1
minimize sum(z(T)^2)
train adam(lr=0.01, steps=2)
{extra}"""


SMALL = """problem small "every tensor construct the scalar path also has"
const n = 4
const target[n] = [0.1, 0.2, -0.3, 0.4]
state z[n] = [1, 0.5, -0.5, 0.2]
state e = 0.3
param W[n, n] = 0.3 * randn()
param A[n, 2] = 0.2 * randn()
param b[n] = 0.1
param k = 0.5
let h = tanh(W @ z + b)
net f(z): mlp(hidden=[8], act=tanh)
net g(e): mlp(hidden=[4])
control u[n] = A @ [sin(e), cos(e)] + normalize(z) * 0.1
def sq(v) = v^2
der(z) = h - z + 0.1 * f(z) + 0.05 * t * W' @ h + u / (1 + sum(sq(z)))
der(e) = -k * e + 0.1 * g(e) * max(0, min(1, e)) + where(e > 0, 0.01, -0.01)
horizon 1
minimize sum((z(T) - target)^2) + 0.01 * integral(norm(z)^2 + trace(outer(z, h))) + smax(W) \
    + z(T)' @ W @ z(0) + logdet(diag(exp(b))) + sum(svdvals(A)) + e(T)^2
train adam(lr=0.01, steps=3)
expect z(T) == target tol 10
expect sum(h) at end < 100
"""

BATCH = """problem batched "a batch of vector states"
const n = 3
state x[n] ~ normal(0, 1)
param W[n, n] = 0.2 * randn()
der(x) = tanh(W @ x) - 0.5 * x
horizon 1
minimize mean(sum(x(T)^2) + integral(sum(x^2)))
batch 5
train adam(lr=0.01, steps=2)
expect mean(sum(x(T)^2)) < 100
"""

IMPLICIT = """problem implicit_ode "an implicit layer of a batched vector state"
const n = 3
state x[n] ~ normal(0, 0.5)
param W[n, n] = 0.2 * randn()
param V[n, n] = 0.3 * randn()
solve y[n]: y = tanh(W @ y + x)
solve w: w = 0.5 * cos(w) + 0.1 * sum(y)
der(x) = V @ y - x + w
horizon 0.5
minimize mean(sum(x(T)^2))
batch 4
train adam(lr=0.01, steps=2)
"""

MATRIX = """problem mat "a matrix state"
const n = 3
state X[n, n] = 0.1
param A[n, n] = 0.3 * randn()
der(X) = A @ X - X' * 0.5 + outer(sum(X) * [0.1, 0.2, 0.3], [1, 0, 1])
horizon 1
minimize sum(X(T)^2) + trace(X(T)) + det(X(T) + 2 * inv(diag([1, 2, 3])))
train adam(lr=0.01, steps=2)
expect X(T) == X(T) tol 1e-9
"""


BOUNDED = """problem bounded "bounded params of every kind, scalar and shaped"
const n = 3
param k > 0 = 0.5, g in [0, 2] = 1.5, h < 3 = 1
param v[n] > 0.5 = [1, 2, 0.75]
param W[n, n] = 0.2 * randn()
state z[n] = [1, -0.5, 0.25]
der(z) = -k * z + g * tanh(W @ z) + 0.1 * h * v
horizon 0.5
minimize sum(z(T)^2) + (k - 2)^2 + sum((v - 3)^2)
train adam(lr=0.01, steps=2)
"""


STOP = """problem stop "a stop event and an objective at stop"
const n = 3
param W[n, n] = 0.3 * randn()
state z[n] = [1, 0.8, 0.6]
der(z) = tanh(W @ z) - z + 0.1 * t
stop when z[0] <= 0.5 within 5
minimize T + sum(z^2) at stop
train adam(lr=0.01, steps=2)
expect z[0] at stop == 0.5 tol 1e-6
"""


NETS = """problem nets "nets of scalar entries of a vector state"
state z[3] = [1, 0.5, -0.5]
param W[3, 3] = 0.2 * randn()
net f(a, b, c): mlp(hidden=[4], act=tanh)
net g(a, b): mlp(hidden=[4], act=tanh)
der(z) = tanh(W @ z) - z + 0.1 * [f(z[0], z[1], z[2]), g(z[1], z[2]), g(z[2], z[0])]
horizon 1
minimize sum(z(T)^2)
"""


@pytest.mark.parametrize("text", [SMALL, BATCH, IMPLICIT, MATRIX, BOUNDED, STOP, NETS],
                         ids=["small", "batch", "implicit", "matrix", "bounded", "stop", "nets"])
def test_scalar_and_forced_tensor_path_agree(text: str, monkeypatch) -> None:
    assert_paths_agree(text, monkeypatch)


def test_deq_spec_agrees_on_the_tensor_path(monkeypatch) -> None:
    """The shipped 8x8 DEQ: value and gradient through the IFT on both paths."""
    text = (Path(__file__).resolve().parent.parent / "specs" / "deq.imp").read_text()
    _, scalar, scalar_grads = value_and_grad(text, False, monkeypatch)
    _, tensor, tensor_grads = value_and_grad(text, True, monkeypatch)
    assert tensor == pytest.approx(scalar, rel=1e-10)
    assert torch.allclose(scalar_grads[0], tensor_grads[0], rtol=1e-8, atol=1e-12)


def test_a_small_matrix_takes_the_tensor_path_where_it_supports_the_spec() -> None:
    """deq.imp (an 8x8 param) is compiled as tensors by default; the same matrix with a construct
    the tensor path lacks (eig(...)) is scalarised and runs, not refused."""
    text = (Path(__file__).resolve().parent.parent / "specs" / "deq.imp").read_text()
    assert "(tensor path)" in impsolve.load(text).source()
    with_derivative = MATRIX + "let g = eig(X + X')\nexpect sum(g) at end > -100\n"
    problem = impsolve.load(with_derivative)
    assert "(tensor path)" not in problem.source()
    assert math.isfinite(float(problem.compile("cpu", "float64", 0)().detach()))


def test_controls_and_checks_agree(monkeypatch) -> None:
    outputs = []
    for tensor in (False, True):
        problem, _, _ = value_and_grad(SMALL, tensor, monkeypatch)
        model = problem.compile("cpu", "float64", 0)
        solution = model.solve()
        times, states = model.trajectory(solution, points=5)
        controls = model.controls(times, states)
        checks = [float(torch.stack(model.functions["expect_1"](None, None, solution.s0, solution.sT,
                                                                solution.T)[:1]).sum())]
        outputs.append((torch.stack(list(controls.values())), checks, list(controls)))
    (a, ca, na), (b, cb, nb) = outputs
    assert na == nb == ["u[0]", "u[1]", "u[2]", "u[3]"]
    assert torch.allclose(a, b, rtol=1e-10, atol=1e-12) and ca == pytest.approx(cb, rel=1e-10)


def test_generated_dynamics_match_hand_written_torch() -> None:
    n = 100
    model = impsolve.load(neural_ode(n)).compile("cpu", "float64", 0)
    W, b = (p.detach().clone().requires_grad_(True) for p in model.params)
    s = torch.randn(3, n, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    compiled = model.functions["dynamics"](torch.tensor(0.0, dtype=torch.float64), s)
    hand = torch.tanh(s @ W.T + b) - s
    assert torch.allclose(compiled, hand, rtol=0, atol=1e-12)
    weights = torch.randn(3, n, dtype=torch.float64)
    grads = torch.autograd.grad((compiled * weights).sum(), list(model.params))
    hand_grads = torch.autograd.grad((hand * weights).sum(), [W, b])
    for g, h in zip(grads, hand_grads):
        assert torch.allclose(g, h, rtol=0, atol=1e-10)
    source = impsolve.load(neural_ode(n)).source()
    assert "torch.tanh(((s[..., 0:100] @ p_0.mT) + p_1)) - s[..., 0:100]" in source


def test_compile_time_does_not_grow_with_the_size() -> None:
    start = time.perf_counter()
    problem = impsolve.load(neural_ode(2048))
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"compiling the n=2048 neural ODE took {elapsed:.2f} s"
    assert len(problem.source()) < 4000


@pytest.mark.parametrize("line, message", [
    ("let bad = W @ [1, 2, 3]", "cannot multiply a 100x100 matrix by a vector of 3"),
    ("let bad = z + [1, 2]", "shapes do not match: a vector of 100 and a vector of 2"),
    ("let bad = eig(W + W')", "eig() is not supported on the tensor path yet"),
    ("state e = 0\nder(e) = -e\nplot e over e in [0, 1]", "plot is not supported on the tensor path yet"),
    ("stop when z > 100 within 5", "a stop condition compares numbers"),
])
def test_mistakes_and_unsupported_constructs_are_located(line: str, message: str | None) -> None:
    text = neural_ode(100, line + ("\nexpect sum(bad) at end < 1" if line.startswith("let") else ""))
    if line.startswith("stop"):
        text = text.replace("horizon 1", "")
    with pytest.raises(SpecError) as info:
        impsolve.load(text)
    if message:
        assert message in str(info.value)
    assert any(f":{line}:" in str(info.value) for line in (9, 10, 11, 12))
    assert "hint: 'W' has 10000 entries, more than the scalarisation limit of 64" in str(info.value) or \
        "multiply" in message or "shapes" in message or "compares" in message


def test_memory_limit_replaces_the_entry_limit() -> None:
    assert "(tensor path)" in impsolve.load(neural_ode(128)).source()   # 16384 entries: was refused
    with pytest.raises(SpecError, match="GiB as one float64 tensor; the limit is 16 GiB"):
        impsolve.load(neural_ode(65536))


@pytest.mark.parametrize("batch", [(), (3,)])
def test_implicit_function_theorem_gradcheck(batch: tuple[int, ...]) -> None:
    n = 6
    generator = torch.Generator().manual_seed(0)
    W = (0.3 * torch.randn(n, n, generator=generator, dtype=torch.float64)).requires_grad_(True)
    x = torch.randn(*batch, n, generator=generator, dtype=torch.float64).requires_grad_(True)

    def layer(W, x):
        def residual(y):
            return y - torch.tanh(y @ W.T + x)
        return solve_implicit(residual, batched_jacobian(residual), n, tol=1e-13, max_iter=50, damping=True,
                              newton=True, label="z", like=x)

    assert torch.autograd.gradcheck(layer, (W, x), eps=1e-6, atol=1e-7)


def test_jacobian_of_a_batch_is_each_entrys_own() -> None:
    A = torch.randn(4, 4, dtype=torch.float64)
    y = torch.randn(3, 4, dtype=torch.float64)
    J = batched_jacobian(lambda v: torch.sin(v) @ A.T)(y)
    expected = torch.stack([A * torch.cos(row) for row in y])
    assert J.shape == (3, 4, 4) and torch.allclose(J, expected, atol=1e-12)


RULES = """problem rules "an implicit residual through every matrix-calculus rule"
const n = 5
state x[n] ~ normal(0, 0.5)
param W[n, n] = 0.2 * randn()
param c = 0.3
solve y[n]: y = 0.5 * tanh(W @ y + x) + 0.1 * sin(y) * sigmoid(sum(y)) / (2 + exp(y)) - c * y^2 / 4 + 0.01 * softplus(-y)
der(x) = y - x
horizon 0.3
minimize mean(sum(x(T)^2))
batch 3
train adam(lr=0.01, steps=2)
"""


def test_matrix_calculus_jacobian_agrees_with_torch_func(monkeypatch) -> None:
    monkeypatch.setattr(tensor_lower, "SCALARISE_LIMIT", 0)
    problem = impsolve.load(RULES)
    assert "def jacobian_0(" in problem.source()
    model = problem.compile("cpu", "float64", 0)
    value = model()
    grads = torch.autograd.grad(value, list(model.parameters()))
    monkeypatch.setattr(tensor_lower, "jacobian", lambda residual, unknown: None)
    fallback = impsolve.load(RULES)
    assert "def jacobian_0(" not in fallback.source()
    other = fallback.compile("cpu", "float64", 0)
    other_value = other()
    assert float(other_value) == pytest.approx(float(value), rel=1e-10)
    for a, b in zip(grads, torch.autograd.grad(other_value, list(other.parameters()))):
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("extra, what, line", [
    ("subject to sum(z(T)) == 1", "a 'subject to' constraint", 10),
    ("control u in [-1, 1] piecewise(N=5)", "an open-loop control", 10),
])
def test_optimal_control_and_bounds_are_refused_on_the_tensor_path(extra: str, what: str, line: int) -> None:
    """Issue 15's constraints and open-loop controls are not on the tensor path yet:
    a located error, never a run that ignores them (the merged features met here first)."""
    with pytest.raises(SpecError) as info:
        impsolve.load(neural_ode(100, extra))
    assert f"{what} is not supported on the tensor path yet" in str(info.value)
    assert f":{line}:" in str(info.value)


def test_a_free_final_time_is_refused_on_the_tensor_path() -> None:
    text = neural_ode(100).replace("horizon 1", "horizon free in [0.5, 2]").replace("minimize sum(z(T)^2)",
                                                                                     "minimize sum(z(T)^2) + T")
    with pytest.raises(SpecError, match="a free final time is not supported on the tensor path yet"):
        impsolve.load(text)


def test_the_whole_tensor_model_passes_gradcheck() -> None:
    """Matrix products, transposes, svdvals, logdet, outer and trace, normalize and nets in tensor form,
    through a fixed-step solve (adaptive step control would make finite differences jump)."""
    text = SMALL.replace("train adam(", "solve ode(method=rk4, step_size=0.1)\ntrain adam(")
    problem = impsolve.load(text)
    assert "(tensor path)" in problem.source()
    model = problem.compile("cpu", "float64", 0)
    names = [name for name, _ in model.named_parameters()]
    values = tuple(p.detach().clone().requires_grad_(True) for p in model.parameters())

    def objective(*values: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(model, dict(zip(names, values)), ())

    assert torch.autograd.gradcheck(objective, values, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_a_net_of_consecutive_entries_gets_the_slice() -> None:
    """f(z[0], z[1], z[2]) is called with the whole vector, g(z[1], z[2]) with a view of it, and
    g(z[2], z[0]) with the entries stacked (the agreement with the scalar path is tested above)."""
    source = impsolve.load(NETS).source()
    assert "net_0(s[..., 0:3])" in source and "net_1(s[..., 0:3][..., 1:3])" in source
    assert "net_1(_stack(s[..., 0:3][..., 2], s[..., 0:3][..., 0]))" in source

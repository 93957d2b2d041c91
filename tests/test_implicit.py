"""Implicit equations, derivatives and spectral objectives (report §2.2-2.5)."""

import pytest
import torch
from torch.func import functional_call

import impsolve
from impsolve.dsl import SpecError
from impsolve.runtime.errors import RunError
from impsolve.runtime.implicit import solve_implicit

from conftest import SPECS

F64 = torch.float64


def _solve(residual, size, like, jacobian=None, **options):
    settings = dict(tol=1e-13, max_iter=100, damping=True, newton=True, label="test") | options
    return solve_implicit(residual, jacobian, size, like=like, **settings)


def test_newton_takes_a_fixed_point_step_only_where_the_jacobian_is_singular():
    """φ(y) = y² + b y - 1/4 from y = 0: the first batch entry's Jacobian 2y + b is singular there (b = 0),
    the second's is not (b = 1); each still converges to its own root."""
    b = torch.tensor([[0.0], [1.0]], dtype=F64)
    y = _solve(lambda y: y ** 2 + b * y - 0.25, 1, b, jacobian=lambda y: (2 * y + b).unsqueeze(-1))
    assert torch.allclose(y[:, 0], torch.tensor([0.5, (2 ** 0.5 - 1) / 2], dtype=F64), atol=1e-12)


def test_one_jacobian_shared_by_a_batch_is_broadcast():
    """A linear residual whose Jacobian has no batch dimension: every entry of the batch solves A y = c."""
    A = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=F64)
    c = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [0.0, 4.0]], dtype=F64)
    y = _solve(lambda y: y @ A.mT - c, 2, c, jacobian=lambda y: A)
    assert y.shape == (3, 2) and torch.allclose(y, torch.linalg.solve(A, c.mT).mT, atol=1e-12)


def test_scalar_layer_gradcheck():
    w = 0.5

    def layer(a):
        return _solve(lambda y: y - torch.tanh(w * y + a[..., None]), 1, a)[..., 0]

    a = torch.tensor([0.3, -0.7, 1.2], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (a,))


def test_vector_layer_gradcheck_and_ift_equals_unrolled_iterations():
    torch.manual_seed(0)
    W = (0.3 * torch.randn(5, 5, dtype=F64)).requires_grad_()
    x = torch.randn(5, dtype=F64, requires_grad=True)

    def layer(W, x):
        return _solve(lambda z: z - torch.tanh(z @ W.T + x), 5, x)

    assert torch.autograd.gradcheck(layer, (W, x))
    ift = torch.autograd.grad(layer(W, x).sum(), (W, x))
    z = torch.zeros(5, dtype=F64)
    for _ in range(200):                       # differentiate through the iterations instead
        z = torch.tanh(z @ W.T + x)
    unrolled = torch.autograd.grad(z.sum(), (W, x))
    for a, b in zip(ift, unrolled):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_fixed_point_spec_meets_target_and_eq_2_13():
    result = impsolve.solve(SPECS / "fixed_point.imp", write=False)
    assert result.passed, result.checks
    derivative = result.checks[1]
    assert derivative.error < 1e-9


def test_d_equals_autograd_and_finite_differences():
    model = impsolve.load(SPECS / "fixed_point.imp").compile()
    a = model.params[0]
    y_of = model.functions["expect_0"]
    symbolic = float(model.functions["expect_1"](None, None)[0].detach())
    y = y_of(None, None)[0]
    (autograd,) = torch.autograd.grad(y, a)
    h = 1e-6
    with torch.no_grad():
        a += h
        up = float(y_of(None, None)[0])
        a -= 2 * h
        down = float(y_of(None, None)[0])
        a += h
    assert symbolic == pytest.approx(float(autograd), rel=1e-12)
    assert symbolic == pytest.approx((up - down) / (2 * h), rel=1e-8)


def test_deq_gradcheck_through_the_compiled_spec():
    model = impsolve.load(SPECS / "deq.imp").compile(seed=1)
    V = model.params[0].detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda V: functional_call(model, {"params.0": V}, ()), (V,))


def _saved_bytes(function) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of `function()`."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        function()
    return total


def test_backward_memory_is_flat_in_the_iteration_count():
    torch.manual_seed(0)
    W = (0.05 * torch.randn(64, 64, dtype=F64)).requires_grad_()
    x = torch.randn(64, dtype=F64, requires_grad=True)

    def run(tol):
        iterations = {}

        def residual(z):
            iterations["n"] = iterations.get("n", 0) + 1
            return z - torch.tanh(z @ W.T + x)
        memory = _saved_bytes(lambda: _solve(residual, 64, x, newton=False, tol=tol, max_iter=500).sum())
        return memory, iterations["n"]

    few_memory, few = run(1e-3)
    many_memory, many = run(1e-14)
    assert many >= 3 * few
    assert many_memory <= 1.2 * few_memory


def test_non_convergence_names_the_equation():
    spec = "param a = 1\nsolve y: y^2 = -1 - a^2 using newton(max_iter=20)\nminimize y\n"
    model = impsolve.load(spec).compile()
    with pytest.raises(RunError, match=r"'y' \(line 2: .*did not converge.*residual"):
        model()


@pytest.mark.parametrize("spec", ["ols_design.imp", "ols_design_aopt.imp"])
def test_ols_designs_equalise_singular_values(spec):
    result = impsolve.solve(SPECS / spec, write=False)
    assert result.passed, result.checks


def test_spectral_gradcheck():
    model = impsolve.load(SPECS / "ols_design_aopt.imp").compile(seed=2)
    X = model.params[0].detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda X: functional_call(model, {"params.0": X}, ()), (X,))
    model = impsolve.load(SPECS / "ols_design.imp").compile(seed=2)
    assert torch.autograd.gradcheck(lambda X: functional_call(model, {"params.0": X}, ()), (X,))


def test_logdet_trace_det_and_matrix_algebra():
    spec = """
const A[2, 2] = [[2, 1], [1, 3]]
const v[2] = [1, -1]
param k = 1.5
let M = k * A + outer(v, v)
minimize logdet(M) + trace(M) + det(M) + v' @ M @ v + norm(normalize(v)) + sum(eig(M))
"""
    model = impsolve.load(spec).compile()
    k = 1.5
    M = k * torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=F64) + torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=F64)
    v = torch.tensor([1.0, -1.0], dtype=F64)
    expected = torch.logdet(M) + 2 * torch.trace(M) + torch.det(M) + v @ M @ v + 1
    assert float(model().detach()) == pytest.approx(float(expected), rel=1e-12)


@pytest.mark.parametrize("text, line, col, message", [
    ("const v[2] = [1, 2]\nconst w[3] = [1, 2, 3]\nparam k = 1\nminimize k + sum(v + w)\n", 4, 18, "shapes do not match"),
    ("const A[2, 2] = [[1, 2], [3, 4]]\nconst v[3] = [1, 2, 3]\nparam k = 1\nminimize k + sum(A @ v)\n", 4, 18,
     "cannot multiply a 2x2 matrix by a vector of 3"),
    ("const v[2] = [1, 2, 3]\nparam k = 1\nminimize k\n", 1, 14, "expected a vector of 2"),
    ("param X[2, 2] = 1\nminimize X\n", 2, 10, "must be a number"),
    ("param k = 1\nminimize smin(k)\n", 2, 10, "needs a vector or a matrix"),
    ("param k = 1\nsolve y[2]: y = [1, 2, 3]\nminimize k\n", 2, 1, "the two sides of the equation differ"),
    ("param k = 1\nsolve y: k = 2\nminimize k\n", 2, 1, "does not depend on 'y'"),
    ("param k = 1\nminimize k + randn()\n", 2, 14, "randn() draws initial values"),
])
def test_shape_errors_are_located(text, line, col, message):
    with pytest.raises(SpecError) as err:
        impsolve.load(text)
    assert (err.value.line, err.value.column) == (line, col), err.value.render()
    if message:
        assert message in err.value.message


def test_coincident_singular_values_warn_instead_of_nan():
    spec = "param X[3, 2] = [[1, 0], [0, 1], [0, 0]]\nmaximize smin(X)\n"
    model = impsolve.load(spec).compile()
    with pytest.warns(RuntimeWarning, match="singular values coincide"):
        value = model()
    value.backward()
    assert torch.isfinite(model.params[0].grad).all()

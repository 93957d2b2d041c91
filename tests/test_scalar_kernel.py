"""The plain-torch tier's Python-float kernel (compiler.py_kernel, runtime.solvers.scalar_kernel):
the generated torch dynamics' values and gradients, torch's inf and nan where Python raises, and
used exactly where it applies (one float64 trajectory on the CPU, plain expressions)."""
from __future__ import annotations

import math

import pytest
import torch

import impsolve
from conftest import SPEC_FILES, spec_path
from impsolve.runtime.solvers.scalar_kernel import KernelDynamics

MIXED = """problem mixed "every kind of expression the kernel prints"
param k > 0 = 0.7
param w[2] = [0.3, -0.2]
state x = 0.3, y = -0.2, z = 1.1
net n(a, b): mlp(hidden=[5], act=tanh)
net m(a): mlp(hidden=[3], act=softplus)
control u = n(sin(x) * k, y + w[1])
der(x) = max(y, 0.1*x) + atan2(y, z) + abs(x - y) * sign(x) + u
der(y) = where(x > 0, sigmoid(y) * w[0], softplus(z)) + min(x, y, z) + m(z) + sech(y)
der(z) = -k * z^3 + sqrt(1 + x^2) / (2 + cos(t)) + exp(-t) * tanh(x) + log(1 + y^2) + z^1.5
horizon 1
minimize x(T)^2 + y(T)^2 + z(T)^2
solve ode(method=dopri5, rtol=1e-8, atol=1e-10)
"""


def _compiled(text: str, **settings) -> impsolve.api.Problem:
    return impsolve.load(text, {"solve.backend": "torch", **settings}).compile(device="cpu", seed=0)


def _one_state(text: str, der: str, x0: str = "0") -> str:
    return f'problem one "one state"\nstate x = {x0}\nder(x) = {der}\nhorizon 1\nminimize x(T)\n'


def test_the_kernel_runs_where_it_applies_and_says_so() -> None:
    model = _compiled(MIXED)
    assert model.solver_plan.backend == "torch" and model.solver_plan.kernel is not None
    assert "expressions on Python floats" in model.solver_plan.note
    assert isinstance(model.dynamics.function, KernelDynamics)
    assert model.solver_plan.kernel.computes_inputs     # n's inputs are expressions, m's one is a state


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_values_and_gradients_are_the_torch_dynamics(seed: int) -> None:
    model = _compiled(MIXED)
    kernel = model.dynamics.function
    generator = torch.Generator().manual_seed(seed)
    s = torch.rand(1, 3, generator=generator, dtype=torch.float64) * 2 - 1
    s[0, 2] = s[0, 2].abs() + 0.2                  # z^1.5 needs z > 0
    s.requires_grad_()
    t = torch.tensor(0.3 + seed / 5, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(1, 3, generator=generator, dtype=torch.float64)
    inputs = [s, t, *model.parameters()]
    got, expected = kernel(t, s), kernel.fallback(t, s)
    assert torch.allclose(got, expected, rtol=1e-13, atol=1e-14)
    for a, b in zip(torch.autograd.grad(got, inputs, weights), torch.autograd.grad(expected, inputs, weights)):
        assert torch.allclose(a, b, rtol=1e-11, atol=1e-13)


def test_gradcheck_of_the_kernel() -> None:
    kernel = _compiled(MIXED).dynamics.function
    s = torch.tensor([[0.4, -0.3, 0.9]], dtype=torch.float64, requires_grad=True)
    t = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s, t: kernel(t, s), (s, t))


def test_a_solve_on_the_kernel_agrees_with_torchdiffeq() -> None:
    """The issue's acceptance: value to 1e-6 relative, gradient to 1e-5 (dopri5, rtol 1e-8)."""
    results = {}
    for backend in ("torch", "torchdiffeq"):
        model = impsolve.load(MIXED, {"solve.backend": backend}).compile(device="cpu", seed=0)
        value = model()
        grads = torch.autograd.grad(value, list(model.parameters()))
        results[backend] = (float(value.detach()), torch.cat([g.reshape(-1) for g in grads]))
    (v1, g1), (v2, g2) = results["torch"], results["torchdiffeq"]
    assert abs(v1 - v2) <= 1e-6 * abs(v2)
    assert float((g1 - g2).abs().max()) <= 1e-5 * float(g2.abs().max())


@pytest.mark.parametrize("der, x0, expected", [("log(x)", "0", -math.inf), ("1/x", "0", math.inf),
                                                ("sqrt(x)", "-1", math.nan), ("exp(x)", "800", math.inf)])
def test_where_python_raises_the_torch_dynamics_answer(der: str, x0: str, expected: float) -> None:
    kernel = _compiled(_one_state("", der, x0)).dynamics.function
    value = float(kernel(torch.tensor(0.0, dtype=torch.float64), torch.tensor([[float(x0)]], dtype=torch.float64)))
    assert (math.isnan(value) and math.isnan(expected)) or value == expected


def test_sigmoid_and_sech_far_out_are_torch_values_not_errors() -> None:
    """Written naively, sigmoid(-800) and sech(800) overflow in Python (torch: 0 and 0)."""
    model = _compiled(_one_state("", "sigmoid(x) + sech(x) + softplus(x)", "-800"))
    s = torch.full((1, 1), -800.0, dtype=torch.float64, requires_grad=True)
    value = model.dynamics.function(torch.tensor(0.0, dtype=torch.float64), s)
    (grad,) = torch.autograd.grad(value, s)
    assert float(value.detach()) == 0.0 and float(grad) == 0.0


def test_a_nan_passes_through_max_and_min() -> None:
    kernel = _compiled(_one_state("", "max(x, 0) + min(0, x)")).dynamics.function
    value = kernel(torch.tensor(0.0, dtype=torch.float64), torch.tensor([[math.nan]], dtype=torch.float64))
    assert math.isnan(float(value))


def test_a_backward_python_cannot_take_is_torchs_inf_and_nan_entry_by_entry() -> None:
    """d sqrt(x)/dx at 0: Python raises; the VJP again on numpy float64s gives torch's inf for x and
    the finite gradients of the rest (it gave nan for every input, k's included)."""
    text = 'problem one "one"\nparam k = 0.5\nstate x = 0, y = 2\nder(x) = sqrt(x) + k*y\nder(y) = 1/y\nhorizon 1\n' \
           'minimize x(T)\n'
    kernel = _compiled(text).dynamics.function
    s = torch.tensor([[0.0, 2.0]], dtype=torch.float64, requires_grad=True)
    t = torch.tensor(0.0, dtype=torch.float64)
    inputs = [s, kernel.params[0]]
    got = torch.autograd.grad(kernel(t, s), inputs, torch.ones(1, 2, dtype=torch.float64))
    expected = torch.autograd.grad(kernel.fallback(t, s), inputs, torch.ones(1, 2, dtype=torch.float64))
    assert got[0].tolist() == expected[0].tolist() == [[math.inf, 0.5 - 0.25]]
    assert float(got[1]) == float(expected[1]) == 2.0


def test_other_calls_go_to_the_torch_dynamics() -> None:
    kernel = _compiled(MIXED).dynamics.function
    s = torch.tensor([[0.1, 0.2, 0.3], [0.3, -0.1, 0.5]], dtype=torch.float64)
    t = torch.tensor(0.0, dtype=torch.float64)
    assert torch.equal(kernel(t, s), kernel.fallback(t, s))        # a batch of states: the torch code


@pytest.mark.parametrize("settings, text", [
    ({"solve.backend": "torchdiffeq"}, MIXED),
    ({}, MIXED.replace("state x", "batch 2\nstate x").replace("minimize x(T)^2 + y(T)^2 + z(T)^2", "minimize mean(x(T)^2)")),
    ({}, _one_state("", "x") + "param W[2, 2] = 0\n"),        # a declared matrix: the tensor path
])
def test_where_the_kernel_does_not_apply(settings: dict, text: str) -> None:
    model = impsolve.load(text, {"solve.backend": "torch", **settings}).compile(device="cpu", seed=0)
    assert model.solver_plan.kernel is None and not isinstance(model.dynamics.function, KernelDynamics)


def test_float32_and_nested_nets_run_without_the_kernel() -> None:
    float32 = impsolve.load(MIXED, {"solve.backend": "torch"}).compile(device="cpu", dtype="float32", seed=0)
    assert float32.solver_plan.kernel is None
    nested = ('problem nested "a net of a net"\nstate x = 0.1\nnet a(v): mlp(hidden=[3])\n'
              'net b(v): mlp(hidden=[3])\nder(x) = a(b(x))\nhorizon 1\nminimize x(T)^2\n')
    model = _compiled(nested)
    assert model.solver_plan.kernel is None and "Python floats" not in model.solver_plan.note
    assert torch.isfinite(model()).all()


def test_a_second_derivative_through_the_kernel_is_refused_not_zero() -> None:
    kernel = _compiled(_one_state("", "x^3", "0.5")).dynamics.function
    s = torch.full((1, 1), 0.5, dtype=torch.float64, requires_grad=True)
    value = kernel(torch.tensor(0.0, dtype=torch.float64), s)
    (first,) = torch.autograd.grad(value, s, retain_graph=True)
    assert float(first) == pytest.approx(0.75)
    with pytest.raises(RuntimeError, match="second derivative"):
        torch.autograd.grad(value, s, create_graph=True)


SHIPPED = [p.stem for p in SPEC_FILES]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_spec_gives_the_same_solve_with_and_without_the_kernel(name: str) -> None:
    """Objective, gradient and evaluations of one solve at the initial weights on the torch tier."""
    solves = []
    for keep in (True, False):
        model = impsolve.load(spec_path(name), {"solve.backend": "torch"}).compile(device="cpu", seed=0)
        dynamics = getattr(model, "dynamics", None)
        if dynamics is None or not isinstance(dynamics.function, KernelDynamics):
            pytest.skip("the kernel does not apply (batch, tensor path, discrete or static)")
        if not keep:
            dynamics.function = dynamics.function.fallback
        value = model()
        params = [p for p in model.parameters() if p.requires_grad]
        grads = [g for g in torch.autograd.grad(value, params, allow_unused=True) if g is not None]
        solves.append((float(value.detach()), torch.cat([g.reshape(-1) for g in grads]), dynamics.evaluations))
    (v1, g1, n1), (v2, g2, n2) = solves
    assert n1 == n2 and abs(v1 - v2) <= 1e-13 * max(abs(v2), 1e-300)
    assert torch.allclose(g1, g2, rtol=1e-12, atol=1e-14 * float(g2.abs().max()))


def test_at_a_tie_max_and_min_split_the_gradient_as_torch_does() -> None:
    """torch.maximum/minimum give half the gradient to each argument at a tie; the kernel gave it
    all to one, so symmetric states (x = y all along) got a gradient 47 % off the torchdiffeq tier's."""
    text = ('problem tie "ties"\nparam a = 0.5\nstate x = 1, y = 1\nder(x) = -max(x, y, a*2) + min(x, y)^2\n'
            'der(y) = x*min(y, x)\nhorizon 1\nminimize x(T) + 2*y(T)\n')
    kernel = _compiled(text).dynamics.function
    s = torch.ones(1, 2, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(0.0, dtype=torch.float64)
    a = kernel.params[0]
    weights = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    got = torch.autograd.grad(kernel(t, s), [s, a], weights)
    expected = torch.autograd.grad(kernel.fallback(t, s), [s, a], weights)
    assert all(torch.allclose(g, e, rtol=1e-14, atol=0) for g, e in zip(got, expected))
    assert float(got[1]) == -1.0      # max(max(x, y), 2a), all 1: half to 2a, as torch's nested maximum


def test_atan2_at_the_origin_has_torchs_zero_gradient() -> None:
    """SymPy's d atan2(y, x) = (x dy - y dx)/(x^2 + y^2) is 0/0 at the origin, where torch gives 0:
    a heading atan2(y, x) of a state that starts at rest gave nan gradients (training stopped)."""
    text = 'problem heading "h"\nparam k = 0.5\nstate x = 0, y = 0\nder(x) = k*atan2(y, x)\nder(y) = atan2(x, k*y)\n' \
           'horizon 1\nminimize x(T)\n'
    kernel = _compiled(text).dynamics.function
    s = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(0.0, dtype=torch.float64)
    inputs = [s, kernel.params[0]]
    got = torch.autograd.grad(kernel(t, s), inputs, torch.ones(1, 2, dtype=torch.float64))
    expected = torch.autograd.grad(kernel.fallback(t, s), inputs, torch.ones(1, 2, dtype=torch.float64))
    assert all(torch.equal(g, e) for g, e in zip(got, expected))
    assert bool(torch.isfinite(got[0]).all()) and float(got[1]) == 0.0


def test_a_param_power_at_base_zero_has_torchs_gradients() -> None:
    """d t^k/dk = t^k log t is 0 * -inf at t = 0 and d x^k/dx = k x^k / x is 0/0 at x = 0, where
    torch gives 0 (and for x^x at x = 0): der(x) = t^k gave a nan gradient at the first step, and
    L-BFGS then nan params."""
    text = ('problem power "p"\nparam k = 2\nstate x = 0\nder(x) = t^k + x^k + (x + 1)^(k*t) + (k*x)^x\nhorizon 1\n'
            'minimize x(T)\n')
    kernel = _compiled(text).dynamics.function
    s = torch.zeros(1, 1, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    inputs = [s, t, kernel.params[0]]
    got = torch.autograd.grad(kernel(t, s), inputs)
    expected = torch.autograd.grad(kernel.fallback(t, s), inputs)
    assert all(torch.equal(g, e) for g, e in zip(got, expected))
    assert [float(g) for g in got] == [0.0, 0.0, 0.0]


def test_a_max_of_a_max_inside_a_condition_compiles() -> None:
    """max(w - max(z, y), atan2(x, min(k, t))) as nested piecewise values sent SymPy's Piecewise
    into endless re-evaluation (RecursionError while generating the kernel)."""
    text = ('problem nested "n"\nparam k = 0.7, w = 0.3\nstate x = 0.3, y = -0.2, z = 1.1\n'
            'der(x) = max(w - max(z, y), atan2(x, min(k, t)))\nder(y) = -y\nder(z) = 0\nhorizon 1\nminimize x(T)\n')
    model = _compiled(text)
    assert isinstance(model.dynamics.function, KernelDynamics)
    s = torch.tensor([[0.3, -0.2, 1.1]], dtype=torch.float64, requires_grad=True)
    t = torch.tensor(0.2, dtype=torch.float64)
    kernel = model.dynamics.function
    got = torch.autograd.grad(kernel(t, s).sum(), s)[0]
    expected = torch.autograd.grad(kernel.fallback(t, s).sum(), s)[0]
    assert torch.allclose(got, expected, rtol=1e-14, atol=1e-15)

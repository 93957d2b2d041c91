"""The ODE layer in float64: adjoint = direct backprop = finite differences; event-time gradients."""
import pytest
import torch

import impsolve

HORIZON_SPEC = """
param a = 0.5, b = 1.2
state x = 1, y = b - 1
der(x) = -a*x + sin(y)
der(y) = b*x - 0.3*y*x
horizon 2
minimize x(T)^2 + y(T) + integral(x^2)
solve ode(method=dopri5, rtol=1e-11, atol=1e-12, adjoint={adjoint})
"""

EVENT_SPEC = """
param a = 1.0, c = 0.2
state y = 0, x = 0
der(y) = a + 0.5*sin(x) + c*y
der(x) = 1 + c
stop when y >= 2 within 10
minimize {objective}
solve ode(method=dopri5, rtol=1e-11, atol=1e-12, adjoint={adjoint})
"""


def _gradient(model) -> torch.Tensor:
    model.zero_grad()
    model().backward()
    return torch.stack([p.grad for p in model.params])


def _finite_difference(model, h: float = 1e-6) -> torch.Tensor:
    grads = []
    with torch.no_grad():
        for p in model.params:
            p += h
            up = float(model())
            p -= 2 * h
            down = float(model())
            p += h
            grads.append((up - down) / (2 * h))
    return torch.tensor(grads, dtype=torch.float64)


def _compile(text: str):
    return impsolve.load(text).compile(device="cpu", dtype="float64")


def test_adjoint_equals_backprop_equals_finite_differences():
    adjoint = _gradient(_compile(HORIZON_SPEC.format(adjoint="true")))
    direct = _gradient(_compile(HORIZON_SPEC.format(adjoint="false")))
    fd = _finite_difference(_compile(HORIZON_SPEC.format(adjoint="false")))
    torch.testing.assert_close(adjoint, direct, rtol=1e-6, atol=0)
    torch.testing.assert_close(direct, fd, rtol=1e-6, atol=0)


@pytest.mark.parametrize("adjoint", ["false", "true"])
@pytest.mark.parametrize("objective", ["T", "x at stop", "x(T)^2 + T"])
def test_event_time_gradient_equals_finite_differences(adjoint, objective):
    model = _compile(EVENT_SPEC.format(adjoint=adjoint, objective=objective))
    torch.testing.assert_close(_gradient(model), _finite_difference(model), rtol=1e-6, atol=1e-9)


def test_event_stops_on_the_condition():
    model = _compile(EVENT_SPEC.format(adjoint="false", objective="T"))
    solution = model.solve()
    assert solution.stop_reached
    assert abs(float(solution.sT[0, 0].detach()) - 2.0) < 1e-8


def test_stop_not_reached_is_reported():
    text = EVENT_SPEC.format(adjoint="false", objective="T").replace("within 10", "within 0.5")
    solution = _compile(text).solve()
    assert not solution.stop_reached
    assert abs(float(solution.T) - 0.5) < 1e-8


def test_params_in_initial_values_get_gradients():
    model = _compile(HORIZON_SPEC.format(adjoint="false"))
    grads = _gradient(model)
    assert float(grads[1].abs()) > 0   # b enters through y(0) = b - 1 and the dynamics


def test_float32_runs():
    model = impsolve.load(HORIZON_SPEC.format(adjoint="false")).compile(device="cpu", dtype="float32")
    value = model()
    assert value.dtype == torch.float32 and torch.isfinite(value)

"""Design studies on the tensor path (issue 11): the same rounds as the scalar path (sensitivities
by autograd instead of SymPy, time rescaled on nodes), a state above the scalarisation limit
planned at the analytic optimum, and located errors for what a tensor design does not do."""
from __future__ import annotations

import pytest
import torch

import impsolve
from impsolve.compiler import tensor_lower
from impsolve.dsl.errors import SpecError

OSCILLATOR = """problem vdesign "a damped oscillator's rate, one observation time per round"
param theta ~ normal(2, 1)
truth theta = 1.7
const A[2, 2] = [[0, 1], [-1, -0.2]]
state u[2] = [1, 0]
der(u) = A @ u - theta * u
design tobs in [0, 5]
const sigma = 0.1
observe u(tobs)[0] + normal(0, sigma)
maximize information_gain
rounds 2
solve ode(method=dopri5, rtol=1e-8, atol=1e-10)
train adam(lr=0.1, steps=3)
expect abs(mean(theta) - 1.7) < 3*sqrt(var(theta)) at end
"""

CHAIN = """problem chain_design "70 decays at one rate: observe the first at the best time"
const n = 70
param theta ~ normal(2, 1)
truth theta = 1.7
state u[n] = 1
der(u) = -theta * u
design tobs in [0, 5]
observe u(tobs)[0] + normal(0, 0.1)
maximize information_gain
rounds 2
solve ode(method=dopri5, rtol=1e-8, atol=1e-10)
train adam(lr=0.1, steps=10)
train lbfgs(lr=1, steps=1)
expect tobs == 1/mean(theta) tol 1% each round
"""


def rounds(text: str, tensor: bool, monkeypatch) -> impsolve.Result:
    monkeypatch.setattr(tensor_lower, "SCALARISE_LIMIT", 0 if tensor else 64)
    monkeypatch.setattr(tensor_lower, "MATRICES_AS_TENSORS", tensor)
    assert ("(tensor path)" in impsolve.load(text).source()) == tensor
    return impsolve.solve(text, write=False)


STATIC = """problem sdesign "a design without states: sens() is the plain derivative"
param theta ~ normal(2, 1)
truth theta = 1.7
const W[2, 2] = [[1, 0.5], [0.2, 1]]
design x in [0.1, 2]
let v = W @ [x, 1]
observe exp(-theta * x) * sum(v) + normal(0, 0.1)
maximize information_gain
rounds 2
train adam(lr=0.1, steps=3)
"""


@pytest.mark.parametrize("text", [OSCILLATOR, STATIC], ids=["ode", "static"])
def test_a_design_study_gives_the_same_rounds_on_both_paths(text: str, monkeypatch) -> None:
    scalar, tensor = (rounds(text, path, monkeypatch) for path in (False, True))
    assert scalar.status == tensor.status == "ok"
    for a, b in zip(scalar.rounds, tensor.rounds):
        assert list(b.design) == list(a.design)
        assert list(b.design.values()) == pytest.approx(list(a.design.values()), rel=1e-8)
        assert b.mean["theta"] == pytest.approx(a.mean["theta"], rel=1e-10)
        assert b.var["theta"] == pytest.approx(a.var["theta"], rel=1e-10)
        assert b.criterion == pytest.approx(a.criterion, rel=1e-10)


def test_the_criterion_and_its_gradient_agree(monkeypatch) -> None:
    """The planning gradient runs through the sensitivity columns of the whole solve."""
    found = []
    for tensor in (False, True):
        monkeypatch.setattr(tensor_lower, "SCALARISE_LIMIT", 0 if tensor else 64)
        monkeypatch.setattr(tensor_lower, "MATRICES_AS_TENSORS", tensor)
        model = impsolve.load(OSCILLATOR).compile("cpu", "float64", 0)
        names = list(model.problem.params)
        for p in model.params:
            p.requires_grad_(False)
        raw = model.params[names.index("raw(tobs)")].requires_grad_(True)
        value = model()
        found.append((float(value.detach()), torch.autograd.grad(value, raw)[0]))
    (a, ga), (b, gb) = found
    assert b == pytest.approx(a, rel=1e-10) and torch.allclose(ga, gb, rtol=1e-8)


def test_a_state_above_the_scalarisation_limit_is_planned_at_the_optimum() -> None:
    assert "(tensor path)" in impsolve.load(CHAIN).source()
    result = impsolve.solve(CHAIN, write=False)
    assert result.status == "ok", result.checks
    assert len(result.rounds) == 2


def test_an_implicit_equation_in_a_tensor_design_is_located() -> None:
    text = CHAIN.replace("der(u) = -theta * u", "solve y: y = 0.5 * cos(y) + theta\nder(u) = -y * u")
    with pytest.raises(SpecError) as info:
        impsolve.load(text)
    assert "an implicit equation in a design study is not supported on the tensor path yet" in str(info.value)
    assert ":6:" in str(info.value)

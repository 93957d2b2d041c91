"""Discrete specs on the tensor path (compiler.tensor_discrete): the tensor and the scalar lowering
of the same spec roll out the same values and gradients, the sysid study gives the same results,
and what the tensor path does not support is a located error (the spec is then scalarised)."""
import pytest
import torch

import impsolve
from impsolve.compiler import tensor_discrete
from impsolve.dsl import SpecError
from impsolve.compiler.discrete import RolloutLowering
from impsolve.dsl.checker import check
from impsolve.dsl.parser import parse
from impsolve.runtime.columns import Columns

from conftest import SPECS
from test_discrete import GRAM, LINEAR, SYSTEM
from test_identify import OPEN_LOOP, STRATEGIES, SYSID, VARIANT, _quick

F64 = torch.float64
RANDOM_OPEN_LOOP = """
const n = 3
state x[n] ~ normal(0, 1)
const A[n, n] = [[0.5, 0.1, 0], [0, 0.5, 0.1], [0.1, 0, 0.5]]
noise w[n] ~ normal(0, 0.01)
control v[n] over steps energy 1
let y[n] = A @ x
next(x) = y + 0.1 * v + w
steps 4
batch 3
minimize mean(total(sum(x^2)))
"""
CASES = {"random_open_loop": (RANDOM_OPEN_LOOP, None), "linear": (LINEAR, None), "gram": (GRAM, 3), "variant": (VARIANT, 2), "open_loop": (OPEN_LOOP, 2),
         "sysid": ((SPECS / "sysid.imp").read_text(), 2),
         "system": (SYSTEM.format(sigma=0.1, b="const B[2, 2] = [[1, 0.5], [0, 1]]"), 2)}


def rollout_and_gradients(text: str, realizations: int | None, tensor: bool, monkeypatch):
    """The rollout's states, the objectives and the gradients of their sum, at the seeded weights."""
    monkeypatch.setattr(tensor_discrete, "DISCRETE_AS_TENSORS", tensor)
    problem = impsolve.load(text)
    assert (problem.program.problem.discrete.tensor is not None) == tensor
    model = problem.compile(device="cpu", seed=3, realizations=realizations)
    if model.discrete.estimates:            # a nonzero estimate, different for each realisation
        truth = torch.tensor([v for e in model.discrete.estimates for v in e.truth], dtype=F64)
        scale = torch.linspace(0.8, 1.1, realizations, dtype=F64).reshape(realizations, 1, 1)
        model.estimate = truth * scale
    solution = model.solve()
    values = model.objectives(solution)
    values.sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    return solution.rollout.inputs.detach(), solution.sT.detach(), values.detach(), grads


@pytest.mark.parametrize("case", list(CASES))
def test_tensor_and_scalar_lowering_agree(case: str, monkeypatch) -> None:
    text, realizations = CASES[case]
    tensor = rollout_and_gradients(text, realizations, True, monkeypatch)
    scalar = rollout_and_gradients(text, realizations, False, monkeypatch)
    for a, b in zip(tensor[:3], scalar[:3]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert len(tensor[3]) == len(scalar[3]) > 0
    for a, b in zip(tensor[3], scalar[3]):
        assert float(a.abs().max()) > 0
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_step_map_acts_on_whole_tensors() -> None:
    """A @ x (A estimated: one matrix per batch entry) and B @ u (B const) are one product each."""
    source = impsolve.load(SPECS / "sysid.imp").source()
    step = source[source.index("def step"):source.index("def controls")]
    assert "(s[..., 6:15].unflatten(-1, (3, 3)) * s[..., 0:3][..., None, :]).sum(-1)" in step
    assert step.count(" @ ") == 1 and "s[..., 15:18] @ k_0.mT" in step and "s[..., 1]" not in step
    assert "def offset" in source and "def jacobian" in source       # least squares stays scalarised


def test_sysid_study_is_unchanged(monkeypatch) -> None:
    """The same seed gives the same identification errors on both paths."""
    runs = []
    for tensor in (True, False):
        monkeypatch.setattr(tensor_discrete, "DISCRETE_AS_TENSORS", tensor)
        runs.append(impsolve.solve(_quick(SYSID, 2), realizations=2, steps=3, write=False, device="cpu",
                                   seed=1).identify)
    for name in STRATEGIES:
        assert runs[0][name]["error"] == pytest.approx(runs[1][name]["error"], rel=1e-8, abs=1e-12)


IMPLICIT = """
const A[2, 2] = [[0.9, 0.2], [-0.1, 0.8]]
state x[2] = [1, -1]
param k = 0.5
solve y: y = 0.5 * tanh(y) + k * x[0]
next(x) = A @ x + y
steps 4
minimize total(x[0]^2)
"""


@pytest.mark.parametrize("text, line, what", [(IMPLICIT, 5, "an implicit equation")])
def test_unsupported_constructs_are_located_and_scalarised(text: str, line: int, what: str) -> None:
    checked = check(parse(text, "spec.imp"))
    problem = RolloutLowering(checked).run()
    with pytest.raises(SpecError) as err:
        tensor_discrete.lower_tensor_discrete(checked, problem)
    assert f"spec.imp:{line}:" in str(err.value) and what in str(err.value) and "tensor path" in str(err.value)
    assert impsolve.load(text).program.problem.discrete.tensor is None


def test_columns_read_blocks_without_copying() -> None:
    x, w = torch.arange(6.0).reshape(2, 3), torch.arange(6.0, 10.0).reshape(2, 2)
    row = Columns(x, w, torch.zeros(2, 0))
    assert row.shape == (2, 5)
    assert row[..., 0:3] is x and row[..., 4].data_ptr() == w[..., 1].data_ptr()
    torch.testing.assert_close(row[..., 3], w[..., 0])
    torch.testing.assert_close(row[..., 2:4], torch.cat([x, w], -1)[..., 2:4])     # across blocks: a copy


LARGE = """
problem large_rollout "a discrete spec above the scalar entry limit"
const n = 80
state x[n] = 1
param W[n, n] = 0.05 * randn()
noise w[n] ~ normal(0, 0.01)
control u[n] = tanh(W @ x)
next(x) = 0.9 * x + 0.1 * u + w
steps 5
batch 2
minimize mean(total(sum(x^2)) + 0.1 * sum(x(T)^2))
train adam(lr=0.01, steps=3)
expect mean(total(sum(x^2))) >= 0
"""


def test_a_declaration_above_the_entry_limit_is_compiled_as_tensors_only() -> None:
    """W has 6400 entries (the scalar limit is 4096): value and gradient equal hand-written torch."""
    problem = impsolve.load(LARGE)
    source = problem.source()
    assert "s[..., 0:80] @ p_0.mT" in source and "s[..., 1]" not in source and len(source) < 3000
    model = problem.compile(device="cpu", seed=2)
    value = model()
    value.backward()
    W = model.params[0].detach().clone().requires_grad_()
    x, total = torch.ones(2, 80, dtype=F64), 0
    for t in range(5):
        total = total + x.square().sum(-1)
        x = 0.9 * x + 0.1 * torch.tanh(x @ W.T) + model.noise[t]
    expected = (total + 0.1 * x.square().sum(-1)).mean()
    expected.backward()
    assert float(value.detach()) == pytest.approx(float(expected.detach()), rel=1e-12)
    torch.testing.assert_close(model.params[0].grad, W.grad, rtol=1e-10, atol=1e-14)
    result = impsolve.solve(LARGE, write=False, device="cpu")
    assert result.status == "ok" and all(c.passed for c in result.checks)


@pytest.mark.parametrize("case", ["linear", "gram", "random_open_loop"])
def test_tensor_only_lowering_agrees_with_the_scalar_one(case: str, monkeypatch) -> None:
    text, realizations = CASES[case]
    scalar = rollout_and_gradients(text, realizations, False, monkeypatch)
    monkeypatch.setattr(tensor_discrete, "TENSOR_ONLY_ABOVE", 0)
    problem = impsolve.load(text)
    assert problem.program.problem.tensor is not None and "def build_scalar" not in problem.source()
    model = problem.compile(device="cpu", seed=3, realizations=realizations)
    solution = model.solve()
    values = model.objectives(solution)
    values.sum().backward()
    torch.testing.assert_close(solution.rollout.inputs.detach(), scalar[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(values.detach(), scalar[2], rtol=1e-10, atol=1e-12)
    for p, b in zip(model.parameters(), scalar[3]):
        torch.testing.assert_close(p.grad, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("extra, line, what", [
    ("solve y: y = 0.5 * tanh(y) + 0.01 * sum(x)\n", 14, "an implicit equation"),
    ("plot sum(x) over x in [0, 1]\n", 14, "plot")])
def test_what_the_tensor_only_path_lacks_is_located(extra: str, line: int, what: str) -> None:
    with pytest.raises(SpecError) as err:
        impsolve.load(LARGE + extra)
    message = str(err.value)
    assert f":{line}:" in message and what in message and "more than 4096 entries" in message

"""Fits to data on the tensor path (issue 11): the same estimates as the scalar path, the runtime's
sensitivities (runtime.tensor_sensitivity) equal to the scalar path's SymPy ones, a state above the
scalarisation limit fitted, and located errors for what a tensor fit does not do."""
from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch

import impsolve
from impsolve.compiler import tensor_lower
from impsolve.dsl.errors import SpecError
from impsolve.runtime import library
from impsolve.runtime.tensor_sensitivity import ForwardSensitivities

SPEC = """problem vfit "a vector state fitted to data"
const n = 3
const A[n, n] = [[0.1, -0.2, 0.05], [0.3, -0.1, 0.0], [-0.05, 0.2, 0.1]]
param k > 0 = 0.5, x0 in [0, 5] = 1.2
param b[n] = [0.1, -0.1, 0.05]
state x[n] = x0 * [1, 0.5, 0.25]
der(x) = -k * x + tanh(A @ x + b)
data d = csv("vfit.csv", time=t)
fit x[0] to d.a sigma 0.03, x[1] + 0.5 * x[2] to d.b sigma 0.03
solve ode(rtol=1e-10, atol=1e-12)
{train}
expect abs(k - 0.8) < 10*stderr(k)
"""

IMPLICIT = """problem ifit "an implicit vector layer in the dynamics, fitted"
const n = 3
const W[n, n] = [[0.2, -0.1, 0.0], [0.1, 0.1, -0.2], [0.0, 0.3, 0.1]]
param k > 0 = 0.5
param c[n] = [0.2, 0.0, -0.1]
state x[n] = [1, 0.5, 0.25]
solve y[n]: y = tanh(W @ y + x + c)
der(x) = -k * x + 0.3 * y
data d = csv("vfit.csv", time=t)
fit x[0] to d.a sigma 0.03, x[1] + 0.5 * x[2] to d.b sigma 0.03
solve ode(rtol=1e-10, atol=1e-12)
train lm(steps=20)
"""


def write_data(folder: Path) -> None:
    rng = random.Random(3)
    rows = ["t,a,b"]
    for i in range(1, 21):
        t = 0.15 * i
        a = 1.5 * math.exp(-0.8 * t) * math.cos(0.5 * t) + rng.gauss(0, 0.03)
        b = 0.7 * math.exp(-0.3 * t) + 0.2 * math.sin(t) + rng.gauss(0, 0.03)
        rows.append(f"{t:.3f},{a:.6f},{b:.6f}")
    (folder / "vfit.csv").write_text("\n".join(rows) + "\n")


def spec_file(folder: Path, text: str) -> Path:
    write_data(folder)
    path = folder / "spec.imp"
    path.write_text(text)
    return path


def force(monkeypatch, tensor: bool) -> None:
    monkeypatch.setattr(tensor_lower, "SCALARISE_LIMIT", 0 if tensor else 64)
    monkeypatch.setattr(tensor_lower, "MATRICES_AS_TENSORS", tensor)


def both_paths(path: Path, monkeypatch) -> list[impsolve.Result]:
    results = []
    for tensor in (False, True):
        force(monkeypatch, tensor)
        assert ("(tensor path)" in impsolve.load(path).source()) == tensor
        results.append(impsolve.solve(path, write=False))
    return results


@pytest.mark.parametrize("train", ["train lm(steps=30)", "train lbfgs(steps=4)",
                                   "train lm(steps=3)\ntrain adam(lr=0.01, steps=3)"],
                         ids=["lm", "lbfgs", "adam after lm: backward through the sensitivity columns"])
def test_a_fit_gives_the_same_estimates_on_both_paths(train: str, tmp_path: Path, monkeypatch) -> None:
    scalar, tensor = both_paths(spec_file(tmp_path, SPEC.format(train=train)), monkeypatch)
    assert scalar.status == tensor.status == "ok"
    assert tensor.objective.final == pytest.approx(scalar.objective.final, rel=1e-10)
    assert tensor.objective.history == pytest.approx(scalar.objective.history, rel=1e-8)
    assert list(tensor.estimates) == list(scalar.estimates) == ["k", "x0", "b[0]", "b[1]", "b[2]"]
    for name, estimate in scalar.estimates.items():
        other = tensor.estimates[name]
        assert other.value == pytest.approx(estimate.value, rel=1e-8, abs=1e-10)
        assert other.stderr == pytest.approx(estimate.stderr, rel=1e-8)
    assert tensor.values["rmse"] == pytest.approx(scalar.values["rmse"], rel=1e-8)


def generated(path: Path, monkeypatch, tensor: bool):
    force(monkeypatch, tensor)
    return impsolve.load(path).compile("cpu", "float64", 0)


@pytest.mark.parametrize("text", [SPEC.format(train="train lm(steps=5)"), IMPLICIT], ids=["vfit", "implicit"])
def test_sensitivities_by_autograd_equal_the_symbolic_ones(text: str, tmp_path: Path, monkeypatch) -> None:
    """The augmented dynamics, fitted values with their derivatives and initial sensitivities of
    the tensor path (double vector-Jacobian products) against the scalar path's SymPy derivatives,
    at random augmented states (implicit unknowns followed by the implicit function theorem)."""
    path = spec_file(tmp_path, text)
    scalar, tensor = generated(path, monkeypatch, False), generated(path, monkeypatch, True)
    assert scalar.problem.states == tensor.problem.states
    s = 0.5 * torch.randn(4, len(scalar.problem.states), dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    t = torch.tensor(0.3, dtype=torch.float64)
    with torch.no_grad():
        for name in ("dynamics", "fit_observed"):
            assert torch.allclose(tensor.functions[name](t, s), scalar.functions[name](t, s), rtol=1e-10, atol=1e-12)
        a, b = (torch.stack([torch.as_tensor(v, dtype=torch.float64) for v in m.functions["fit_initial_0"](None, None)])
                for m in (scalar, tensor))
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)


def test_the_sensitivity_layer_passes_gradcheck(tmp_path: Path, monkeypatch) -> None:
    """Gradients through the wrapped dynamics (an Adam phase after an LM one backpropagates through
    the double vector-Jacobian products) with respect to the state and the fitted params, in float64."""
    model = generated(spec_file(tmp_path, SPEC.format(train="train lm(steps=5)")), monkeypatch, True)
    module = library.module(model.program.source, torch.float64, torch.device("cpu"), [])
    spec, t = model.problem.tensor.sensitivities, torch.tensor(0.3, dtype=torch.float64)
    assert spec.params == (0, 1, 2) and spec.states == spec.columns == 3

    def rates(s: torch.Tensor, *fitted: torch.Tensor) -> torch.Tensor:
        params = [*fitted, *list(model.params)[len(fitted):]]
        functions = module["build"](params, list(model.nets))
        return ForwardSensitivities(params, spec, functions).dynamics(t, s)

    s = 0.5 * torch.randn(2, len(model.problem.states), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    inputs = (s, *(p.detach().clone() for p in list(model.params)[:3]))
    assert torch.autograd.gradcheck(rates, tuple(x.requires_grad_(True) for x in inputs), eps=1e-6, atol=1e-8)


def chain(folder: Path, n: int = 70, k: float = 1.3, leak: float = 0.2) -> Path:
    """u_i' = -k r_i u_i + leak (1 - u_i), u(0) = 0, r_i = 1 + i/n: data of u_0 and the mean (noise 0.01)."""
    rates = [1 + i / n for i in range(n)]
    rng, rows = random.Random(0), ["t,first,mean"]
    for step in range(1, 31):
        t = 0.1 * step
        u = [leak / (k * r + leak) * (1 - math.exp(-(k * r + leak) * t)) for r in rates]
        rows.append(f"{t:.3f},{u[0] + rng.gauss(0, 0.01):.6f},{sum(u) / n + rng.gauss(0, 0.01):.6f}")
    (folder / "chain.csv").write_text("\n".join(rows) + "\n")
    spec = folder / "chain.imp"
    spec.write_text(f"""problem chain "{n} compartments with their own rates, two params fitted from the first and the mean"
const n = {n}
const r[n] = [{", ".join(f"{r:.17g}" for r in rates)}]
param k > 0 = 0.5, leak > 0 = 0.1
state u[n] = 0
der(u) = -k * r * u + leak * (1 - u)
data d = csv("chain.csv", time=t)
fit u[0] to d.first, sum(u) / n to d.mean sigma 0.01
solve ode(rtol=1e-8, atol=1e-10)
train lm(steps=30)
expect abs(k - {k}) < 4*stderr(k)
expect abs(leak - {leak}) < 4*stderr(leak)
""")
    return spec


def test_a_state_above_the_scalarisation_limit_is_fitted(tmp_path: Path) -> None:
    spec = chain(tmp_path)
    assert "(tensor path)" in impsolve.load(spec).source()
    result = impsolve.solve(spec, write=False)
    assert result.status == "ok", result.checks
    assert result.estimates["k"].stderr < 0.15 and result.fit["iterations"] < 30


@pytest.mark.parametrize("change, message, line", [
    (("train lm(steps=30)", "train adam(lr=0.01, steps=5, window=5, windows=4)"),
     "a fit on time windows is not supported on the tensor path yet", 10),
    (("expect abs(k - 1.3)", "expect stderr(r) + abs(k - 1.3)"), "stderr() takes a scalar param; 'r' has entries", 11),
    (("fit u[0] to d.first", "fit u to d.first"), "a fitted expression is a number (fit one entry per column), got a "
     "vector of 70", 8),
    (("der(u) = -k * r * u", "net g(u): mlp(hidden=[4])\nder(u) = 0.01 * g(u) - k * r * u"),
     "the net 'g' has none", 11),
])
def test_what_a_tensor_fit_does_not_do_is_located(change: tuple[str, str], message: str, line: int,
                                                   tmp_path: Path) -> None:
    spec = chain(tmp_path)
    spec.write_text(spec.read_text().replace("const r[n]", "param r[n]" if "stderr(r)" in change[1] else "const r[n]")
                    .replace(*change))
    with pytest.raises(SpecError) as info:
        impsolve.load(spec)
    assert message in str(info.value) and f"chain.imp:{line}:" in str(info.value)

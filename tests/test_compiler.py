"""Compiler: lowering to SymPy, CSE, and generated torch code against direct SymPy evaluation."""
import io
import math
import random
import tokenize

import pytest
import sympy as sp
import torch

import impsolve
from impsolve.compiler import compile_spec, ir, lower

SPEC = """
problem algebra
const k = 0.7, c = 2
param a = 0.3
def g(z) = exp(-z^2) + sech(z)
state x = 0.5, y = -0.2, z = 1
let r = sqrt(x^2 + y^2 + 1)
control u = tanh(a*x) * sigmoid(y)
der(x) = sin(r) * cos(r) + g(y) - u
der(y) = atan2(y, x) + abs(z) / r + max(x, y)
der(z) = where(x > y, log(1 + r), softplus(z)) - k * c * sin(r)
horizon 1
minimize x(T)^2 + integral(u^2)
"""


def _model():
    return impsolve.load(SPEC).compile(device="cpu", dtype="float64")


def _numeric(expr: sp.Expr, values: dict) -> float:
    return float(expr.evalf(subs=values))


def test_lowering_substitutes_lets_defs_and_consts():
    problem = lower(impsolve.load(SPEC).checked)
    names = {str(s) for e in problem.dynamics.values() for s in e.free_symbols}
    assert names <= {"x", "y", "z", "a"}            # r, u, g, k, c are gone
    assert problem.states[-1].startswith("integral_")   # the running cost is an extra state
    assert str(problem.dynamics[problem.states[-1]]).count("tanh") == 1


def test_generated_dynamics_equal_sympy_on_random_inputs():
    model = _model()
    problem = model.problem
    rng = random.Random(1)
    for _ in range(20):
        point = {name: rng.uniform(-2, 2) for name in problem.states}
        s = torch.tensor([[point[n] for n in problem.states]], dtype=torch.float64)
        got = model.functions["dynamics"](torch.tensor(0.0, dtype=torch.float64), s)[0]
        subs = {ir.state_symbol(n): v for n, v in point.items()}
        subs[sp.Symbol("a", real=True)] = 0.3
        for i, name in enumerate(problem.states):
            expected = _numeric(problem.dynamics[name], subs)
            assert math.isclose(float(got[i].detach()), expected, rel_tol=1e-12, abs_tol=1e-12), name


def test_common_subexpressions_are_shared():
    source = impsolve.load(SPEC).source()
    dynamics = source[source.index("def dynamics"):source.index("def initial")]
    assert "c0 = " in dynamics
    # sqrt(x^2 + y^2 + 1) appears in three derivatives but is computed once
    assert dynamics.count("torch.sqrt") == 1


def test_generated_source_has_no_user_names():
    """Only validated indices and numbers reach the code: no identifier of the spec appears."""
    source = impsolve.load(SPEC).source()
    identifiers = {tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                   if tok.type == tokenize.NAME}
    assert not identifiers & {"algebra", "k", "c", "a", "g", "x", "y", "z", "r", "u"}


def test_objective_uses_final_and_integral_states():
    model = _model()
    value = model()
    assert value.dim() == 0 and torch.isfinite(value)


def test_program_is_deterministic():
    a = compile_spec(impsolve.load(SPEC).checked).source
    b = compile_spec(impsolve.load(SPEC).checked).source
    assert a == b


@pytest.mark.parametrize("expr, value", [("2^3^2", 512.0), ("-2^2", -4.0), ("1 - 2 - 3", -4.0),
                                         ("8 / 4 / 2", 1.0), ("2 * 3 + 4", 10.0)])
def test_constant_folding_and_precedence(expr, value):
    checked = impsolve.load(f"const q = {expr}\nparam p = q\nminimize p\n").checked
    assert [float(v) for v in lower(checked).params["p"].initial] == [value]


COLUMNS = """
problem columns
state a = 0.3, b = -0.2, c = 0.5, d = 1
batch 3
net f(a): mlp(hidden=[4], act=tanh)
net g(b, c): mlp(hidden=[4], out=2, act=tanh)
der(a) = b
der(b) = c
der(c) = f(a)
der(d) = g(b, c)[1]
horizon 1
minimize mean(a(T)^2)
"""


def _dynamics_source(spec: str) -> str:
    source = impsolve.load(spec).source()
    return source[source.index("def dynamics"):source.index("def initial")]


def test_dynamics_of_columns_and_net_outputs_are_concatenated_blocks():
    """Outputs that are state columns or net outputs are cut out as (..., k) blocks and
    concatenated (consecutive columns in one slice; a net with one output needs no slice), with
    the values of the stacked entries."""
    dynamics = _dynamics_source(COLUMNS)
    assert "return torch.cat((s[..., 1:3], net_0.of_columns(s, 0, 1), net_1.of_columns(s, 1, 3)[..., 1:2], ), -1)" \
        in dynamics
    assert "unbind" not in dynamics and "torch.stack" not in dynamics
    model = impsolve.load(COLUMNS).compile(device="cpu", dtype="float64")
    s = torch.randn(3, 4, dtype=torch.float64)
    f, g = model.nets
    expected = torch.stack((s[:, 1], s[:, 2], f(s[:, :1])[:, 0], g(s[:, 1:3])[:, 1]), -1)
    assert torch.equal(model.functions["dynamics"](torch.tensor(0.0, dtype=torch.float64), s), expected)


def test_scattered_columns_are_stacked_from_one_unbind():
    """More slices than the one unbind they would replace: the entries are stacked as before."""
    dynamics = _dynamics_source(COLUMNS.replace("der(b) = c", "der(b) = a").replace("der(c) = f(a)", "der(c) = d"))
    assert "s_ = s.unbind(-1)" in dynamics and "torch.stack((s_[1], s_[0], s_[3], " in dynamics

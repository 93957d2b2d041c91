"""The direct method (`solve direct(...)`): multiple shooting (runtime/direct.py) solved by the
interior point method (runtime/ipm.py); answers, derivatives, located errors, infeasibility."""
from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from conftest import spec_path

import impsolve
from impsolve.compiler import compile_spec
from impsolve.dsl import SpecError, read_spec
from impsolve.runtime import ipm
from impsolve.runtime.direct import MultipleShooting
from impsolve.runtime.errors import RunError
from impsolve.runtime.kinds import compile_model

# min ∫u² dt, x'' = u, x(0) = v(0) = 0, x(1) = 1, v(1) = 0: u = 6 - 12t, cost 12. A linear hold holds
# it exactly and RK4 integrates the cubic x and the quadratic u² exactly, so the discrete optimum is 12.
ENERGY = """state x = 0, v = 0
control u piecewise(N=4, hold=linear)
der(x) = v
der(v) = u
horizon 1
subject to x(T) == 1
subject to v(T) == 0
minimize integral(u^2)
solve direct()
expect integral(u^2) at end == 12 tol 1e-8
"""


def _model(text: str, tmp_path=None):
    return compile_model(compile_spec(read_spec(text)), torch.device("cpu"), torch.float64)


def test_zermelo_direct_reaches_the_pontryagin_optimum(tmp_path):
    result = impsolve.solve(spec_path("zermelo_direct"), device="cpu", out=tmp_path / "r", quiet=True)
    assert result.status == "ok"
    assert abs(result.values["x"] / 1.4125753 - 1) < 1e-3
    assert abs(result.values["T"] / 4.0873095 - 1) < 5e-3
    (name, constraint), = result.constraints.items()
    assert name == "y(T) == l" and constraint.violation < 1e-8 and math.isfinite(constraint.multiplier)
    assert result.solver["backend"] == "direct" and "converged" in result.solver["note"]
    assert 3 <= result.steps <= 30
    assert 0 < result.solve_time_s <= result.wall_time_s + 1e-3   # the solve alone; wall time adds the checks
    payload = json.loads((tmp_path / "r" / "result.json").read_text())
    entry = payload["constraints"]["y(T) == l"]
    assert set(entry) == {"value", "violation", "multiplier", "worst"} and entry["worst"] == abs(entry["value"])
    with open(tmp_path / "r" / "trajectory.csv") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[-1]["t"]) == pytest.approx(result.values["T"], rel=1e-9)   # physical time
    assert float(rows[-1]["y"]) == pytest.approx(2.0, abs=1e-4)


def test_cartpole_swingup_meets_every_constraint():
    result = impsolve.solve(spec_path("cartpole_swingup_constrained"), device="cpu", write=False, quiet=True)
    assert result.status == "ok"
    assert set(result.constraints) == {"phi(T) == 0", "phid(T) == 0", "x(T) == 0"}
    assert all(c.violation < 1e-8 for c in result.constraints.values())
    assert abs(result.objective.final / 185.311 - 1) < 0.01   # CasADi + IPOPT (benchmarks/optimal_control.py)


def test_minimum_time_is_two_sqrt_x0_with_one_switch(tmp_path):
    result = impsolve.solve(spec_path("min_time_double_integrator_direct"), device="cpu", out=tmp_path / "r",
                            quiet=True)
    assert abs(result.values["T"] / 2 - 1) < 0.01
    with open(tmp_path / "r" / "trajectory.csv") as f:
        rows = [(float(r["t"]), float(r["u"])) for r in csv.DictReader(f)]
    assert all(u == pytest.approx(-1, abs=1e-4) for t, u in rows if t < 0.95)     # bang-bang: -1, then +1
    assert all(u == pytest.approx(1, abs=1e-4) for t, u in rows if t > 1.05)


@pytest.mark.parametrize("guess", ["linear", "simulate"])
def test_minimum_energy_transfer_is_exact(write_spec, guess):
    text = ENERGY.replace("solve direct()", f"solve direct(guess={guess})")
    result = impsolve.solve(write_spec(text), device="cpu", quiet=True)
    assert result.status == "ok"
    assert result.objective.final == pytest.approx(12.0, abs=1e-8)
    assert result.values["x"] == pytest.approx(1.0, abs=1e-9)


def test_maximize_and_params(write_spec):
    """maximize -J is minimize J; a param is a variable of the method (here a = 3 at the optimum)."""
    text = "param a = 0\n" + ENERGY.replace("minimize integral(u^2)", "maximize -integral(u^2) - (a - 3)^2") \
        .replace("expect integral(u^2) at end == 12 tol 1e-8", "expect a == 3 tol 1e-8")
    result = impsolve.solve(write_spec(text), device="cpu", quiet=True, write=False)
    assert result.status == "ok"
    assert result.objective.final == pytest.approx(-12.0, abs=1e-8)


@pytest.mark.parametrize("steps", [1, 2])
def test_derivatives_equal_autograd_of_the_values(steps):
    text = "param k = 0.3\n" + ENERGY.replace("N=4", "N=3").replace("horizon 1", "horizon free in [0.5, 2]") \
        .replace("der(v) = u", "der(v) = u - k*sin(x)*v").replace("state x = 0", "state x = k^2") \
        .replace("solve direct()", f"solve direct(steps={steps})") \
        + "subject to v(T) <= 1\nsubject to integral(x^2)^2 + v(T)*integral(u^2) <= 30\n" \
        + "subject to x*v + k*u^2 <= 3 + t always\nsubject to v >= -2 always\n"
    shooting = MultipleShooting(_model(text))
    torch.manual_seed(0)
    z = shooting.initial_guess() + 0.1 * torch.rand(shooting.size, dtype=torch.float64)
    equalities, inequalities = shooting.counts()
    y = torch.randn(equalities + inequalities, dtype=torch.float64)
    gradient, J, W = shooting.derivatives(z, y)
    f = lambda z_: shooting.values(z_)[0]   # noqa: E731
    c = lambda z_: shooting.values(z_)[1]   # noqa: E731
    with torch.enable_grad():
        exact_J = torch.autograd.functional.jacobian(lambda z_: shooting.evaluate(z_)[1], z)
        exact_g = torch.autograd.functional.jacobian(lambda z_: shooting.evaluate(z_)[0], z)
        exact_W = torch.autograd.functional.hessian(
            lambda z_: shooting.evaluate(z_)[0] + y @ shooting.evaluate(z_)[1], z)
    assert float(f(z)) == pytest.approx(float(shooting.evaluate(z)[0]))
    assert torch.allclose(c(z), shooting.evaluate(z)[1])
    assert torch.allclose(gradient, exact_g, atol=1e-10)
    assert torch.allclose(J, exact_J, atol=1e-10)
    assert torch.allclose(W, exact_W, atol=1e-9)
    assert inequalities == 2 + 2 * (3 * steps + 1)                  # two path constraints at 3 steps + 1 points


def test_path_constraint_holds_at_the_nodes_and_in_between(tmp_path):
    """Bryson-Denham: x'' = u from (0, 1) to (0, -1) at T = 1, x <= l = 1/9, min ∫u²/2: J* = 4/(9l) = 4
    on a boundary arc x = l for t in [3l, 1 - 3l]. The optimal u is piecewise linear with kinks at the
    nodes 1/3 and 2/3, so the linear hold on 36 intervals holds it and the nodes' optimum is J*."""
    result = impsolve.solve(spec_path("bryson_denham_direct"), device="cpu", out=tmp_path / "r", quiet=True)
    assert result.status == "ok" and "converged" in result.solver["note"]
    assert result.objective.final == pytest.approx(4.0, rel=1e-6)
    path = result.constraints["x <= l always"]
    assert path.violation == 0.0 and abs(path.value) < 1e-8 and path.multiplier > 1.0   # active, summed multiplier
    with open(tmp_path / "r" / "trajectory.csv") as f:
        rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    assert max(r["x"] for r in rows) <= 1 / 9 + 1e-8                          # at every node
    # the boundary arc: its inner nodes carry (almost) no multiplier, so the barrier leaves them ~4e-6 below l
    assert sum(abs(r["x"] - 1 / 9) < 1e-5 for r in rows if 1 / 3 - 1e-9 < r["t"] < 2 / 3 + 1e-9) == 13
    # simulated afterwards: x is cubic between the nodes under the linear hold (exact)
    x, v, worst = 0.0, 1.0, -math.inf
    for a, b in zip(rows, rows[1:]):
        h, slope = b["t"] - a["t"], (b["u"] - a["u"]) / (b["t"] - a["t"])
        s = torch.linspace(0, h, 101, dtype=torch.float64)
        worst = max(worst, float((x + v * s + a["u"] * s ** 2 / 2 + slope * s ** 3 / 6).max()) - 1 / 9)
        x, v = x + v * h + a["u"] * h ** 2 / 2 + slope * h ** 3 / 6, v + a["u"] * h + slope * h ** 2 / 2
    assert worst < 1e-6                                                      # 3.7e-8 between the nodes
    assert abs(x) < 1e-8 and abs(v + 1) < 1e-8


def test_path_constraint_inner_points_and_infeasibility(write_spec):
    """steps=3 puts the bound at the inner RK points as well; an unreachable bound is a named error."""
    text = spec_path("bryson_denham_direct").read_text().replace("N=36", "N=12").replace("steps=1", "steps=3")
    result = impsolve.solve(write_spec(text), device="cpu", quiet=True, write=False)
    assert result.objective.final == pytest.approx(4.0, rel=1e-6)
    assert result.constraints["x <= l always"].violation == 0.0
    with pytest.raises(RunError) as err:
        impsolve.solve(write_spec(text.replace("x <= l always", "x <= -0.1 always")), device="cpu", quiet=True)
    assert "'x <= -0.1 always': violation" in str(err.value) and "nan" not in str(err.value)


def test_inconsistent_constraints_name_their_violations(write_spec):
    text = ENERGY.replace("subject to v(T) == 0", "subject to x(T) == 2").replace("solve direct()",
                                                                                 "solve direct(max_iter=30)")
    with pytest.raises(RunError) as err:
        impsolve.solve(write_spec(text), device="cpu", quiet=True)
    message = str(err.value)
    assert "'x(T) == 1'" in message and "'x(T) == 2'" in message and "violation" in message
    assert "nan" not in message


def test_ipm_box_and_inequality():
    """min (a - 2)² + (b - 1)² with a + b <= 2, a <= 1.2: the optimum (1.2, 0.8), both active."""
    def values(x):
        return (x[0] - 2) ** 2 + (x[1] - 1) ** 2, (x[0] + x[1] - 2).reshape(1)

    def derivatives(x, y):
        return (torch.stack([2 * (x[0] - 2), 2 * (x[1] - 1)]), torch.ones(1, 2, dtype=x.dtype),
                2 * torch.eye(2, dtype=x.dtype))

    inf = math.inf
    nlp = ipm.Nlp(torch.tensor([-inf, -inf], dtype=torch.float64), torch.tensor([1.2, inf], dtype=torch.float64),
                  0, 1, values, derivatives)
    result = ipm.solve(nlp, torch.zeros(2, dtype=torch.float64), tol=1e-10)
    assert result.converged
    assert torch.allclose(result.x, torch.tensor([1.2, 0.8], dtype=torch.float64), atol=1e-8)
    assert float(result.y[0]) == pytest.approx(0.4, abs=1e-7)


def test_inertia_counts_two_by_two_blocks():
    k = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 2.0]], dtype=torch.float64)
    ld, pivots = torch.linalg.ldl_factor(k)
    assert ipm.inertia(ld, pivots) == (2, 1, 0)


# id, spec text, line, column, fragment of the message
ERRORS = [
    ("net", ENERGY.replace("control u piecewise(N=4, hold=linear)", "net k(t): mlp()\nlet u = k(t)"), 2, 1,
     "does not support a net"),
    ("equality path constraint", ENERGY + "subject to x == 2 always\n", 11, 1, "equality path constraint"),
    ("train", ENERGY + "train lbfgs(steps=3)\n", 11, 1, "does not support 'train'"),
    ("random initial state", ENERGY.replace("state x = 0", "state x ~ normal(0, 1)"), 1, 7,
     "random initial state"),
    ("stop", ENERGY.replace("horizon 1", "stop when x >= 1 within 3"), 2, 1, "needs a 'horizon'"),
    ("N differs", ENERGY.replace("direct()", "direct(N=5)"), 2, 11, "N=4 intervals"),
    ("unknown option", ENERGY.replace("direct()", "direct(M=5)"), 9, 14, "unknown option 'M'"),
    ("vector param", ENERGY + "param k[2] = 0\n", 11, 7, "vector or matrix param"),
    ("twice", ENERGY + "solve direct()\n", 11, 1, "given twice"),
    ("static", "param a = 0\nminimize a^2\nsolve direct()\n", 3, 1, "needs states"),
]


@pytest.mark.parametrize("name, text, line, column, message", ERRORS, ids=[e[0] for e in ERRORS])
def test_direct_mistakes_are_located(name, text, line, column, message):
    with pytest.raises(SpecError) as err:
        compile_spec(read_spec(text))
    assert (err.value.line, err.value.column) == (line, column), str(err.value)
    assert message in str(err.value)


def test_direct_options_can_be_set_from_the_command_line(write_spec):
    result = impsolve.solve(write_spec(ENERGY), device="cpu", quiet=True, write=False,
                            overrides={"direct.steps": 2, "direct.tol": 1e-10})
    assert result.objective.final == pytest.approx(12.0, abs=1e-9)
    assert "1 RK4" not in result.solver["note"] and "2 RK4" in result.solver["note"]
    with pytest.raises(SpecError):
        impsolve.solve(write_spec(ENERGY), device="cpu", quiet=True, write=False, overrides={"direct.N": 5})


def test_resume_is_refused(write_spec, tmp_path):
    with pytest.raises(RunError) as err:
        impsolve.solve(write_spec(ENERGY), device="cpu", quiet=True, out=tmp_path / "r", resume=True)
    assert "--resume" in str(err.value)


def test_path_constraint_with_a_free_final_time(write_spec):
    """Minimum time with a speed limit |v| <= 1/2 (in the rescaled time): accelerate for 1/2, coast
    over 3/4 at v = -1/2, brake for 1/2: T* = 2.5."""
    text = spec_path("min_time_double_integrator_direct").read_text() \
        .replace("subject to v(T) == 0", "subject to v(T) == 0\nsubject to v >= -0.5 always") \
        .replace("expect T == 2*sqrt(x0) tol 1%", "expect T == 2.5 tol 1%")
    result = impsolve.solve(write_spec(text), device="cpu", quiet=True, write=False)
    assert result.status == "ok" and abs(result.values["T"] / 2.5 - 1) < 1e-2
    assert result.constraints["v >= -0.5 always"].violation < 1e-8

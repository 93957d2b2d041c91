"""Optimal control: `subject to` constraints, open-loop piecewise controls, a free final time, and
the augmented-Lagrangian outer loop (fast tests; the specs' seeds are in test_optimal_control_slow.py)."""
from __future__ import annotations

import math

import pytest
import torch

import impsolve
from impsolve.compiler import compile_spec
from impsolve.compiler import ir
from impsolve.dsl import SpecError, read_spec
from impsolve.runtime.errors import RunError
from impsolve.runtime.open_loop import PiecewiseControl
from impsolve.dsl.options import PiecewiseOptions

STATIC = """param a = 0, b = 0
minimize a^2 + b^2
subject to a + b == 1
subject to a >= 0.7
train lbfgs(lr=1, steps=5)
expect a == 0.7 tol 1e-6
expect b == 0.3 tol 1e-6
"""
ODE = """state x = 0, v = 0
control u in [-1, 1] piecewise(N=4, hold=linear)
der(x) = v
der(v) = u
horizon 2
subject to x(T) == 0.5
minimize integral(u^2)
solve ode(method=rk4, step_size=0.25)
train lbfgs(lr=1, steps=3)
"""

# id, spec text, line, column, fragment of the message
ERRORS = [
    ("bare state", ODE.replace("x(T) == 0.5", "x == 0.5"), 6, 12, "'x' changes along the trajectory"),
    ("constant", ODE.replace("x(T) == 0.5", "1 <= 2"), 6, 1, "does not depend on anything the solve chooses"),
    ("not equal", ODE.replace("==", "!="), 6, 1, "cannot use '!='"),
    ("strict", ODE.replace("==", "<"), 6, 1, "strict inequality"),
    ("path in a static problem", STATIC + "subject to a <= 1 always\n", 8, 1, "needs states"),
    ("piecewise in a static problem", STATIC + "control u piecewise(N=3)\n", 8, 1, "needs states"),
    ("free horizon twice", ODE.replace("horizon 2", "horizon 2\nhorizon free in [1, 2]"), 6, 1,
     "'horizon' is given twice"),
    ("free horizon with stop", ODE.replace("horizon 2", "horizon free in [1, 2]\nstop when x >= 1 within 3"), 5, 1,
     "not two of them"),
    ("piecewise with a stop", ODE.replace("horizon 2", "stop when x >= 1 within 3"), 2, 1,
     "needs a 'horizon'"),
    ("unknown option", ODE.replace("N=4", "M=4"), 2, 32, "unknown option 'M'"),
    ("x(T) in a path constraint", ODE.replace("x(T) == 0.5", "x(T) <= 1 always"), 6, 12, "x"),
    ("state in a range", ODE.replace("[-1, 1]", "[-1, x]"), 2, 19, "x"),
]


@pytest.mark.parametrize("name, text, line, column, message", ERRORS, ids=[e[0] for e in ERRORS])
def test_constraint_mistakes_are_located(name, text, line, column, message):
    with pytest.raises(SpecError) as err:
        compile_spec(read_spec(text))
    assert (err.value.span.line, err.value.span.column) == (line, column), str(err.value)
    assert message in str(err.value)


def test_the_range_of_a_free_horizon_must_be_positive():
    with pytest.raises(SpecError, match="must be positive"):
        compile_spec(read_spec(ODE.replace("horizon 2", "horizon free in [0, 2]")))


def test_constraints_are_generated_as_terminal_functions():
    program = compile_spec(read_spec(ODE.replace("x(T) == 0.5", "x(T) >= 0.5")))
    assert [c.kind for c in program.problem.constraints] == ["ineq"]
    assert "def constraints(" in program.source and "0.5 - sT_[0]" in program.source


def test_a_path_constraint_is_a_running_state_constrained_to_zero():
    problem = compile_spec(read_spec(ODE.replace("x(T) == 0.5", "v <= 0.3 always"))).problem
    (constraint,) = problem.constraints
    assert constraint.path and constraint.kind == "eq" and constraint.expr == ir.final_symbol(problem.states[-1])


def test_a_free_final_time_rescales_the_dynamics_to_the_unit_interval():
    problem = compile_spec(read_spec(ODE.replace("horizon 2", "horizon free in [1, 3]"))).problem
    assert problem.horizon == 1.0 and problem.free_time is not None
    assert ir.FINAL_TIME not in problem.dynamics["v"].free_symbols
    assert problem.free_time.raw in {s.name for s in problem.dynamics["v"].free_symbols}


@pytest.mark.parametrize("hold", ["constant", "linear"])
def test_piecewise_values_stay_in_their_range_and_interpolate(hold):
    control = PiecewiseControl(ir.OpenLoop(PiecewiseOptions(N=4, hold=hold), -1.0, 1.0), torch.float64, "cpu")
    with torch.no_grad():
        control.raw.copy_(torch.linspace(-3, 3, control.raw.numel(), dtype=torch.float64))
    values = control.values().tolist()
    assert all(-1 <= v <= 1 for v in values)
    s = torch.tensor([[0.0], [0.3], [1.0]], dtype=torch.float64)
    out = control(s)[..., 0]
    if hold == "constant":
        assert out.tolist() == pytest.approx([values[0], values[1], values[3]])
    else:
        assert out.tolist() == pytest.approx([values[0], 0.8 * values[1] + 0.2 * values[2], values[4]])


def test_the_outer_loop_finds_the_constrained_minimum_and_reports_it(tmp_path):
    result = impsolve.solve(STATIC, out=tmp_path, device="cpu")
    assert [c.passed for c in result.checks] == [True, True], result.checks
    report = result.constraints
    assert report["a + b == 1"].violation < 1e-6 and report["a >= 0.7"].violation < 1e-6
    # KKT: 2a = λ1 ... for f = a² + b², c1 = a + b - 1, c2 = 0.7 - a: ∇f + λ1 ∇c1 + λ2 ∇c2 = 0
    assert report["a + b == 1"].multiplier == pytest.approx(-0.6, abs=1e-4)
    assert report["a >= 0.7"].multiplier == pytest.approx(0.8, abs=1e-4)
    header = (tmp_path / "history.csv").read_text().splitlines()[0]
    assert header.startswith("step,objective,outer,mu,violation[a + b == 1]")


def test_inconsistent_constraints_end_with_a_message_naming_them():
    with pytest.raises(RunError) as err:
        impsolve.solve(STATIC.replace("a >= 0.7", "a + b == 2"), device="cpu")
    text = str(err.value)
    assert "'a + b == 1'" in text and "'a + b == 2'" in text and "nan" not in text.lower()
    assert "polishing phase" not in text   # it ended with L-BFGS: the problem is the constraints


def test_an_outer_loop_ending_with_adam_suggests_an_lbfgs_polish():
    with pytest.raises(RunError) as err:
        impsolve.solve(STATIC.replace("train lbfgs(lr=1, steps=5)", "train adam(lr=0.001, steps=2)"), device="cpu")
    assert "ends with adam" in str(err.value) and "train lbfgs(" in err.value.hint


def test_an_open_loop_control_meets_a_terminal_condition(tmp_path):
    result = impsolve.solve(ODE, out=tmp_path, device="cpu")
    assert result.constraints["x(T) == 0.5"].violation < 1e-6
    assert math.isfinite(result.objective.final)


PATH_EXCESS = """state x = 0
control u piecewise(N=10)
der(x) = u
horizon 1
subject to x <= 0.5 always
minimize (x(T) - 1)^2 + 0.01*integral(u^2)
solve ode(method=rk4, step_size=0.01)
train adam(lr=0.1, steps=100)
train lbfgs(lr=1, steps=20)
"""


def test_a_trained_path_constraint_reports_its_worst_sample_and_warns_of_an_excess(tmp_path):
    result = impsolve.solve(PATH_EXCESS, out=tmp_path, device="cpu")
    report = result.constraints["x <= 0.5 always"]
    rows = (tmp_path / "trajectory.csv").read_text().splitlines()
    column = rows[0].split(",").index("x")
    largest = max(float(r.split(",")[column]) for r in rows[1:])
    assert report.worst == pytest.approx(largest - 0.5, abs=1e-9)   # trajectory.csv rounds
    # the integral of the squared excess is tiny while a sample exceeds the bound clearly
    assert report.violation < 1e-6 < 1e-4 < report.worst
    assert any("'x <= 0.5 always' exceeds its bound" in w and "solve direct" in w for w in result.warnings)


def test_terminal_constraints_report_their_value_as_worst(tmp_path):
    report = impsolve.solve(STATIC, out=tmp_path, device="cpu").constraints
    assert report["a >= 0.7"].worst == report["a >= 0.7"].value
    assert report["a + b == 1"].worst == abs(report["a + b == 1"].value)

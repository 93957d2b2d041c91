"""Specs an outside user writes, combining documented features in ways the shipped specs do not,
each with an answer known analytically (regressions of what broke when they were first run)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

import impsolve
from impsolve.dsl import SpecError
from impsolve.runtime.errors import RunError

LINE_FIT = """problem line
param a = 0, b = 0
state x = a
der(x) = b
data d = csv("line.csv", time=t)
fit x to d.y sigma 0.1
"""


def test_the_api_objective_of_a_fit_is_its_negative_log_likelihood(tmp_path: Path) -> None:
    """model() of a fit is the data's NLL at the current params (it was the unfilled `nll`, 0)."""
    (tmp_path / "line.csv").write_text("t,y\n0,1\n0.5,2\n1,3\n1.5,4\n2,5\n")
    (tmp_path / "line.imp").write_text(LINE_FIT)
    model = impsolve.load(str(tmp_path / "line.imp")).compile(device="cpu")
    objective = model()
    squares = 1 + 4 + 9 + 16 + 25   # a = b = 0: every model value is 0
    assert float(objective.detach()) == pytest.approx(squares / (2 * 0.1 ** 2) + 5 * math.log(0.1 * math.sqrt(2 * math.pi)),
                                             rel=1e-9)
    objective.backward()
    a, b = (float(p.grad) for p in model.params[:2])
    assert a == pytest.approx(-(1 + 2 + 3 + 4 + 5) / 0.01, rel=1e-6)          # d/da ½Σ(a + bt - y)²/σ²
    assert b == pytest.approx(-(0 + 1 + 3 + 6 + 10) / 0.01, rel=1e-6)         # Σ t (a + bt - y)/σ²


PROJECTILE = """problem projectile
const g = 9.81, v0 = 10
param a in [0.1, 1.5] = 0.3
state p[2] = [0, 0]
state v[2] = [v0*cos(a), v0*sin(a)]
der(p) = v
der(v) = [0, -g]
stop when p[1] < {level} within 10
maximize p(T)[0]
train adam(lr=0.05, steps=1)
"""


def test_an_event_on_its_boundary_at_the_start_is_named_as_such() -> None:
    """`p[1] < 0` with p[1] = 0 does not hold at t = 0, but no crossing can be located from there:
    the error says so (it said the condition 'already holds')."""
    with pytest.raises(RunError, match=r"the stop condition 'p\[1\] < 0' is on its boundary at t = 0"):
        impsolve.solve(PROJECTILE.format(level="0"), write=False)


def test_an_event_with_initial_states_of_params_lands_where_the_ballistics_say() -> None:
    """Flight time and range of a projectile whose initial velocity depends on a bounded param; the
    event check at t = 0 read that param's graph into a float and left a torch warning in result.json."""
    result = impsolve.solve(PROJECTILE.format(level="-1e-12"), write=False)
    assert not [w for w in result.warnings if "requires_grad" in w]
    values = result.values
    T, vx, vy = values["t_stop"], values["v[0]"], values["v[1]"]
    assert math.hypot(vx, vy) == pytest.approx(10, rel=1e-12)          # speed is conserved at landing
    assert T == pytest.approx(-2 * vy / 9.81, rel=1e-7)                  # flight time 2 v0 sin(a) / g
    assert values["p[0]"] == pytest.approx(vx * T, rel=1e-7)             # range v0 cos(a) T
    assert values["p[1]"] == pytest.approx(0, abs=1e-9)


LQR_WEIGHTS = """problem integrators
const n = {n}
state x[n] = 1
param k = 0.5
control u[n] = -k*x
der(x) = u
horizon 10
minimize integral(sum(x^2) + sum(u^2))
const q[n] = [{q}]
{r_const}
reference lqr(Q=diag(q), R={r}) at x=0
"""


def test_lqr_weights_may_be_consts_and_diag_of_a_vector() -> None:
    """Q = diag(q) of a const vector and R a const matrix (they were refused as 'matrix entry must be a
    number'); the Riccati gain of x' = u with these weights is sqrt(q_i / r_i) on the diagonal."""
    spec = LQR_WEIGHTS.format(n=2, q="1, 4", r_const="const Rm[n, n] = [[1, 0], [0, 9]]", r="Rm")
    result = impsolve.solve(spec, steps=1, write=False)
    K = result.reference["lqr"]["K"]
    assert K[0] == pytest.approx([1.0, 0.0], abs=1e-12) and K[1] == pytest.approx([0.0, 2 / 3], abs=1e-12)


def test_lqr_weights_of_a_const_above_the_scalarisation_limit() -> None:
    """On the tensor path a const of 70 entries in `diag(...)` was a KeyError (an internal error): the
    scalar lowering, which reads the weights, did not know it. It is now lowered there when read."""
    spec = LQR_WEIGHTS.format(n=70, q="1, " * 69 + "2", r_const="", r="diag(q)")
    reference = impsolve.load(spec).program.problem.references[0]
    assert reference.Q == reference.R == [[(2.0 if i == 69 else 1.0) if i == j else 0.0 for j in range(70)]
                                          for i in range(70)]


def test_a_byte_order_mark_in_the_spec_and_the_data_is_dropped(tmp_path: Path) -> None:
    """Files saved by Windows editors and Excel ('CSV UTF-8') start with a BOM: the spec's first
    statement was an 'unexpected character', the data's first column was named '\\ufefft'."""
    (tmp_path / "line.csv").write_bytes(b"\xef\xbb\xbft,y\n0,1\n0.5,2\n1,3\n1.5,4\n2,5\n")
    (tmp_path / "line.imp").write_bytes(b"\xef\xbb\xbf" + LINE_FIT.encode())
    result = impsolve.solve(tmp_path / "line.imp", write=False)
    assert result.estimates["a"].value == pytest.approx(1, abs=1e-9)
    assert result.estimates["b"].value == pytest.approx(2, abs=1e-9)


def test_an_expect_of_a_value_that_is_not_finite_says_so_in_its_reason() -> None:
    """sqrt of a negative terminal value: result.json had value null, error null and reason null."""
    result = impsolve.solve("state x = 1\nder(x) = -2*x\nhorizon 1\nminimize x(T)\nexpect sqrt(x(T) - 1) < 1\n",
                            write=False)
    check = result.checks[0]
    assert not check.passed and check.reason == "not a finite number: value nan, error nan"


TENSOR_EXPRESSIONS = """problem tensor_expressions
param big[70] = 0
param v[3] = [1, 2, 3]
const a = 2, b = 3
minimize sum(big^2)
expect det(diag(1, 2, 3)) == 6 tol 1e-12
expect sum(diag(v[0], 2*v[1], 5) @ v) == 1 + 8 + 15 tol 1e-12
expect where(a > b, 1, 2) == 2 tol 0
expect sum(where(v > 1.5, v, 0)) == 5 tol 0
"""


def test_tensor_path_diag_of_numbers_and_where_of_a_constant_condition() -> None:
    """On the tensor path (a 70-entry param) diag(a, b, c) was refused ('diag() takes one vector here')
    and where(a > b, ...) of consts was an internal error (torch.where of a Python bool)."""
    result = impsolve.solve(TENSOR_EXPRESSIONS, steps=1, write=False)
    assert "(tensor path)" in impsolve.load(TENSOR_EXPRESSIONS).source()
    assert [c.passed for c in result.checks] == [True] * 4, [(c.name, c.value) for c in result.checks]


DIRECT = """problem direct_time
state x = 0
control u in [0, 1] piecewise(N=10)
der(x) = u
horizon free in [0.5, 4]
subject to x(T) == 1
minimize T
solve direct(N=10)
"""


def test_training_settings_on_a_direct_spec_are_a_warning_not_silently_dropped() -> None:
    """`--steps 3` (train.steps) on a spec solved by the direct method ran to convergence without a word."""
    quiet = impsolve.solve(DIRECT, write=False)
    told = impsolve.solve(DIRECT, steps=3, write=False)
    assert told.values["T"] == pytest.approx(1, abs=1e-6) == quiet.values["T"]
    assert not [w for w in quiet.warnings if "training settings" in w]
    assert [w for w in told.warnings if w.startswith("training settings (--steps, --set train.<option>) have no "
                                                     "effect: the spec is solved by the direct method")]


def test_a_missing_data_file_of_spec_text_or_of_set_names_the_working_folder(tmp_path: Path) -> None:
    """Spec text (impsolve.load(text)) and `--set data.d=FILE` read data paths against the working
    folder; the hint said 'relative to the spec's folder' for them too."""
    with pytest.raises(SpecError, match="no such data file") as text_error:
        impsolve.load(LINE_FIT.replace("line.csv", "no_such_file.csv"))
    assert text_error.value.hint == "the path is relative to the working folder"
    (tmp_path / "line.csv").write_text("t,y\n0,1\n0.5,2\n1,3\n1.5,4\n2,5\n")
    (tmp_path / "line.imp").write_text(LINE_FIT)
    with pytest.raises(SpecError, match="no such data file") as set_error:
        impsolve.load(str(tmp_path / "line.imp"), {"data.d": "no_such_file.csv"})
    assert set_error.value.hint == "the path is relative to the working folder"
    with pytest.raises(SpecError, match="no such data file") as file_error:
        (tmp_path / "other.imp").write_text(LINE_FIT.replace("line.csv", "no_such_file.csv"))
        impsolve.load(str(tmp_path / "other.imp"))
    assert file_error.value.hint == "the path is relative to the spec's folder"


def test_realizations_on_a_spec_that_is_not_a_rollout_is_an_argument_error():
    from impsolve.api import ArgumentError
    problem = impsolve.load("state x = 1\nder(x) = -x\nhorizon 1\nminimize x(T)^2\n")
    with pytest.raises(ArgumentError, match="not a discrete-time rollout"):
        problem.compile(device="cpu", realizations=3)


MAX_SIGN_DERIVATIVES = """problem gradient_flow
state x = 0.5, y = -0.4
der(x) = d(max(x, y)^2 + sign(x)*x^2, x)
der(y) = d(min(x, y, 0.1)^2 + abs(x)*y, y)
horizon 1
minimize x(T)^2 + y(T)^2
"""


@pytest.mark.parametrize("backend", ["torch", "torchdiffeq"])
def test_d_of_max_min_and_sign_is_autograds_derivative_not_an_internal_error(backend: str) -> None:
    """d(max(x, y)^2, x) is 2 max(x, y) where x is the larger (SymPy: Heaviside), d(sign(x), x) is
    0 (SymPy: DiracDelta); the generated code printed neither ('internal error: no torch translation
    for Heaviside')."""
    import torch
    model = impsolve.load(MAX_SIGN_DERIVATIVES, {"solve.backend": backend}).compile(device="cpu")
    s = torch.tensor([[0.5, -0.4]], dtype=torch.float64)
    rates = model.dynamics.function(torch.tensor(0.0, dtype=torch.float64), s)
    assert rates[0].tolist() == pytest.approx([2 * 0.5 + 2 * 0.5, 2 * -0.4 + 0.5], rel=1e-15)


KINKED_LQR = """problem kinked
state x = 0.5, v = 0
net policy(x, v): mlp(hidden=[4])
control u = policy(x, v)
der(x) = v
der(v) = u - 0.1*v*abs(v) + 0.05*max(x, 0)^2 + where(x >= 0, x^2, -x^2){extra}
horizon 1
minimize integral(x^2 + v^2 + u^2)
reference lqr(Q=diag(1, 1), R=1) at x=0, v=0
"""


@pytest.mark.parametrize("extra", [" - 0.01*sign(v)", " + min(x, 0)", " + abs(x)", " + where(x > 0, x, 0)"])
def test_lqr_at_a_kink_of_the_dynamics_is_a_located_error(extra: str) -> None:
    """sign(v)'s derivative at v = 0 is SymPy's DiracDelta(0) ('internal error: Cannot convert
    expression to float'); min(x, 0), abs(x) and where(x > 0, x, 0) at x = 0 gave the silent choices
    1/2, 0 and 0."""
    with pytest.raises(SpecError, match=r"9:1: error: cannot linearise the dynamics: they are not differentiable"):
        impsolve.load(KINKED_LQR.format(extra=extra))


def test_lqr_where_a_kinked_term_vanishes_at_the_point_linearises() -> None:
    """v*abs(v), max(x, 0)^2 and where(x >= 0, x^2, -x^2) have derivative 0 at the point:
    A = [[0, 1], [0, 0]], B = [[0], [1]]."""
    reference = impsolve.load(KINKED_LQR.format(extra="")).program.problem.references[0]
    assert (reference.A, reference.B) == ([[0.0, 1.0], [0.0, 0.0]], [[0.0], [1.0]])


ANGLE = """problem angle
state x = 0, th = 0
der(x) = 1
der(th) = atan2(1, x) + atan2(x, 2) - atan2(x, 2)
horizon 1
minimize th(T)
solve ode(rtol=1e-10, atol=1e-12)
"""


@pytest.mark.parametrize("backend", ["torch", "torchdiffeq"])
def test_atan2_of_a_number_and_a_state(backend: str) -> None:
    """The generated torch code printed torch.atan2(1.0, x): 'internal error: atan2(): argument
    'input' must be Tensor' on torchdiffeq (and wherever the float kernel falls back to it).
    The integral of atan2(1, t) over [0, 1] is pi/4 + log(2)/2."""
    model = impsolve.load(ANGLE, {"solve.backend": backend}).compile(device="cpu")
    model.dynamics.function = getattr(model.dynamics.function, "fallback", model.dynamics.function)
    assert float(model().detach()) == pytest.approx(math.pi / 4 + math.log(2) / 2, rel=1e-9)


NESTED_CONDITION = """problem nested_condition
{batch}state x = 0, y = 0.2
der(x) = where(where(t < 0.5, -1, y) <= 0.1, 1, 2) + where(where(t < y, 0.1, y) <= where(x > 9, y, 1), 0, 5)
der(y) = 0
horizon 1
minimize {objective}
solve ode(method=rk4, step_size=0.125)
"""


@pytest.mark.parametrize("backend, batch", [("torchdiffeq", 1), ("torch", 1), ("torchdiffeq", 2)])
def test_a_where_in_the_condition_of_a_where(backend: str, batch: int) -> None:
    """SymPy makes where(c, -1, y) <= 0.1 a condition ITE(c, True, y <= 0.1): the torch code made its
    True a float tensor ('where expected condition to be a boolean tensor') and joined conditions
    with Python's `and`/`or` (a batch: 'Boolean value of Tensor ... is ambiguous'). x(1) = 0.5 + 2 * 0.5,
    and h/8 more: rk4 (the 3/8 rule) evaluates the step ending at t = 0.5 there, where 2 holds."""
    text = NESTED_CONDITION.format(batch=f"batch {batch}\n" if batch > 1 else "",
                                   objective="mean(x(T))" if batch > 1 else "x(T)")
    model = impsolve.load(text, {"solve.backend": backend}).compile(device="cpu")
    model.dynamics.function = getattr(model.dynamics.function, "fallback", model.dynamics.function)
    assert float(model().detach()) == pytest.approx(1.5 + 0.125 / 8, rel=1e-12)


def test_a_comparison_of_a_value_that_is_never_real_is_a_located_error() -> None:
    """min(x, -1)^(1/3) is not real for any x: SymPy refuses to order it ('internal error:
    TypeError: Invalid comparison of non-real Min(-1, x)**(1/3)')."""
    text = "problem q\nstate x = 0.3\nder(x) = where(min(x, -1)^(1/3) >= 0, 1, 2)\nhorizon 1\nminimize x(T)\n"
    with pytest.raises(SpecError, match=r"3:16: error: cannot compare: a side is never a real number"):
        impsolve.load(text)


@pytest.mark.parametrize("value, column", [("sqrt(-k)", 10), ("(-k)^(1/3)", 10)])
def test_a_value_that_is_never_real_is_a_located_error(value: str, column: int) -> None:
    """sqrt(-k) with k > 0 is I*sqrt(k) to SymPy: in the dynamics the torch code mixed complex and
    real tensors (internal error); in an objective torch dropped the imaginary part with a warning."""
    for statement in (f"der(x) = {value}\nhorizon 1\nminimize x(T)\n", f"der(x) = -x\nhorizon 1\nminimize {value}\n"):
        text = "problem q\nparam k > 0 = 0.7\nstate x = 0.3\n" + statement
        line = 4 if statement.startswith(f"der(x) = {value}") else 6
        with pytest.raises(SpecError, match=rf"{line}:{column}: error: this is never a real number"):
            impsolve.load(text)


def test_d_of_atan2_at_the_origin_is_torch_s_zero_not_nan():
    """d(atan2(a, b), a) at a = b = 0 was SymPy's b/(a^2 + b^2) = 0/0 = nan in the generated torch
    code (the kernel and native tiers already gave torch's 0 there)."""
    text = ('problem at "atan2 at the origin"\nparam a = 0, b = 0\n'
            'minimize d(atan2(a, b), a) + d(atan2(a, b), b) + (a - 1)^2\n')
    assert float(impsolve.load(text).compile(device="cpu")().detach()) == 1.0


def test_batch_takes_a_const_declared_as_a_number():
    text = ('problem b "b"\nconst B = 4\nbatch B\nstate x ~ normal(0, 1)\nder(x) = -x\nhorizon 1\n'
            'minimize mean(x(T)^2)\n')
    problem = impsolve.load(text)
    assert problem.checked.batch == 4
    assert problem.compile(device="cpu").initial_state().shape == (4, 1)

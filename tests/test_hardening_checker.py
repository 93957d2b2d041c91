"""Issue 12, checker side: every (time model, study, statement) combination that is not supported
is a located error naming both statements, and the messages say the real reason first."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

import impsolve
from impsolve.dsl import SpecError
from impsolve.runtime.bayesian_design import SequentialDesign
from impsolve.runtime.errors import RunError

ROOT = Path(__file__).resolve().parents[1]
DISCRETE = "state x = 1\nnext(x) = 0.9*x + u\ncontrol u = a*x\nparam a = 0.1\nsteps 5\n"
OBJECTIVE = "minimize x(T)^2\n"


def spec_error(text: str) -> SpecError:
    with pytest.raises(SpecError) as caught:
        impsolve.load(text)
    return caught.value


# ------------------------------------------------ item 7: a catalogue of unplanned combinations
# id, text added to the discrete spec, (line, column) of the error, fragments of the message and hint
DISCRETE_CATALOGUE = [
    ("design", "design tobs in [0, 1]\n" + OBJECTIVE, (6, 1), "'design' is not supported in a discrete-time spec",
     "'next(x)' on line 2"),
    ("observe", "observe x(T) + normal(0, 0.1)\n" + OBJECTIVE, (6, 1), "'observe' is not supported", "'next(x)'"),
    ("rounds", "rounds 3\n" + OBJECTIVE, (6, 1), "'rounds' is not supported", "'next(x)'"),
    ("uncertain param", "param theta ~ normal(1, 1)\n" + OBJECTIVE, (6, 15), "'param ~ normal(...)' is not supported",
     "'next(x)'"),
    ("whole study", "param theta ~ normal(1, 1)\ntruth theta = 1\ndesign s in [0, 1]\n"
     "observe x(T) + normal(0, 0.1)\nmaximize information_gain\n", (6, 15), "design study", "'next(x)'"),
    ("lqr", OBJECTIVE + "reference lqr(Q=1, R=1) at x=0\n", (7, 1), "'reference' is not supported", "'next(x)'"),
    ("horizon", OBJECTIVE + "horizon 1\n", (7, 1), "'horizon' does not apply", "steps N"),
    ("stop", OBJECTIVE + "stop when x > 2 within 3\n", (7, 1), "'stop when' does not apply", "steps N"),
    ("der", OBJECTIVE + "state y = 0\nder(y) = 1\n", (8, 1), "either continuous-time (der) or discrete-time",
     "next(y)"),
    ("integral", "minimize integral(x^2)\n", (6, 10), "integral() is for continuous time", "total(...)"),
    ("information_gain", "maximize information_gain\n", (6, 10), "needs a design study", "observe"),
    ("sens", "maximize sens(x(T), a)\n", (6, 21), "sens() needs an uncertain param", "normal(mean, std)"),
    ("each round", OBJECTIVE + "expect a == 1 tol 1 each round\n", (7, 1), "'each round' needs a design study",
     "observe"),
    ("d of a state", "minimize d(x(T), a)\n", (6, 10), "'x(T)' is a value of the solution", None),
]


@pytest.mark.parametrize("added, where, message, hint", [c[1:] for c in DISCRETE_CATALOGUE],
                         ids=[c[0] for c in DISCRETE_CATALOGUE])
def test_discrete_spec_rejects_statements_of_other_studies(added, where, message, hint):
    err = spec_error(DISCRETE + added)
    assert (err.line, err.column) == where
    assert message in err.message
    if hint is not None:
        assert hint in (err.hint or "")


def test_discrete_design_study_from_the_issue_names_both_statements():
    text = ("param theta ~ normal(2, 1)\ntruth theta = 1.7\nstate u = 1\nnext(u) = u - 0.1*theta*u\nsteps 10\n"
            "design tobs in [0, 5]\nobserve u(T) + normal(0, 0.1)\nmaximize information_gain\nrounds 2\n")
    err = spec_error(text)
    assert "need a 'horizon'" not in err.message + (err.hint or "")
    assert "discrete-time" in err.message and "'next(u)' on line 4" in err.hint


# ------------------------------------------------ item 6: least squares needs additive noise
@pytest.mark.parametrize("dynamics", ["A @ x + w * x", "A @ x + exp(w)", "A @ x + u * w"])
def test_ols_rejects_noise_that_is_not_additive(dynamics):
    text = ("truth A[2, 2] = [[0.9, 0], [0, 0.9]]\nestimate A by ols\nnoise w[2] ~ normal(0, 0.1)\nstate x[2] = 1\n"
            f"control u[2] over steps\nnext(x) = {dynamics}\nsteps 5\nmaximize smin(total(outer(x, x)))\n"
            "identify epochs=2, realizations=2\nbaseline u ~ normal(0, 1)\n")
    err = spec_error(text)
    assert err.line == 2 and "least squares needs additive noise" in err.message


# ------------------------------------------------ item 14: the real reason first
def test_lqr_with_a_vector_state_counts_its_entries_for_q():
    """A vector state is linearised entry by entry (issue 11): Q has one row per entry."""
    text = ("state x[2] = 0.1\ncontrol u = -sum(x)\nconst A[2,2] = [[0, 1], [0, 0]]\nder(x) = A @ x + [0, u]\n"
            "horizon 2\nminimize integral(u^2)\nreference lqr(Q=diag(1, 1), R=1) at x=0\n")
    assert impsolve.load(text).program.problem.references[0].A == [[0.0, 1.0], [0.0, 0.0]]
    err = spec_error(text.replace("Q=diag(1, 1)", "Q=diag(1)"))
    assert err.line == 7 and "Q (one row per state entry): expected a 2x2 matrix" in err.message


def test_shape_hint_of_a_dynamics_names_the_state_declaration():
    err = spec_error("state x = 1\nconst A[2,2] = [[1,0],[0,1]]\nder(x) = A*x\nhorizon 1\nminimize x(T)\n")
    assert "der(x)[" not in err.hint and "state x[2, 2]" in err.hint


def test_vector_state_observed_at_a_design_time_has_its_sensitivities():
    text = ("param theta ~ normal(2, 1)\ntruth theta = 1.7\nstate u[2] = 1\nder(u) = -theta*u\ndesign tobs in [0, 5]\n"
            "observe sum(u(tobs)) + normal(0, 0.1)\nmaximize information_gain\nrounds 2\n"
            "solve ode(method=dopri5, rtol=1e-9, atol=1e-11)\n")
    runner = SequentialDesign(impsolve.load(text).compile(device="cpu"), seed=0)
    runner.set_theta([1.5])
    runner.set_design([0.7])
    value, g = runner.predict()
    assert value == pytest.approx(2 * math.exp(-1.5 * 0.7), rel=1e-7)
    assert float(g[0]) == pytest.approx(-2 * 0.7 * math.exp(-1.5 * 0.7), rel=1e-6)


def test_failing_picard_solve_suggests_its_own_options_and_newton():
    model = impsolve.load("param a = 1\nsolve y: y = 2*y + a using picard(max_iter=20)\nminimize y\n").compile()
    with pytest.raises(RunError) as caught:
        model()
    assert "using picard(...)" in caught.value.hint and "try 'using newton(...)'" in caught.value.hint


def test_consts_may_be_declared_after_the_consts_that_use_them():
    """Found by the long mutation fuzz (sysid with its lines swapped): a const whose shape or value
    reads a const declared later was an internal KeyError; consts are ordered by what they read."""
    spec = ("const B[d, d] = diag(1, 1, 1)\nconst C = d + 1\nconst d = 3\nparam k = 1\n"
            "minimize (k - C)^2 + sum(B)\n")
    problem = impsolve.load(spec).program.problem
    assert problem.name

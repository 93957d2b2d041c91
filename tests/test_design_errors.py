"""Mistakes in design-study specs: each is a SpecError at file:line:col with a message and hint."""
from __future__ import annotations

import pytest

import impsolve
from impsolve.dsl import SpecError

ODE = """param theta ~ normal(2, 1)
truth theta = 1.7
state u = 1
der(u) = -theta*u
design tobs in [0, 5]
observe u(tobs) + normal(0, 0.1)
maximize information_gain
"""
CLOSED = """param theta ~ normal(2, 1)
truth theta = 1.7
design tobs in [0, 5]
observe exp(-theta*tobs) + normal(0, 0.1)
maximize information_gain
"""
TWO_DESIGNS = ODE.replace("design tobs in [0, 5]", "design tobs in [0, 5]\ndesign t2 in [0, 5]")

# id, spec text, line, column, fragment of the message, fragment of the hint (or None)
CASES = [
    # ---- syntax
    ("design without a range", CLOSED.replace("[0, 5]", "[0]"), 3, 18, "unexpected ']'", "expected ','"),
    ("design without in", CLOSED.replace("tobs in [", "tobs ["), 3, 13, "unexpected '['", "expected 'in'"),
    ("each without round", CLOSED + "expect tobs < 1 each\n", 6, 21, "unexpected end of line", "expected 'round'"),
    ("each round twice", CLOSED + "expect tobs < 1 each round each round\n", 6, 28,
     "'each round' is given twice in this expect", None),
    ("at end twice", CLOSED + "expect tobs < 1 at end at end\n", 6, 24, "'at' is given twice in this expect", None),
    ("truth without values", CLOSED + "truth\n", 6, 6, "unexpected end of line", "expected a name"),
    # ---- statements that need a design study
    ("uncertain param alone", "param theta ~ normal(2, 1)\nparam k = 1\nminimize k\n", 1, 7,
     "the uncertain param 'theta' needs an experiment", "observe <expr> + normal(0, sigma)"),
    ("design alone", "param k = 1\ndesign x in [0, 1]\nminimize k\n", 2, 1, "'design' belongs to a design study", None),
    ("truth alone", "param k = 1\ntruth k = 1\nminimize k\n", 2, 1, "'truth' belongs to a design study", None),
    ("rounds alone", "param k = 1\nrounds 3\nminimize k\n", 2, 1, "'rounds' belongs to a design study", None),
    ("each round alone", "param k = 1\nminimize k\nexpect k == 1 tol 1 each round\n", 3, 1,
     "'each round' needs a design study", None),
    ("information_gain alone", "param k = 1\nminimize information_gain + k\n", 2, 10,
     "'information_gain' needs a design study", "param theta ~ normal(mean, std)"),
    ("observe without a design", CLOSED.replace("design tobs in [0, 5]\n", "const tobs = 1\n"), 4, 1,
     "a design study needs a design variable", "design x in [low, high]"),
    # ---- priors, truth, rounds
    ("missing truth", CLOSED.replace("truth theta = 1.7\n", ""), 1, 7, "'theta' needs a truth", "truth theta = "),
    ("truth of a const", CLOSED + "const c = 1\ntruth c = 2\n", 7, 7, "'truth' is for uncertain params, but 'c' is a const",
     None),
    ("truth twice", CLOSED + "truth theta = 2\n", 6, 7, "the truth of 'theta' is given twice", None),
    ("uniform prior", CLOSED.replace("normal(2, 1)", "uniform(1, 3)"), 1, 15, "a Gaussian prior: normal(mean, std)",
     None),
    ("prior std zero", CLOSED.replace("normal(2, 1)", "normal(2, 0)"), 1, 25, "needs std > 0", None),
    ("prior from a state", ODE.replace("normal(2, 1)", "normal(u, 1)"), 1, 22, "the state 'u' cannot be used in a prior",
     None),
    ("rounds zero", CLOSED + "rounds 0\n", 6, 8, "rounds must be a positive integer", None),
    ("rounds twice", CLOSED + "rounds 2\nrounds 3\n", 7, 1, "'rounds' is given twice", None),
    ("reversed bounds", CLOSED.replace("[0, 5]", "[5, 0]"), 3, 1, "a range must be increasing", None),
    ("design named t", CLOSED.replace("tobs", "t"), 3, 8, "'t' is a built-in name", None),
    # ---- the observation
    ("no noise", CLOSED.replace(" + normal(0, 0.1)", ""), 4, 9, "exactly one noise term", "a term of its own"),
    ("two noise terms", CLOSED.replace("normal(0, 0.1)", "normal(0, 0.1) + normal(0, 0.2)"), 4, 45,
     "an observation has one noise term", None),
    ("noise inside the model", CLOSED.replace("tobs) + normal(0, 0.1)", "tobs + normal(0, 0.1))"), 4, 9,
     "exactly one noise term", None),
    ("noise with a mean", CLOSED.replace("normal(0, 0.1)", "normal(1, 0.1)"), 4, 35, "the noise has mean 0", None),
    ("negative noise", CLOSED.replace("normal(0, 0.1)", "normal(0, -0.1)"), 4, 38, "the noise needs sigma > 0", None),
    ("observe twice", CLOSED + "observe tobs + normal(0, 1)\n", 6, 1, "only one 'observe'", "the first is on line 4"),
    ("bare state observed", ODE.replace("u(tobs) +", "u +"), 6, 9, "'u' changes along the trajectory",
     "observe e.g. u(tobs)"),
    ("two observation times", TWO_DESIGNS.replace("u(tobs) +", "u(tobs) + u(t2) +"), 7, 21,
     "observes the states at one time, here at 'tobs' and 't2'", None),
    ("horizon and a design time", ODE + "horizon 2\n", 8, 1, "the observation time 'tobs' ends the trajectory", None),
    ("states never observed", ODE.replace("u(tobs) +", "theta*tobs +"), 6, 1, "the states are never observed",
     "observe u(tobs)"),
    ("states at T without horizon", ODE.replace("u(tobs) +", "u(T) +"), 6, 11, "states at T need a 'horizon'", None),
    ("another time in the objective", TWO_DESIGNS.replace("maximize information_gain", "maximize u(t2)"), 8, 12,
     "states are observed at 'tobs' only", "write u(tobs)"),
    ("belief in observe", CLOSED.replace("exp(-theta*tobs)", "exp(-mean(theta)*tobs)"), 4, 14,
     "observe describes the experiment: mean(...) cannot appear inside", None),
    ("sens in observe", CLOSED.replace("exp(-theta*tobs)", "sens(tobs, theta)"), 4, 9,
     "sens(...) cannot appear inside", None),
    # ---- belief, sensitivity and criterion
    ("var of a plain param", CLOSED + "param k = 1\nexpect var(k) < 1\n", 7, 12, "var() needs an uncertain param",
     "var(theta)"),
    ("sens of a plain param", CLOSED.replace("maximize information_gain", "param k = 1\nmaximize sens(tobs, k)"), 6, 21,
     "sens() needs an uncertain param", "e.g. sens(<expr>, theta)"),
    ("sens of an expression", CLOSED.replace("information_gain", "sens(tobs, 2*theta)"), 5, 21,
     "got an expression", "sens(<expr>, theta)"),
    ("belief inside sens", CLOSED.replace("information_gain", "sens(var(theta)*tobs, theta)"), 5, 15,
     "sens() differentiates the model: var(...) cannot appear inside", None),
    ("belief in the dynamics", ODE.replace("-theta*u", "-mean(theta)*u"), 4, 11,
     "mean(...) can only be used in an objective or expect", "does not see"),
    ("criterion in a let", CLOSED + "let q = information_gain\n", 6, 9,
     "'information_gain' can only be used in an objective or expect", None),
    ("cov with three arguments", CLOSED + "expect cov(theta, theta, theta) < 1\n", 6, 8,
     "cov() takes 1 or 2 arguments, got 3", None),
    ("objective without a design", CLOSED.replace("maximize information_gain", "minimize var(theta)"), 5, 1,
     "the objective does not depend on any design", "information_gain"),
    ("not differentiable", ODE.replace("-theta*u", "-max(theta*u, 0.1)"), 4, 1,
     "the derivative needs Heaviside", "min, max and sign"),
    # ---- what a design study does not support
    ("stop when", ODE.replace("u(tobs) +", "u(T) +") + "stop when u < 0.5 within 3\n", 8, 1,
     "'stop when' is not supported in a design study", None),
    ("a net", CLOSED + "net n(x): mlp()\n", 6, 1, "nets are not supported in a design study", None),
    ("a random state", ODE.replace("state u = 1", "state u ~ normal(1, 0.1)"), 3, 11,
     "random initial states are not supported", "param theta ~ normal(mean, std)"),
    ("expect over", ODE + "expect u == 1 over u in [0, 1] tol 1\n", 8, 15, "'over' is not supported", None),
]


@pytest.mark.parametrize("text, line, column, message, hint", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_located_error(text, line, column, message, hint):
    with pytest.raises(SpecError) as caught:
        impsolve.load(text).source()     # parse, check and lower: some values are checked when lowered
    err = caught.value
    assert (err.line, err.column) == (line, column), err.render()
    assert message in err.message, err.render()
    if hint is not None:
        assert err.hint and hint in err.hint, err.render()
    rendered = err.render()
    assert rendered.startswith(f"<spec>:{line}:{column}: error: ")
    assert f"{line:>5} | {text.split(chr(10))[line - 1]}" in rendered


def test_valid_design_specs_with_the_new_clauses():
    text = CLOSED + "rounds 2\nexpect tobs == 1/mean(theta) tol 5% each round\nexpect var(theta) < 1 at end\n" \
                    "expect cov(theta, theta) == cov(theta) tol 1e-12\nexpect sens(exp(-theta*tobs), theta) < 0\n"
    checked = impsolve.load(text).checked
    assert [e.each_round for e in checked.expects] == [True, False, False, False]
    assert [e.at for e in checked.expects] == [None, "end", None, None]
    assert checked.uncertain == ["theta"] and list(checked.designs) == ["tobs"] and checked.rounds == 2

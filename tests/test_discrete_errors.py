"""Malformed discrete-time and identification specs: each a SpecError at file:line:col with a hint."""
import pytest

import impsolve
from impsolve.dsl import SpecError

D = "state x = 0\nnext(x) = 0.5*x\nsteps 3\nminimize x(T)\n"                          # 4 lines
ID = ("const g = 1\ntruth A = 0.9\nestimate A by ols\nnoise w ~ normal(0, 0.1)\nstate x = 0\n"
      "control u over steps\nnext(x) = A*x + u + w\nsteps 5\nmaximize total(x^2)\n")   # 9 lines
IDENT = "identify epochs=2\nbaseline u ~ normal(0, 1)\n"

# id, spec text, line, column, fragment of the message, fragment of the hint (or None)
CASES = [
    ("der then next", "state x = 0\nder(x) = -x\nnext(x) = x\nsteps 3\nminimize x(T)\n", 3, 1,
     "either continuous-time (der) or discrete-time", "der(x) on line 2"),
    ("next then der", "state x = 0\nnext(x) = x\nder(x) = -x\nsteps 3\nminimize x(T)\n", 3, 1,
     "either continuous-time (der) or discrete-time", "discrete-time from line 2"),
    ("noise in an ODE", "noise w ~ normal(0, 1)\nstate x = 0\nder(x) = -x\nhorizon 1\nminimize x(T)\n", 3, 1,
     "not both", "write next(x)"),
    ("horizon", D + "horizon 2\n", 5, 1, "'horizon' does not apply", "steps N"),
    ("solve ode", D + "solve ode(rtol=1e-6)\n", 5, 1, "no ODE to solve", None),
    ("next of a const", "const c = 1\n" + D + "next(c) = 2\n", 6, 6, "next() needs a state, but 'c' is a const", None),
    ("next of undeclared", D + "next(z) = 2\n", 5, 6, "next() of undeclared name 'z'", "declare it"),
    ("next twice", D + "next(x) = x\n", 5, 1, "next(x) is given twice", "first on line 2"),
    ("state without next", "state y = 0\n" + D, 1, 7, "state 'y' has no dynamics", "next(y) = ..."),
    ("no steps", "state x = 0\nnext(x) = x\nminimize x(T)\n", 1, 7, "needs 'steps N'", None),
    ("steps twice", D + "steps 4\n", 5, 1, "'steps' is given twice", None),
    ("steps not an integer", D.replace("steps 3", "steps 2.5"), 3, 7, "steps must be a positive integer", None),
    ("no state", "noise w ~ normal(0, 1)\nparam k = 1\nminimize k\n", 1, 1, "needs a state", None),
    ("integral", D.replace("minimize x(T)", "minimize integral(x^2)"), 4, 10, "integral() is for continuous time",
     "total(...)"),
    ("total in an ODE", "state x = 0\nder(x) = -x\nhorizon 1\nminimize total(x^2)\n", 4, 10,
     "total() sums over the steps of a discrete-time spec", "integral(...)"),
    ("total in next", D.replace("next(x) = 0.5*x", "next(x) = total(x)"), 2, 11,
     "can only be used in an objective or expect", None),
    ("bare state", D.replace("minimize x(T)", "minimize x"), 4, 10, "the state 'x' needs a time", "total(...) sums"),
    ("noise in the objective", "noise w ~ normal(0, 1)\n" + D.replace("minimize x(T)", "minimize x(T) + w"), 5, 17,
     "'w' changes at every step: sum it over the steps with total(...)", None),
    ("sequence in the objective", "control u over steps\n" + D.replace("minimize x(T)", "minimize x(T) + u"), 5, 17,
     "'u' changes at every step", None),
    ("noise at end", "noise w ~ normal(0, 1)\n" + D.replace("minimize x(T)", "minimize x + w at end"), 5, 10,
     "no value at the end of a rollout", "total(...)"),
    ("unknown noise distribution", "noise w ~ gauss(0, 1)\n" + D, 1, 11, "unknown distribution 'gauss'", "normal"),
    ("negative noise std", "noise w ~ normal(0, -1)\n" + D, 1, 21, "needs std >= 0", None),
    ("negative energy", "control u over steps energy -1\n" + D, 1, 29, "an energy must be positive", None),
    ("energy of a state", "control u over steps energy x\n" + D, 1, 29, "the state 'x' cannot be used in an energy",
     None),
    ("estimate a const", "const c = 1\nestimate c by ols\n" + D, 2, 10, "needs an unknown declared with 'truth'", None),
    ("unknown estimator", ID.replace("by ols", "by mle") + IDENT, 3, 15, "unknown estimator 'mle'", "ols"),
    ("estimated twice", ID + "estimate A by ols\n" + IDENT, 10, 10, "'A' is estimated twice", "line 3"),
    ("truth without estimate", ID.replace("estimate A by ols\n", "") + IDENT, 2, 7, "hidden from the planner",
     "estimate A by ols"),
    ("truth without identify", ID + "baseline u ~ normal(0, 1)\n", 2, 7, "only used by an 'identify' study",
     "identify epochs="),
    ("identify without baseline", ID + "identify epochs=2\n", 10, 1, "needs the random inputs", "baseline u ~"),
    ("baseline of a state", ID + "identify epochs=2\nbaseline x ~ normal(0, 1)\n", 11, 10,
     "'baseline' replaces a control, got 'x'", None),
    ("unknown identify option", ID + "identify epoch=2\nbaseline u ~ normal(0, 1)\n", 10, 10,
     "unknown option 'epoch' for identify", "did you mean 'epochs'"),
    ("invalid identify value", ID + "identify epochs=0\nbaseline u ~ normal(0, 1)\n", 10, 17,
     "invalid value for 'epochs'", None),
    ("identify twice", ID + IDENT + "identify epochs=3\n", 12, 1, "'identify' is given twice", None),
    ("identify with lbfgs", ID + IDENT + "train lbfgs(steps=3)\n", 12, 7, "plans with adam or sgd", "independent"),
    ("identify with clip", ID + IDENT + "train adam(clip=1)\n", 12, 12, "does not clip gradients", None),
    ("identify with a param", "param k = 1\n" + ID.replace("A*x", "k*A*x") + IDENT, 1, 7,
     "not the param 'k'", None),
    ("identify with an expect", ID + IDENT + "expect x(T) > 0\n", 12, 1, "not expects or plots", "identify.png"),
    ("identify without estimate", "noise w ~ normal(0, 0.1)\nstate x = 0\ncontrol u over steps\n"
     "next(x) = x + u + w\nsteps 5\nmaximize total(x^2)\n" + IDENT, 7, 1, "needs an unknown to estimate", "truth"),
    ("dynamics not affine", ID.replace("A*x", "A^2*x") + IDENT, 3, 1, "affine in the estimated entries", None),
    ("noise multiplies", ID.replace("A*x + u + w", "A*x*(1 + w) + u") + IDENT, 3, 1,
     "the noise multiplies 'A'", None),
    ("another control", ID.replace("control u over steps", "control u over steps\ncontrol v over steps")
     .replace("+ u + w", "+ u + v + w") + IDENT, 12, 1, "use the control 'v' besides 'u'", None),
    ("truth of a state", ID.replace("truth A = 0.9", "truth A = x") + IDENT, 2, 11,
     "the state 'x' cannot be used in a truth", None),
    ("truth in a const", ID.replace("const g = 1", "const g = A") + IDENT, 1, 11,
     "the truth 'A' cannot be used in const", None),
]


@pytest.mark.parametrize("text, line, column, message, hint", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_discrete_spec_errors_are_located(text, line, column, message, hint):
    with pytest.raises(SpecError) as err:
        impsolve.load(text)
    rendered = err.value.render()
    assert (err.value.line, err.value.column) == (line, column), rendered
    assert message in err.value.message, rendered
    if hint:
        assert hint in (err.value.hint or ""), rendered
    assert rendered.startswith(f"<spec>:{line}:{column}: error:") and "^" in rendered


def test_time_may_name_a_net_input():
    impsolve.load("net f(x, t): mlp()\nstate x = 0\nnext(x) = f(x, t/T)\nsteps 3\nminimize x(T)\n")

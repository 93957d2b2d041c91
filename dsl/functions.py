"""The fixed table of names the language knows: functions (with arity) and constants."""
from __future__ import annotations

# name -> (min args, max args); None = unbounded
ELEMENTWISE = {
    "sin": (1, 1), "cos": (1, 1), "tan": (1, 1), "asin": (1, 1), "acos": (1, 1), "atan": (1, 1),
    "atan2": (2, 2), "sinh": (1, 1), "cosh": (1, 1), "tanh": (1, 1), "sech": (1, 1),
    "exp": (1, 1), "log": (1, 1), "sqrt": (1, 1), "abs": (1, 1), "sign": (1, 1),
    "sigmoid": (1, 1), "softplus": (1, 1), "min": (2, None), "max": (2, None), "where": (3, 3),
}

# Vectors and matrices (shapes are checked when the spec is lowered).
LINEAR_ALGEBRA = {
    "sum": (1, 1), "norm": (1, 1), "normalize": (1, 1), "trace": (1, 1), "det": (1, 1),
    "logdet": (1, 1), "inv": (1, 1), "svdvals": (1, 1), "smin": (1, 1), "smax": (1, 1),
    "eig": (1, 1), "outer": (2, 2), "diag": (1, None),
}

DERIVATIVE = {"d": (2, 2)}   # d(expr, name): derivative with respect to a param or state

RANDOM_INIT = {"randn": (0, 0)}   # standard normal entries, in param initial values only

# Functions that only make sense on a whole trajectory or batch (objectives and expects).
TRAJECTORY = {
    "integral": (1, 1),   # integral over [0, T], computed by augmenting the ODE state
    "mean": (1, 1),       # mean over the batch of initial conditions
    "total": (1, 1),      # discrete time: the sum over the steps, keeping the shape
}

# Experimental design (report §6), in objectives and expects: the belief about uncertain params
# (`mean(theta)` too, see dsl.bayes_design) and sensitivities d(expr)/d(theta) at the current belief mean.
DESIGN_FUNCTIONS = {"var": (1, 1), "cov": (1, 2), "sens": (2, 2)}
CRITERIA = {"information_gain"}   # 1/2 log(1 + g'Cg / sigma^2) of the observation

FUNCTIONS = {**ELEMENTWISE, **LINEAR_ALGEBRA, **DERIVATIVE, **RANDOM_INIT, **TRAJECTORY, **DESIGN_FUNCTIONS}

CONSTANTS = {"pi"}

# Names with a fixed meaning: time, and the final time (horizon or stop time).
TIME = "t"
FINAL_TIME = "T"

# Names that cannot be declared. A declaration may shadow a built-in function (e.g. `const d = 3`).
RESERVED = CONSTANTS | CRITERIA | {TIME, FINAL_TIME, "true", "false"}

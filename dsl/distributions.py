"""The distributions a spec may draw from, and their checks: random initial states, noises,
baselines (`normal`, `uniform`) and Gaussian priors and observation noise (`normal` only)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import ast
from .errors import did_you_mean

if TYPE_CHECKING:
    from .expressions import ExpressionChecks

DISTRIBUTIONS = {"normal": 2, "uniform": 2}
GAUSSIAN = "normal"


def check_distribution(checker: "ExpressionChecks", call: ast.Call) -> None:
    """`normal(mean, std)` or `uniform(low, high)` with constant arguments."""
    if call.func not in DISTRIBUTIONS:
        raise checker.error(f"unknown distribution '{call.func}'", call.func_span,
                            did_you_mean(call.func, DISTRIBUTIONS) or "use normal(mean, std) or uniform(low, high)")
    if len(call.args) != 2 or call.kwargs:
        raise checker.error(f"{call.func}() takes 2 arguments", call.span)
    for a in call.args:
        checker.check_expr(a, "distribution", {"const"})


def check_gaussian(checker: "ExpressionChecks", call: ast.Call, where: str, message: str) -> None:
    """`normal(a, b)` with constant arguments (`where` names them in messages); else the error `message`."""
    if call.func != GAUSSIAN or len(call.args) != 2 or call.kwargs:
        raise checker.error(message, call.span)
    for arg in call.args:
        checker.check_expr(arg, where, {"const"})

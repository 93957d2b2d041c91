"""The SymPy side of the function table: each language function as a SymPy constructor."""
from __future__ import annotations

from typing import Callable

import sympy as sp


class sigmoid(sp.Function):  # noqa: N801 - named as in the language
    """Logistic function 1 / (1 + exp(-x)), with its symbolic derivative."""

    @classmethod
    def eval(cls, x):
        if x.is_Number:
            return 1 / (1 + sp.exp(-x))
        return None

    def fdiff(self, argindex=1):
        s = sigmoid(self.args[0])
        return s * (1 - s)


class softplus(sp.Function):  # noqa: N801
    """log(1 + exp(x)), with derivative sigmoid(x)."""

    @classmethod
    def eval(cls, x):
        if x.is_Number:
            return sp.log(1 + sp.exp(x))
        return None

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])


class batch_mean(sp.Function):  # noqa: N801
    """Mean over the batch of trajectories (the language's `mean`)."""


class net_output(sp.Function):  # noqa: N801
    """Entry i of a net's output: net_output(f(a, b, ...), i), f an undefined function named after
    the net. The entries of one call share it, so CSE runs a vector-valued net once."""


class condition(sp.Function):  # noqa: N801
    """A comparison as an expression: condition(x > 0). SymPy matrices hold expressions, not the
    booleans a comparison gives, so the entries of `v > 0` (a vector v) are kept wrapped until
    where() reads them."""


def compare(op: str) -> Callable[[sp.Expr, sp.Expr], sp.Expr]:
    """The comparison `op` of two numbers, wrapped as a condition (see `condition`)."""
    relation = COMPARISONS[op]
    return lambda a, b: condition(relation(a, b))


def _where(cond, a, b):
    return sp.Piecewise((a, cond.args[0] if isinstance(cond, condition) else cond), (b, True))


ELEMENTWISE = {
    "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "asin": sp.asin, "acos": sp.acos, "atan": sp.atan,
    "atan2": sp.atan2, "sinh": sp.sinh, "cosh": sp.cosh, "tanh": sp.tanh, "sech": sp.sech,
    "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "abs": sp.Abs, "sign": sp.sign,
    "sigmoid": sigmoid, "softplus": softplus,
    "min": lambda *a: sp.Min(*a), "max": lambda *a: sp.Max(*a), "where": _where,
}

COMPARISONS = {"<": sp.StrictLessThan, "<=": sp.LessThan, ">": sp.StrictGreaterThan, ">=": sp.GreaterThan,
               "==": sp.Eq, "!=": sp.Ne}

CONSTANTS = {"pi": sp.pi}


class _RealFunction(sp.Function):
    is_real = True


class smin(_RealFunction):  # noqa: N801
    """Smallest singular value of a matrix argument (computed by torch; its adjoint is eq. 2.33)."""


class smax(_RealFunction):  # noqa: N801
    """Largest singular value of a matrix argument."""


class logdet(_RealFunction):  # noqa: N801
    """log |det M| of a square matrix argument."""


class svdval(_RealFunction):  # noqa: N801
    """The i-th largest singular value: svdval(M, i)."""


class eigval(_RealFunction):  # noqa: N801
    """The i-th smallest eigenvalue of a symmetric matrix: eigval(M, i)."""


class det(_RealFunction):  # noqa: N801
    """Determinant of a matrix too large to expand symbolically."""

"""What the printers of generated solver code share (compiler.c_print for the native tier's C,
compiler.py_print for the torch tier's Python-float kernel): every symbol looked up in the
caller's map of mangled names, numbers as exact float literals (`repr`), a fixed table of
functions, and `Unsupported` for anything else, so no name or construct from the spec reaches the
source unchecked. A printer names its syntax in class attributes."""
from __future__ import annotations

import math

import sympy as sp

from . import functions as fn
from .split_dynamics import Unsupported


class StrictPrinting:
    """Mixin over a SymPy code printer. FUNCTIONS maps a SymPy function's name to a format of its
    argument list; SQRT, MAX, MIN name functions; `general_power` and `conditional` give the rest
    of the syntax."""

    FUNCTIONS: dict[str, str] = {}
    SQRT = MAX = MIN = ""

    def __init__(self, names: dict[sp.Symbol, str]) -> None:
        super().__init__({"strict": False})
        self.names = names

    def general_power(self, base: str, exponent: sp.Expr) -> str:
        raise NotImplementedError

    def conditional(self, condition: str, value: str, otherwise: str) -> str:
        raise NotImplementedError

    def _print(self, expr, **kwargs):
        if isinstance(expr, sp.Basic) and expr.is_number and not isinstance(expr, sp.Integer):
            if not expr.is_real or not math.isfinite(float(expr)):
                raise Unsupported("a complex or infinite constant")
            return repr(float(expr))
        return super()._print(expr, **kwargs)

    def _print_Symbol(self, expr):
        if expr not in self.names:
            raise Unsupported("a symbol the generated code does not hold (e.g. T, x(0) or an implicit unknown)")
        return self.names[expr]

    def _print_Integer(self, expr):
        return f"{int(expr)}.0"

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.args
        b = self.parenthesize(base, 100)
        if exp == 2:
            return f"({b}*{b})"
        if exp == -1:
            return f"(1.0/{b})"
        if exp == sp.Rational(1, 2):
            return f"{self.SQRT}({self._print(base)})"
        if exp == sp.Rational(-1, 2):
            return f"(1.0/{self.SQRT}({self._print(base)}))"
        return self.general_power(b, exp)

    def _print_Function(self, expr):
        name = type(expr).__name__
        if name in self.FUNCTIONS:
            return self.FUNCTIONS[name].format(", ".join(self._print(a) for a in expr.args))
        if isinstance(expr, fn.net_output) or isinstance(expr, sp.core.function.AppliedUndef):
            raise Unsupported("a net call where the generated code expects a plain value (nested nets)")
        raise Unsupported(f"the function {name}")

    def _print_Min(self, expr):
        return self._fold(self.MIN, expr.args)

    def _print_Max(self, expr):
        return self._fold(self.MAX, expr.args)

    def _fold(self, func: str, args) -> str:
        out = self._print(args[0])
        for a in args[1:]:
            out = f"{func}({out}, {self._print(a)})"
        return out

    def _print_NumberSymbol(self, expr):
        return repr(float(expr))

    _print_Pi = _print_Exp1 = _print_NumberSymbol

    def _print_Piecewise(self, expr):
        *pieces, (last, otherwise) = expr.args
        if otherwise is not sp.true:
            raise Unsupported("a piecewise value without a final otherwise")
        out = self._print(last)
        for value, condition in reversed(pieces):
            out = self.conditional(self._print(condition), self._print(value), out)
        return out

    def _print_Relational(self, expr):
        return f"({self._print(expr.lhs)} {expr.rel_op} {self._print(expr.rhs)})"

    def _print_Heaviside(self, expr):
        raise Unsupported("a derivative of a step")

    _print_DiracDelta = _print_Derivative = _print_Subs = _print_Heaviside

    def _print_not_supported(self, expr):
        raise Unsupported(f"the construct {type(expr).__name__}")


def register_functions(printer: type) -> type:
    """Route each of the printer's FUNCTIONS to `_print_Function` (SymPy looks up `_print_<name>`
    first); a class decorator."""
    for name in printer.FUNCTIONS:
        setattr(printer, f"_print_{name}", printer._print_Function)
    return printer

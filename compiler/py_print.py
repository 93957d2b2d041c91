"""SymPy -> Python-float source for the plain-torch tier's kernel (compiler.py_kernel).

Symbols print only as the mangled names the caller maps them to (`_v3`, `_g0`, CSE locals `_x7`): a
symbol without one is refused, and every name in the source starts with '_' (which no spec name may),
so no name from the spec reaches it. Numbers print as float
literals (`repr`), functions as the math module's (`_math`) or the kernel library's (`_sigmoid`, `_max`:
runtime.solvers.scalar_kernel.KERNEL_LIBRARY); anything else raises `Unsupported`. Where Python
raises on a float operation that torch evaluates to inf or nan (log(0), sqrt(-1), 1/0.0, exp
overflow), the runtime evaluates that call with the generated torch code instead."""
from __future__ import annotations

import math

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from . import functions as fn
from .split_dynamics import Unsupported

MATH_FUNCTIONS = {
    "sin": "_math.sin", "cos": "_math.cos", "tan": "_math.tan", "asin": "_math.asin", "acos": "_math.acos",
    "atan": "_math.atan", "atan2": "_math.atan2", "sinh": "_math.sinh", "cosh": "_math.cosh", "tanh": "_math.tanh",
    "exp": "_math.exp", "log": "_math.log", "Abs": "_abs", "sign": "_sign", "sigmoid": "_sigmoid",
    "softplus": "_softplus", "sech": "_sech",
}
INDENT = "    "


class FloatPrinter(PythonCodePrinter):
    """Prints one expression over Python floats with every symbol looked up in `names`."""

    def __init__(self, names: dict[sp.Symbol, str]) -> None:
        super().__init__({"strict": False})
        self.names = names

    def _print(self, expr, **kwargs):
        if isinstance(expr, sp.Basic) and expr.is_number and not isinstance(expr, sp.Integer):
            if not expr.is_real or not math.isfinite(float(expr)):
                raise Unsupported("a complex or infinite constant")
            return repr(float(expr))
        return super()._print(expr, **kwargs)

    def _print_Symbol(self, expr):
        if expr not in self.names:
            raise Unsupported("a symbol the kernel does not hold (e.g. T, x(0) or an implicit unknown)")
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
            return f"_math.sqrt({self._print(base)})"
        if exp == sp.Rational(-1, 2):
            return f"(1.0/_math.sqrt({self._print(base)}))"
        if exp.is_Integer:
            return f"({b}**{int(exp)})"     # an int power of a float is a float (0.0**-1 raises)
        return f"_math.pow({self._print(base)}, {self._print(exp)})"   # never a complex result: raises

    def _print_Function(self, expr):
        name = type(expr).__name__
        if name in MATH_FUNCTIONS:
            return f"{MATH_FUNCTIONS[name]}({', '.join(self._print(a) for a in expr.args)})"
        if isinstance(expr, fn.net_output) or isinstance(expr, sp.core.function.AppliedUndef):
            raise Unsupported("a net call where the kernel expects a plain value (nested nets)")
        raise Unsupported(f"the function {name}")

    def _print_Max(self, expr):
        return self._fold("_max", expr.args)

    def _print_Min(self, expr):
        return self._fold("_min", expr.args)

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
            out = f"({self._print(value)} if {self._print(condition)} else {out})"
        return out

    def _print_Relational(self, expr):
        return f"({self._print(expr.lhs)} {expr.rel_op} {self._print(expr.rhs)})"

    def _print_Heaviside(self, expr):
        raise Unsupported("a derivative of a step")

    _print_DiracDelta = _print_Derivative = _print_Subs = _print_Heaviside

    def _print_not_supported(self, expr):
        raise Unsupported(f"the construct {type(expr).__name__}")


for _name in MATH_FUNCTIONS:
    setattr(FloatPrinter, f"_print_{_name}", FloatPrinter._print_Function)


def function_source(name: str, arguments: dict[str, list[str]], outputs: list[sp.Expr],
                    names: dict[sp.Symbol, str]) -> str:
    """`def name(<arguments>)`: each argument a list unpacked into the given locals, then the
    outputs' common subexpressions as locals `_x<k>`, and the outputs returned as a list."""
    replacements, reduced = sp.cse(outputs, symbols=sp.numbered_symbols("_x"), optimizations="basic")
    names = dict(names)
    printer = FloatPrinter(names)   # reads `names` as the locals below are added to it
    lines = [f"def {name}({', '.join(arguments)}):"]
    lines += [f"{INDENT}({', '.join(locals_)},) = {argument}" for argument, locals_ in arguments.items() if locals_]
    for k, (symbol, value) in enumerate(replacements):
        text = printer.doprint(value)
        names[symbol] = f"_x{k}"
        lines.append(f"{INDENT}_x{k} = {text}")
    lines.append(f"{INDENT}return [{', '.join(printer.doprint(e) for e in reduced)}]")
    return "\n".join(lines)

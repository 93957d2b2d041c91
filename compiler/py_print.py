"""SymPy -> Python-float source for the plain-torch tier's kernel (compiler.py_kernel).

Symbols print only as the mangled names the caller maps them to (`_v3`, `_g0`, CSE locals `_x7`),
and every name in the source starts with '_' (which no spec name may), so no name from the spec
reaches it; numbers and the rest as compiler.strict_print says. Functions are the math module's
(`_math`) or the kernel library's (`_sigmoid`, `_max`: runtime.solvers.scalar_kernel.KERNEL_LIBRARY). Where Python
raises on a float operation that torch evaluates to inf or nan (log(0), sqrt(-1), 1/0.0, exp
overflow), the runtime evaluates that call with the generated torch code instead."""
from __future__ import annotations

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from .strict_print import StrictPrinting, register_functions

FLOAT_FUNCTIONS = {
    **{name: f"_math.{name}({{}})" for name in ("sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh",
                                               "tanh", "exp", "log")},
    "Abs": "_abs({})", "sign": "_sign({})", "sigmoid": "_sigmoid({})", "softplus": "_softplus({})",
    "sech": "_sech({})", "TieMax": "_max({})", "TieMin": "_min({})",
}
INDENT = "    "


@register_functions
class FloatPrinter(StrictPrinting, PythonCodePrinter):
    """Prints one expression over Python floats with every symbol looked up in `names`."""

    FUNCTIONS, SQRT, MAX, MIN = FLOAT_FUNCTIONS, "_math.sqrt", "_max", "_min"

    def general_power(self, base: str, exponent: sp.Expr) -> str:
        if exponent.is_Integer:
            return f"({base}**{int(exponent)})"     # an int power of a float is a float (0.0**-1 raises)
        return f"_math.pow({base}, {self._print(exponent)})"   # never a complex result: raises instead

    def conditional(self, condition: str, value: str, otherwise: str) -> str:
        return f"({value} if {condition} else {otherwise})"


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

"""SymPy -> C99 expressions for the native tier (compiler.c_codegen).

Symbols print only as the mangled names the caller maps them to (`s[0]`, `th[3]`, `c7`, ...):
a symbol without a location is an internal error, so no name from the spec reaches the C source.
Numbers print as exact float literals (`repr`), functions as the C math library's or the
generated source's own helpers (`imp_sigmoid`, `imp_softplus`); anything else is refused with
`Unsupported`, which the solver plan turns into a fallback note."""
from __future__ import annotations

import sympy as sp
from sympy.printing.c import C99CodePrinter

from .strict_print import StrictPrinting, register_functions

C_FUNCTIONS = {
    **{name: name + "({})" for name in ("sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "tanh",
                                        "exp", "log")},
    "Abs": "fabs({})", "sigmoid": "imp_sigmoid({})", "softplus": "imp_softplus({})", "sech": "(1.0/cosh({}))",
    "sign": "imp_sign({})", "TieMax": "imp_max({})", "TieMin": "imp_min({})",
}


@register_functions
class CPrinter(StrictPrinting, C99CodePrinter):
    """Prints one expression with every symbol looked up in `names`."""

    FUNCTIONS, SQRT, MAX, MIN = C_FUNCTIONS, "sqrt", "imp_max", "imp_min"

    def general_power(self, base: str, exponent: sp.Expr) -> str:
        return f"pow({base}, {self._print(exponent)})"

    def conditional(self, condition: str, value: str, otherwise: str) -> str:
        return f"(({condition}) ? ({value}) : ({otherwise}))"


def block(assignments: list[tuple[str, sp.Expr]], names: dict[sp.Symbol, str], prefix: str) -> list[str]:
    """C statements `target = value;` (or `target += value;` when target ends with '+'), with
    common subexpressions shared as `const double <prefix>k` locals; indented as a function body."""
    indent = "    "
    targets = [t for t, _ in assignments]
    replacements, reduced = sp.cse([e for _, e in assignments], symbols=sp.numbered_symbols("_x"),
                                   optimizations="basic")
    names = dict(names)
    printer = CPrinter(names)   # reads `names` as the locals below are added to it
    lines = []
    for k, (sym, value) in enumerate(replacements):
        text = printer.doprint(value)
        names[sym] = f"{prefix}{k}"
        lines.append(f"{indent}const double {prefix}{k} = {text};")
    for target, expr in zip(targets, reduced):
        if target.endswith("+"):
            if expr != 0:
                lines.append(f"{indent}{target[:-1]} += {printer.doprint(expr)};")
        else:
            lines.append(f"{indent}{target} = {printer.doprint(expr)};")
    return lines

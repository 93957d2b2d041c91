"""SymPy -> C99 expressions for the native tier (compiler.c_codegen).

Symbols print only as the mangled names the caller maps them to (`s[0]`, `th[3]`, `c7`, ...):
a symbol without a location is an internal error, so no name from the spec reaches the C source.
Numbers print as exact float literals (`repr`), functions as the C math library's or the
generated source's own helpers (`imp_sigmoid`, `imp_softplus`); anything else is refused with
`Unsupported`, which the solver plan turns into a fallback note."""
from __future__ import annotations

import sympy as sp
from sympy.printing.c import C99CodePrinter

from . import functions as fn
from .split_dynamics import Unsupported

C_FUNCTIONS = {
    "sin": "sin", "cos": "cos", "tan": "tan", "asin": "asin", "acos": "acos", "atan": "atan",
    "atan2": "atan2", "sinh": "sinh", "cosh": "cosh", "tanh": "tanh", "exp": "exp", "log": "log",
    "Abs": "fabs", "sigmoid": "imp_sigmoid", "softplus": "imp_softplus",
}


class CPrinter(C99CodePrinter):
    """Prints one expression with every symbol looked up in `names`."""

    def __init__(self, names: dict[sp.Symbol, str]) -> None:
        super().__init__({"strict": False})
        self.names = names

    def _print(self, expr, **kwargs):
        if isinstance(expr, sp.Basic) and expr.is_number and not isinstance(expr, sp.Integer):
            if not expr.is_real:
                raise Unsupported("a complex constant")
            return repr(float(expr))
        return super()._print(expr, **kwargs)

    def _print_Symbol(self, expr):
        if expr not in self.names:
            raise Unsupported("a symbol the solver does not hold (e.g. T, x(0) or an implicit unknown)")
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
            return f"sqrt({self._print(base)})"
        if exp == sp.Rational(-1, 2):
            return f"(1.0/sqrt({self._print(base)}))"
        return f"pow({self._print(base)}, {self._print(exp)})"

    def _print_Function(self, expr):
        name = type(expr).__name__
        args = ", ".join(self._print(a) for a in expr.args)
        if name in C_FUNCTIONS:
            return f"{C_FUNCTIONS[name]}({args})"
        if name == "sech":
            return f"(1.0/cosh({args}))"
        if name == "sign":
            return f"imp_sign({args})"
        if isinstance(expr, fn.net_output) or isinstance(expr, sp.core.function.AppliedUndef):
            raise Unsupported("a net call where the native tier expects a plain value (nested nets)")
        raise Unsupported(f"the function {name}")

    def _print_Min(self, expr):
        return self._fold("fmin", expr.args)

    def _print_Max(self, expr):
        return self._fold("fmax", expr.args)

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
            out = f"(({self._print(condition)}) ? ({self._print(value)}) : ({out}))"
        return out

    def _print_Relational(self, expr):
        return f"({self._print(expr.lhs)} {expr.rel_op} {self._print(expr.rhs)})"

    def _print_Heaviside(self, expr):
        raise Unsupported("a derivative of a step")

    _print_DiracDelta = _print_Derivative = _print_Subs = _print_Heaviside

    def _print_not_supported(self, expr):
        raise Unsupported(f"the construct {type(expr).__name__}")


for _name in [*C_FUNCTIONS, "sech", "sign"]:
    setattr(CPrinter, f"_print_{_name}", CPrinter._print_Function)


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

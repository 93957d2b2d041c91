"""The dynamics split at their net calls, for the generators that differentiate them symbolically
(the native tier's C, compiler.c_codegen, and the plain-torch tier's Python-float kernel,
compiler.py_kernel): the distinct net calls with their input expressions, each net output as a
plain symbol, and SymPy derivatives with torch's conventions."""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from . import functions as fn


class Unsupported(Exception):
    """A construct a generator does not cover (the reason is one short phrase)."""


@dataclass(frozen=True)
class NetCall:
    """One distinct call of a net inside the dynamics: the net's index and the input expressions."""

    net: int
    args: tuple[sp.Expr, ...]


def output_symbol(call: int, index: int) -> sp.Symbol:
    """The plain symbol standing for output `index` of distinct call `call`."""
    return sp.Symbol(f"_n{call}_{index}", real=True)


def net_calls(exprs: list[sp.Expr], nets: list[str]) -> tuple[list[NetCall], dict[sp.Expr, sp.Symbol]]:
    """The distinct net calls and a substitution of every `net_output(call, i)` by a symbol."""
    calls: dict[sp.Expr, int] = {}
    subs: dict[sp.Expr, sp.Symbol] = {}
    for expr in exprs:
        for out in expr.atoms(fn.net_output):
            call, index = out.args
            name = type(call).__name__
            if name not in nets:
                raise Unsupported("a net output of something other than a net call")
            k = calls.setdefault(call, len(calls))
            subs[out] = output_symbol(k, int(index))
    ordered = sorted(calls, key=calls.get)
    result = [NetCall(nets.index(type(c).__name__), tuple(c.args)) for c in ordered]
    for call in result:
        if any(a.atoms(fn.net_output) or a.atoms(sp.core.function.AppliedUndef) for a in call.args):
            raise Unsupported("a net whose input is another net's output")
    return result, subs


class TieMax(sp.Function):
    """max(a, b) whose derivative is the larger argument's, and half of each at a tie, as
    torch.maximum's (SymPy's Max has Heaviside derivatives, which no generated code prints)."""

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        first, second = self.args if argindex == 1 else reversed(self.args)
        return sp.Piecewise((sp.Integer(1), first > second), (sp.Integer(0), first < second), (sp.Rational(1, 2), True))


class TieMin(sp.Function):
    """min(a, b), differentiated as torch.minimum (see TieMax)."""

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        first, second = self.args if argindex == 1 else reversed(self.args)
        return sp.Piecewise((sp.Integer(1), first < second), (sp.Integer(0), first > second), (sp.Rational(1, 2), True))


def torch_min_max(expr: sp.Expr) -> sp.Expr:
    """min and max (of any number of arguments) as nested TieMin/TieMax of two, as the generated
    torch code nests torch.minimum/maximum, so their derivatives are torch's, ties included."""
    def fold(args, function):
        out = args[0]
        for a in args[1:]:
            out = function(out, a)
        return out
    return expr.replace(sp.Max, lambda *a: fold(a, TieMax)).replace(sp.Min, lambda *a: fold(a, TieMin))


class GuardedAtan2(sp.Function):
    """atan2(y, x) whose derivatives are 0 at the origin, as torch's (SymPy's are 0/0 there)."""

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        y, x = self.args
        radius = x**2 + y**2
        return sp.Piecewise((sp.Integer(0), sp.Eq(radius, 0)), ((x if argindex == 1 else -y) / radius, True))


class GuardedPow(sp.Function):
    """base^exponent (an exponent that is not a number) with torch's derivatives: exponent *
    base^(exponent - 1), 0 where exponent = 0 (SymPy's exponent * base^exponent / base is 0/0 at
    base 0), and 0 by the exponent where base = 0 and exponent >= 0 (SymPy's base^exponent *
    log(base) is 0 * -inf)."""

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        base, exponent = self.args
        if argindex == 1:
            return sp.Piecewise((sp.Integer(0), sp.Eq(exponent, 0)), (exponent * GuardedPow(base, exponent - 1), True))
        return sp.Piecewise((sp.Integer(0), sp.And(sp.Eq(base, 0), exponent >= 0)), (self * sp.log(base), True))


def guarded(expr: sp.Expr) -> sp.Expr:
    """`expr` with atan2 and non-number powers as GuardedAtan2, GuardedPow (torch's derivatives)."""
    return expr.replace(sp.atan2, GuardedAtan2).replace(lambda e: e.is_Pow and not e.exp.is_Number,
                                                        lambda e: GuardedPow(*e.args))


def unguarded(derivative_: sp.Expr) -> sp.Expr:
    """A derivative of a `guarded` expression in plain SymPy again (what the printers know), sign's
    derivative 0 (its DiracDelta dropped)."""
    plain = derivative_.replace(GuardedAtan2, sp.atan2).replace(GuardedPow, sp.Pow)
    return plain.replace(sp.DiracDelta, lambda *a: sp.Integer(0))


def derivative(expr: sp.Expr, variable: sp.Symbol) -> sp.Expr:
    """d expr / d variable with torch's conventions where SymPy has distributions or 0/0: the
    derivative of sign is 0 (DiracDelta dropped), atan2's is 0 at the origin, a power's as
    GuardedPow says."""
    return unguarded(sp.diff(guarded(expr), variable))


def gradient(scalar: sp.Expr, variables: dict[sp.Symbol, str]) -> list[tuple[str, sp.Expr]]:
    """(target, d scalar / d variable) for each variable."""
    return [(target, derivative(scalar, v)) for v, target in variables.items()]

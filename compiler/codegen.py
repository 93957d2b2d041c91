"""Generate torch source from SymPy expressions.

Each generated function has the signature `(t, s, s0=None, sT=None, T=None)`: `s` holds the
current states in its last dimension (batched over leading ones), `s0`/`sT` the initial and final
states, `T` the final time. Common subexpressions are shared (SymPy `cse`). Only validated symbol
indices and numbers reach the source: names are mapped to `s[..., i]`, `p_j`, `net_k`.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from . import ir
from .functions import batch_mean

TORCH_FUNCTIONS = {
    "sin": "torch.sin", "cos": "torch.cos", "tan": "torch.tan", "asin": "torch.asin",
    "acos": "torch.acos", "atan": "torch.atan", "atan2": "torch.atan2", "sinh": "torch.sinh",
    "cosh": "torch.cosh", "tanh": "torch.tanh", "exp": "torch.exp", "log": "torch.log",
    "Abs": "torch.abs", "sign": "torch.sign", "sigmoid": "torch.sigmoid",
    "softplus": "torch.nn.functional.softplus",
}


@dataclass(frozen=True)
class Layout:
    """Where each symbol lives at run time."""

    states: list[str]
    params: list[str]
    nets: list[str]

    def symbol_code(self) -> dict[sp.Symbol, str]:
        code: dict[sp.Symbol, str] = {ir.TIME: "t", ir.FINAL_TIME: "T"}
        for i, name in enumerate(self.states):
            code[ir.state_symbol(name)] = f"s[..., {i}]"
            code[ir.initial_symbol(name)] = f"s0[..., {i}]"
            code[ir.final_symbol(name)] = f"sT[..., {i}]"
        for j, name in enumerate(self.params):
            code[sp.Symbol(name, real=True)] = f"p_{j}"
        return code


class TorchPrinter(PythonCodePrinter):
    """SymPy -> torch source. Numbers print as float literals; functions map to torch."""

    def __init__(self, layout: Layout, local_names: dict[sp.Symbol, str]) -> None:
        super().__init__({"fully_qualified_modules": False, "inline": True})
        self.layout = layout
        self.names = {**layout.symbol_code(), **local_names}
        self.net_index = {name: k for k, name in enumerate(layout.nets)}

    def _print(self, expr, **kwargs):
        if isinstance(expr, sp.Basic) and expr.is_number and expr.is_real \
                and not isinstance(expr, (sp.Integer, sp.Rational)):
            return repr(float(expr))
        return super()._print(expr, **kwargs)

    def _print_Symbol(self, expr):
        if expr not in self.names:
            raise KeyError(f"internal error: symbol {expr} has no run-time location")
        return self.names[expr]

    def _print_Integer(self, expr):
        return str(int(expr))

    def _print_Rational(self, expr):
        return repr(float(expr))

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.args
        if exp == sp.Rational(1, 2):
            return f"torch.sqrt({self._print(base)})"
        if exp == sp.Rational(-1, 2):
            return f"torch.rsqrt({self._print(base)})"
        if exp == -1:
            return f"1/{self.parenthesize(base, 50)}"
        if exp == 2:
            return f"torch.square({self._print(base)})"
        return super()._print_Pow(expr, rational=rational)

    def _print_Function(self, expr):
        name = type(expr).__name__
        args = ", ".join(self._print(a) for a in expr.args)
        if name in self.net_index:
            stacked = self._print(expr.args[0]) if len(expr.args) == 1 else None
            inputs = f"_column({stacked})" if stacked else f"_stack({args})"
            return f"net_{self.net_index[name]}({inputs})[..., 0]"
        if isinstance(expr, batch_mean):
            return f"_batch_mean({args})"
        if name in TORCH_FUNCTIONS:
            return f"{TORCH_FUNCTIONS[name]}({args})"
        if name == "sech":
            return f"(1/torch.cosh({args}))"
        raise NotImplementedError(f"no torch translation for {name}")


    def _print_Min(self, expr):
        return self._fold("torch.minimum", expr.args)

    def _print_Max(self, expr):
        return self._fold("torch.maximum", expr.args)

    def _fold(self, func, args):
        out = self._print(args[0])
        for a in args[1:]:
            out = f"{func}(_tensor({out}), _tensor({self._print(a)}))"
        return out

    def _print_Piecewise(self, expr):
        *pieces, (last, _) = expr.args
        out = self._print(last)
        for value, cond in reversed(pieces):
            out = f"torch.where({self._print(cond)}, _tensor({self._print(value)}), _tensor({out}))"
        return out

    def _print_Relational(self, expr):
        op = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "==": "==", "!=": "!="}[expr.rel_op]
        return f"({self._print(expr.lhs)} {op} {self._print(expr.rhs)})"

    def _print_NumberSymbol(self, expr):
        return repr(float(expr))

    _print_Pi = _print_Exp1 = _print_NumberSymbol


for _name in [*TORCH_FUNCTIONS, "sech"]:  # route SymPy's known functions through _print_Function
    setattr(TorchPrinter, f"_print_{_name}", TorchPrinter._print_Function)

HEADER = '''\
# Generated by impsolve from a .imp spec. Do not edit: edit the spec.
import torch


def _tensor(v):
    return v if isinstance(v, torch.Tensor) else torch.tensor(v, dtype=DTYPE, device=DEVICE)


def _column(v):
    return _tensor(v).unsqueeze(-1)


def _stack(*vs):
    return torch.stack(torch.broadcast_tensors(*[_tensor(v) for v in vs]), -1)


def _batch_mean(v):
    return v.mean(-1) if isinstance(v, torch.Tensor) and v.dim() > 0 else v


def _like(v, ref):
    return _tensor(v).expand(ref.shape)
'''


def generate_function(name: str, outputs: list[sp.Expr], layout: Layout, stack: bool) -> str:
    """Source of one function computing `outputs` (CSE'd). `stack=True` returns them stacked
    in the last dimension (each broadcast to the batch shape), else as a tuple."""
    replacements, reduced = sp.cse(outputs, symbols=sp.numbered_symbols("_c"), optimizations="basic")
    local_names = {sym: f"c{i}" for i, (sym, _) in enumerate(replacements)}
    printer = TorchPrinter(layout, local_names)
    lines = [f"    def {name}(t, s, s0=None, sT=None, T=None):"]
    for sym, value in replacements:
        lines.append(f"        {local_names[sym]} = {printer.doprint(value)}")
    results = [printer.doprint(e) for e in reduced]
    if stack:
        ref = "s[..., 0]"
        state_symbols = {ir.state_symbol(n) for n in layout.states}
        items = []
        for e, code in zip(reduced, results):
            depends = bool(e.free_symbols & state_symbols) or any(
                sym in local_names and _depends_on_state(sym, replacements, state_symbols) for sym in e.free_symbols)
            items.append(code if depends else f"_like({code}, {ref})")
        lines.append(f"        return torch.stack(({', '.join(items)},), -1)")
    else:
        lines.append(f"        return ({''.join(r + ', ' for r in results)})")
    return "\n".join(lines)


def _depends_on_state(sym, replacements, state_symbols) -> bool:
    table = dict(replacements)
    todo, seen = [sym], set()
    while todo:
        s = todo.pop()
        if s in seen:
            continue
        seen.add(s)
        if s in state_symbols:
            return True
        if s in table:
            todo.extend(table[s].free_symbols)
    return False


def generate_module(functions: dict[str, tuple[list[sp.Expr], bool]], layout: Layout) -> str:
    """A module with `build(params, nets, dtype, device)` returning the generated functions."""
    body = [HEADER, "", "def build(params, nets, dtype, device):",
            "    global DTYPE, DEVICE", "    DTYPE, DEVICE = dtype, device"]
    for j in range(len(layout.params)):
        body.append(f"    p_{j} = params[{j}]")
    for k in range(len(layout.nets)):
        body.append(f"    net_{k} = nets[{k}]")
    for name, (outputs, stack) in functions.items():
        body.append("")
        body.append(generate_function(name, outputs, layout, stack))
    body.append("")
    body.append("    return {" + ", ".join(f"{n!r}: {n}" for n in functions) + "}")
    return "\n".join(body) + "\n"

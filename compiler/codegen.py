"""Generate torch source from SymPy expressions.

Each generated function has the signature `(t, s, s0=None, sT=None, T=None)`: `s` holds the
current states in its last dimension (batched over leading ones), `s0`/`sT` the initial and final
states, `T` the final time. Common subexpressions are shared (SymPy `cse`). Only validated symbol
indices and numbers reach the source: names are mapped to `s_[i]` (the columns of `s.unbind(-1)`),
`p_j`, `net_k`, `y_k`; a net's inputs that are consecutive columns of one source are a slice `s[..., a:b]`
(an MLP on the ODE path reads them as `net_k.of_columns(s, a, b)`), and so are the outputs of a
"stack" function whose entries are all columns of `s` or net outputs (concatenated:
`torch.cat((s[..., 1:2], net_0.of_columns(s, 0, 1)), -1)`).
Helpers named `_...` (linear algebra, the implicit solver) come from the runtime's library.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import sympy as sp
from sympy.printing.precedence import precedence
from sympy.printing.pycode import PythonCodePrinter

from ..dsl.options import MlpOptions
from . import functions as fn
from . import ir

TORCH_FUNCTIONS = {
    "sin": "torch.sin", "cos": "torch.cos", "tan": "torch.tan", "asin": "torch.asin",
    "acos": "torch.acos", "atan": "torch.atan", "atan2": "torch.atan2", "sinh": "torch.sinh",
    "cosh": "torch.cosh", "tanh": "torch.tanh", "exp": "torch.exp", "log": "torch.log",
    "Abs": "torch.abs", "sign": "torch.sign", "sigmoid": "torch.sigmoid",
    "softplus": "torch.nn.functional.softplus",
}
LIBRARY_FUNCTIONS = {"smin": "_smin", "smax": "_smax", "logdet": "_logdet", "det": "_det"}
SUM_CHUNK = 32   # terms printed in one flat sum before it is split into chunks
INDEXED_FUNCTIONS = {"svdval": "_svdvals", "eigval": "_eigvalsh"}


@dataclass(frozen=True)
class Layout:
    """Where each symbol lives at run time."""

    states: list[str]
    params: list[ir.Param]
    nets: list[str]
    implicits: list[ir.Implicit]
    net_outputs: tuple[int, ...] = ()   # each net's number of outputs, where known (0: not known)
    mlp_columns: bool = False   # nets with outputs are runtime.nets.Mlp: columns go through Mlp.of_columns

    def columns(self) -> dict[sp.Symbol, tuple[str, int]]:
        """Each state symbol's source (`s`, `s0` or `sT`) and column."""
        out: dict[sp.Symbol, tuple[str, int]] = {}
        for i, name in enumerate(self.states):
            out.update({ir.state_symbol(name): ("s", i), ir.initial_symbol(name): ("s0", i),
                        ir.final_symbol(name): ("sT", i)})
        return out

    def symbol_code(self) -> dict[sp.Symbol, str]:
        """Columns are read from the source's unbound columns (`s_[i]`: one unbind per function
        instead of a select per use, and one node in the reverse pass instead of one per use)."""
        code: dict[sp.Symbol, str] = {ir.TIME: "t", ir.FINAL_TIME: "T"}
        code.update({symbol: f"{source}_[{i}]" for symbol, (source, i) in self.columns().items()})
        for j, param in enumerate(self.params):
            if not param.shape:
                code[sp.Symbol(param.name, real=True)] = f"p_{j}"
            elif len(param.shape) == 1:
                code.update({sp.Symbol(f"{param.name}[{i}]", real=True): f"p_{j}[{i}]" for i in range(param.shape[0])})
            else:
                code.update({sp.Symbol(f"{param.name}[{i},{k}]", real=True): f"p_{j}[{i}, {k}]"
                             for i in range(param.shape[0]) for k in range(param.shape[1])})
        for k, implicit in enumerate(self.implicits):
            code.update({u: f"y_{k}[..., {i}]" for i, u in enumerate(implicit.unknowns)})
        return code

    def implicit_of(self) -> dict[sp.Symbol, int]:
        return {u: k for k, implicit in enumerate(self.implicits) for u in implicit.unknowns}


def net_outputs(nets: list[ir.Net]) -> tuple[int, ...]:
    """Each net's number of outputs, for `Layout.net_outputs` (0 for an open-loop control's)."""
    return tuple(net.options.out if isinstance(net.options, MlpOptions) else 0 for net in nets)


class TorchPrinter(PythonCodePrinter):
    """SymPy -> torch source. Numbers print as float literals; functions map to torch."""

    def __init__(self, layout: Layout, local_names: dict[sp.Symbol, str]) -> None:
        super().__init__({"fully_qualified_modules": False, "inline": True})
        self.names = {**layout.symbol_code(), **local_names}
        self.columns = layout.columns()
        self.net_index = {name: k for k, name in enumerate(layout.nets)}
        self.mlps = {k for k, outputs in enumerate(layout.net_outputs) if outputs and layout.mlp_columns}

    def _print(self, expr, **kwargs):
        if isinstance(expr, sp.Basic) and not isinstance(expr, sp.MatrixBase) and expr.is_number \
                and expr.is_real and not isinstance(expr, (sp.Integer, sp.Rational)):
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
        if exp == -1:   # the same value as 1/x, which torch computes as reciprocal(x) * 1
            return f"torch.reciprocal({self._print(base)})"
        if exp == 2:
            return f"torch.square({self._print(base)})"
        return super()._print_Pow(expr, rational=rational)

    def _print_Mul(self, expr):
        """A product with the coefficient 1.0 (a Float one, from a spec's decimal constants) is the
        product without it: the same value, one multiplication less."""
        coeff, rest = expr.as_coeff_Mul()
        if isinstance(coeff, sp.Float) and float(coeff) == 1.0:
            return self.parenthesize(rest, precedence(expr))
        return super()._print_Mul(expr)

    def _print_Add(self, expr, order=None):
        """Long sums print as a shallow tree of parenthesised chunks, so that Python's compiler
        (which recurses once per binary operator) accepts sums of thousands of terms."""
        terms = expr.args
        if len(terms) <= SUM_CHUNK:
            return super()._print_Add(expr, order=order)
        size = -(-len(terms) // SUM_CHUNK)
        chunks = [sp.Add(*terms[i:i + size], evaluate=False) for i in range(0, len(terms), size)]
        return "(" + " + ".join(f"({self._print(c)})" for c in chunks) + ")"

    def _print_MatrixBase(self, expr):
        items = ", ".join(self._print(e) for e in expr)
        return f"_matrix({expr.rows}, {expr.cols}, {items})"

    _print_ImmutableDenseMatrix = _print_MutableDenseMatrix = _print_MatrixBase

    def _print_Function(self, expr):
        name = type(expr).__name__
        if name in INDEXED_FUNCTIONS:
            matrix, index = expr.args
            return f"{INDEXED_FUNCTIONS[name]}({self._print(matrix)})[..., {int(index)}]"
        args = ", ".join(self._print(a) for a in expr.args)
        if name in self.net_index:
            return self._net_call(self.net_index[name], expr.args, args)
        if isinstance(expr, fn.net_output):
            call, index = expr.args
            return f"{self._print(call)}[..., {int(index)}]"
        if isinstance(expr, fn.batch_mean):
            return f"_batch_mean({args})"
        if name in LIBRARY_FUNCTIONS:
            return f"{LIBRARY_FUNCTIONS[name]}({args})"
        if name in TORCH_FUNCTIONS:
            if len(expr.args) > 1:     # atan2(1, x): torch's functions of two take no Python number
                args = ", ".join(self._print(a) if a.free_symbols else f"_tensor({self._print(a)})" for a in expr.args)
            return f"{TORCH_FUNCTIONS[name]}({args})"
        if name == "sech":
            return f"(1/torch.cosh({args}))"
        raise NotImplementedError(f"no torch translation for {name}")

    def _net_call(self, k: int, args: tuple, printed: str) -> str:
        """Net k on its inputs: consecutive columns of one source as a slice `s[..., a:b]` (or, for
        an Mlp, `net_k.of_columns(s, a, b)`: no slice while bound), else the arguments stacked in
        the last dimension."""
        where = [self.columns.get(a) for a in args]
        if all(where) and len({source for source, _ in where}) == 1 \
                and [i for _, i in where] == list(range(where[0][1], where[0][1] + len(where))):
            source, first = where[0]
            if k in self.mlps:
                return f"net_{k}.of_columns({source}, {first}, {first + len(where)})"
            return f"net_{k}({source}[..., {first}:{first + len(where)}])"
        return f"net_{k}(_column({printed}))" if len(args) == 1 else f"net_{k}(_stack({printed}))"

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
        truth = isinstance(last, sp.logic.boolalg.Boolean)   # a condition (ITE): True, False or comparisons
        wrap = "{}" if truth else "_tensor({})"              # _tensor would make True a float tensor
        out = self._print(last)
        for value, cond in reversed(pieces):
            out = f"torch.where({self._print(cond)}, {wrap.format(self._print(value))}, {wrap.format(out)})"
        return out

    def _print_Relational(self, expr):
        return f"({self._print(expr.lhs)} {expr.rel_op} {self._print(expr.rhs)})"

    def _print_And(self, expr):     # elementwise on the conditions' tensors (Python's `and` is not)
        return "(" + " & ".join(self._print(a) for a in expr.args) + ")"

    def _print_Or(self, expr):
        return "(" + " | ".join(self._print(a) for a in expr.args) + ")"

    def _print_Not(self, expr):
        return f"(~{self._print(expr.args[0])})"

    def _print_NumberSymbol(self, expr):
        return repr(float(expr))

    _print_Pi = _print_Exp1 = _print_NumberSymbol


for _name in [*TORCH_FUNCTIONS, "sech", *LIBRARY_FUNCTIONS, *INDEXED_FUNCTIONS]:
    setattr(TorchPrinter, f"_print_{_name}", TorchPrinter._print_Function)

HEADER = '''\
# Generated by impsolve from a .imp spec. Do not edit: edit the spec.
# Helpers _tensor, _column, _stack, _matrix, _like, _batch_mean, _smin, _smax, _svdvals,
# _eigvalsh, _logdet, _det and _solve_implicit come from impsolve.runtime.library.
import torch
'''

SIGNATURE = "t, s, s0=None, sT=None, T=None"
ARGUMENTS = "t, s, s0, sT, T"


def _needed_implicits(exprs: list[sp.Expr], layout: Layout) -> list[int]:
    """Implicit layers whose unknowns the expressions use, with their own dependencies, in order."""
    owner = layout.implicit_of()
    needed = {owner[s] for e in exprs for s in e.free_symbols if s in owner}
    for k in sorted(needed, reverse=True):
        for r in layout.implicits[k].residual:
            needed |= {owner[s] for s in r.free_symbols if s in owner and owner[s] != k}
    return sorted(needed)


def _dependencies(k: int, layout: Layout) -> list[int]:
    return [j for j in _needed_implicits(layout.implicits[k].residual, layout) if j != k]


def generate_function(name: str, outputs: list[sp.Expr], layout: Layout, mode: str,
                      unknowns: list[int] = ()) -> str:
    """Source of one function computing `outputs` (CSE'd).

    mode "stack": stacked in the last dimension, each broadcast to the batch (dynamics);
    "broadcast": stacked with broadcasting (implicit residuals); "matrix": an n x n Jacobian;
    "tuple": returned as they are. `unknowns` are implicit layers passed in as arguments."""
    replacements, reduced = sp.cse(outputs, symbols=sp.numbered_symbols("_c"), optimizations="basic")
    local_names = {sym: f"c{i}" for i, (sym, _) in enumerate(replacements)}
    printer = TorchPrinter(layout, local_names)
    leading = "".join(f"y_{k}, " for k in unknowns)
    lines = [f"    def {name}({leading}{SIGNATURE}):"]
    for k in _needed_implicits([*[v for _, v in replacements], *reduced], layout):
        if k not in unknowns:
            deps = "".join(f"y_{j}, " for j in _dependencies(k, layout))
            lines.append(f"        y_{k} = implicit_{k}({deps}{ARGUMENTS})")
    body = [f"        {local_names[sym]} = {printer.doprint(value)}" for sym, value in replacements]
    result = _return_line(mode, reduced, replacements, layout, printer)
    lines += _unbind_lines([*body, result])
    lines += body
    lines.append(result)
    return "\n".join(lines)


def _return_line(mode: str, reduced: list[sp.Expr], replacements: list, layout: Layout,
                 printer: TorchPrinter) -> str:
    """The function's return statement for `mode` (see generate_function)."""
    results = [printer.doprint(e) for e in reduced]
    if mode == "stack":
        columns = _column_items(reduced, replacements, layout, printer)
        if columns is not None:
            return f"        return torch.cat(({''.join(c + ', ' for c in columns)}), -1)"
        state_symbols = {ir.state_symbol(n) for n in layout.states}
        items = [code if _depends_on(e, state_symbols, replacements) else f"_like({code}, s[..., 0])"
                 for e, code in zip(reduced, results)]
        return f"        return torch.stack(({''.join(i + ', ' for i in items)}), -1)"
    if mode == "broadcast":
        return f"        return _stack({', '.join(results)})"
    if mode == "matrix":
        size = int(round(len(results) ** 0.5))
        return f"        return _matrix({size}, {size}, {', '.join(results)})"
    return f"        return ({''.join(r + ', ' for r in results)})"


def _column_items(reduced: list[sp.Expr], replacements: list, layout: Layout,
                  printer: TorchPrinter) -> list[str] | None:
    """The outputs as blocks of columns (shape (..., k)) to concatenate, when each is a column of
    `s` (consecutive ones become one slice) or an entry of a net's output on the states, no
    subexpression is shared, and this takes no more views than stacking the entries (one unbind
    of `s`, one select per net output): the same values with fewer graph nodes per call. Else None."""
    if replacements:
        return None
    pieces = [_column_piece(e, layout, printer) for e in reduced]
    if None in pieces:
        return None
    blocks: list[range | str] = []
    for piece in pieces:
        if isinstance(piece, int) and blocks and isinstance(blocks[-1], range) and blocks[-1].stop == piece:
            blocks[-1] = range(blocks[-1].start, piece + 1)
        else:
            blocks.append(range(piece, piece + 1) if isinstance(piece, int) else piece[0])
    whole_nets = sum(isinstance(p, tuple) and p[1] for p in pieces)   # selects saved
    if sum(isinstance(b, range) for b in blocks) > 1 + whole_nets:   # slices against one unbind
        return None
    return [f"s[..., {b.start}:{b.stop}]" if isinstance(b, range) else b for b in blocks]


def _column_piece(e: sp.Expr, layout: Layout, printer: TorchPrinter) -> int | tuple[str, bool] | None:
    """An output as a column: the index of a column of `s`; or, for an entry of a net's output
    when the net reads the states, its code as shape (..., 1) and whether that is the whole output
    (a net with one output needs no slice); else None."""
    where = layout.columns().get(e)
    if where is not None:
        return where[1] if where[0] == "s" else None
    if not isinstance(e, fn.net_output) or not _depends_on(e, {ir.state_symbol(n) for n in layout.states}, []):
        return None
    call, index = e.args
    code = printer.doprint(call)
    if dict(zip(layout.nets, layout.net_outputs)).get(type(call).__name__, 0) == 1:
        return code, True
    return f"{code}[..., {int(index)}:{int(index) + 1}]", False


def _unbind_lines(code: list[str]) -> list[str]:
    """`s_ = s.unbind(-1)` for each of s, s0, sT whose columns the code reads as `s_[i]`."""
    return [f"        {source}_ = {source}.unbind(-1)" for source in ("s", "s0", "sT")
            if any(re.search(rf"\b{source}_\[", line) for line in code)]


def _depends_on(expr: sp.Expr, symbols: set[sp.Symbol], replacements) -> bool:
    table = dict(replacements)
    todo, seen = list(expr.free_symbols), set()
    while todo:
        s = todo.pop()
        if s in seen:
            continue
        seen.add(s)
        if s in symbols:
            return True
        if s in table:
            todo.extend(table[s].free_symbols)
    return False


def implicit_functions(k: int, layout: Layout) -> str:
    """residual_k, jacobian_k (None: autograd) and implicit_k, which solves and attaches the IFT gradient."""
    implicit = layout.implicits[k]
    deps = _dependencies(k, layout)
    args = [*deps, k]
    parts = [generate_function(f"residual_{k}", implicit.residual, layout, "broadcast", args)]
    if implicit.jacobian is not None:
        flat = [j for row in implicit.jacobian for j in row]
        parts.append(generate_function(f"jacobian_{k}", flat, layout, "matrix", args))
    leading = "".join(f"y_{j}, " for j in deps)
    jacobian = (f"lambda y: jacobian_{k}({leading}y, {ARGUMENTS})" if implicit.jacobian is not None else "None")
    options = implicit.options
    parts.append("\n".join([
        f"    def implicit_{k}({leading}{SIGNATURE}):",
        f"        return _solve_implicit(lambda y: residual_{k}({leading}y, {ARGUMENTS}), {jacobian}, "
        f"{len(implicit.unknowns)}, tol={options.tol!r}, max_iter={options.max_iter}, "
        f"damping={options.damping}, label={k})",
    ]))
    return "\n\n".join(parts)


def generate_module(functions: dict[str, tuple[list[sp.Expr], str]], layout: Layout, name: str = "build") -> str:
    """A module with `build(params, nets)` (or another `name`) returning the generated functions."""
    body = [HEADER, "", f"def {name}(params, nets):"]
    for j in range(len(layout.params)):
        body.append(f"    p_{j} = params[{j}]")
    for k in range(len(layout.nets)):
        body.append(f"    net_{k} = nets[{k}]")
    for k in range(len(layout.implicits)):
        body.append("")
        body.append(implicit_functions(k, layout))
    for name, (outputs, mode) in functions.items():
        body.append("")
        body.append(generate_function(name, outputs, layout, mode))
    body.append("")
    body.append("    return {" + ", ".join(f"{n!r}: {n}" for n in functions) + "}")
    return "\n".join(body) + "\n"

"""Expression lowering: SymPy values from the syntax tree's expressions.

Expressions are built with SymPy constructors and the fixed function table only — spec text
never reaches sympify/parse_expr/eval. Consts become exact numbers, defs and lets are substituted
inline, vectors and matrices are scalarised (see `values`). `ExpressionLowering` holds the
environment (name -> value) that the declarations of `compiler.lower` fill in.
"""
from __future__ import annotations

import math
from typing import Callable, Protocol

import sympy as sp

from ..dsl import ast
from ..dsl.check import CheckedSpec
from ..dsl.errors import SpecError
from ..dsl.functions import DESIGN_FUNCTIONS
from . import ir
from .derivative import solution_symbols, spec_derivative
from .functions import CONSTANTS, ELEMENTWISE, batch_mean, compare, net_output
from .indexing import Item, ranges, resolve
from .values import ShapeError, Value, array, elementwise, entries, filled, is_matrix, matmul, reduce, shape, \
    shaped, show, transpose

INTEGRAL_PREFIX = "integral_"
MAX_ENTRIES = 4096          # entries of one declared vector or matrix where it is scalarised (discrete time)
MEMORY_LIMIT = 2 ** 34      # bytes of one declared value as a float64 tensor (the tensor path's only limit)
LINEAR_ALGEBRA = {"sum", "norm", "normalize", "trace", "det", "logdet", "inv", "svdvals", "smin", "smax",
                  "eig", "outer", "diag"}
AtTime = Callable[[str, ast.Call], Value]


def _may_leave_the_reals(node: ast.Expr) -> bool:
    """A power or a function call: where SymPy may make a real value complex (sqrt(-k), k > 0)."""
    return isinstance(node, ast.Call) or (isinstance(node, ast.BinOp) and node.op == "^")


def _never_real(entry: sp.Expr) -> bool:
    """SymPy wrote the value with the imaginary unit or a non-real root of -1: the generated code
    would compute complex tensors (an internal error, or the imaginary part dropped silently)."""
    return entry.has(sp.I) or any(a.is_number and a.is_real is False for a in entry.atoms(sp.Pow))


class StudyLowering(Protocol):
    """What a study adds to the lowering (registered in `compiler.kinds`): its params, its calls
    in objectives and expects (e.g. `sens(...)`), its statements, and its part of the problem."""

    def declare(self) -> dict[str, ir.Param]:
        """The study's params (declared after the spec's own)."""

    def handles(self, call: ast.Call) -> bool:
        """Whether a call in an objective or expect is the study's."""

    def call(self, call: ast.Call, at_time: AtTime) -> Value:
        """The value of one of the study's calls."""

    def lower_statements(self) -> None:
        """Lower the study's statements (before the objective, which may use what they define)."""

    def finish(self, problem: ir.Problem) -> ir.Problem:
        """The problem with the study's part."""


def finite_if_numeric(entry: sp.Expr) -> bool:
    """False for a number that evaluates to inf/nan; True otherwise, also for a value SymPy keeps
    unevaluated (e.g. `mean(2)`, a batch mean of a number, known only at run time)."""
    value = entry.evalf()
    return not value.is_Number or math.isfinite(float(value))


def spec_error(checked: CheckedSpec, message: str, span: ast.Span | None, hint: str | None = None) -> SpecError:
    """A SpecError located in the checked spec's source."""
    spec = checked.spec
    return SpecError(message, span, spec.source, spec.filename, hint)


def source_text(checked: CheckedSpec, node) -> str:
    """The source text of a node (single line)."""
    span = node.span
    lines = checked.spec.source.splitlines()
    if span.line == span.end_line:
        return lines[span.line - 1][span.column - 1: span.end_column - 1].strip()
    return lines[span.line - 1][span.column - 1:].strip() + " ..."


class ExpressionLowering:
    """Lowers expressions of one checked spec in its environment of declared values."""

    def __init__(self, checked: CheckedSpec) -> None:
        self.checked = checked
        self.env: dict[str, Value] = dict(CONSTANTS)
        self.nets = {name: sp.Function(name) for name in checked.nets}
        self.integrals: dict[str, sp.Expr] = {}   # integral state name -> integrand
        self.totals: dict[str, sp.Expr] = {}      # total(...) component -> summand (discrete specs)
        self.implicits: list[ir.Implicit] = []
        self.random: list[sp.Symbol] = []         # randn() draws of param initial values
        self.state_components: list[str] = []     # set by the declarations
        self.study: StudyLowering | None = None   # the study's part (compiler.kinds)
        self.net_sizes: dict[str, tuple[int, ...]] = {}   # net -> entries of each input
        self.entry_limit: int | None = MAX_ENTRIES        # None on the tensor path (compiler.tensor_lower)
        self.deferred: dict[str, Callable[[], Value]] = {}  # name -> its exact value, lowered when first read

    def error(self, message: str, span: ast.Span, hint: str | None = None) -> SpecError:
        """A SpecError located in this spec."""
        return spec_error(self.checked, message, span, hint)

    def expr(self, node: ast.Expr, local: dict[str, Value] | None = None,
             at_time: AtTime | None = None, shape_of: tuple[int, ...] = ()) -> Value:
        """SymPy value of an AST expression. `at_time` lowers `x(T)`, `integral(.)`, `mean(.)`;
        `shape_of` is the declared shape (for randn())."""
        local = local or {}

        def go(n: ast.Expr) -> Value:
            try:
                value = step(n)
            except ShapeError as err:
                raise self.error(str(err), n.span) from None
            except ValueError as err:   # e.g. SymPy's NonInvertibleMatrixError
                raise self.error(str(err).split("\n")[0] or "invalid operation", n.span) from None
            for entry in entries(value):
                if entry.is_number and (entry.has(sp.zoo, sp.oo, -sp.oo, sp.nan) or entry.is_real is False
                                        or not finite_if_numeric(entry)):
                    raise self.error(f"this is not a finite real number ({entry})", n.span)
                if _may_leave_the_reals(n) and _never_real(entry):
                    raise self.error("this is never a real number", n.span,
                                     "the square root or a fractional power of a value that is always negative")
            return value

        def step(n: ast.Expr) -> Value:
            if isinstance(n, ast.Number):
                return sp.Integer(int(n.value)) if n.value.is_integer() and abs(n.value) < 2**53 \
                    else sp.Float(n.text if "." in n.text or "e" in n.text.lower() else n.value, 17)
            if isinstance(n, ast.Name):
                return local[n.id] if n.id in local else self.name_value(n.id)
            if isinstance(n, ast.Neg):
                return elementwise(lambda v: -v, go(n.operand))
            if isinstance(n, ast.Transpose):
                return transpose(go(n.operand))
            if isinstance(n, ast.Array):
                return array([go(i) for i in n.items])
            if isinstance(n, ast.Index):
                return self.index(n, go(n.operand))
            if isinstance(n, ast.BinOp):
                return self.binary(n, go(n.left), go(n.right))
            if isinstance(n, ast.Compare):
                return self.comparison(n, go(n.left), go(n.right))
            if isinstance(n, ast.Call):
                return self.call(n, go, at_time, shape_of)
            raise self.error("this expression is not supported here", n.span)

        return go(node)

    def comparison(self, n: ast.Compare, left: Value, right: Value) -> Value:
        """left op right, entry by entry; SymPy refuses to order a side it knows is not real."""
        try:
            return elementwise(compare(n.op), left, right)
        except TypeError:     # "Invalid comparison of non-real ..."
            raise self.error("cannot compare: a side is never a real number", n.span,
                             "a fractional power of a negative value is not real (torch gives nan)") from None

    def name_value(self, name: str) -> Value:
        """The value of a name: `t`, `T`, or a declared value (a deferred one lowered now)."""
        if name == "t":
            return ir.TIME
        if name == "T":
            return self.final_time()
        if name not in self.env and name in self.deferred:
            self.env[name] = self.deferred.pop(name)()
        return self.env[name]

    def index(self, n: ast.Index, value: Value) -> Value:
        """Entries of a vector or matrix (compiler/indexing.py)."""
        positions, dims = resolve(shape(value), self.index_items(n))
        rows = ranges(positions) if len(positions) == 2 else [*ranges(positions), range(1)]
        return shaped(dims, [value[i, j] for i in rows[0] for j in rows[1]])

    def index_items(self, n: ast.Index) -> list[Item]:
        """The constant integers of an index: positions, and (start, stop) of slices."""
        def integer(bound: ast.Expr | None) -> int | None:
            if bound is None:
                return None
            value = self.constant(bound, "an index")
            if not value.is_Integer:
                raise self.error(f"an index must be an integer, got {float(value):g}", bound.span)
            return int(value)
        return [(integer(i.start), integer(i.stop)) if isinstance(i, ast.Slice) else integer(i) for i in n.items]

    def binary(self, n: ast.BinOp, a: Value, b: Value) -> Value:
        if n.op == "@":
            return matmul(a, b)
        if n.op == "/" and any(v == 0 for v in entries(b)):
            raise self.error("division by zero", n.span)
        if n.op == "^":
            return elementwise(lambda x, y: self.power(x, y, n.span), a, b)
        operation = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y,
                     "/": lambda x, y: x / y}[n.op]
        return elementwise(operation, a, b)

    def power(self, base: sp.Expr, exponent: sp.Expr, span: ast.Span) -> sp.Expr:
        """base^exponent; numeric powers are kept exact only while small, else folded to a float."""
        if base.is_Number and exponent.is_Number and not (exponent.is_Integer and abs(exponent) <= 64
                                                          and abs(base) < 2**64):
            try:
                value = float(base) ** float(exponent)
            except (OverflowError, ZeroDivisionError):
                value = math.inf
            if not isinstance(value, float) or not math.isfinite(value):
                raise self.error("this power is not a finite real number", span)
            return sp.Float(value, 17)
        return base ** exponent

    def call(self, n: ast.Call, go, at_time, shape_of: tuple[int, ...]) -> Value:
        if n.func in self.checked.defs:
            d = self.checked.defs[n.func]
            return self.expr(d.body, dict(zip(d.params, [go(a) for a in n.args])))
        if n.func in self.nets:
            return self.net_call(n, [go(a) for a in n.args])
        study_call = self.study is not None and self.study.handles(n)   # e.g. a fit's stderr(k)
        if n.func in ("integral", "mean", "total", *DESIGN_FUNCTIONS) or n.func in self.checked.states or study_call:
            if at_time is None:  # the checker allows these only where at_time is given
                raise self.error(f"{n.func}(...) is not allowed here", n.span)
            return at_time(n.func, n)
        if n.func == "randn":
            draws = [sp.Symbol(f"randn_{len(self.random) + i}", real=True)
                     for i in range(math.prod(shape_of) if shape_of else 1)]
            self.random.extend(draws)
            return shaped(shape_of, draws)
        if n.func == "d":
            return self.derivative(go(n.args[0]), n.args[1], n.span)
        args = [go(a) for a in n.args]
        if n.func in LINEAR_ALGEBRA:
            return reduce(n.func, args)
        return elementwise(ELEMENTWISE[n.func], *args)

    def net_call(self, n: ast.Call, args: list[Value]) -> Value:
        """A net on its arguments. When each argument has as many entries as its input, the net runs
        once on their concatenation (with `out=k > 1` it gives a vector of k entries); a net of
        scalar inputs with one output maps over vector arguments entry by entry."""
        function, sizes, out = self.nets[n.func], self.input_sizes(n.func), self.checked.nets[n.func][1].out
        counts = [len(entries(a)) for a in args]
        if counts == list(sizes):
            call = function(*[e for a in args for e in entries(a)])
            outputs = [net_output(call, i) for i in range(out)]
            return outputs[0] if out == 1 else sp.ImmutableMatrix(outputs)
        if all(size == 1 for size in sizes) and out == 1:
            return elementwise(lambda *xs: net_output(function(*xs), 0), *args)
        inputs = self.checked.nets[n.func][0].inputs
        want = ", ".join(f"{name}: {size}" for name, size in zip(inputs, sizes))
        total = sum(sizes)
        raise self.error(f"net '{n.func}' takes {total} input entr{'y' if total == 1 else 'ies'} ({want}), got "
                         f"{', '.join(map(str, counts))}", n.span,
                         "an input named after a value declared with a shape (e.g. state x[3]) takes its entries; "
                         "a net of scalar inputs with out=1 also maps over vectors entry by entry")

    def input_sizes(self, net: str) -> tuple[int, ...]:
        """The entries of each input of a net: an input named after a value declared with a shape
        (state x[3], const c[2, 2], ...) takes its entries, any other input one number."""
        if net not in self.net_sizes:
            declared = self.shape_declarations()
            sizes = []
            for name in self.checked.nets[net][0].inputs:
                if declared.get(name, ((), None))[0]:
                    sizes.append(math.prod(self.dims(*declared[name])))
                elif name in self.checked.consts:       # const c = [1, 2, 3]: the value's shape
                    sizes.append(len(entries(self.env[name])))
                else:
                    sizes.append(1)
            self.net_sizes[net] = tuple(sizes)
        return self.net_sizes[net]

    def shape_declarations(self) -> dict[str, tuple[tuple[ast.Expr, ...], ast.Span]]:
        """Declared shapes (the shape's nodes and the declaration's span) by name."""
        c = self.checked
        found = {name: (b.shape, b.span) for table in (c.consts, c.params, c.states) for name, b in table.items()}
        found.update({name: (s.shape, s.span) for name, s in [*c.lets.items(), *c.implicits.items()]})
        return found

    def derivative(self, value: Value, target: ast.Name, span: ast.Span) -> Value:
        """d(value, target): symbolic, through implicit layers by the implicit function theorem."""
        symbols = self.env[target.id]
        accumulated = [*self.integrals, *self.totals]
        try:
            result = [[spec_derivative(e, s, self.implicits, solution_symbols(self.state_components, accumulated, s))
                       for s in entries(symbols)] for e in entries(value)]
        except ValueError as err:
            raise self.error(f"cannot differentiate: {err}", span) from None
        flat = [d for row in result for d in row]
        if len(flat) == 1:
            return flat[0]
        if not is_matrix(value):
            return sp.ImmutableMatrix(symbols.rows, symbols.cols, flat)
        if not is_matrix(symbols):
            return sp.ImmutableMatrix(value.rows, value.cols, flat)
        return sp.ImmutableMatrix(result)   # Jacobian: one row per entry of value

    def final_time(self) -> sp.Expr:
        horizon = self.checked.horizon
        return self.constant(horizon.value, "horizon") if horizon else ir.FINAL_TIME

    def constant(self, node: ast.Expr, what: str) -> sp.Expr:
        value = self.expr(node)
        if is_matrix(value):
            raise self.error(f"{what} must be a number, got {show(shape(value))}", node.span)
        if value.free_symbols:
            raise self.error(f"{what} must be a constant", node.span)
        if not value.is_real or not value.is_finite:
            raise self.error(f"{what} is not a finite real number ({value})", node.span)
        return value

    def dims(self, shape_nodes: tuple[ast.Expr, ...], span: ast.Span) -> tuple[int, ...]:
        """A declared shape: one or two positive integer constants."""
        if len(shape_nodes) > 2:
            raise self.error("shapes have one or two dimensions: x[n] or A[n, m]", span)
        dims = []
        for node in shape_nodes:
            value = self.constant(node, "a dimension")
            if not value.is_Integer or value < 1:
                raise self.error("a dimension must be a positive integer", node.span)
            dims.append(int(value))
        count = math.prod(dims)
        if count * 8 > MEMORY_LIMIT:
            raise self.error(f"this shape needs {count * 8 / 2 ** 30:.3g} GiB as one float64 tensor; the limit is "
                             f"{MEMORY_LIMIT / 2 ** 30:g} GiB", span)
        if self.entry_limit is not None and count > self.entry_limit:
            raise self.error(f"too many entries ({count}; the limit is {self.entry_limit} where every entry is "
                             "scalarised, as in discrete-time specs)", span,
                             "der() specs above the scalarisation limit compile shaped values as tensors")
        return tuple(dims)

    def declared(self, name: str, dims: tuple[int, ...] | None, value: Value, span: ast.Span,
                 declaration: str | None = None) -> Value:
        """A value checked against (or broadcast to) its declared shape; `None`: the value's own.
        `declaration`: the statement that declares the shape, when `name` is not it (der(x): state x)."""
        if dims is None:
            return value
        if not dims:
            if is_matrix(value):
                raise self.error(f"'{name}' is declared a scalar but its value is {show(shape(value))}", span,
                                 f"declare its shape, e.g. {declaration or name}[{', '.join(map(str, value.shape))}]")
            return value
        try:
            return filled(dims, value)
        except ShapeError as err:
            raise self.error(f"'{name}': {err}", span) from None

    def terminal(self, node: ast.Expr, at: str | None = None) -> Value:
        """An expression over the whole trajectory: states at 0/T, integrals, batch means. One
        `at end` stays pointwise here (`passes.final_values` takes it at T)."""
        states = self.checked.states

        def at_time(func: str, call: ast.Call) -> Value:
            if func in states:
                pick = ir.initial_symbol if isinstance(call.args[0], ast.Number) else ir.final_symbol
                return self.env[func].applyfunc(lambda s: pick(s.name)) if is_matrix(self.env[func]) \
                    else pick(func)
            if func == "total":
                return self.total(call)
            if func == "integral":
                return self.integral(call)
            if self.study and self.study.handles(call):
                return self.study.call(call, at_time)
            inner = self.expr(call.args[0], at_time=at_time)  # mean: entries, then the batch
            return batch_mean(sp.Add(*entries(inner)) / len(entries(inner)))

        value = self.expr(node, at_time=at_time)
        return value if at is None else self.pointwise(value)

    def pointwise(self, value: Value) -> Value:
        """A pointwise value in terms of the states (a time model may substitute what it computes
        from them)."""
        return value

    def integral(self, call: ast.Call) -> sp.Expr:
        """integral(expr): the final value of a running cost (an extra state, `passes.running_costs`)."""
        inner = self.expr(call.args[0])
        if is_matrix(inner):
            raise self.error("integral() needs a scalar integrand", call.span, "wrap it in sum(...)")
        name = f"{INTEGRAL_PREFIX}{len(self.integrals)}"
        self.integrals[name] = inner
        return ir.final_symbol(name)

    def total(self, call: ast.Call) -> Value:
        """total(expr): a sum over the steps, for discrete-time specs (see compiler.discrete)."""
        raise self.error("total() sums over the steps of a discrete-time spec", call.span,
                         "use integral(...) with der(...) dynamics, or write next(x) = ... and steps N")

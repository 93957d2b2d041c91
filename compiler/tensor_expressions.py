"""Expression lowering on the tensor path: AST expressions to `tensors.Node` DAGs.

The environment maps names to nodes; defs are inlined, lets are shared nodes (computed once per
generated function). Constructs the tensor path does not support yet are located SpecErrors that
name the construct and the size rule (docs/design.md, "Tensor values").
"""
from __future__ import annotations

import math
from typing import Callable

from ..dsl import ast
from ..dsl.check import CheckedSpec
from ..dsl.errors import SpecError
from ..dsl.functions import DESIGN_FUNCTIONS
from . import tensors as tn
from .expressions import LINEAR_ALGEBRA, ExpressionLowering, spec_error
from .values import ShapeError, show

AtTime = Callable[[str, ast.Call], tn.Node]


class TensorExpressions:
    """Lowers expressions of one checked spec to tensor nodes in an environment of nodes."""

    scalar: ExpressionLowering      # exact constants: dims and index positions (set by the lowering)

    def __init__(self, checked: CheckedSpec, horizon: float | None) -> None:
        self.checked = checked
        self.env: dict[str, tn.Node] = {"pi": tn.number(3.141592653589793)}
        self.horizon = horizon
        self.draws = 0                                  # randn() entries drawn so far
        self.net_sizes: dict[str, tuple[int, ...]] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}     # declared shapes by name (set by the lowering)
        self.rule = "shaped values above the scalarisation limit are compiled as tensors"   # why this path
        self.study = None      # the study's part (e.g. tensor_fit.TensorFit: its calls, such as stderr(k))
        self.implicits: list[tn.TensorImplicit] = []    # the implicit layers lowered so far

    def error(self, message: str, span: ast.Span | None, hint: str | None = None) -> SpecError:
        """A SpecError located in this spec."""
        return spec_error(self.checked, message, span, hint)

    def unsupported(self, what: str, span: ast.Span | None) -> SpecError:
        """A located SpecError for a construct the tensor path does not support yet."""
        return self.error(f"{what} is not supported on the tensor path yet", span, self.rule)

    def final_time(self) -> tn.Node:
        return tn.number(self.horizon) if self.horizon is not None else tn.leaf("final_time", (), None)

    def expr(self, node: ast.Expr, local: dict[str, tn.Node] | None = None, at_time: AtTime | None = None,
             shape_of: tuple[int, ...] = ()) -> tn.Node:
        """The node of an AST expression; `at_time` lowers `x(T)`, `integral(.)`, `mean(.)`;
        `shape_of` is the declared shape (for randn())."""
        local = local or {}

        def go(n: ast.Expr) -> tn.Node:
            try:
                return step(n)
            except ShapeError as err:
                raise self.error(str(err), n.span) from None

        def step(n: ast.Expr) -> tn.Node:
            if isinstance(n, ast.Number):
                return tn.number(n.value)
            if isinstance(n, ast.Name):
                if n.id in local:
                    return local[n.id]
                if n.id == "t":
                    return tn.leaf("time", (), None, batched=True)
                return self.final_time() if n.id == "T" else self.env[n.id]
            if isinstance(n, ast.Neg):
                return tn.elementwise("neg", go(n.operand))
            if isinstance(n, ast.Transpose):
                return tn.transpose(go(n.operand))
            if isinstance(n, ast.Array):
                return tn.array([go(i) for i in n.items])
            if isinstance(n, ast.Index):
                return tn.index(go(n.operand), self.scalar.index_items(n))
            if isinstance(n, ast.BinOp):
                return self.binary(n, go(n.left), go(n.right))
            if isinstance(n, ast.Compare):
                return tn.elementwise(n.op, go(n.left), go(n.right))
            if isinstance(n, ast.Call):
                return self.call(n, go, at_time, shape_of)
            raise self.error("this expression is not supported here", n.span)

        return go(node)

    def binary(self, n: ast.BinOp, a: tn.Node, b: tn.Node) -> tn.Node:
        if n.op == "@":
            return tn.matmul(a, b)
        if n.op == "/" and b.op == "number" and b.attr == 0:
            raise self.error("division by zero", n.span)
        if n.op == "*" and _is_one(a) and b.shape:      # gamma * v with gamma = 1: v (x * 1 is x exactly)
            return b
        if n.op == "*" and _is_one(b) and a.shape:
            return a
        return tn.elementwise(n.op, a, b)

    def call(self, n: ast.Call, go, at_time: AtTime | None, shape_of: tuple[int, ...]) -> tn.Node:
        if n.func in self.checked.defs:
            d = self.checked.defs[n.func]
            return self.expr(d.body, dict(zip(d.params, [go(a) for a in n.args])), at_time)
        if n.func in self.checked.nets:
            return self.net_call(n, [go(a) for a in n.args])
        if self.study is not None and self.study.handles(n):
            return self.study.call(n, go)
        if n.func == "d":
            return self.derivative(go(n.args[0]), n.args[1], n.span)
        if n.func in DESIGN_FUNCTIONS:
            raise self.unsupported(f"{n.func}(...)", n.span)
        if n.func in ("integral", "mean", "total") or n.func in self.checked.states:
            if at_time is None:
                raise self.error(f"{n.func}(...) is not allowed here", n.span)
            return at_time(n.func, n)
        if n.func == "randn":
            node = tn.leaf("randn", shape_of, self.draws)
            self.draws += node.size
            return node
        args = [go(a) for a in n.args]
        if n.func in LINEAR_ALGEBRA:
            if n.func == "eig":
                raise self.unsupported("eig()", n.span)
            return tn.linear_algebra(n.func, args)
        return tn.elementwise(n.func, *args)

    def derivative(self, value: tn.Node, name: ast.Name, span: ast.Span) -> tn.Node:
        """`d(value, name)` by automatic differentiation at run time (docs/design.md, "Tensor
        values"). As on the scalar path, a value of the solution that moves with the target (a state
        differentiated by a param; a state at 0 or T, or an integral, by a state) is an error, never 0;
        an implicit unknown whose equation reads the target is not followed here yet (located)."""
        target = self.env[name.id]
        by_state = target.op == "state"
        todo, seen = [(value, None)], set()
        while todo:
            node, equation = todo.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if node is target and equation is not None:
                raise self.unsupported(f"d() through the implicit equation of '{equation}'", span)
            if node.op == "state" and node is not target and not (by_state and node.attr[2] == "s"):
                raise self.error(f"cannot differentiate: the value reads a value of the solution, which changes "
                                 f"with '{name.id}' in a way d() does not follow (a sensitivity of the dynamics)",
                                 span, "d() treats states as independent only in d(expr, state) at the same time")
            if node.op == "unknown":
                implicit = self.implicits[node.attr]
                todo.append((implicit.residual, implicit.name))
            todo.extend((a, equation) for a in node.args)
        return tn.derivative(value, target)

    def net_call(self, n: ast.Call, args: list[tn.Node]) -> tn.Node:
        """A net on the concatenation of its arguments (out=k > 1: a vector), or mapped entry by
        entry over vectors when its inputs are scalars and its output one number."""
        sizes, out = self.input_sizes(n.func), self.checked.nets[n.func][1].out
        counts = [a.size for a in args]
        if counts == list(sizes):
            return tn.Node("net", () if out == 1 else (out,), tuple(args), n.func, any(a.batched for a in args))
        if all(size == 1 for size in sizes) and out == 1:
            return tn.Node("netmap", tn.broadcast_shape(tuple(args)), tuple(args), n.func,
                           any(a.batched for a in args))
        inputs = self.checked.nets[n.func][0].inputs
        want = ", ".join(f"{name}: {size}" for name, size in zip(inputs, sizes))
        raise self.error(f"net '{n.func}' takes {sum(sizes)} input entries ({want}), got "
                         f"{', '.join(map(str, counts))}", n.span)

    def input_sizes(self, net: str) -> tuple[int, ...]:
        """The entries of each input of a net: an input named after a value with a shape takes its
        entries (as on the scalar path), any other input one number."""
        if net not in self.net_sizes:
            inputs = self.checked.nets[net][0].inputs
            shapes = {**{name: node.shape for name, node in self.env.items()}, **self.shapes}
            self.net_sizes[net] = tuple(math.prod(shapes.get(name, ())) for name in inputs)
        return self.net_sizes[net]

    def declared(self, name: str, dims: tuple[int, ...] | None, value: tn.Node, span: ast.Span) -> tn.Node:
        """A value checked against (or broadcast from a scalar to) its declared shape."""
        if dims is None or value.shape == dims:
            return value
        if not value.shape:
            return tn.Node("fill", dims, (value,), None, value.batched)
        raise self.error(f"'{name}': expected {show(dims)}, got {show(value.shape)}", span)


def _is_one(node: tn.Node) -> bool:
    return node.op == "number" and node.attr == 1.0

"""Tensor values of the lowering: a small expression DAG whose nodes are whole tensors.

Above the scalarisation limit (`tensor_lower.SCALARISE_LIMIT`) a declaration with a shape is one
node, not one SymPy expression per entry: a state slice, a param, a const, an implicit unknown, or
an operation on other nodes. Shapes are logical (() scalar, (n,) vector, (n, m) matrix); at run
time every value may carry batch dimensions in front. `batched` says whether it can (it depends
on the states, time or an implicit unknown); params and consts never do. Each constructor checks
shapes and raises `values.ShapeError` naming both shapes, which the lowering locates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .indexing import Item, resolve
from .values import ShapeError, show

Shape = tuple[int, ...]
ELEMENTWISE = {"sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "tanh", "sech", "exp",
               "log", "sqrt", "abs", "sign", "sigmoid", "softplus", "min", "max", "where"}
COMPARE = {"<", "<=", ">", ">=", "==", "!="}
ARITHMETIC = {"+", "-", "*", "/", "^"}


@dataclass(eq=False)
class Node:
    """One tensor value. `op` names the operation, `args` its operands, `attr` its data (a leaf's
    name, a number, a slice). Nodes compare by identity: a shared node is computed once."""

    op: str
    shape: Shape
    args: tuple["Node", ...] = ()
    attr: object = None
    batched: bool = False
    literal: bool = False     # a Python number in the generated code (no tensor dimensions)

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def leaf(op: str, shape: Shape, attr: object, batched: bool = False) -> Node:
    """A value the generated code reads: 'state' (attr: (column slice, which of s/s0/sT)),
    'param' (index), 'const' (nested list of numbers), 'unknown' (implicit index), 'time', 'final_time',
    'randn' (offset into the draws)."""
    return Node(op, shape, (), attr, batched)


def number(value: float) -> Node:
    """A number, printed as a Python literal."""
    return Node("number", (), (), float(value), False, True)


def _combine(op: str, args: tuple[Node, ...], shape: Shape, attr: object = None) -> Node:
    return Node(op, shape, args, attr, any(a.batched for a in args), all(a.literal for a in args) and not shape)


def broadcast_shape(args: tuple[Node, ...]) -> Shape:
    """The shape of an elementwise operation: scalars broadcast, other shapes must agree."""
    shapes = {a.shape for a in args if a.shape}
    if len(shapes) > 1:
        raise ShapeError("shapes do not match: " + " and ".join(show(a.shape) for a in args if a.shape))
    return shapes.pop() if shapes else ()


def elementwise(op: str, *args: Node) -> Node:
    """An arithmetic operator, comparison or elementwise function, with broadcasting."""
    return _combine(op, args, broadcast_shape(args))


def bounded(raw: Node, low: float | None, high: float | None) -> Node:
    """The value a bounded quantity's raw tensor stands for (compiler.bounds): low + (high - low)
    sigmoid(raw) between two bounds, low + exp(raw) above one and high - exp(raw) below one."""
    if low is not None and high is not None:
        return elementwise("+", number(low), elementwise("*", number(high - low), elementwise("sigmoid", raw)))
    if low is not None:
        exp = elementwise("exp", raw)
        return elementwise("+", number(low), exp) if low else exp
    return elementwise("-", number(high), elementwise("exp", raw))


def matmul(a: Node, b: Node) -> Node:
    """`a @ b`: a vector counts as a column; a 1 x 1 result is a scalar, an n x 1 one a vector."""
    if not a.shape or not b.shape:
        raise ShapeError("'@' multiplies matrices or vectors; use '*' with a scalar")
    (r, k), (k2, c) = _as_matrix(a.shape), _as_matrix(b.shape)
    if k != k2:
        raise ShapeError(f"cannot multiply {show(a.shape)} by {show(b.shape)}")
    shape = () if (r, c) == (1, 1) else (r,) if c == 1 else (r, c)
    return _combine("@", (a, b), shape)


def _as_matrix(shape: Shape) -> tuple[int, int]:
    return (shape[0], 1) if len(shape) == 1 else (shape[0], shape[1])


def transpose(a: Node) -> Node:
    """`a'`: a vector becomes a 1 x n row, a matrix its transpose, a scalar itself."""
    if not a.shape:
        return a
    shape = (1, a.shape[0]) if len(a.shape) == 1 else (a.shape[1], a.shape[0])
    if shape == (1, 1):
        return a
    return _combine("'", (a,), shape)


def index(a: Node, items: list[Item]) -> Node:
    """Entries of a vector or matrix; attr holds the in-range positions (compiler/indexing.py)."""
    positions, shape = resolve(a.shape, items)
    return _combine("index", (a,), shape, positions)


def array(items: list[Node]) -> Node:
    """[a, b, c] is a vector; [[a, b], [c, d]] a matrix given by rows."""
    if all(not i.shape for i in items):
        return _combine("array", tuple(items), (len(items),))
    if all(len(i.shape) == 1 for i in items) and len({i.shape for i in items}) == 1:
        return _combine("array", tuple(items), (len(items), items[0].shape[0]))
    raise ShapeError("a matrix literal needs rows of numbers of equal length: [[a, b], [c, d]]")


def _square(a: Node, name: str) -> Node:
    if len(a.shape) != 2 or a.shape[0] != a.shape[1]:
        raise ShapeError(f"{name}() needs a square matrix, got {show(a.shape)}")
    return a


def _shaped(a: Node, name: str) -> Node:
    if not a.shape:
        raise ShapeError(f"{name}() needs a vector or a matrix, got a scalar")
    return a


def linear_algebra(name: str, args: list[Node]) -> Node:
    """sum, norm, normalize, trace, outer, diag, det, logdet, inv, svdvals, smin, smax as tensor calls."""
    a = args[0]
    if name == "sum":
        return _combine("sum", (a,), ()) if a.shape else a
    if name in ("norm", "smin", "smax"):
        return _combine(name, (_shaped(a, name),), ())
    if name == "normalize":
        return _combine("normalize", (_shaped(a, name),), a.shape)
    if name in ("trace", "det", "logdet"):
        return _combine(name, (_square(a, name),), ())
    if name == "inv":
        return _combine("inv", (_square(a, name),), a.shape)
    if name == "outer":
        b = args[1]
        if len(a.shape) != 1 or len(b.shape) != 1:
            raise ShapeError(f"outer() takes two vectors, got {show(a.shape)} and {show(b.shape)}")
        return _combine("outer", (a, b), (a.shape[0], b.shape[0]))
    if name == "diag":
        entries = array(args) if len(args) > 1 and all(not x.shape for x in args) else a
        if len(args) > 1 and entries is a or len(entries.shape) != 1:
            raise ShapeError("diag() takes one vector or several numbers: diag(v) or diag(a, b, ...)")
        return _combine("diag", (entries,), (entries.shape[0], entries.shape[0]))
    if name == "svdvals":
        return _combine("svdvals", (_shaped(a, name),), (min(_as_matrix(a.shape)),))
    raise ShapeError(f"{name}() is not supported on the tensor path yet")


def derivative(value: Node, target: Node) -> Node:
    """`d(value, target)`, taken by automatic differentiation at run time (the generated code
    calls `_derivative` with a nested function of the target). Its shape is the scalar path's: a
    number for one entry each, the target's shape for a scalar value, the value's for a scalar
    target, else the Jacobian with one row per entry of the value."""
    if value.size == 1 and target.size == 1:
        shape: Shape = ()
    elif value.size == 1:
        shape = target.shape
    elif target.size == 1:
        shape = value.shape
    else:
        shape = (value.size, target.size)
    return _combine("d", (target, value), shape)


def walk(outputs: list[Node]) -> list[Node]:
    """Every node the outputs read, operands before their users (each once)."""
    order: list[Node] = []
    seen: set[int] = set()
    stack: list[tuple[Node, bool]] = [(n, False) for n in reversed(outputs)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack.extend((a, False) for a in reversed(node.args) if id(a) not in seen)
    return order


def replace_leaves(outputs: list[Node], change) -> list[Node]:
    """The outputs with each leaf `n` replaced by `change(n)` (None: kept), operations rebuilt."""
    return _rebuild(outputs, lambda n: None if n.args else change(n))


def substitute(outputs: list[Node], nodes: dict[int, Node]) -> list[Node]:
    """The outputs with each node whose id is a key of `nodes` replaced by its value, operations rebuilt."""
    return _rebuild(outputs, lambda n: nodes.get(id(n)))


def _rebuild(outputs: list[Node], change) -> list[Node]:
    """The outputs with each node `n` for which `change(n)` is not None replaced by it, the
    operations above a replaced node rebuilt."""
    memo: dict[int, Node] = {}
    for node in walk(outputs):
        replaced = change(node)
        if replaced is not None:
            memo[id(node)] = replaced
            continue
        args = tuple(memo.get(id(a), a) for a in node.args)
        same = all(x is y for x, y in zip(args, node.args))
        memo[id(node)] = node if same else Node(node.op, node.shape, args, node.attr,
                                                 any(a.batched for a in args), node.literal)
    return [memo[id(n)] for n in outputs]


def reads(outputs: list[Node], wanted, stop=lambda n: False) -> bool:
    """Whether a leaf with `wanted(leaf)` is reachable from the outputs without passing a node
    with `stop(node)`."""
    todo, seen = list(outputs), set()
    while todo:
        node = todo.pop()
        if id(node) in seen or stop(node):
            continue
        seen.add(id(node))
        if not node.args and wanted(node):
            return True
        todo.extend(node.args)
    return False


@dataclass
class TensorImplicit:
    """`solve y[n]: lhs = rhs` on the tensor path: its unknown leaf, residual node and options."""

    name: str
    unknown: Node
    residual: Node
    options: object          # dsl.options.NewtonOptions
    line: int
    text: str
    jacobian: Node | None = None   # ∂residual/∂unknown by matrix calculus (None: torch.func at run time)


def signature(outputs: list[Node]) -> tuple:
    """The structure of a DAG as nested data (op, shape, attr, operand positions): equal for equal
    lowerings, whatever the node objects (nodes themselves compare by identity)."""
    order = walk(outputs)
    index = {id(n): i for i, n in enumerate(order)}
    attr = lambda n: n.attr if not isinstance(n.attr, list) else repr(n.attr)   # noqa: E731
    nodes = tuple((n.op, n.shape, attr(n), tuple(index[id(a)] for a in n.args)) for n in order)
    return nodes, tuple(index[id(o)] for o in outputs)


@dataclass(frozen=True)
class Sensitivities:
    """Forward sensitivities that the runtime adds as state columns (runtime.tensor_sensitivity):
    ∂x/∂θ of the first `states` columns with respect to every entry of the params at `params`
    (indices into the params), after the model's `columns` base columns, parameter-major."""

    params: tuple[int, ...]
    states: int
    columns: int


@dataclass(eq=False)
class TensorModel:
    """What the tensor code generator prints: the functions (name -> (outputs, mode)), the params'
    initial values (in terms of `randn` leaves into `draws` standard normal numbers), the implicit
    layers, the state columns, and the forward sensitivities the runtime adds (None: none)."""

    columns: list[str]
    functions: dict[str, tuple[list[Node], str]]
    params: list[tuple[str, Shape, Node]]
    implicits: list[TensorImplicit]
    draws: int
    sensitivities: Sensitivities | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TensorModel):
            return NotImplemented
        return self.key() == other.key()

    def key(self) -> tuple:
        """What the model computes, by structure (for comparing lowerings)."""
        functions = tuple((name, mode, signature(outputs)) for name, (outputs, mode) in self.functions.items())
        params = tuple((name, dims) for name, dims, _ in self.params)
        implicits = tuple((i.name, i.text, signature([i.residual, i.unknown])) for i in self.implicits)
        return (tuple(self.columns), functions, params, signature([v for *_, v in self.params]), implicits,
                self.draws, self.sensitivities)

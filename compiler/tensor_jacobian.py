"""The Jacobian of an implicit residual by matrix calculus on tensor nodes (symbolic where it pays).

For a vector unknown y (n,), `jacobian(residual, y)` builds the node of ∂φ/∂y (m, n) from the
rules of the operations: `A @ v` gives `A @ J_v` (A free of y), an elementwise f(u) scales the
rows of J_u by f'(u), sums add. `tanh(W @ y + x) - y` gives `(1 - a²) ⊙ W - I`, as one writes it
by hand: n² work, where a torch.func Jacobian costs n vector-Jacobian products (n³). Anything else
that reads y (a net of y, a matrix function of y, a power with y in the exponent) returns None, and
the runtime's torch.func Jacobian is used instead (`runtime.implicit.batched_jacobian`).
"""
from __future__ import annotations

from . import tensors as tn


class NoRule(Exception):
    """An operation on the unknown without a matrix-calculus rule here."""


def _num(value: float) -> tn.Node:
    return tn.number(value)


def _e(op: str, *args: tn.Node) -> tn.Node:
    return tn.elementwise(op, *args)


def derivative(node: tn.Node) -> tn.Node:
    """f'(u) of a unary elementwise node f(u), as a node (reusing f(u) where it can)."""
    u = node.args[0]
    rules = {
        "tanh": lambda: _e("-", _num(1), _e("^", node, _num(2))),
        "sigmoid": lambda: _e("*", node, _e("-", _num(1), node)),
        "exp": lambda: node, "sin": lambda: _e("cos", u), "cos": lambda: _e("neg", _e("sin", u)),
        "log": lambda: _e("/", _num(1), u), "sqrt": lambda: _e("/", _num(0.5), node),
        "sinh": lambda: _e("cosh", u), "cosh": lambda: _e("sinh", u), "softplus": lambda: _e("sigmoid", u),
        "atan": lambda: _e("/", _num(1), _e("+", _num(1), _e("^", u, _num(2)))),
        "tan": lambda: _e("+", _num(1), _e("^", node, _num(2))), "abs": lambda: _e("sign", u),
        "sech": lambda: _e("neg", _e("*", node, _e("tanh", u))),
    }
    if node.op not in rules or len(node.args) != 1:
        raise NoRule(node.op)
    return rules[node.op]()


class Jacobian:
    """∂node/∂y for one vector unknown y: a node of shape (n,) for a scalar node, (m, n) for a vector."""

    def __init__(self, unknown: tn.Node) -> None:
        self.unknown = unknown
        self.n = unknown.shape[0]
        self.memo: dict[int, tn.Node | None] = {}

    def rows(self, J: tn.Node, m: int) -> tn.Node:
        """A scalar's Jacobian (n,) repeated as m rows (m, n)."""
        return tn.Node("repeat_rows", (m, self.n), (J,), m, J.batched)

    def scale(self, d: tn.Node, J: tn.Node | None, shape: tuple[int, ...]) -> tn.Node | None:
        """d ⊙ J: the rows of J times d (a scalar, or a vector of the result's length)."""
        if J is None:
            return None
        if not d.shape:
            return _e("*", d, J)
        if len(J.shape) == 1:
            J = self.rows(J, shape[0])
        return tn.Node("scale_rows", J.shape, (d, J), None, d.batched or J.batched)

    def add(self, a: tn.Node | None, b: tn.Node | None, shape: tuple[int, ...], op: str = "+") -> tn.Node | None:
        if a is not None and shape and len(a.shape) == 1:
            a = self.rows(a, shape[0])
        if b is not None and shape and len(b.shape) == 1:
            b = self.rows(b, shape[0])
        if b is None:
            return a
        if a is None:
            return _e("neg", b) if op == "-" else b
        return _e(op, a, b)

    def of(self, node: tn.Node) -> tn.Node | None:
        """The Jacobian node, or None where the node does not depend on y."""
        if id(node) not in self.memo:
            self.memo[id(node)] = self.rule(node)
        return self.memo[id(node)]

    def rule(self, node: tn.Node) -> tn.Node | None:
        if node is self.unknown:
            return tn.leaf("eye", (self.n, self.n), self.n)
        if not node.args or not tn.reads([node], lambda n: n is self.unknown):
            return None
        if len(node.shape) > 1:
            raise NoRule("a matrix that depends on the unknown")
        op, args, shape = node.op, node.args, node.shape
        if op in ("+", "-"):
            return self.add(self.of(args[0]), self.of(args[1]), shape, op)
        if op == "neg":
            return self.add(None, self.of(args[0]), shape, "-")
        if op == "*":
            a, b = args
            return self.add(self.scale(b, self.of(a), shape), self.scale(a, self.of(b), shape), shape)
        if op == "/":
            a, b = args
            left = self.scale(_e("/", _num(1), b), self.of(a), shape)
            right = self.scale(_e("/", a, _e("^", b, _num(2))), self.of(b), shape)
            return self.add(left, right, shape, "-")
        if op == "^" and self.of(args[1]) is None:
            a, p = args
            return self.scale(_e("*", p, _e("^", a, _e("-", p, _num(1)))), self.of(a), shape)
        if op == "@" and self.of(args[0]) is None and len(args[0].shape) == 2 and len(shape) == 1:
            inner = self.of(args[1])
            return args[0] if inner.op == "eye" else tn.matmul(args[0], inner)
        if op == "sum" and len(args[0].shape) == 1:
            return tn.Node("sum_rows", (self.n,), (self.of(args[0]),), None, True)
        if op == "fill":
            return self.rows(self.of(args[0]), shape[0])
        return self.scale(derivative(node), self.of(args[0]), shape)


def jacobian(residual: tn.Node, unknown: tn.Node) -> tn.Node | None:
    """∂residual/∂unknown (n, n) by matrix calculus, or None where a rule is missing."""
    if len(unknown.shape) != 1 or unknown.shape[0] < 2:
        return None
    try:
        J = Jacobian(unknown).of(residual)
    except NoRule:
        return None
    return J if J is not None and J.shape == (unknown.shape[0], unknown.shape[0]) else None

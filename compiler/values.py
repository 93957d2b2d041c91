"""Values of the lowering: SymPy scalars, or SymPy matrices (vectors are n x 1 columns).

Vectors and matrices are scalarised: every entry is a SymPy expression, so CSE, symbolic
Jacobians and code generation treat them like scalars. Spectral functions stay opaque.
"""
from __future__ import annotations

from typing import Callable, Union

import sympy as sp

from . import functions as fn

Value = Union[sp.Expr, sp.ImmutableMatrix]
SYMBOLIC_SIZE_LIMIT = 3      # det/inv are expanded symbolically up to 3 x 3


class ShapeError(ValueError):
    """A shape mismatch; the lowering turns it into a located SpecError."""


def is_matrix(v: Value) -> bool:
    return isinstance(v, sp.MatrixBase)


def shape(v: Value) -> tuple[int, ...]:
    """() for scalars, (n,) for column vectors, (n, m) otherwise."""
    if not is_matrix(v):
        return ()
    return (v.rows,) if v.cols == 1 else (v.rows, v.cols)


def show(s: tuple[int, ...]) -> str:
    return "a scalar" if not s else "a vector of " + str(s[0]) if len(s) == 1 else f"a {s[0]}x{s[1]} matrix"


def simplify_shape(m: sp.MatrixBase) -> Value:
    """1 x 1 matrices are scalars (so that g' @ C @ g is a number)."""
    m = sp.ImmutableMatrix(m)
    return m[0, 0] if m.shape == (1, 1) else m


def entries(v: Value) -> list[sp.Expr]:
    return list(v) if is_matrix(v) else [v]


def rows_cols(dims: tuple[int, ...]) -> tuple[int, int]:
    """The SymPy matrix size of a declared shape: a vector x[n] is an n x 1 column."""
    return (dims[0], 1) if len(dims) == 1 else dims


def shaped(dims: tuple[int, ...], items: list[sp.Expr]) -> Value:
    """The value of a declared shape from its entries (row-major): a scalar for ()."""
    return sp.ImmutableMatrix(*rows_cols(dims), items) if dims else items[0]


def component_names(name: str, dims: tuple[int, ...]) -> list[str]:
    """x -> [x]; x[3] -> [x[0], x[1], x[2]]; A[2,2] -> [A[0,0], A[0,1], A[1,0], A[1,1]] (row-major)."""
    if not dims:
        return [name]
    if len(dims) == 1:
        return [f"{name}[{i}]" for i in range(dims[0])]
    return [f"{name}[{i},{j}]" for i in range(dims[0]) for j in range(dims[1])]


def same_shape(a: Value, b: Value) -> tuple[Value, Value]:
    """Two values of one shape: a scalar is broadcast to the other's shape."""
    if is_matrix(a) and is_matrix(b):
        if a.shape != b.shape:
            raise ShapeError(f"{show(shape(a))} and {show(shape(b))}")
        return a, b
    if is_matrix(a):
        return a, filled(shape(a), b)
    return filled(shape(b), a), b


def filled(dims: tuple[int, ...], value: Value) -> sp.ImmutableMatrix:
    """A declared shape filled from a value of that shape, or broadcast from a scalar."""
    rows, cols = rows_cols(dims)
    if not is_matrix(value):
        return sp.ImmutableMatrix(rows, cols, [value] * (rows * cols))
    if value.shape != (rows, cols):
        raise ShapeError(f"expected {show(dims)}, got {show(shape(value))}")
    return sp.ImmutableMatrix(value)


def elementwise(function: Callable[..., sp.Expr], *args: Value) -> Value:
    """Apply a scalar function entry by entry; scalars broadcast against matrices."""
    shapes = {a.shape for a in args if is_matrix(a)}
    if not shapes:
        return function(*args)
    if len(shapes) > 1:
        raise ShapeError("shapes do not match: " + " and ".join(show(shape(a)) for a in args if is_matrix(a)))
    rows, cols = shapes.pop()
    columns = [list(a) if is_matrix(a) else [a] * (rows * cols) for a in args]
    return sp.ImmutableMatrix(rows, cols, [function(*items) for items in zip(*columns)])


def matmul(a: Value, b: Value) -> Value:
    if not (is_matrix(a) and is_matrix(b)):
        raise ShapeError("'@' multiplies matrices or vectors; use '*' with a scalar")
    if a.cols != b.rows:
        raise ShapeError(f"cannot multiply {show(shape(a))} by {show(shape(b))}")
    return simplify_shape(a * b)


def transpose(a: Value) -> Value:
    return a.T if is_matrix(a) else a


def array(items: list[Value]) -> sp.ImmutableMatrix:
    """[a, b, c] is a column vector; [[a, b], [c, d]] a matrix given by rows."""
    if all(not is_matrix(i) for i in items):
        return sp.ImmutableMatrix(len(items), 1, items)
    if all(is_matrix(i) and i.cols == 1 for i in items) and len({i.rows for i in items}) == 1:
        return sp.ImmutableMatrix([list(i) for i in items])
    raise ShapeError("a matrix literal needs rows of numbers of equal length: [[a, b], [c, d]]")


def _square(m: Value, name: str) -> sp.ImmutableMatrix:
    if not is_matrix(m) or m.rows != m.cols:
        raise ShapeError(f"{name}() needs a square matrix, got {show(shape(m))}")
    return m


def _matrix(m: Value, name: str) -> sp.ImmutableMatrix:
    if not is_matrix(m):
        raise ShapeError(f"{name}() needs a vector or a matrix, got a scalar")
    return m


def reduce(name: str, args: list[Value]) -> Value:
    """The linear-algebra functions of the language."""
    a = args[0]
    if name == "sum":
        return sp.Add(*entries(a))
    if name == "norm":
        return sp.sqrt(sp.Add(*[e ** 2 for e in entries(_matrix(a, name))]))
    if name == "normalize":
        return elementwise(lambda e: e / reduce("norm", [a]), _matrix(a, name))
    if name == "trace":
        return _square(a, name).trace()
    if name == "outer":
        return matmul(_matrix(a, name), transpose(_matrix(args[1], name)))
    if name == "diag":
        values = entries(a) if len(args) == 1 else args
        if any(is_matrix(v) for v in values):
            raise ShapeError("diag() takes numbers or one vector")
        return sp.ImmutableMatrix(sp.diag(*values))
    if name == "det":
        m = _square(a, name)
        return m.det() if m.rows <= SYMBOLIC_SIZE_LIMIT else fn.det(m)
    if name == "inv":
        m = _square(a, name)
        if m.rows > SYMBOLIC_SIZE_LIMIT:
            raise ShapeError(f"inv() is expanded symbolically up to {SYMBOLIC_SIZE_LIMIT}x{SYMBOLIC_SIZE_LIMIT}")
        return simplify_shape(m.inv())
    if name == "logdet":
        return fn.logdet(_square(a, name))
    if name == "smin":
        return fn.smin(_matrix(a, name))
    if name == "smax":
        return fn.smax(_matrix(a, name))
    if name == "svdvals":
        m = _matrix(a, name)
        return sp.ImmutableMatrix([fn.svdval(m, i) for i in range(min(m.shape))])
    m = _square(a, name)   # eig
    _symmetric(m)
    return sp.ImmutableMatrix([fn.eigval(m, i) for i in range(m.rows)])


def _symmetric(m: sp.ImmutableMatrix) -> None:
    """eig() reads a symmetric matrix: any other is an error, never silently symmetrised."""
    for i in range(m.rows):
        for j in range(i + 1, m.cols):
            if sp.expand(m[i, j] - m[j, i]) != 0:
                raise ShapeError(f"eig() needs a symmetric matrix: entry [{i + 1}, {j + 1}] is {m[i, j]} but "
                                 f"[{j + 1}, {i + 1}] is {m[j, i]}")

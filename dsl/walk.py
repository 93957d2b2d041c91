"""Walking expressions of the syntax tree: direct children and every sub-expression."""
from __future__ import annotations

from typing import Iterator

from . import ast


def children(expr: ast.Expr) -> tuple[ast.Expr, ...]:
    """The direct sub-expressions of expr."""
    if isinstance(expr, ast.Call):
        return (*expr.args, *(k.value for k in expr.kwargs))
    if isinstance(expr, (ast.BinOp, ast.Compare)):
        return (expr.left, expr.right)
    if isinstance(expr, (ast.Neg, ast.Transpose)):
        return (expr.operand,)
    if isinstance(expr, ast.Array):
        return expr.items
    if isinstance(expr, ast.Index):
        return (expr.operand, *index_bounds(expr))
    return ()


def index_bounds(expr: ast.Index) -> tuple[ast.Expr, ...]:
    """The expressions of an index's positions and slice bounds."""
    found: list[ast.Expr] = []
    for item in expr.items:
        found += [b for b in (item.start, item.stop) if b is not None] if isinstance(item, ast.Slice) else [item]
    return tuple(found)


def walk(expr: ast.Expr) -> Iterator[ast.Expr]:
    """All sub-expressions of expr, itself first."""
    yield expr
    for child in children(expr):
        yield from walk(child)

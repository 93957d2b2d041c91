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
    return ()


def walk(expr: ast.Expr) -> Iterator[ast.Expr]:
    """All sub-expressions of expr, itself first."""
    yield expr
    for child in children(expr):
        yield from walk(child)

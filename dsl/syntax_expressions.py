"""The expression nodes of a `.imp` spec's syntax tree, and the source span every node carries
(dsl.ast, the statements, imports them: `ast.Number` etc.)."""
from __future__ import annotations

from typing import Union

from .records import FrozenRecord, frozen_record


@frozen_record
class Span(FrozenRecord):
    """1-based line/column range of a node in its source text."""

    line: int
    column: int
    end_line: int
    end_column: int


# ---------------------------------------------------------------- expressions
@frozen_record
class Number(FrozenRecord):
    value: float
    text: str
    span: Span


@frozen_record
class Name(FrozenRecord):
    id: str
    span: Span


@frozen_record
class Call(FrozenRecord):
    func: str
    args: tuple["Expr", ...]
    kwargs: tuple["Keyword", ...]
    span: Span
    func_span: Span


@frozen_record
class Keyword(FrozenRecord):
    name: str
    value: "Expr"
    span: Span


@frozen_record
class BinOp(FrozenRecord):
    op: str  # one of + - * / @ ^
    left: "Expr"
    right: "Expr"
    span: Span


@frozen_record
class Neg(FrozenRecord):
    operand: "Expr"
    span: Span


@frozen_record
class Compare(FrozenRecord):
    op: str
    left: "Expr"
    right: "Expr"
    span: Span


@frozen_record
class Transpose(FrozenRecord):
    operand: "Expr"
    span: Span


@frozen_record
class Array(FrozenRecord):
    items: tuple["Expr", ...]
    span: Span


@frozen_record
class Slice(FrozenRecord):
    """`a:b` in an index (either bound may be missing): entries a, ..., b - 1."""
    start: "Expr | None"
    stop: "Expr | None"
    span: Span


@frozen_record
class Index(FrozenRecord):
    """`x[i]`, `A[i, j]`, `x[a:b]`, `A[:, j]`: entries of a vector or matrix (0-based, constant)."""
    operand: "Expr"
    items: tuple["Expr | Slice", ...]
    span: Span


Expr = Union[Number, Name, Call, BinOp, Neg, Compare, Transpose, Array, Index]

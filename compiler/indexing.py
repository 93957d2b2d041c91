"""Indexing vectors and matrices: `x[i]`, `A[i, j]`, `x[a:b]`, `A[:, j]`.

Positions are 0-based constant integers with Python's rules (a negative position counts from the
end, slice bounds are clipped, `a:b` holds a, ..., b - 1). `resolve` turns them into positions
within range and the shape of the result, shared by the scalar and the tensor path: an integer
drops its dimension (`A[1]` is row 1 as a vector), a slice keeps it, a missing index takes the
whole dimension, and a 1 x 1 result is a number.
"""
from __future__ import annotations

from .values import ShapeError, show

Position = int | slice
Item = int | tuple[int | None, int | None]     # an integer, or a slice's (start, stop)


def resolve(dims: tuple[int, ...], items: list[Item]) -> tuple[tuple[Position, ...], tuple[int, ...]]:
    """In-range positions (ints, and slices with both bounds) and the result's shape."""
    if not dims:
        raise ShapeError("a scalar cannot be indexed")
    if len(items) > len(dims):
        raise ShapeError(f"{show(dims)} takes at most {len(dims)} ind{'ex' if len(dims) == 1 else 'ices'}, "
                         f"got {len(items)}")
    positions: list[Position] = []
    shape: list[int] = []
    for size, item in zip(dims, [*items, *[(None, None)] * (len(dims) - len(items))]):
        if isinstance(item, tuple):
            start, stop, _ = slice(*item).indices(size)
            if stop <= start:
                raise ShapeError(f"the slice {_bound(item[0])}:{_bound(item[1])} of a dimension of {size} is empty")
            positions.append(slice(start, stop))
            shape.append(stop - start)
        elif -size <= item < size:
            positions.append(item % size)
        else:
            raise ShapeError(f"index {item} is out of range for a dimension of {size} (0 to {size - 1}, "
                             "or negative from the end)")
    if shape == [1, 1]:
        return tuple(p.start for p in positions), ()
    return tuple(positions), tuple(shape)


def _bound(value: int | None) -> str:
    return "" if value is None else str(value)


def ranges(positions: tuple[Position, ...]) -> list[range]:
    """The indices each position covers."""
    return [range(p.start, p.stop) if isinstance(p, slice) else range(p, p + 1) for p in positions]


def show_position(position: Position, size: int) -> str:
    """Python source of a position in a dimension of `size`: `2`, `1:3`, or `:` for all of it."""
    if not isinstance(position, slice):
        return str(position)
    return ":" if (position.start, position.stop) == (0, size) else f"{position.start}:{position.stop}"

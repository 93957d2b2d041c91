"""A row of a rollout's columns kept as separate blocks (states, noise, estimates, controls), so a
step costs no torch.cat: the generated functions read `s.unbind(-1)` and `s[..., a:b]`, and a read
inside one block is that block (or a view of it)."""
from __future__ import annotations

import torch


class Columns:
    """Blocks (batch x width each, one batch shape) read as if concatenated in their last dimension."""

    def __init__(self, *blocks: torch.Tensor) -> None:
        self.blocks = [b for b in blocks if b.shape[-1]]
        self.starts: list[int] = []
        width = 0
        for block in self.blocks:
            self.starts.append(width)
            width += block.shape[-1]
        self.width = width

    @property
    def shape(self) -> torch.Size:
        return torch.Size((*self.blocks[0].shape[:-1], self.width))

    def __getitem__(self, key: tuple) -> torch.Tensor:
        """`s[..., i]` or `s[..., a:b]`: the block that holds the columns (a view), or else a copy."""
        where = key[-1] if isinstance(key, tuple) and len(key) == 2 and key[0] is Ellipsis else None
        if isinstance(where, int):
            block, start = self.block(where, where + 1)
            if block is not None:
                return block[..., where - start]
        elif isinstance(where, slice) and where.step is None and where.start is not None and where.stop is not None:
            block, start = self.block(where.start, where.stop)
            if block is not None:
                return block if block.shape[-1] == where.stop - where.start else \
                    block[..., where.start - start:where.stop - start]
        return self.tensor()[key]

    def unbind(self, dim: int = -1) -> tuple[torch.Tensor, ...]:
        """The columns one by one (the last dimension only), each block unbound on its own."""
        if dim != -1:
            raise ValueError("Columns unbind only their last dimension")
        return tuple(column for block in self.blocks for column in block.unbind(-1))

    def block(self, start: int, stop: int) -> tuple[torch.Tensor | None, int]:
        """The block that holds columns start..stop - 1, and its first column (None if none does)."""
        for block, first in zip(self.blocks, self.starts):
            if first <= start and stop <= first + block.shape[-1]:
                return block, first
        return None, 0

    def tensor(self) -> torch.Tensor:
        """The columns as one tensor."""
        return torch.cat(self.blocks, -1)

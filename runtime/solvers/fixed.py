"""The fixed-step loop on torchdiffeq's grid: t_i = t0 + i h, the last point moved onto the end
time when there is one; outputs are read off the straight line between grid points."""
from __future__ import annotations

import math

import torch

from .errors import SolverError
from .rk import DenseOutput, RungeKutta


class FixedLoop:
    """Advances one grid step at a time; `end` None steps on without bound (event location)."""

    def __init__(self, rk: RungeKutta, t0: float, y0: torch.Tensor, step_size: float, end: float | None,
                 max_steps: int) -> None:
        self.rk, self.h, self.t0, self.max_steps = rk, step_size, t0, max_steps
        self.t, self.y = t0, y0
        self.last = None if end is None else int(math.ceil((end - t0) / step_size + 1)) - 1
        self.end = end
        self.index = 0

    def _grid(self, i: int) -> float:
        if self.last is not None and i >= self.last:
            return self.end
        return i * self.h + self.t0

    def advance(self) -> DenseOutput:
        """One grid step."""
        if self.index >= self.max_steps or (self.last is not None and self.index >= self.last):
            raise SolverError(f"max_num_steps exceeded ({self.index}>={self.max_steps})")
        t1 = self._grid(self.index + 1) if self.end is not None else self.t + self.h
        step = self.rk.step(self.t, self.y, self.rk.rhs(self.t, self.y), t1 - self.t)
        self.index += 1
        self.t, self.y = t1, step.y1
        return DenseOutput(step, self.rk.tableau, None)

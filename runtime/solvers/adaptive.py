"""The adaptive step-size loop with torchdiffeq's rules (Hairer, Norsett & Wanner, II.4).

Initial step: h0 = 0.01 d0/d1 (1e-6 if either norm is tiny), one Euler probe for d2, then
min(100 h0, (0.01 / max(d1, d2))^(1/order)). Error: the RMS over all entries of the embedded
estimate over atol + rtol max(|y0|, |y1|); accept when <= 1. Next step: dt * min(ifactor,
max(safety / ratio^(1/order), dfactor)), with dfactor = 1 after an accepted step. Outputs are
read off the quartic interpolant of the step that passes them, as torchdiffeq does."""
from __future__ import annotations

import math

import torch

from .errors import SolverError
from .rk import DenseOutput, RungeKutta, Step

SAFETY, IFACTOR, DFACTOR = 0.9, 10.0, 0.2


def _rms(x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(x) / max(1, x.numel()) ** 0.5


class AdaptiveLoop:
    """Advances one accepted step at a time; `t`, `y`, `f` are the last accepted point."""

    def __init__(self, rk: RungeKutta, t0: float, y0: torch.Tensor, rtol: float, atol: float,
                 max_steps: int) -> None:
        self.rk, self.rtol, self.atol, self.max_steps = rk, rtol, atol, max_steps
        self.t, self.y = t0, y0
        self.f = rk.rhs(t0, y0)
        self.dt = self.initial_step()
        self.steps = 0

    @torch.no_grad()
    def initial_step(self) -> float:
        """The first step size (no gradient flows through step sizes)."""
        y0, f0 = self.y.detach(), self.f.detach()
        scale = y0.abs() * self.rtol + self.atol
        d0, d1 = torch.stack((_rms(y0 / scale), _rms(f0 / scale))).tolist()
        h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
        f1 = self.rk.rhs(self.t + h0, y0 + h0 * f0)
        d2 = float(_rms((f1 - f0) / scale)) / h0
        if d1 <= 1e-15 and d2 <= 1e-15:
            h1 = max(1e-6, h0 * 1e-3)
        else:
            h1 = (0.01 / max(d1, d2)) ** (1.0 / self.rk.tableau.order)
        return min(100 * h0, h1)

    def next_step(self, dt: float, ratio: float) -> float:
        if ratio == 0.0:
            return dt * IFACTOR
        floor = 1.0 if ratio < 1 else DFACTOR
        return dt * min(IFACTOR, max(SAFETY / ratio ** (1.0 / self.rk.tableau.order), floor))

    def advance(self) -> DenseOutput:
        """Take steps until one is accepted; return its dense output."""
        while True:
            if self.steps >= self.max_steps:
                raise SolverError(f"max_num_steps exceeded ({self.steps}>={self.max_steps})")
            self.steps += 1
            dt = self.dt
            if not self.t + dt > self.t:
                raise SolverError(f"underflow in dt {dt}")
            step: Step = self.rk.step(self.t, self.y, self.f, dt)
            ratio = self.rk.error_ratio(step, self.rtol, self.atol)
            if not math.isfinite(ratio):
                raise SolverError(f"non-finite values in the state near t = {self.t:.6g}")
            self.dt = self.next_step(dt, ratio)
            if ratio <= 1.0:
                self.t, self.y, self.f = step.t1, step.y1, step.f1
                return DenseOutput(step, self.rk.tableau, step.f1)

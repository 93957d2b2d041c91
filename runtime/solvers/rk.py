"""One explicit Runge-Kutta step and its dense output, with the tableau as Python floats.

A stage is `y0 + sum_j (dt * a_ij) * k_j`: scalar-times-tensor additions only, so a step records
a handful of operations besides the right-hand side's own. The step size is a Python float
(decided on the host), hence carries no gradient: the reverse pass is that of the discrete map."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .tableau import Tableau

RHS = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def combine(base: torch.Tensor, weights: tuple[float, ...], ks: list[torch.Tensor], scale: float) -> torch.Tensor:
    """base + scale * sum(w_j k_j), skipping zero weights."""
    out = base
    for w, k in zip(weights, ks):
        if w != 0.0:
            out = torch.add(out, k, alpha=scale * w)
    return out


@dataclass
class Step:
    """A computed step from t0 to t0 + dt: its stages and end point (not yet accepted)."""

    t0: float
    dt: float
    y0: torch.Tensor
    y1: torch.Tensor
    ks: list[torch.Tensor]    # stage derivatives; ks[0] = f(t0, y0)

    @property
    def t1(self) -> float:
        return self.t0 + self.dt

    @property
    def f1(self) -> torch.Tensor:
        """f(t1, y1) for first-same-as-last methods."""
        return self.ks[-1]


def _uncounted(t: torch.Tensor, s: torch.Tensor, count: int) -> None:
    """What a right-hand side without an `evaluated` method is told of its evaluations: nothing."""


class RungeKutta:
    """Takes steps of one tableau; `time` makes the scalar time tensors the right-hand side expects.

    A right-hand side with an `evaluated(t, s, count)` method (runtime.ode_model.Dynamics) is called
    through its raw `function`, and told of a step's evaluations once per step, at its last stage."""

    def __init__(self, tableau: Tableau, func: RHS, like: torch.Tensor) -> None:
        self.tableau = tableau
        counted = getattr(func, "evaluated", None)
        if counted is not None:
            self.func = func.function
        else:
            self.func = func.forward if isinstance(func, torch.nn.Module) else func   # no module-call overhead
        self.evaluated: Callable[[torch.Tensor, torch.Tensor, int], None] = counted or _uncounted
        self.dtype, self.device = like.dtype, like.device
        if tableau.error is not None:
            self.error_weights = torch.tensor(tableau.error, dtype=like.dtype, device=like.device)

    def time(self, t: float) -> torch.Tensor:
        return torch.scalar_tensor(t, dtype=self.dtype, device=self.device)

    def rhs(self, t: float, y: torch.Tensor) -> torch.Tensor:
        """f(t, y), counted."""
        time = self.time(t)
        self.evaluated(time, y, 1)
        return self.func(time, y)

    def step(self, t0: float, y0: torch.Tensor, f0: torch.Tensor, dt: float) -> Step:
        """All stages of one step from (t0, y0) with f0 = f(t0, y0)."""
        tab = self.tableau
        ks = [f0]
        stage, time = y0, None
        for c, row in zip(tab.c, tab.a):
            stage = combine(y0, row, ks, dt)
            time = self.time(t0 + dt if c == 1.0 else t0 + c * dt)
            ks.append(self.func(time, stage))
        if time is not None:
            self.evaluated(time, stage, len(tab.c))
        y1 = stage if tab.fsal else combine(y0, tab.b, ks, dt)
        return Step(t0, dt, y0, y1, ks)

    @torch.no_grad()
    def error_ratio(self, step: Step, rtol: float, atol: float) -> float:
        """The RMS of the embedded error estimate dt * sum(e_j k_j) over atol + rtol * max(|y0|, |y1|)
        (one host read; dt is factored out of the norm)."""
        error = torch.stack(step.ks, -1) @ self.error_weights
        bound = torch.maximum(step.y0.abs(), step.y1.abs()).add_(atol / rtol)
        norm = float(torch.linalg.vector_norm(error.div_(bound)))
        return abs(step.dt) * norm / (rtol * max(1, error.numel()) ** 0.5)


class DenseOutput:
    """The quartic interpolant of an accepted step (from y0, y1, the midpoint and f0, f1), or the
    straight line between y0 and y1 for fixed-step methods (as torchdiffeq interpolates them)."""

    def __init__(self, step: Step, tableau: Tableau, f1: torch.Tensor | None) -> None:
        self.step, self.f1, self.tableau = step, f1, tableau
        self._mid: torch.Tensor | None = None
        self._coefficients: list[torch.Tensor] | None = None

    @property
    def mid(self) -> torch.Tensor | None:
        """The state at the step's midpoint, made on first use (most steps pass no output time)."""
        if self._mid is None and self.tableau.mid is not None:
            self._mid = combine(self.step.y0, self.tableau.mid, self.step.ks, self.step.dt)
        return self._mid

    def at(self, t: float) -> torch.Tensor:
        """The state at t in [t0, t1], as a differentiable combination of the step's tensors."""
        s = self.step
        x = (t - s.t0) / s.dt
        if x == 1.0:
            return s.y1
        if x == 0.0:
            return s.y0
        if self.tableau.mid is None:
            return torch.add(s.y0, s.y1 - s.y0, alpha=x)
        x2, x3, x4 = x * x, x ** 3, x ** 4
        out = s.y0 * (1 - 11 * x2 + 18 * x3 - 8 * x4)
        out = torch.add(out, s.y1, alpha=-5 * x2 + 14 * x3 - 8 * x4)
        out = torch.add(out, self.mid, alpha=16 * x2 - 32 * x3 + 16 * x4)
        out = torch.add(out, s.ks[0], alpha=s.dt * (x - 4 * x2 + 5 * x3 - 2 * x4))
        return torch.add(out, self.f1, alpha=s.dt * (x2 - 3 * x3 + 2 * x4))

    @torch.no_grad()
    def fast(self, t: float) -> torch.Tensor:
        """The same value without a graph, by Horner's rule on cached coefficients (root finding)."""
        s = self.step
        x = (t - s.t0) / s.dt
        if self.tableau.mid is None:
            return torch.add(s.y0, s.y1 - s.y0, alpha=x).detach()
        if self._coefficients is None:   # the midpoint made here has no graph: not kept for `at`
            ym = self._mid if self._mid is not None else combine(s.y0, self.tableau.mid, s.ks, s.dt)
            y0, y1, ym = s.y0.detach(), s.y1.detach(), ym.detach()
            f0, f1 = s.ks[0].detach() * s.dt, self.f1.detach() * s.dt
            self._coefficients = [2 * (f1 - f0) - 8 * (y1 + y0) + 16 * ym,
                                  5 * f0 - 3 * f1 + 18 * y0 + 14 * y1 - 32 * ym,
                                  f1 - 4 * f0 - 11 * y0 - 5 * y1 + 16 * ym, f0, y0]
        out = self._coefficients[0]
        for c in self._coefficients[1:]:
            out = torch.add(c, out, alpha=x)
        return out

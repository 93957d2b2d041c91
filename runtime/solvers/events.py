"""Event location on a step's dense output, and the event time's gradient by the implicit
function theorem.

The root of g(t, y(t)) is found on the interpolant of the step that crosses zero (Illinois
regula falsi, no graph). At that root t*, the returned time and state carry the gradient of

    dt*/dθ = -(∂g/∂y · ∂y/∂θ + ∂g/∂θ) / (∂g/∂t + ∂g/∂y · f),    dy(t*)/dθ = ∂y/∂θ + f dt*/dθ,

written as t* - (g - g.detach()) / slope and y + f (t* - t*.detach()): values unchanged,
derivatives exact (the same rerouting torchdiffeq's odeint_event does in its backward)."""
from __future__ import annotations

from typing import Callable

import torch

from ..errors import RunError
from .rk import DenseOutput, RungeKutta

Event = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MAX_ITERATIONS = 100


def locate(dense: DenseOutput, event: Event, rk: RungeKutta, g0: float, g1: float) -> float:
    """A root of event(t, interpolant(t)) in the step, given g0 < 0 <= g1 at its ends."""
    a, b = dense.step.t0, dense.step.t0 + dense.step.dt
    if g1 == 0.0:
        return b
    ga, gb, side = g0, g1, 0
    c = b
    for _ in range(MAX_ITERATIONS):
        previous = c
        c = b - gb * (b - a) / (gb - ga)
        if not a < c < b:
            c = 0.5 * (a + b)
        with torch.no_grad():
            gc = float(event(rk.time(c), dense.fast(c)))
        if gc == 0.0 or abs(c - previous) <= 4e-16 * max(1.0, abs(c)) or b - a <= 4e-16 * max(1.0, abs(c)):
            return c
        if gc < 0:
            a, ga = c, gc
            gb, side = (gb * 0.5, -1) if side == -1 else (gb, -1)
        else:
            b, gb = c, gc
            ga, side = (ga * 0.5, 1) if side == 1 else (ga, 1)
    return c


def reroute(rk: RungeKutta, event: Event, t_hat: float, y_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The event time and state at the located root t_hat, carrying their implicit gradients."""
    t = rk.time(t_hat)
    if not torch.is_grad_enabled():
        return t, y_hat
    g = event(t, y_hat)
    if not (g.requires_grad or y_hat.requires_grad):
        return t, y_hat
    with torch.no_grad():
        f = rk.rhs(t_hat, y_hat.detach())
    tt, yy = t.clone().requires_grad_(True), y_hat.detach().requires_grad_(True)
    with torch.enable_grad():
        gt, gy = torch.autograd.grad(event(tt, yy), (tt, yy), allow_unused=True)
    slope = (0.0 if gt is None else float(gt)) + (0.0 if gy is None else float((gy * f).sum()))
    if not abs(slope) > 0.0:
        raise RunError(f"the stop condition is met tangentially at t = {t_hat:.6g}: its time has no derivative",
                       "check that the condition crosses its threshold, rather than touching it")
    t_event = t - (g - g.detach()).reshape(()) / slope
    return t_event, y_hat + f * (t_event - t_hat)

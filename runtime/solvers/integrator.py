"""The plain-torch tier's entry points: outputs at given times, or integration to an event."""
from __future__ import annotations

from typing import Callable

import torch

from .adaptive import AdaptiveLoop
from .events import Event, locate, reroute
from .fixed import FixedLoop
from .rk import RungeKutta
from .tableau import TABLEAUS

RHS = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _loop(method: str, func: RHS, y0: torch.Tensor, t0: float, end: float | None, *, rtol: float, atol: float,
          step_size: float | None, max_steps: int) -> AdaptiveLoop | FixedLoop:
    rk = RungeKutta(TABLEAUS[method], func, y0)
    if rk.tableau.adaptive:
        return AdaptiveLoop(rk, t0, y0, rtol, atol, max_steps)
    return FixedLoop(rk, t0, y0, float(step_size), end, max_steps)


def odeint(func: RHS, y0: torch.Tensor, times: torch.Tensor, method: str = "dopri5", *, rtol: float = 1e-7,
           atol: float = 1e-9, step_size: float | None = None, max_steps: int = 2 ** 31 - 1) -> torch.Tensor:
    """States at `times` (increasing; the first is the initial time): len(times) x y0.shape.
    Gradients flow by backpropagation through the steps."""
    grid = [float(t) for t in times.detach().cpu()]
    loop = _loop(method, func, y0, grid[0], grid[-1], rtol=rtol, atol=atol, step_size=step_size,
                 max_steps=max_steps)
    outputs, dense = [y0], None
    for t in grid[1:]:
        while t > loop.t:
            dense = loop.advance()
        outputs.append(dense.at(t))
    return torch.stack(outputs)


def odeint_until(func: RHS, y0: torch.Tensor, t0: float, event: Event, method: str = "dopri5", *,
                 rtol: float = 1e-7, atol: float = 1e-9, step_size: float | None = None,
                 max_steps: int = 2 ** 31 - 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrate until event(t, y) (a scalar, negative at t0) reaches zero; return the event time
    and the state there, both differentiable (implicit function theorem)."""
    loop = _loop(method, func, y0, t0, None, rtol=rtol, atol=atol, step_size=step_size, max_steps=max_steps)
    rk = loop.rk
    with torch.no_grad():
        g0 = float(event(rk.time(t0), y0))
    while True:
        dense = loop.advance()
        with torch.no_grad():
            g1 = float(event(rk.time(loop.t), dense.step.y1))
        if g1 >= 0:
            break
        g0 = g1
    t_hat = locate(dense, event, rk, g0, g1)
    return reroute(rk, event, t_hat, dense.at(t_hat))

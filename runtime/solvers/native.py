"""The native tier at run time: one torch.autograd.Function whose forward is the generated C solve
and whose backward is the generated C reverse pass, and the solver object the ODE model calls.

All params and net weights travel as one flat float64 vector `theta` (compiler.c_codegen's order:
params, then each net's nn.Linear weights and biases); torch.cat carries its gradient back to them.
A stop event is located in C; the event time's gradient (implicit function theorem) is attached
in torch by runtime.solvers.events.reroute, as on the plain-torch tier."""
from __future__ import annotations

from typing import Callable

import torch

from ...compiler.c_codegen import CSource
from .errors import SolverError
from .events import reroute
from .native_build import load
from .native_c import NativeLibrary, SolveInfo
from .rk import RungeKutta
from .tableau import TABLEAUS


class NativeSolve(torch.autograd.Function):
    """outputs = solve(y0, theta); `settings` = (library, times, rtol, atol, max_steps, until, report,
    watch, every): see NativeLibrary.solve."""

    @staticmethod
    def forward(ctx, settings: tuple, y0: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        library, times, rtol, atol, max_steps, until, report, watch, every = settings
        y0, theta = y0.detach().contiguous(), theta.detach().contiguous()
        keep = any(ctx.needs_input_grad)
        out, tape, info = library.solve(theta, y0, times, rtol=rtol, atol=atol, max_steps=max_steps, until=until,
                                        watch=watch, every=every, keep=keep)
        report.append(info)
        if keep:
            ctx.library, ctx.tape = library, tape
            ctx.save_for_backward(y0, theta)
        else:
            tape.free()
        return out

    @staticmethod
    def backward(ctx, gout: torch.Tensor):
        y0, theta = ctx.saved_tensors
        gy0, gth = ctx.library.reverse(ctx.tape, theta, gout, y0)
        return None, gy0, gth


class NativeSolver:
    """The native solve of one compiled problem (its dynamics module holds it as `native`)."""

    def __init__(self, source: CSource, params: torch.nn.ParameterList, nets: torch.nn.ModuleList) -> None:
        self.library = NativeLibrary(load(source), source.states, source.theta)
        self.params = [params[j] for j in source.params]
        self.nets = [nets[k] for k in source.nets]

    def theta(self) -> torch.Tensor:
        """The entries of the params the dynamics use, then their nets' weights, as one vector."""
        parts = [p.reshape(-1) for p in self.params]
        parts += [w.reshape(-1) for net in self.nets for w in net.parameters()]
        if not parts:
            return torch.zeros(0, dtype=torch.float64)
        return torch.cat(parts)

    def _run(self, func, s0: torch.Tensor, times: list[float], options, until: bool,
             every: int) -> tuple[torch.Tensor, SolveInfo]:
        """One solve; every `every` evaluations `func.checkpoint` looks at it (as it does on each
        evaluation of the other tiers)."""
        report: list[SolveInfo] = []

        def watch(t: float, s: torch.Tensor) -> None:
            func.checkpoint(torch.tensor(t, dtype=torch.float64), s, every)

        theta = self.theta()
        if not bool(torch.isfinite(theta).all()):   # the kernel (-ffast-math, clamped tanh) would not propagate them
            raise SolverError("non-finite values in the params or net weights the dynamics read")
        settings = (self.library, times, float(options.rtol), float(options.atol), int(options.max_steps), until,
                    report, watch, every)
        out = NativeSolve.apply(settings, s0, theta)
        func.evaluations += report[0].evaluations
        return out, report[0]

    def integrate(self, func, s0: torch.Tensor, times: torch.Tensor, options, every: int = 1000) -> torch.Tensor:
        """States at `times` (len(times) x s0.shape), differentiable in s0 and theta."""
        return self._run(func, s0, [float(t) for t in times.detach().cpu()], options, False, every)[0]

    def integrate_until(self, func, s0: torch.Tensor, t0: float, event: Callable, options,
                        every: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
        """The event time and state, with the implicit function theorem's gradient of the time."""
        out, info = self._run(func, s0, [t0], options, True, every)
        rk = RungeKutta(TABLEAUS[options.method], func, s0)
        return reroute(rk, event, info.event_time, out[0])

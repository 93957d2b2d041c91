"""The ODE layer: torchdiffeq integration with the adjoint or direct backprop, and events."""
from __future__ import annotations

from typing import Callable

import torch
from torchdiffeq import odeint, odeint_adjoint, odeint_event

from ..dsl.options import FIXED_STEP_METHODS, OdeOptions
from .errors import RunError
from .solvers.errors import SolverError
from .solvers.integrator import odeint as torch_odeint, odeint_until as torch_odeint_until


def _solver_kwargs(options: OdeOptions) -> dict:
    if options.method in FIXED_STEP_METHODS:
        solver_options = {"step_size": options.step_size}
    else:
        solver_options = {"max_num_steps": options.max_steps}
    return {"rtol": options.rtol, "atol": options.atol, "method": options.method, "options": solver_options}


def _failure(err: Exception, options: OdeOptions, func: torch.nn.Module) -> RunError:
    text = str(err) or type(err).__name__
    last = getattr(func, "last", None)
    where = ""
    if last is not None:
        t, s = last
        first = s.detach().reshape(-1, s.shape[-1])[0]
        where = f" at t = {float(t.detach()):.6g} (state {', '.join(f'{float(v):.4g}' for v in first[:8])})"
    if "max_num_steps" in text:
        return RunError(f"the ODE solver needed more than {options.max_steps} steps{where} ({options.method}, "
                        f"rtol={options.rtol}, atol={options.atol})",
                        "the dynamics may be stiff or blow up: try solve ode(max_steps=...), looser tolerances, "
                        "a fixed-step method (method=rk4, step_size=...) or a shorter horizon")
    if "underflow" in text:
        return RunError(f"the ODE solver's step size underflowed{where} ({options.method})",
                        "the solution may blow up in finite time: check the dynamics or shorten the horizon")
    return RunError(f"the ODE solver failed{where}: {text}")


def _torch_tier_kwargs(options: OdeOptions) -> dict:
    return {"method": options.method, "rtol": options.rtol, "atol": options.atol, "step_size": options.step_size,
            "max_steps": options.max_steps}


def integrate(func: torch.nn.Module, s0: torch.Tensor, times: torch.Tensor, options: OdeOptions,
              adjoint: bool | None = None, backend: str = "torchdiffeq") -> torch.Tensor:
    """States at `times` (times x batch x states). The adjoint (eq. 2.40/2.47) when asked;
    `backend="torch"` runs the plain-torch tier (runtime.solvers) for backprop solves."""
    use_adjoint = bool(options.adjoint if adjoint is None else adjoint)
    solver = odeint_adjoint if use_adjoint else odeint
    try:
        if backend == "torch" and not use_adjoint:   # solver tier hook (issue 16)
            return torch_odeint(func, s0, times, **_torch_tier_kwargs(options))
        return solver(func, s0, times, **_solver_kwargs(options))
    except (AssertionError, SolverError) as err:
        raise _failure(err, options, func) from None


def integrate_until(func: torch.nn.Module, s0: torch.Tensor, event: Callable, max_time: float,
                    options: OdeOptions, adjoint: bool | None = None,
                    backend: str = "torchdiffeq") -> tuple[torch.Tensor, torch.Tensor]:
    """Integrate until `event(t, s)` crosses zero from below, or until `max_time`.

    Returns the event time and the state there; both carry gradients (the event time's through
    the implicit function theorem, as torchdiffeq's odeint_event provides)."""
    t0 = torch.zeros((), dtype=s0.dtype, device=s0.device)
    if float(event(t0, s0)) >= 0:
        raise RunError("the stop condition already holds at t = 0", "the event must become true during the run")

    def bounded(t, s):
        return torch.maximum(event(t, s), t - max_time)

    use_adjoint = bool(options.adjoint if adjoint is None else adjoint)
    interface = odeint_adjoint if use_adjoint else odeint
    try:
        if backend == "torch" and not use_adjoint:   # solver tier hook (issue 16)
            return torch_odeint_until(func, s0, 0.0, bounded, **_torch_tier_kwargs(options))
        t_event, solution = odeint_event(func, s0, t0, event_fn=bounded, odeint_interface=interface,
                                         **_solver_kwargs(options))
    except (AssertionError, SolverError) as err:
        raise _failure(err, options, func) from None
    return t_event, solution[-1]

"""The ODE layer: torchdiffeq integration with the adjoint or direct backprop, and events."""
from __future__ import annotations

import time
from typing import Callable

import torch

from ..dsl.options import FIXED_STEP_METHODS, OdeOptions
from .errors import RunError, SolverFailure
from .solvers.errors import SolverError
from .solvers.integrator import odeint as torch_odeint, odeint_until as torch_odeint_until


def _solver_kwargs(options: OdeOptions) -> dict:
    if options.method in FIXED_STEP_METHODS:
        solver_options = {"step_size": options.step_size}
    else:
        solver_options = {"max_num_steps": options.max_steps}
    return {"rtol": options.rtol, "atol": options.atol, "method": options.method, "options": solver_options}


# right-hand-side evaluations per step of each adaptive method (for the evaluation budget)
STAGES = {"dopri5": 6, "dopri8": 13, "bosh3": 3, "fehlberg2": 3, "adaptive_heun": 2}
# where each method's stability region meets the negative real axis (|h*lambda| beyond it is unstable)
STABILITY = {"dopri5": 3.3, "dopri8": 6.0, "bosh3": 2.5, "fehlberg2": 2.0, "adaptive_heun": 2.0}
STABILITY_LIMITED = 0.6     # h*rho above this share of the boundary: the step is set by stability, not accuracy
STIFF_SHARE = 0.25          # a stiff solve may take at most this share of max_steps
STIFF_RATIO = 100.0         # |lambda_max| times the solution's own time scale |s|/|f|: fast modes, slow solution
CHECK_EVERY = 1000          # evaluations between two looks at the pace of a solve
PROJECT_AFTER = 0.05        # project the total cost once this share of the budget is spent
REPORT_AFTER, REPORT_EVERY = 5.0, 5.0   # seconds: a long solve reports its progress


def stiffness_ratio(function: Callable, t: torch.Tensor, s: torch.Tensor, rho: float) -> float:
    """rho times the time scale on which the solution itself moves (|s| / |f(s)|). Near 1 when the
    fastest mode is the motion itself (a blow-up, a fast transient); large when a fast mode has
    decayed and only limits the step: stiffness."""
    with torch.no_grad():
        rate = float(function(t, s).norm())
    return rho * float(s.norm()) / rate if rate > 0 else float("inf")


def spectral_radius(function: Callable, t: torch.Tensor, s: torch.Tensor, iterations: int = 6) -> float:
    """|largest eigenvalue| of df/ds at (t, s), by power iteration on finite-difference
    Jacobian-vector products (a batch is one block-diagonal system). No random numbers are drawn."""
    with torch.no_grad():
        f0 = function(t, s)
        v = torch.cos(1.3 * torch.arange(s.numel(), dtype=s.dtype, device=s.device) + 0.7).reshape(s.shape)
        rho = 0.0
        for _ in range(iterations):
            v = v / v.norm()
            eps = 1e-7 * (1.0 + float(s.norm()))
            jv = (function(t, s + eps * v) - f0) / eps
            rho = float(jv.norm())
            if not rho > 0 or rho == float("inf"):
                return 0.0 if not rho > 0 else rho
            v = jv
        return rho


class SolveWatch:
    """Watches one solve through its right-hand-side evaluations. An explicit adaptive solve whose
    step is held at the edge of its stability region (h * |lambda_max| near the boundary) while the
    solution moves slowly (stiffness), and whose pace projects beyond a quarter of max_steps, or any solve whose pace projects beyond
    max_steps, is stopped early with a RunError naming stiffness; a solve that runs for seconds
    reports how far it got."""

    def __init__(self, options: OdeOptions, t0: float, span: float, report: Callable[[str], None] | None) -> None:
        self.options, self.t0, self.span, self.report = options, t0, abs(span), report
        self.budget = options.max_steps * STAGES[options.method] if options.method in STAGES else None
        self.evaluations, self.reach = 0, 0.0
        self.checked_at = (0, 0.0)            # (evaluations, reach) at the previous look
        self.limited = 0                      # consecutive looks that found the step stability-limited
        self.h_rho: float | None = None       # step x |largest eigenvalue| at the latest look
        self.start = self.reported = time.perf_counter()

    def observe(self, t: torch.Tensor, s: torch.Tensor | None = None, function: Callable | None = None,
                count: int = 1) -> None:
        """Count `count` evaluations, the last at (t, s); look at the pace every CHECK_EVERY."""
        before, self.evaluations = self.evaluations, self.evaluations + count
        if before // CHECK_EVERY == self.evaluations // CHECK_EVERY:   # no multiple of CHECK_EVERY passed
            return
        self.reach = max(self.reach, abs(float(t.detach()) - self.t0))
        if self.budget is not None:
            self.check_pace(t, s, function)
        now = time.perf_counter()
        if self.report is not None and now - self.start > REPORT_AFTER and now - self.reported > REPORT_EVERY:
            self.reported = now
            self.report(f"solving the ODE: t = {self.t0 + self.reach:.4g} of {self.t0 + self.span:.4g}, "
                        f"{self.evaluations} evaluations, {now - self.start:.0f} s")

    def check_pace(self, t: torch.Tensor, s: torch.Tensor | None, function: Callable | None) -> None:
        method = self.options.method
        projected = self.evaluations * self.span / max(self.reach, 1e-300)   # evaluations for the whole solve
        evaluations, reach = self.checked_at
        self.checked_at = (self.evaluations, self.reach)
        step = (self.reach - reach) * STAGES[method] / (self.evaluations - evaluations)   # mean step since
        if s is not None and function is not None and step > 0:
            t, s = t.detach(), s.detach()
            rho = spectral_radius(function, t, s)
            h_rho = self.h_rho = step * rho
            stiff = h_rho >= STABILITY_LIMITED * STABILITY[method] and stiffness_ratio(function, t, s, rho) >= STIFF_RATIO
            self.limited = self.limited + 1 if stiff else 0
            if self.limited >= 2 and projected > STIFF_SHARE * self.budget:
                raise self.stiff(projected, h_rho)
        if self.evaluations >= PROJECT_AFTER * self.budget and projected > self.budget:
            raise self.not_progressing(projected)

    def reached(self, projected: float) -> str:
        return (f"after {self.evaluations} evaluations of the dynamics it reached t = {self.t0 + self.reach:.4g} "
                f"of {self.t0 + self.span:.4g}; at this pace it needs about "
                f"{projected / STAGES[self.options.method]:.2g} steps")

    def not_progressing(self, projected: float) -> SolverFailure:
        """The pace projects beyond max_steps: stiffness, unless the latest look found the step well
        inside the method's stability region (then accuracy holds it: a low order for the tolerance)."""
        o = self.options
        head = (f"the ODE solve is not progressing: {self.reached(projected)}, more than max_steps={o.max_steps} "
                f"({o.method}, rtol={o.rtol:g}, atol={o.atol:g}). ")
        if self.limited == 0 and self.h_rho is not None:
            return SolverFailure(
                head + f"The step is held by accuracy, not stability (step x |largest eigenvalue of the Jacobian| = "
                f"{self.h_rho:.2g}, inside {o.method}'s stability region of {STABILITY[o.method]:g}): the method's "
                "order is low for these tolerances",
                "use a higher-order method (solve ode(method=dopri5) or dopri8), loosen rtol/atol, shorten the "
                "horizon, or raise solve ode(max_steps=...) to let it run")
        return SolverFailure(
            head + "The step size has collapsed: the dynamics are probably stiff",
            "loosen rtol/atol, use a fixed-step method (method=rk4, step_size=...) with a step the dynamics "
            "allow, rescale the states or time so their rates are comparable, shorten the horizon, or raise "
            "solve ode(max_steps=...) to let it run")

    def stiff(self, projected: float, h_rho: float) -> SolverFailure:
        o = self.options
        reached = self.reached(projected)
        return SolverFailure(
            f"the dynamics are stiff: {reached} ({o.method}). The step is held by stability, not accuracy: "
            f"step x |largest eigenvalue of the Jacobian| = {h_rho:.2g}, at the edge of {o.method}'s stability "
            f"region ({STABILITY[o.method]:g}), so looser tolerances will not help",
            "impsolve has no implicit (stiff) solver yet: rescale the states or time so their rates are "
            "comparable, shorten the horizon, or let it run with solve ode(max_steps=...) of at least "
            f"{projected / STAGES[o.method] / STIFF_SHARE:.2g} (a stiff solve may use a quarter of max_steps)")


def watch(func: torch.nn.Module, options: OdeOptions, t0: float, span: float) -> None:
    """Attach a SolveWatch to the dynamics module (it calls `func.watch.observe(t)`), when it has one."""
    if hasattr(func, "watch"):
        func.watch = SolveWatch(options, t0, span, getattr(func, "report", None))


def step_warnings(options: OdeOptions, span: float, what: str = "the horizon") -> list[str]:
    """What a fixed step cannot honour over `span` (the horizon or the stop's time limit): a step
    larger than the span is clipped to it, so the solve takes one step of `span`."""
    if options.method in FIXED_STEP_METHODS and options.step_size is not None and options.step_size > span:
        return [f"solve ode: step_size={options.step_size:g} is larger than {what} {span:g}: one step of {span:g} "
                f"is taken ({options.method}); use a step_size well below {span:g}"]
    return []


def _failure(err: Exception, options: OdeOptions, func: torch.nn.Module) -> SolverFailure:
    text = str(err) or type(err).__name__
    last = getattr(func, "last", None)
    where = ""
    if last is not None:
        t, s = last
        first = s.detach().reshape(-1, s.shape[-1])[0]
        where = f" at t = {float(t.detach()):.6g} (state {', '.join(f'{float(v):.4g}' for v in first[:8])})"
    if "max_num_steps" in text:
        return SolverFailure(f"the ODE solver needed more than {options.max_steps} steps{where} ({options.method}, "
                             f"rtol={options.rtol}, atol={options.atol})",
                             "the dynamics may be stiff or blow up: try solve ode(max_steps=...), looser tolerances, "
                             "a fixed-step method (method=rk4, step_size=...) or a shorter horizon")
    if "underflow" in text:
        return SolverFailure(f"the ODE solver's step size underflowed{where} ({options.method})",
                             "the solution may blow up in finite time: check the dynamics or shorten the horizon")
    return SolverFailure(f"the ODE solver failed{where}: {text}")


def _torch_tier_kwargs(options: OdeOptions) -> dict:
    return {"method": options.method, "rtol": options.rtol, "atol": options.atol, "step_size": options.step_size,
            "max_steps": options.max_steps}


def _tier(func: torch.nn.Module, backend: str, use_adjoint: bool) -> str:
    """The tier that runs a solve: the native one when asked and `func.native` holds its solver,
    else the plain-torch one for a native or torch backprop solve, else torchdiffeq."""
    if use_adjoint or backend not in ("torch", "native"):
        return "torchdiffeq"
    return "native" if backend == "native" and getattr(func, "native", None) is not None else "torch"


def integrate(func: torch.nn.Module, s0: torch.Tensor, times: torch.Tensor, options: OdeOptions,
              adjoint: bool | None = None, backend: str = "torchdiffeq") -> torch.Tensor:
    """States at `times` (times x batch x states). The adjoint (eq. 2.40/2.47) when asked;
    `backend="torch"` runs the plain-torch tier (runtime.solvers) for backprop solves, `"native"`
    the generated C solver that `func.native` holds (the plain-torch tier when it holds none)."""
    use_adjoint = bool(options.adjoint if adjoint is None else adjoint)
    watch(func, options, float(times[0]), float(times[-1] - times[0]))
    try:
        tier = _tier(func, backend, use_adjoint)
        if tier == "native":
            return func.native.integrate(func, s0, times, options, every=CHECK_EVERY)
        if tier == "torch":
            return torch_odeint(func, s0, times, **_torch_tier_kwargs(options))
        import torchdiffeq   # here: its import (scipy.integrate, 0.6 s) is paid only by its tier
        solver = torchdiffeq.odeint_adjoint if use_adjoint else torchdiffeq.odeint
        return solver(func, s0, times, **_solver_kwargs(options))
    except (AssertionError, SolverError) as err:
        raise _failure(err, options, func) from None


def _check_event_start(value: float, condition: str) -> None:
    """An event is a crossing of zero from below during the run: a RunError when the event
    function at t = 0 is already on or past zero (on it: the two sides of the condition are equal,
    which a strict '<' or '>' does not count as holding, but no crossing can be located from there)."""
    if value < 0:
        return
    named = f"the stop condition '{condition}'" if condition else "the stop condition"
    if value > 0:
        raise RunError(f"{named} already holds at t = 0", "the event must become true during the run")
    raise RunError(f"{named} is on its boundary at t = 0 (its two sides are equal): an event is located as "
                   "a crossing from the side where it does not hold", "start the states off the boundary")


def integrate_until(func: torch.nn.Module, s0: torch.Tensor, event: Callable, max_time: float,
                    options: OdeOptions, adjoint: bool | None = None,
                    backend: str = "torchdiffeq", condition: str = "") -> tuple[torch.Tensor, torch.Tensor]:
    """Integrate until `event(t, s)` crosses zero from below, or until `max_time`; `condition` is
    the stop condition's text, for the error when it holds from the start.

    Returns the event time and the state there; both carry gradients (the event time's through
    the implicit function theorem, as torchdiffeq's odeint_event provides)."""
    t0 = torch.zeros((), dtype=s0.dtype, device=s0.device)
    _check_event_start(float(event(t0, s0).detach()), condition)

    def bounded(t, s):
        return torch.maximum(event(t, s), t - max_time)

    use_adjoint = bool(options.adjoint if adjoint is None else adjoint)
    watch(func, options, 0.0, max_time)
    try:
        tier = _tier(func, backend, use_adjoint)
        if tier == "native":
            return func.native.integrate_until(func, s0, 0.0, bounded, options, every=CHECK_EVERY)
        if tier == "torch":
            return torch_odeint_until(func, s0, 0.0, bounded, **_torch_tier_kwargs(options))
        import torchdiffeq
        interface = torchdiffeq.odeint_adjoint if use_adjoint else torchdiffeq.odeint
        t_event, solution = torchdiffeq.odeint_event(func, s0, t0, event_fn=bounded, odeint_interface=interface,
                                                     **_solver_kwargs(options))
    except (AssertionError, SolverError) as err:
        raise _failure(err, options, func) from None
    return t_event, solution[-1]

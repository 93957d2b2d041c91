"""The continuous-time model (and the static one, with no states): integrate the dynamics with the
chosen ODE solver tier to the horizon or the stop event."""
from __future__ import annotations

import time

import torch
from torch import nn

from ..compiler import Program, ir
from ..dsl.options import OdeOptions
from . import ode
from .diagnose import describe_non_finite
from .errors import RunError
from .model import CompiledProblem, Solution
from .nets import bound
from .solvers.native import NativeSolver
from .solvers.native_build import BuildError
from .solvers.plan import torch_tier
from .solvers.scalar_kernel import KernelDynamics


class Dynamics(nn.Module):
    """The right-hand side f(t, s) as a module, so adjoint solvers find its parameters."""

    # set on every evaluation: plain attributes, past nn.Module.__setattr__'s registry checks (~8 µs each)
    PLAIN = frozenset({"evaluations", "last"})

    def __setattr__(self, name: str, value) -> None:
        if name in self.PLAIN:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def __init__(self, function, params: nn.ParameterList, nets: nn.ModuleList, timeout: float | None) -> None:
        super().__init__()
        self.function = function
        self.params = params
        self.nets = nets
        self.timeout = timeout
        self.evaluations = 0
        self.last: tuple[torch.Tensor, torch.Tensor] | None = None   # the latest (t, s), for diagnostics
        self.deadline: float | None = None
        self.watch: "ode.SolveWatch | None" = None   # set by ode.integrate for each solve
        self.report = None   # where a long solve reports progress (the trainer's Progress.note)
        self.native: NativeSolver | None = None   # the native tier's solver, when that tier runs

    def start(self) -> None:
        """Begin a solve: its wall-time limit counts from now."""
        self.deadline = time.perf_counter() + self.timeout if self.timeout else None

    def forward(self, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        self.evaluated(t, s, 1)
        return self.function(t, s)

    def evaluated(self, t: torch.Tensor, s: torch.Tensor, count: int) -> None:
        """Count `count` evaluations of `function`, the last at (t, s), and run their checks (the
        plain-torch tier calls it once per step, after the step's stages)."""
        self.evaluations += count
        self.checkpoint(t, s, count)

    def checkpoint(self, t: torch.Tensor, s: torch.Tensor, count: int = 1) -> None:
        """The checks of `count` evaluations, the last at (t, s): the solve's watch (stiffness,
        progress) and its time limit. The native tier calls it from its C loop every so often."""
        self.last = (t, s)
        if self.watch is not None:
            self.watch.observe(t, s, self.function, count)
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise RunError(f"an ODE solve took longer than {self.timeout:g} s (reached t = {float(t):.6g})",
                           "raise solve ode(timeout=...), loosen rtol/atol, or check the dynamics for stiffness")


class OdeProblem(CompiledProblem):
    """A compiled continuous-time (or static) spec. `forward()` integrates the dynamics and returns
    the objective."""

    def __init__(self, program: Program, device: torch.device, dtype: torch.dtype, seed: int = 0) -> None:
        super().__init__(program, device, dtype, seed)
        self.dynamics = Dynamics(self.functions["dynamics"], self.params, self.nets, self.problem.ode.timeout) \
            if "dynamics" in self.functions else None
        self.register_buffer("random_initial", self.sample_initial(self.generator))
        if self.solver_plan.backend == "native" and self.dynamics is not None:
            self._build_native()
        if self.solver_plan.kernel is not None and self.dynamics is not None:
            self.dynamics.function = KernelDynamics(self.solver_plan.kernel, self.dynamics.function, self.params,
                                                    self.nets)

    def _build_native(self) -> None:
        """Build (or load from the cache) the generated C solver; a failed build falls back to
        the plain-torch tier and says so in the plan's note."""
        plan = self.solver_plan
        try:
            self.dynamics.native = NativeSolver(plan.native, self.params, self.nets)
        except BuildError as err:
            reason = str(err).splitlines()[0].rstrip(":")
            self.solver_plan = torch_tier(plan, self.problem, torch.finfo(self.dtype).bits // 8, self.device.type,
                                          f"native tier unavailable: {reason}; ", "", plan.gradient)

    def initial_state(self) -> torch.Tensor:
        """The batch of initial states (batch x states); fixed values may depend on params."""
        if not self.problem.states:
            return torch.zeros(self.problem.batch, 0, dtype=self.dtype, device=self.device)
        fixed = iter(self.functions["initial"](None, None))
        random = iter(self.random_initial.unbind(-1))
        columns = []
        for name in self.problem.states:
            source = random if isinstance(self.problem.initial[name], ir.Distribution) else fixed
            value = next(source)
            columns.append(torch.as_tensor(value, dtype=self.dtype, device=self.device).expand(self.problem.batch))
        return torch.stack(columns, -1)

    # -- solving
    def solve(self) -> Solution:
        """Integrate from the initial states to the horizon or the stop event; a solver failure
        names the dynamics term that turned non-finite, when one did."""
        try:
            return self._solve()
        except RunError as err:
            located = describe_non_finite(self)
            if located and located not in str(err):
                raise RunError(str(err).split("\n  hint:")[0] + located, err.hint, err.exit_code) from None
            raise

    def _solve(self) -> Solution:
        s0 = self.initial_state()
        options = self.problem.ode
        if not self.problem.states:   # no dynamics: objectives of params and implicit layers only
            return Solution(s0, s0, torch.zeros((), dtype=self.dtype, device=self.device))
        self.dynamics.start()
        with bound(self.nets):
            return self._integrate(s0, options)

    def _integrate(self, s0: torch.Tensor, options: OdeOptions) -> Solution:
        """The solve itself: to the stop event, or to the horizon."""
        if self.problem.stop:
            event = self.functions["event"]
            max_time = self.problem.stop.max_time
            T, sT = ode.integrate_until(self.dynamics, s0, lambda t, s: event(t, s)[0].reshape(()),
                                        max_time, options, self.solver_plan.adjoint, self.solver_plan.backend,
                                        self.problem.stop.text)
            reached = bool(event(T, sT)[0].detach().reshape(()) >= -1e-6 * (1 + abs(float(T.detach()))))
            return Solution(s0, sT, T, reached)
        T = torch.tensor(self.problem.horizon, dtype=self.dtype, device=self.device)
        sT = ode.integrate(self.dynamics, s0, torch.stack([T * 0, T]), options, self.solver_plan.adjoint,
                           self.solver_plan.backend)[-1]
        return Solution(s0, sT, T)

    @torch.no_grad()
    def trajectory(self, solution: Solution, points: int = 201) -> tuple[torch.Tensor, torch.Tensor]:
        """Dense samples (times, states: points x batch x states) of the solved trajectory."""
        times = torch.linspace(0.0, float(solution.T), points, dtype=self.dtype, device=self.device)
        self.dynamics.start()
        return times, ode.integrate(self.dynamics, solution.s0, times, self.problem.ode, adjoint=False,
                                    backend=self.solver_plan.backend)

    @torch.no_grad()
    def controls(self, times: torch.Tensor, states: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named controls evaluated along sampled states."""
        if "controls" not in self.functions:
            return {}
        values = self.functions["controls"](times.reshape(-1, *[1] * (states.dim() - 2)), states)
        return {name: torch.as_tensor(v).expand(states.shape[:-1])
                for name, v in zip(self.problem.controls, values)}

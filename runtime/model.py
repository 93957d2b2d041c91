"""CompiledProblem: the generated functions, nets and params of a spec as one nn.Module."""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from ..compiler import Program, ir
from . import library, ode
from .diagnose import describe_non_finite
from .errors import RunError
from .nets import build_mlp
from .solvers.plan import SolverPlan, choose


@dataclass
class Solution:
    """One forward solve: initial and final states (batch x states) and the final time."""

    s0: torch.Tensor
    sT: torch.Tensor
    T: torch.Tensor
    stop_reached: bool = True


class Dynamics(nn.Module):
    """The right-hand side f(t, s) as a module, so adjoint solvers find its parameters."""

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

    def start(self) -> None:
        """Begin a solve: its wall-time limit counts from now."""
        self.deadline = time.perf_counter() + self.timeout if self.timeout else None

    def forward(self, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        self.evaluations += 1
        self.last = (t, s)
        if self.watch is not None:
            self.watch.observe(t, s, self.function)
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise RunError(f"an ODE solve took longer than {self.timeout:g} s (reached t = {float(t):.6g})",
                           "raise solve ode(timeout=...), loosen rtol/atol, or check the dynamics for stiffness")
        return self.function(t, s)


class CompiledProblem(nn.Module):
    """A compiled spec. `forward()` integrates the dynamics and returns the objective (a scalar,
    in the spec's own sense: minimised or maximised)."""

    def __init__(self, program: Program, device: torch.device, dtype: torch.dtype, seed: int = 0) -> None:
        super().__init__()
        self.program = program
        self.problem: ir.Problem = program.problem
        self.device, self.dtype = device, dtype
        torch.manual_seed(seed)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        draws = dict(zip(self.problem.random_symbols,
                         torch.randn(len(self.problem.random_symbols), generator=generator, dtype=torch.float64).tolist()))
        self.params = nn.ParameterList([nn.Parameter(self._initial_param(p, draws))
                                        for p in self.problem.params.values()])
        self.nets = nn.ModuleList(
            [build_mlp(net.width, net.options).to(device=device, dtype=dtype) for net in self.problem.nets.values()])
        self.functions = library.build_generated(program.source, dtype, device, self.problem.implicits,
                                                 list(self.params), list(self.nets))
        self.dynamics = Dynamics(self.functions["dynamics"], self.params, self.nets, self.problem.ode.timeout) \
            if "dynamics" in self.functions else None
        self.generator = generator
        self.solver_plan: SolverPlan = choose(self.problem, itemsize=torch.finfo(dtype).bits // 8)
        self.register_buffer("random_initial", self._sample_initial(self.generator))

    def _initial_param(self, param: ir.Param, draws: dict) -> torch.Tensor:
        """A param's initial entries; randn() draws come from the run's seeded generator."""
        values = [float(e) if e.is_number else float(e.evalf(subs=draws)) for e in param.initial]
        return torch.tensor(values, dtype=self.dtype, device=self.device).reshape(param.shape)

    # -- initial states
    def _sample_initial(self, generator: torch.Generator) -> torch.Tensor:
        columns = []
        for name in self.problem.states:
            init = self.problem.initial[name]
            if isinstance(init, ir.Distribution):
                if init.kind == "normal":
                    draw = init.a + init.b * torch.randn(self.problem.batch, generator=generator, dtype=torch.float64)
                else:
                    draw = init.a + (init.b - init.a) * torch.rand(self.problem.batch, generator=generator,
                                                                    dtype=torch.float64)
                columns.append(draw)
        if not columns:
            return torch.zeros(self.problem.batch, 0, dtype=self.dtype, device=self.device)
        return torch.stack(columns, -1).to(self.device, self.dtype)

    def resample(self) -> None:
        """Draw a new batch of random initial states (seeded, reproducible)."""
        self.random_initial = self._sample_initial(self.generator)

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
        if self.problem.stop:
            event = self.functions["event"]
            max_time = self.problem.stop.max_time
            T, sT = ode.integrate_until(self.dynamics, s0, lambda t, s: event(t, s)[0].reshape(()),
                                        max_time, options, self.solver_plan.adjoint, self.solver_plan.backend)
            reached = bool(event(T, sT)[0].detach().reshape(()) >= -1e-6 * (1 + abs(float(T.detach()))))
            return Solution(s0, sT, T, reached)
        T = torch.tensor(self.problem.horizon, dtype=self.dtype, device=self.device)
        sT = ode.integrate(self.dynamics, s0, torch.stack([T * 0, T]), options, self.solver_plan.adjoint,
                           self.solver_plan.backend)[-1]
        return Solution(s0, sT, T)

    def objective(self, solution: Solution) -> torch.Tensor:
        value = self.functions["objective"](None, None, solution.s0, solution.sT, solution.T)[0]
        value = torch.as_tensor(value, dtype=self.dtype, device=self.device)
        return value.mean() if value.dim() > 0 else value

    def forward(self) -> torch.Tensor:
        return self.objective(self.solve())

    def describe_parameter(self, qualified: str) -> str:
        """'params.0' -> "param 'a'", 'nets.1.0.weight' -> "net 'policy'"."""
        kind, index = qualified.split(".")[:2]
        if kind == "params":
            return f"param '{list(self.problem.params)[int(index)]}'"
        if kind == "nets":
            return f"net '{list(self.problem.nets)[int(index)]}'"
        return qualified

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

"""The shared base of compiled problems: a spec's generated functions, params and nets as one nn.Module.

`CompiledProblem` holds what every time model shares (params with their seeded initial draws, nets,
the generated functions, the seeded generator and the random initial states); its siblings
`ode_model.OdeProblem` (continuous time, or no time at all) and `rollout.DiscreteProblem` (discrete
time) add how a problem is solved and sampled.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..compiler import Program, ir
from . import library
from .open_loop import build_net
from .solvers.plan import SolverPlan, choose
from .tensor_sensitivity import with_sensitivities


@dataclass
class Solution:
    """One forward solve: initial and final states (batch x states) and the final time."""

    s0: torch.Tensor
    sT: torch.Tensor
    T: torch.Tensor
    stop_reached: bool = True


def draw(distribution: ir.Distribution, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Draws of normal(mean, std) or uniform(low, high), in float64 on the CPU (reproducible everywhere)."""
    if distribution.kind == "normal":
        return distribution.a + distribution.b * torch.randn(shape, generator=generator, dtype=torch.float64)
    return distribution.a + (distribution.b - distribution.a) * torch.rand(shape, generator=generator,
                                                                           dtype=torch.float64)


class CompiledProblem(nn.Module):
    """A compiled spec. `forward()` solves it and returns the objective (a scalar, in the spec's own
    sense: minimised or maximised). Subclasses provide `solve`, `initial_state`, `trajectory`,
    `controls`, and the batch and states the random initial draws are for."""

    def __init__(self, program: Program, device: torch.device, dtype: torch.dtype, seed: int = 0) -> None:
        super().__init__()
        self.program = program
        self.problem: ir.Problem = program.problem
        self.device, self.dtype = device, dtype
        torch.manual_seed(seed)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        tensor = self.problem.tensor
        implicits = tensor.implicits if tensor is not None else self.problem.implicits
        generated = library.module(program.source, dtype, device, implicits)
        self.params = nn.ParameterList([nn.Parameter(p) for p in self._initial_params(generator, generated)])
        self.nets = nn.ModuleList(
            [build_net(net, dtype, device) for net in self.problem.nets.values()])
        self.functions = generated["build"](list(self.params), list(self.nets))
        if tensor is not None:
            self.functions = with_sensitivities(self.functions, list(self.params), tensor.sensitivities)
        self.generator = generator
        self.solver_plan: SolverPlan = choose(self.problem, itemsize=torch.finfo(dtype).bits // 8,
                                                device=torch.device(device).type)

    def _initial_params(self, generator: torch.Generator, generated: dict) -> list[torch.Tensor]:
        """Every param's initial value, from one seeded draw of the standard normal numbers that
        randn() reads (in the same order on the scalar and the tensor path)."""
        tensor = self.problem.tensor
        count = tensor.draws if tensor is not None else len(self.problem.random_symbols)
        numbers = torch.randn(count, generator=generator, dtype=torch.float64)
        if tensor is not None:
            return list(generated["initial_params"](numbers))
        draws = dict(zip(self.problem.random_symbols, numbers.tolist()))
        return [self._initial_param(p, draws) for p in self.problem.params.values()]

    def _initial_param(self, param: ir.Param, draws: dict) -> torch.Tensor:
        """A param's initial entries; randn() draws come from the run's seeded generator."""
        values = [float(e) if e.is_number else float(e.evalf(subs=draws)) for e in param.initial]
        return torch.tensor(values, dtype=self.dtype, device=self.device).reshape(param.shape)

    # -- random initial states
    @property
    def batch_shape(self) -> tuple[int, ...]:
        """The leading dimensions of the initial states: (batch,)."""
        return (self.problem.batch,)

    def initial_states(self) -> list[str]:
        """The states, in the order of their columns in the initial states."""
        return self.problem.states

    def sample_initial(self, generator: torch.Generator) -> torch.Tensor:
        """A batch of the random initial states (batch... x random states), drawn from `generator`."""
        columns = [draw(self.problem.initial[name], self.batch_shape, generator) for name in self.initial_states()
                   if isinstance(self.problem.initial[name], ir.Distribution)]
        if not columns:
            return torch.zeros(*self.batch_shape, 0, dtype=self.dtype, device=self.device)
        return torch.stack(columns, -1).to(self.device, self.dtype)

    def resample(self) -> None:
        """Draw a new batch of random initial states (seeded, reproducible)."""
        self.random_initial = self.sample_initial(self.generator)

    # -- the objective
    def objective(self, solution: Solution) -> torch.Tensor:
        value = self.functions["objective"](None, None, solution.s0, solution.sT, solution.T)[0]
        value = torch.as_tensor(value, dtype=self.dtype, device=self.device)
        return value.mean() if value.dim() > 0 else value

    def forward(self) -> torch.Tensor:
        """The objective at the current params and nets."""
        return self.objective(self.solve())

    def describe_parameter(self, qualified: str) -> str:
        """'params.0' -> "param 'a'", 'nets.1.0.weight' -> "net 'policy'"."""
        kind, index = qualified.split(".")[:2]
        if kind == "params":
            return f"param '{list(self.problem.params)[int(index)]}'"
        if kind == "nets":
            return f"net '{list(self.problem.nets)[int(index)]}'"
        return qualified

    def solver_report(self) -> dict[str, str]:
        """The ODE solver tier and why (result.json's `solver`); empty without an ODE (no states, or a
        discrete-time rollout, which has no solver to choose)."""
        return self.solver_plan.describe() if self.problem.states and self.problem.time_model == "ode" else {}

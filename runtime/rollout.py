"""The discrete-time layer: roll out x_{t+1} = next(x_t, u_t, w_t) step by step, batched.

A rollout feeds the generated `step` function one row of columns per step (states, noise draw,
estimated entries, controls; see `compiler.ir.Discrete`) and backpropagates through the loop.
The noise of a rollout is drawn once and held fixed while training (the reparametrisation of the
report's §5.4); `train ...(resample=true)` draws it anew every step. `total(...)` is evaluated
on all steps at once after the rollout.

With `realizations=R`, every net is R independent copies (`nets.BatchedMlp`), open-loop control
sequences get one copy per realisation, and the leading batch dimension indexes realisations:
tensors are (R, rollouts, columns), and each realisation has its own estimate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..compiler import Program, ir
from . import library
from .columns import Columns
from .errors import RunError
from .model import CompiledProblem, Solution, draw
from .nets import BatchedMlp


@dataclass
class Rollout:
    """The inputs of every step (steps x batch x input columns) and the states (steps + 1 x batch x states)."""

    inputs: torch.Tensor
    states: torch.Tensor


@dataclass
class DiscreteSolution(Solution):
    """A solved rollout: initial and final columns (with the totals in sT), and the rollout itself."""

    rollout: Rollout | None = None


class DiscreteProblem(CompiledProblem):
    """A compiled discrete-time spec, the ODE model's sibling. `forward()` rolls out `steps` steps with
    the current estimate (zeros until `estimate` is set) and returns the objective."""

    def __init__(self, program: Program, device: torch.device, dtype: torch.dtype, seed: int = 0,
                 realizations: int | None = None) -> None:
        self.realizations = realizations
        super().__init__(program, device, dtype, seed)
        d: ir.Discrete = self.problem.discrete
        self.discrete = d
        self.register_buffer("random_initial", self.sample_initial(self.generator))
        self.sizes = {"states": len(d.states), "noise": len(d.noise_columns), "estimates": len(d.estimate_columns),
                      "sequences": sum(map(len, d.sequences.values())), "controls": len(d.control_columns)}
        if realizations is not None:
            self._copy_per_realization(realizations)
        lead = (realizations, 1) if realizations is not None else ()
        self.register_buffer("estimate", torch.zeros(*lead, self.sizes["estimates"], dtype=dtype, device=device))
        self.register_buffer("noise", None)
        self.register_parameter("sequence", None)
        self.sequence_shape = (*lead, self.sizes["sequences"])
        self.register_buffer("numeric_initial", self._numeric_initial(), persistent=False)
        self.set_steps(d.steps)

    # -- set-up
    def _copy_per_realization(self, copies: int) -> None:
        if len(self.params):
            raise RunError("realisations copy nets and control sequences; this spec has params",
                           "make them consts or nets")
        self.nets = nn.ModuleList([BatchedMlp(net.width, net.options, copies, self.generator, self.dtype, self.device)
                                   for net in self.problem.nets.values()])
        self.functions = library.build_generated(self.program.source, self.dtype, self.device,
                                                 self.problem.implicits, list(self.params), list(self.nets))
        self.random_initial = self.sample_initial(self.generator)

    def _numeric_initial(self) -> torch.Tensor | None:
        """The initial states when they are the same every rollout (numbers, or tensor code that reads
        no param or net), else None."""
        values = [self.problem.initial[name] for name in self.discrete.states]
        if all(getattr(v, "is_number", False) for v in values):     # SymPy numbers (no Distribution)
            return torch.tensor([float(v) for v in values], dtype=self.dtype, device=self.device)
        if self.problem.tensor is None or self.problem.params or self.problem.nets or \
                any(isinstance(v, ir.Distribution) for v in values):
            return None
        fixed = self.functions["initial"](None, None)       # tensor code of consts only: evaluated once
        return torch.stack([torch.as_tensor(v, dtype=self.dtype, device=self.device) for v in fixed])

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """(rollouts,) or, with realisations, (realisations, rollouts)."""
        rollouts = self.problem.batch
        return (self.realizations, rollouts) if self.realizations is not None else (rollouts,)

    def initial_states(self) -> list[str]:
        """The discrete states (the columns of the initial states)."""
        return self.discrete.states

    def draw_noise(self, steps: int, batch_shape: tuple[int, ...] | None = None) -> torch.Tensor:
        """Noise for `steps` steps (steps x batch x noise entries), from the model's seeded generator."""
        batch_shape = self.batch_shape if batch_shape is None else batch_shape
        columns = [draw(noise.distribution, (steps, *batch_shape), self.generator)
                   for noise in self.discrete.noises for _ in noise.components]
        if not columns:
            return torch.zeros(steps, *batch_shape, 0, dtype=self.dtype, device=self.device)
        return torch.stack(columns, -1).to(self.device, self.dtype)

    def set_steps(self, steps: int) -> None:
        """Roll out `steps` steps from now on: new noise draws, and open-loop control sequences of that
        length (kept when the length is unchanged, else drawn anew from a standard normal)."""
        self.steps = steps
        self.noise = self.draw_noise(steps)
        if self.sizes["sequences"] and (self.sequence is None or self.sequence.shape[0] != steps):
            values = torch.randn((steps, *self.sequence_shape), generator=self.generator, dtype=torch.float64)
            self.sequence = nn.Parameter(values.to(self.device, self.dtype))

    def resample(self) -> None:
        """New random initial states and noise draws (seeded, reproducible)."""
        super().resample()
        self.noise = self.draw_noise(self.steps)

    def initial_state(self, batch_shape: tuple[int, ...] | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """The initial states (batch x states): fixed values, and random ones drawn for the model's
        batch (held fixed), or drawn anew from `generator` for `batch_shape`."""
        batch_shape = self.batch_shape if batch_shape is None else batch_shape
        if self.numeric_initial is not None:
            return self.numeric_initial.expand(*batch_shape, self.numeric_initial.shape[-1])
        fixed = iter(self.functions["initial"](None, None))
        random = iter(self.random_initial.unbind(-1))
        columns = []
        for name in self.discrete.states:
            initial = self.problem.initial[name]
            if isinstance(initial, ir.Distribution):
                value = next(random) if generator is None else draw(initial, batch_shape, generator)
                if value.shape != batch_shape:
                    raise RunError("random initial states are drawn for the model's own batch",
                                   "pass a generator to draw them for another batch")
            else:
                value = next(fixed)
            columns.append(torch.as_tensor(value, dtype=self.dtype, device=self.device).expand(batch_shape))
        return torch.stack(columns, -1)

    # -- rolling out
    def rollout(self, x0: torch.Tensor, noise: torch.Tensor, estimate: torch.Tensor,
                played: torch.Tensor | None = None) -> Rollout:
        """Roll out from states x0 (batch x states) for as many steps as `noise` has (steps x batch x
        noise entries), with `estimate` (broadcast to the batch) in the estimated entries' columns.
        `played` (steps x batch x control entries) replaces the controls (closed-loop controls and
        open-loop sequences are then not evaluated)."""
        steps, batch = noise.shape[0], x0.shape[:-1]
        T = torch.tensor(float(steps), dtype=self.dtype, device=self.device)
        estimate = estimate.expand(*batch, estimate.shape[-1])
        step, controls = self.functions["step"], self.functions.get("controls")
        sequence = self.played_sequences() if played is None else None
        if sequence is not None:      # steps x realisations... x entries, broadcast to the batch
            lifted = sequence.reshape(steps, *(1,) * (len(batch) + 2 - sequence.dim()), *sequence.shape[1:])
            sequence = lifted.expand(steps, *batch, self.sizes["sequences"])
        fed = played if played is not None else sequence
        x, states, controlled = x0, [x0], []
        for t, time in enumerate(torch.arange(steps, dtype=self.dtype, device=self.device).unbind()):
            row = [x, noise[t], estimate] if fed is None else [x, noise[t], estimate, fed[t]]
            if played is None and controls is not None:
                controlled.append(controls(time, Columns(*row), None, None, T))
                row.append(controlled[-1])
            x = step(time, Columns(*row), None, None, T)
            states.append(x)
        return Rollout(self.inputs(states, noise, estimate, fed, controlled), torch.stack(states))

    def inputs(self, states: list[torch.Tensor], noise: torch.Tensor, estimate: torch.Tensor,
               fed: torch.Tensor | None, controlled: list[torch.Tensor]) -> torch.Tensor:
        """The columns of every step (steps x batch x input columns), stacked block by block."""
        steps = noise.shape[0]
        blocks = [torch.stack(states[:-1]), noise, estimate.expand(steps, *estimate.shape)]
        if fed is not None:
            blocks.append(fed)
        if controlled:
            blocks.append(torch.stack(controlled))
        return torch.cat(blocks, -1)

    def played_sequences(self) -> torch.Tensor | None:
        """The open-loop controls (steps x realisations... x entries); one declared with `energy E` is
        scaled to mean energy (1/T) Σ_t |u_t|² = E."""
        if self.sequence is None:
            return None
        parts, start = [], 0
        for name, components in self.discrete.sequences.items():
            part = self.sequence[..., start:start + len(components)]
            start += len(components)
            if name in self.discrete.energies:
                norm = part.square().sum(dim=(0, -1), keepdim=True).sqrt()
                part = part * (math.sqrt(self.discrete.energies[name] * part.shape[0]) / norm)
            parts.append(part)
        return torch.cat(parts, -1)

    def times(self, steps: int, dims: int) -> torch.Tensor:
        """0, 1, ..., steps - 1, shaped to broadcast over `dims` batch dimensions."""
        return torch.arange(steps, dtype=self.dtype, device=self.device).reshape(steps, *(1,) * dims)

    def finish(self, x0: torch.Tensor, estimate: torch.Tensor, rollout: Rollout) -> DiscreteSolution:
        """Initial and final columns of a rollout: states, estimates and the totals (noise and controls 0)."""
        steps, batch = rollout.inputs.shape[0], x0.shape[:-1]
        T = torch.tensor(float(steps), dtype=self.dtype, device=self.device)
        n_totals = len(self.discrete.totals)
        if n_totals:
            summands = self.functions["totals"](self.times(steps, len(batch)), rollout.inputs, None, None, T)
            totals = summands.sum(0)
        else:
            totals = x0.new_zeros(*batch, 0)
        gaps = [x0.new_zeros(*batch, self.sizes[k]) for k in ("noise", "controls")]
        estimate = estimate.expand(*batch, estimate.shape[-1])
        s0 = torch.cat([x0, gaps[0], estimate, gaps[1], torch.zeros_like(totals)], -1)
        sT = torch.cat([rollout.states[-1], gaps[0], estimate, gaps[1], totals], -1)
        return DiscreteSolution(s0, sT, T, rollout=rollout)

    def solve(self) -> DiscreteSolution:
        """Roll out the spec with the model's noise, estimate and controls."""
        x0 = self.initial_state()
        return self.finish(x0, self.estimate, self.rollout(x0, self.noise, self.estimate))

    def objectives(self, solution: Solution) -> torch.Tensor:
        """The objective of each realisation (realisations,), or of the whole batch (a scalar)."""
        value = torch.as_tensor(self.functions["objective"](None, None, solution.s0, solution.sT, solution.T)[0],
                                dtype=self.dtype, device=self.device)
        if self.realizations is None:
            return value.mean() if value.dim() > 0 else value
        per_realization = value.reshape(value.shape[0], -1).mean(-1) if value.dim() > 1 else value.reshape(-1)
        return per_realization.expand(self.realizations)

    # -- outputs
    @torch.no_grad()
    def trajectory(self, solution: Solution) -> tuple[torch.Tensor, torch.Tensor]:
        """Steps 0..T and the columns there (steps + 1 x batch x columns): rows 0..T-1 are the inputs of
        each step; row T holds the final states, no noise, and the closed-loop controls there (an
        open-loop sequence has no value at T: NaN); the totals are the sums over the steps before."""
        rollout = solution.rollout
        inputs = rollout.inputs
        steps, batch = inputs.shape[0], inputs.shape[1:-1]
        n_in = inputs.shape[-1]
        last = torch.full((*batch, n_in), float("nan"), dtype=self.dtype, device=self.device)
        n_x, n_w, n_e, n_s = (self.sizes[k] for k in ("states", "noise", "estimates", "sequences"))
        last[..., :n_x] = rollout.states[-1]
        last[..., n_x:n_x + n_w] = 0
        last[..., n_x + n_w:n_x + n_w + n_e] = inputs[-1, ..., n_x + n_w:n_x + n_w + n_e]
        if "controls" in self.functions:
            T = torch.tensor(float(steps), dtype=self.dtype, device=self.device)
            last[..., n_x + n_w + n_e + n_s:] = self.functions["controls"](T, last[..., :n_x + n_w + n_e + n_s],
                                                                           None, None, T)
        rows = torch.cat([inputs, last.unsqueeze(0)], 0)
        totals = rows.new_zeros(steps + 1, *batch, len(self.discrete.totals))
        if self.discrete.totals:
            T = torch.tensor(float(steps), dtype=self.dtype, device=self.device)
            summands = self.functions["totals"](self.times(steps, len(batch)), inputs, None, None, T)
            totals[1:] = summands.cumsum(0)
        times = torch.arange(steps + 1, dtype=self.dtype, device=self.device)
        return times, torch.cat([rows, totals], -1)

    @torch.no_grad()
    def controls(self, times: torch.Tensor, states: torch.Tensor) -> dict[str, torch.Tensor]:
        """The control entries, read from their columns."""
        columns = self.problem.states
        return {name: states[..., columns.index(name)] for name in self.discrete.control_columns}


"""Training a fit on random time windows (`train adam(..., window=K, windows=M)`, issue 13).

Each evaluation draws M window starts from the run's seeded generator, takes the data's state at
each start as an initial state (compiler.fit_windows checked that every state is measured
directly) and solves all M windows as one batch on the relative grid of K rows, as torchdiffeq's
ode_demo does. The loss is the Gaussian negative log-likelihood of the M x K windowed values (an
estimated sigma profiled out, as on the whole series).
"""
from __future__ import annotations

import math

import torch

from ..dsl.options import WINDOWS, TrainOptions
from . import ode
from .fit import FitResiduals, gaussian_nll


class WindowedNll:
    """The NLL of a fit on M random windows of K rows, a fresh draw at every evaluation."""

    def __init__(self, residuals: FitResiduals, options: TrainOptions) -> None:
        self.residuals, self.model = residuals, residuals.model
        self.window, self.windows = options.window, options.windows or WINDOWS
        fit = self.model.problem.fit
        times = residuals.times[0]
        self.times = times
        self.grid = torch.arange(self.window, dtype=times.dtype, device=times.device) * \
            ((times[-1] - times[0]) / (times.numel() - 1))
        self.items = fit.state_items   # the item measuring each state; -1: an integral, from its initial value
        self.offsets = torch.arange(self.window, device=times.device)

    def starts(self) -> torch.Tensor:
        """M window starts, drawn from the run's generator."""
        count = self.times.numel() - self.window + 1
        return torch.randint(count, (self.windows,), generator=self.model.generator).to(self.times.device)

    def initial(self, starts: torch.Tensor) -> torch.Tensor:
        """The windows' initial states (windows x states): the data's at each start."""
        declared = self.model.functions["fit_initial_0"](None, None) if -1 in self.items else None   # integrals only
        columns = [self.residuals.data[k][starts] if k >= 0 else
                   torch.as_tensor(declared[i], dtype=self.model.dtype, device=self.model.device).expand(starts.numel())
                   for i, k in enumerate(self.items)]
        return torch.stack(columns, -1)

    def __call__(self) -> torch.Tensor:
        """The windowed NLL (differentiable)."""
        model = self.model
        rows = self.starts().unsqueeze(0) + self.offsets.unsqueeze(1)   # K x M
        model.dynamics.start()
        states = ode.integrate(model.dynamics, self.initial(rows[0]), self.grid, model.problem.ode,
                               model.solver_plan.adjoint, model.solver_plan.backend)   # K x M x states
        outputs = model.functions["fit_observed"](self.times[rows], states)             # K x M x items
        total = torch.zeros((), dtype=model.dtype, device=model.device)
        for j, item in enumerate(model.problem.fit.items):
            squares = ((outputs[..., j] - self.residuals.data[j][rows]) ** 2).sum()
            total = total + gaussian_nll(squares, rows.numel(), item.sigma)
        return total


class KeepBest:
    """The whole series' NLL checked every `every` steps of a windowed phase (one solve, no graph):
    the windows are a stochastic stand-in for it, and the whole trajectory's error wanders while
    they train (on the spiral: below 0.3 at step 1800, 0.49 at step 3000). `restore()` puts back
    the params with the lowest NLL seen, the last ones included."""

    CHECKS = 30   # checks per phase

    def __init__(self, residuals: FitResiduals, steps: int) -> None:
        self.residuals, self.model = residuals, residuals.model
        self.every, self.count = max(1, steps // self.CHECKS), 0
        self.best, self.state = math.inf, None
        self.best_step = 0

    def after_step(self) -> bool:
        """Called by the Trainer after each step (its `converged` hook); never ends the phase."""
        self.count += 1
        if self.count % self.every == 0:
            self.check()
        return False

    def check(self) -> None:
        with torch.no_grad():
            value = float(self.residuals.nll_tensor())
        if value < self.best:
            self.best, self.best_step = value, self.count
            self.state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def restore(self) -> int:
        """The best params back in the model; the step they were reached at."""
        self.check()
        if self.state is not None:
            self.model.load_state_dict(self.state)
        return self.best_step

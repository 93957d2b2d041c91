"""Sequential Bayesian experimental design (report §6.3, algorithm 2) on a compiled design spec.

The compiled problem's params hold the model's uncertain params theta, the designs' raw values and
the belief (mean(theta), cov). Each round:

1. plan: theta = the belief mean; the criterion is evaluated on a grid of the design box
   (GRID_POINTS evenly spaced points from low to high per design, the two ends moved inside by
   EDGE of the range, since low + (high - low) sigmoid(raw) reaches them only as raw -> ∓inf;
   a product grid of about GRID_POINTS points for several designs) and at the previous round's
   design; the spec's `train` phases optimise it from the best of these, and the better of the
   optimiser's result and its start is kept;
2. experiment: theta = the truth, y = observation(design) + sigma * noise (noise seeded by `seed`);
3. update: theta = the belief mean again, g = d observation / d theta there, and the linearised
   Gaussian update (report eq. 6.11 and 6.15 with the prediction at the prior mean):
       s = sigma^2 + g'Cg,   m <- m + C g (y - observation(design; m)) / s,   C <- C - C g g'C / s.
"""
from __future__ import annotations

import itertools
import math
from typing import Callable

import numpy as np
import torch

from ..compiler import ir
from .checks import evaluate_checks
from .model import CompiledProblem
from .progress import Progress
from .results import Check, DesignRound
from .train import train

GRID_POINTS = 17
EDGE = 1e-3


class SequentialDesign:
    """Plans, simulates and updates the rounds of a design study; `run()` does them all."""

    def __init__(self, model: CompiledProblem, seed: int = 0) -> None:
        if model.problem.design is None:
            raise ValueError("not a design study")
        self.model = model
        self.study: ir.DesignStudy = model.problem.design
        self.params = dict(zip(model.problem.params, model.params))
        for p in model.parameters():
            p.requires_grad_(False)
        for d in self.study.designs:   # the optimiser moves the designs' raw values only
            self.params[d.raw].requires_grad_(True)
        self.mean = torch.tensor(self.study.prior_mean, dtype=torch.float64)
        self.cov = torch.tensor(self.study.prior_cov, dtype=torch.float64)
        self.noise = np.random.default_rng(seed)
        self.previous: list[float] | None = None
        self.steps = 0
        self.set_belief(self.mean, self.cov)

    # -- params
    def _assign(self, name: str, value: float) -> None:
        with torch.no_grad():
            self.params[name].fill_(float(value))

    def set_theta(self, values) -> None:
        """The model's value of the uncertain params."""
        for name, v in zip(self.study.uncertain, values):
            self._assign(name, v)

    def set_belief(self, mean: torch.Tensor, cov: torch.Tensor) -> None:
        """The belief (read by mean(), var(), cov(), information_gain); theta = its mean."""
        self.mean, self.cov = mean.clone(), cov.clone()
        for i, name in enumerate(self.study.belief_mean):
            self._assign(name, mean[i])
            for j, entry in enumerate(self.study.belief_cov[i]):
                self._assign(entry, cov[i, j])
        self.set_theta(mean.tolist())

    def design(self) -> list[float]:
        """The current design values."""
        return [d.low + (d.high - d.low) * float(torch.sigmoid(self.params[d.raw].detach()))
                for d in self.study.designs]

    def set_design(self, values) -> None:
        for d, v in zip(self.study.designs, values):
            fraction = min(max((float(v) - d.low) / (d.high - d.low), 1e-15), 1 - 1e-15)
            self._assign(d.raw, math.log(fraction / (1 - fraction)))

    # -- evaluations at the current params
    @torch.no_grad()
    def criterion(self) -> float:
        return float(self.model())

    @torch.no_grad()
    def predict(self) -> tuple[float, torch.Tensor]:
        """The observed expression and its sensitivities g = d observation / d theta."""
        solution = self.model.solve()
        values = self.model.functions["observation"](None, None, solution.s0, solution.sT, solution.T)
        values = [float(torch.as_tensor(v).reshape(-1)[0]) for v in values]
        return values[0], torch.tensor(values[1:], dtype=torch.float64)

    # -- the three steps of a round
    def plan(self) -> list[float]:
        """Optimise the criterion from the best of the grid and the previous design."""
        scale = self.model.problem.objective.scale   # the best design minimises scale * criterion
        starts = self._grid() + ([self.previous] if self.previous is not None else [])
        scores = []
        for start in starts:
            self.set_design(start)
            scores.append(scale * self.criterion())
        best = scores.index(min(scores))
        self.set_design(starts[best])
        history = train(self.model, self.model.problem.training, quiet=True)
        self.steps += len(history.objective)
        reached = scale * self.criterion()
        if min(reached, scores[best]) != reached:
            self.set_design(starts[best])
        self.previous = self.design()
        return self.previous

    def _grid(self) -> list[list[float]]:
        per_axis = max(3, round(GRID_POINTS ** (1 / len(self.study.designs))))
        fractions = [min(max(k / (per_axis - 1), EDGE), 1 - EDGE) for k in range(per_axis)]
        axes = [[d.low + f * (d.high - d.low) for f in fractions] for d in self.study.designs]
        return [list(point) for point in itertools.product(*axes)]

    def experiment(self, design: list[float]) -> float:
        """A simulated observation: the model at the truth plus Gaussian noise."""
        self.set_design(design)
        self.set_theta(self.study.truth)
        value, _ = self.predict()
        self.set_theta(self.mean.tolist())
        return value + self.study.sigma * float(self.noise.standard_normal())

    def update(self, design: list[float], y: float) -> None:
        """The linearised Gaussian update of the belief (see the module docstring)."""
        self.set_design(design)
        self.set_theta(self.mean.tolist())
        predicted, g = self.predict()
        cg = self.cov @ g
        s = self.study.sigma ** 2 + float(g @ cg)
        mean = self.mean + cg * (y - predicted) / s
        cov = self.cov - torch.outer(cg, cg) / s
        self.set_belief(mean, (cov + cov.T) / 2)

    # -- the study
    def run(self, choose: Callable[[int], list[float]] | None = None, quiet: bool = True) -> list[DesignRound]:
        """All rounds. `choose(n)` replaces planning (e.g. random designs for a baseline)."""
        rounds = []
        names = self.study.uncertain
        each_round = [i for i, flag in enumerate(self.study.each_round) if flag]
        progress = Progress(self.study.rounds, f"{self.model.problem.name} rounds", quiet)
        for n in range(self.study.rounds):
            prior_mean, prior_cov = self.mean.clone(), self.cov.clone()
            design = self.plan() if choose is None else choose(n)
            self.set_design(design)
            criterion = self.criterion()
            checks = evaluate_checks(self.model, self.model.solve())
            y = self.experiment(design)
            self.update(design, y)
            rounds.append(DesignRound(
                design={d.name: v for d, v in zip(self.study.designs, design)},
                prior_mean=dict(zip(names, prior_mean.tolist())),
                prior_var=dict(zip(names, prior_cov.diagonal().tolist())), observation=y,
                mean=dict(zip(names, self.mean.tolist())), var=dict(zip(names, self.cov.diagonal().tolist())),
                error={p: abs(m - t) for p, m, t in zip(names, self.mean.tolist(), self.study.truth)},
                criterion=criterion, cov=self.cov.tolist(), expects=[Check(**checks[i]) for i in each_round]))
            progress.update(n + 1, criterion)
        return rounds

    def final_checks(self) -> list[dict]:
        """The expects checked once, on the final belief (and the last design)."""
        checks = evaluate_checks(self.model, self.model.solve())
        return [c for c, flag in zip(checks, self.study.each_round) if not flag]

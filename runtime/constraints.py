"""Constrained training: an augmented-Lagrangian outer loop around the Trainer (runtime/train.py).

Each outer iteration minimises f + Σ_eq (λ c + μ/2 c²) + Σ_ineq μ/2 (max(0, λ/μ + c)² - (λ/μ)²)
with the spec's training phases (all of them the first time, then the last one, e.g. L-BFGS,
warm-started), then updates λ (λ + μ c; clipped at 0 for c <= 0) and multiplies μ by 10 when
the largest violation did not fall to a quarter. It stops once every violation is below TOL, or
when it is below FEASIBLE and two outer iterations in a row cut it by less than PROGRESS;
constraints still violated after the last iteration end the run with a RunError naming them.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import torch

from .diagnose import NonFiniteError
from .errors import RunError
from .model import CompiledProblem
from .train import Objective, Trainer

MU = 100.0           # the first penalty weight
GROWTH = 10.0        # its factor when the violation does not fall enough
MAX_MU = 1e12
OUTER = 25           # outer iterations at most
TOL = 1e-10          # largest violation at which the outer loop stops
FEASIBLE = 1e-6      # largest violation a run may end with
PATIENCE = 2         # feasible outer iterations in a row without progress end the loop
PROGRESS = 0.1       # the relative cut of the violation an outer iteration must make to count as progress
STALLED = 1e-12      # relative change of the augmented objective over a step that ends an inner phase


@dataclass
class Outer:
    """One outer iteration: the objective and each constraint's value, violation and multiplier at
    its end (the multiplier is the one the iteration used), the penalty weight, the last step."""

    objective: float
    values: list[float]
    violations: list[float]
    multipliers: list[float]
    mu: float
    step: int


class AugmentedLagrangian:
    """The multipliers and penalty weight of a problem's constraints, and the augmented objective."""

    def __init__(self, model: CompiledProblem) -> None:
        self.model = model
        constraints = model.problem.constraints
        self.names = [c.name for c in constraints]
        self.equality = torch.tensor([c.kind == "eq" for c in constraints], device=model.device)
        self.multipliers = torch.zeros(len(constraints), dtype=model.dtype, device=model.device)
        self.mu = MU
        self.objective_value = math.nan   # the objective of the latest evaluation (for the history)
        self.augmented: list[float] = []  # the augmented objective of each evaluation since the last step
        self.last_step = math.inf         # its value at the start of the previous step

    def values(self, solution) -> torch.Tensor:
        """The constraint values c (c == 0 or c <= 0 wanted) at a solution."""
        raw = self.model.functions["constraints"](None, None, solution.s0, solution.sT, solution.T)
        return torch.stack([torch.as_tensor(v, dtype=self.model.dtype, device=self.model.device).mean()
                            for v in raw])

    def violations(self, values: torch.Tensor) -> torch.Tensor:
        return torch.where(self.equality, values.abs(), values.clamp(min=0))

    def penalty(self, values: torch.Tensor) -> torch.Tensor:
        lam, mu = self.multipliers, self.mu
        equality = lam * values + 0.5 * mu * values ** 2
        inequality = 0.5 * mu * ((lam / mu + values).clamp(min=0) ** 2 - (lam / mu) ** 2)
        return torch.where(self.equality, equality, inequality).sum()

    def evaluate(self) -> torch.Tensor:
        """The augmented objective, in the objective's own sense (the Trainer minimises scale * it)."""
        solution = self.model.solve()
        objective = self.model.objective(solution)
        self.objective_value = float(objective.detach())
        augmented = objective + self.model.problem.objective.scale * self.penalty(self.values(solution))
        self.augmented.append(float(augmented.detach()))
        return augmented

    def converged(self) -> bool:
        """After a step: whether it changed the augmented objective by less than STALLED (relative);
        the inner phase then ends (a stalled L-BFGS step would only repeat itself)."""
        start, self.augmented = (self.augmented[0] if self.augmented else math.nan), []
        stalled = abs(start - self.last_step) <= STALLED * (1 + abs(start))
        self.last_step = start
        return stalled

    def estimate(self, values: list[float], multipliers: list[float], mu: float) -> list[float]:
        """The first-order multiplier estimate λ + μ c (clipped at 0 for inequalities)."""
        lam = torch.tensor(multipliers, dtype=self.model.dtype) + mu * torch.tensor(values, dtype=self.model.dtype)
        return torch.where(self.equality.cpu(), lam, lam.clamp(min=0)).tolist()

    def update(self, values: torch.Tensor, previous: float) -> None:
        """New multipliers; a larger penalty weight when the violation fell by less than 4x."""
        self.multipliers = torch.tensor(self.estimate(values.tolist(), self.multipliers.tolist(), self.mu),
                                        dtype=self.model.dtype, device=self.model.device)
        if float(self.violations(values).max()) > 0.25 * previous:
            self.mu = min(self.mu * GROWTH, MAX_MU)

    def trainer_objective(self) -> Objective:
        return Objective(self.evaluate, lambda values: self.objective_value)

    def describe(self, violations: list[float]) -> str:
        return "; ".join(f"'{n}': violation {v:.3g}" for n, v in zip(self.names, violations) if v > FEASIBLE)


def train_constrained(trainer: Trainer, al: AugmentedLagrangian, quiet: bool = True) -> list[Outer]:
    """The outer loop; returns one row per outer iteration."""
    rows: list[Outer] = []
    previous, stalls = math.inf, 0
    trainer.converged = al.converged
    for k in range(1, OUTER + 1):
        multipliers = al.multipliers.tolist()
        al.last_step = math.inf
        try:
            trainer.run()
        except NonFiniteError as err:
            shown = al.describe(rows[-1].violations) if rows else "no outer iteration finished"
            raise RunError(f"the constrained problem broke down in outer iteration {k} ({err}); the constraints "
                           f"violated so far: {shown}", "the constraints may be inconsistent or infeasible") from None
        with torch.no_grad():
            solution = al.model.solve()
            values = al.values(solution)
            objective = float(al.model.objective(solution))
        violations = al.violations(values)
        rows.append(Outer(objective, values.tolist(), violations.tolist(), multipliers, al.mu,
                          len(trainer.history.objective)))
        worst = float(violations.max())
        if not quiet:
            print(f"outer {k}: objective {objective:.8g}, largest violation {worst:.3g}, mu {al.mu:.3g}",
                  file=sys.stderr)
        stalls = stalls + 1 if FEASIBLE >= worst > (1 - PROGRESS) * previous else 0
        if worst <= TOL or not math.isfinite(worst) or stalls >= PATIENCE:
            break
        al.update(values, previous)
        previous = worst
        trainer.phase, trainer.step, trainer.lr_scale = len(trainer.phases) - 1, 0, 1.0
    _check_feasible(al, rows, trainer.phases[-1].optimizer)
    return rows


def _check_feasible(al: AugmentedLagrangian, rows: list[Outer], last_optimizer: str) -> None:
    """A RunError naming the constraints still violated after the outer loop, if any."""
    violations = rows[-1].violations
    if all(math.isfinite(v) and v <= FEASIBLE for v in violations):
        return
    hint = ("the constraints may be inconsistent (e.g. x(T) == 1 and x(T) == 2) or infeasible "
            "(out of reach of the controls); else add training steps")
    if last_optimizer != "lbfgs":
        hint = (f"each outer iteration ends with {last_optimizer}, which rarely meets a constraint to "
                f"{FEASIBLE:g} as the penalty grows: add a polishing phase, e.g. 'train lbfgs(lr=1, steps=20)'; "
                f"else {hint}")
    raise RunError(f"the constraints are not satisfied after {len(rows)} outer iterations: "
                   f"{al.describe(violations)}", hint)


def final_time_value(model: CompiledProblem) -> float | None:
    """The free final time T at the current raw param, or None with a fixed horizon."""
    free = model.problem.free_time
    if free is None:
        return None
    raw = model.params[list(model.problem.params).index(free.raw)].detach()
    return float(free.low + (free.high - free.low) * torch.sigmoid(raw) if free.squashed else raw)


def history_rows(rows: list[Outer], objective: list[float], names: list[str]) -> tuple[list[str], list[list]]:
    """history.csv with the outer loop: per step its outer iteration, the penalty weight, and the
    violations (at the iteration's end) and multipliers (in force) of each constraint."""
    header = ["step", "objective", "outer", "mu", *(f"violation[{n}]" for n in names),
              *(f"multiplier[{n}]" for n in names)]
    table, start = [], 0
    for k, row in enumerate(rows, 1):
        for step in range(start, row.step):
            table.append([step + 1, objective[step], k, row.mu, *row.violations, *row.multipliers])
        start = row.step
    return header, table

"""Adaptive active system identification (report §5.3, Algorithm 1), batched over realisations.

Three strategies observe the real system (the spec's `truth`) for the same epoch lengths and are
scored by the estimation error ‖θ̂ − θ‖ (θ = the estimated entries, e.g. ‖Â − A‖_F) after each epoch:

- adaptive: estimate θ̂ by least squares from all transitions so far, plan the control for the
  epoch under θ̂ (train the spec's objective with its `train` settings), play it on the truth;
- oracle: the same, planning with the true θ;
- baseline: play the spec's `baseline` random inputs.

Epoch 0 plays the baseline inputs for T = `first` steps (shared by the three); then each epoch
plans for T steps, plays, appends the transitions and multiplies T by `growth`. Every epoch
starts from the spec's initial state with fresh noise, shared by the three strategies (common
random numbers). The adaptive and oracle planners of all realisations train together: one model
with 2R copies of every net (per-realisation weights, batched matrix products), whose loss is the
sum of the copies' objectives, so Adam's per-coordinate steps keep the copies independent.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Iterator

import torch

from ..dsl.options import TrainOptions
from .errors import RunError
from .plots import plot_identification
from .progress import Progress
from .results import Result, write_csv, write_json
from .results_folder import assemble_result, folder_for, objective_result, write_history, write_model
from .run_options import RunOptions
from .model import draw
from .rollout import DiscreteProblem, Rollout
from .train import Objective, Trainer

STRATEGIES = ("adaptive", "baseline", "oracle")


@dataclass
class Transitions:
    """Least-squares rows of one strategy, per realisation: next − offset = jacobian @ θ + noise."""

    jacobians: list[torch.Tensor] = field(default_factory=list)   # each (realisations, rows, entries)
    targets: list[torch.Tensor] = field(default_factory=list)     # each (realisations, rows)

    def append(self, rows: tuple[torch.Tensor, torch.Tensor]) -> None:
        self.jacobians.append(rows[0])
        self.targets.append(rows[1])

    def estimate(self) -> torch.Tensor:
        """θ̂ of every realisation (realisations x entries), by torch.linalg.lstsq on all rows so far."""
        J, y = torch.cat(self.jacobians, 1), torch.cat(self.targets, 1)
        return torch.linalg.lstsq(J, y.unsqueeze(-1)).solution[..., 0]


def least_squares_rows(model: DiscreteProblem, rollout: Rollout) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of a played rollout (steps x realisations x 1 x columns): J_t (from the generated
    `jacobian`) and y_t = x_{t+1} − offset(x_t, u_t), stacked per realisation."""
    inputs, states = rollout.inputs, rollout.states
    steps, batch = inputs.shape[0], inputs.shape[1:-1]
    times = model.times(steps, len(batch))
    T = torch.tensor(float(steps), dtype=model.dtype, device=model.device)
    n_x, n_theta = len(model.discrete.states), len(model.discrete.estimate_columns)
    J = model.functions["jacobian"](times, inputs, None, None, T).reshape(steps, *batch, n_x, n_theta)
    y = states[1:] - model.functions["offset"](times, inputs, None, None, T)
    realizations = batch[0]
    J = J.movedim(0, 1).reshape(realizations, -1, n_theta)
    return J, y.movedim(0, 1).reshape(realizations, -1)


def errors(estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """‖θ̂ − θ‖ per realisation."""
    return (estimate - truth).norm(dim=-1)


def summary(values: list[torch.Tensor]) -> dict[str, list[float]]:
    """Mean over the realisations and its standard error, per epoch."""
    count = values[0].numel()
    return {"error": [float(v.mean()) for v in values],
            "stderr": [float(v.std() / math.sqrt(count)) if count > 1 else 0.0 for v in values]}


@contextlib.contextmanager
def one_thread(device: torch.device) -> Iterator[None]:
    """One intra-op thread on the CPU: the study's tensors are small, and on a loaded machine
    threads only add synchronisation (measured: ~400x slower tanh on 2 busy cores)."""
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class Study:
    """Algorithm 1 for the three strategies and R realisations of one spec."""

    def __init__(self, model: DiscreteProblem, realizations: int, seed: int, quiet: bool) -> None:
        d = model.discrete
        self.model, self.discrete, self.options = model, d, d.identify
        self.R = realizations
        self.planner = DiscreteProblem(model.program, model.device, model.dtype, seed, realizations=2 * realizations)
        self.world = torch.Generator(device="cpu").manual_seed(seed + 1)    # the real system's noise and inputs
        like = {"dtype": model.dtype, "device": model.device}
        self.truth = torch.tensor([v for e in d.estimates for v in e.truth], **like)
        first = self.options.first or d.steps
        self.lengths = [first] + [max(1, round(first * self.options.growth ** k)) for k in range(self.options.epochs)]
        self.data = {name: Transitions() for name in STRATEGIES}
        self.errors: dict[str, list[torch.Tensor]] = {name: [] for name in STRATEGIES}
        self.history: list[float] = []
        self.planning_seconds: list[float] = []
        columns = d.control_columns
        self.played = [columns.index(c) for c in d.baseline.components]
        total_steps = sum(t.steps for t in model.problem.training) * self.options.epochs
        self.progress = Progress(total_steps, f"{model.problem.name} identify", quiet)

    # -- the real system
    def noise(self, steps: int) -> torch.Tensor:
        """Process noise of the real system for `steps` steps of each realisation (steps x R x 1 x entries)."""
        columns = [draw(n.distribution, (steps, self.R, 1), self.world)
                   for n in self.discrete.noises for _ in n.components]
        noise = torch.stack(columns, -1) if columns else torch.zeros(steps, self.R, 1, 0, dtype=torch.float64)
        return noise.to(self.model.device, self.model.dtype)

    def baseline_inputs(self, steps: int) -> torch.Tensor:
        """The baseline's random inputs in the played control's columns (the others are unused: 0)."""
        d = self.discrete
        block = torch.zeros(steps, self.R, 1, len(d.control_columns), dtype=torch.float64)
        block[..., self.played] = draw(d.baseline.distribution, (steps, self.R, 1, len(self.played)), self.world)
        return block.to(self.model.device, self.model.dtype)

    def play(self, noise: torch.Tensor, played: torch.Tensor | None) -> Rollout:
        """Roll out the real system (the truth) with `noise`, playing `played` or else the planned controls."""
        x0 = self.planner.initial_state((noise.shape[1], 1), self.world)
        with torch.no_grad():
            return self.planner.rollout(x0, noise, self.truth, played)

    # -- planning
    def plan(self, steps: int, estimate: torch.Tensor, epoch: int) -> None:
        """Train the planners (adaptive copies under `estimate`, oracle copies under the truth) for an
        epoch of `steps` steps, with the spec's training phases."""
        planner = self.planner
        planner.estimate = torch.cat([estimate, self.truth.expand_as(estimate)]).unsqueeze(1)
        planner.set_steps(steps)
        self.progress.label = f"{planner.problem.name} identify [epoch {epoch}/{self.options.epochs}, T={steps}]"
        self.train_planner(planner.problem.training)

    def train_planner(self, phases: list[TrainOptions]) -> None:
        """Train all planner copies with the one trainer: the loss is the sum of their objectives, so
        each copy's gradient is its own; the history gets the adaptive copies' mean."""
        if any(options.clip is not None for options in phases):
            raise RunError("identify does not clip gradients: one norm would couple the realisations",
                           "remove train.clip")
        planner = self.planner
        Trainer(planner, phases, objective=Objective(lambda: planner.objectives(planner.solve()), self.record)).run()

    def record(self, values: torch.Tensor) -> float:
        """The adaptive copies' mean objective, kept in the history; a non-finite copy stops the study."""
        bad = (~torch.isfinite(values)).nonzero()
        if len(bad):
            k = int(bad[0])
            strategy, realization = ("adaptive", k) if k < self.R else ("oracle", k - self.R)
            raise RunError(f"the planned objective became {float(values[k])} ({strategy} strategy, realisation "
                           f"{realization}, step {len(self.history) + 1})", "lower the learning rate (train ...(lr=...))")
        self.history.append(float(values[:self.R].mean()))
        self.progress.update(len(self.history), self.history[-1])
        return self.history[-1]

    # -- Algorithm 1
    def run(self) -> None:
        T0 = self.lengths[0]
        rows = least_squares_rows(self.planner, self.play(self.noise(T0), self.baseline_inputs(T0)))
        first = errors(Transitions([rows[0]], [rows[1]]).estimate(), self.truth)
        for name in STRATEGIES:                 # epoch 0 is shared
            self.data[name].append(rows)
            self.errors[name].append(first)
        for epoch, steps in enumerate(self.lengths[1:], start=1):
            started = time.perf_counter()
            self.plan(steps, self.data["adaptive"].estimate(), epoch)
            self.planning_seconds.append(time.perf_counter() - started)
            noise = self.noise(steps)
            planned = self.play(noise.repeat(1, 2, 1, 1), None)
            J, y = least_squares_rows(self.planner, planned)
            self.data["adaptive"].append((J[:self.R], y[:self.R]))
            self.data["oracle"].append((J[self.R:], y[self.R:]))
            baseline = self.play(noise, self.baseline_inputs(steps))
            self.data["baseline"].append(least_squares_rows(self.planner, baseline))
            for name in STRATEGIES:
                self.errors[name].append(errors(self.data[name].estimate(), self.truth))

    def report(self) -> dict:
        """result.json's `identify` entry."""
        cumulative = [sum(self.lengths[:k + 1]) for k in range(len(self.lengths))]
        return {
            "realizations": self.R,
            "epochs": self.options.epochs,
            "epoch_steps": self.lengths,
            "steps": cumulative,
            "error_norm": "frobenius norm of the estimated entries' error, ||theta_hat - theta||",
            **{name: summary(self.errors[name]) for name in STRATEGIES},
            "planning_seconds": self.planning_seconds,
        }


def run_identify(model: DiscreteProblem, options: RunOptions) -> Result:
    """Run Algorithm 1 for the spec's `identify` statement; write result.json (with `identify`),
    identify.csv, identify.png, history.csv and objective.png."""
    problem = model.problem
    realizations = model.discrete.identify.realizations if options.realizations is None else options.realizations
    if realizations < 1:
        raise RunError(f"realizations must be a positive integer, got {realizations}", exit_code=2)
    folder = folder_for(options, problem.name)
    start = time.perf_counter()
    with one_thread(model.device):
        study = Study(model, realizations, options.seed, options.quiet)
        study.run()
    report = study.report()
    final = {name: report[name]["error"][-1] for name in STRATEGIES}
    result = assemble_result(
        model, options, start, status="ok", steps=len(study.history),
        objective=objective_result(model, study.history[-1] if study.history else math.nan, study.history),
        values={"T": float(study.lengths[-1]), **{f"error_{name}": value for name, value in final.items()}},
        checks=[], identify=report)
    if folder is not None:
        write_json(folder / "result.json", result)
        write_model(folder, study.planner)
        write_history(folder, study.history, problem.objective.sense)
        header = ["epoch", "epoch_steps", "steps"] + [f"{n}_{k}" for n in STRATEGIES for k in ("error", "stderr")]
        rows = [[k, report["epoch_steps"][k], report["steps"][k]]
                + [report[n][key][k] for n in STRATEGIES for key in ("error", "stderr")]
                for k in range(len(report["steps"]))]
        write_csv(folder / "identify.csv", header, rows)
        plot_identification(folder / "identify.png", report, STRATEGIES, problem.name)
        result.out_dir = str(folder)
    return result

"""The training loop: optimisers and schedules, numerical-fault recovery, checkpoints and resume."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..dsl.options import TrainOptions
from .diagnose import NonFiniteError, describe_non_finite
from .errors import SolverFailure
from .model import CompiledProblem
from .progress import Progress

MAX_BAD_STEPS = 5          # consecutive non-finite steps before a run stops
CHECKPOINT_FORMAT = 1


class NothingToTrain(Exception):
    """The objective carries no gradient: no param or net affects it."""


@dataclass
class Objective:
    """What a Trainer minimises: `evaluate()` gives the objective's values as written (one, or one per
    independent copy: the loss is their sum, so each copy's gradient is its own); `record(values)`
    (called with the detached values before each update) gives the number the history keeps."""

    evaluate: Callable[[], torch.Tensor]
    record: Callable[[torch.Tensor], float] = float


@dataclass
class History:
    objective: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)   # steps (1-based, overall) skipped as non-finite


def make_optimizer(params: list[torch.nn.Parameter], options: TrainOptions) -> torch.optim.Optimizer:
    if options.optimizer == "adam":
        return torch.optim.Adam(params, lr=options.lr, betas=options.betas)
    if options.optimizer == "sgd":
        return torch.optim.SGD(params, lr=options.lr, momentum=options.momentum)
    if options.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=options.lr, alpha=options.alpha)
    return torch.optim.LBFGS(params, lr=options.lr, history_size=options.history_size, max_iter=options.max_iter,
                             line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=1e-15)


def learning_rate(options: TrainOptions, step: int) -> float:
    """The learning rate at `step` (0-based) under the chosen schedule."""
    if options.schedule == "cosine":
        final = options.lr_final if options.lr_final is not None else options.lr * 0.01
        return final + 0.5 * (options.lr - final) * (1 + math.cos(math.pi * step / options.steps))
    if options.schedule == "step":
        return options.lr * options.gamma ** (step // options.every)
    return options.lr


class Trainer:
    """Runs the training phases; every `every` steps hands a checkpoint (a dict of tensors and
    plain values, loadable with torch.load(weights_only=True)) to `save`."""

    def __init__(self, model: CompiledProblem, phases: list[TrainOptions], quiet: bool = True,
                 save: Callable[[dict], None] | None = None, every: int = 10,
                 objective: Objective | None = None) -> None:
        self.model, self.phases, self.quiet = model, phases, quiet
        self.save, self.every = save, every
        self.objective = objective or Objective(model)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.history = History()
        self.phase, self.step, self.lr_scale = 0, 0, 1.0
        self.optimizer_state: dict | None = None
        self.last_good: list[torch.Tensor] | None = None   # parameters whose objective was finite
        self.notes: list[str] = []   # what the run did differently from the spec (for result.json warnings)
        self.converged: Callable[[], bool] | None = None   # ends a phase early when true after a step

    # -- checkpoints
    def checkpoint(self, optimizer: torch.optim.Optimizer) -> dict:
        return {"format": CHECKPOINT_FORMAT, "model": self.model.state_dict(), "optimizer": optimizer.state_dict(),
                "phase": self.phase, "step": self.step, "lr_scale": self.lr_scale,
                "history": {"objective": list(self.history.objective), "lr": list(self.history.lr),
                            "skipped": list(self.history.skipped)},
                "torch_rng": torch.get_rng_state(), "generator": self.model.generator.get_state()}

    def restore(self, state: dict) -> None:
        """Continue from a checkpoint: parameters, optimiser, RNGs, position and history."""
        self.model.load_state_dict(state["model"])
        self.phase, self.step, self.lr_scale = int(state["phase"]), int(state["step"]), float(state["lr_scale"])
        self.history = History(**{k: list(v) for k, v in state["history"].items()})
        torch.set_rng_state(state["torch_rng"])
        self.model.generator.set_state(state["generator"])
        self.optimizer_state = state["optimizer"]

    # -- training
    def run(self) -> History:
        if not self.params:
            return self.history
        try:
            while self.phase < len(self.phases):
                self._run_phase(self.phases[self.phase])
                self.phase, self.step, self.lr_scale = self.phase + 1, 0, 1.0
        except NothingToTrain:
            self.notes.append("nothing to train: the objective does not depend on any param or net, so it was "
                              "evaluated without training (make the objective depend on what should be learned)")
        return self.history

    def _run_phase(self, options: TrainOptions) -> None:
        count = len(self.phases)
        label = self.model.problem.name + (f" [{self.phase + 1}/{count} {options.optimizer}]" if count > 1 else "")
        progress = Progress(options.steps, label, self.quiet)
        if getattr(self.model, "dynamics", None) is not None:
            self.model.dynamics.report = progress.note   # long solves report how far they got
        optimizer = make_optimizer(self.params, options)
        if self.optimizer_state is not None:
            optimizer.load_state_dict(self.optimizer_state)
            self.optimizer_state = None
        bad = 0
        while self.step < options.steps:
            if options.resample:
                self.model.resample()
            lr = learning_rate(options, self.step) * self.lr_scale
            for group in optimizer.param_groups:
                group["lr"] = lr
            value, problem = self._step(optimizer, options)
            if problem is None:
                bad = 0
                self.step += 1
                self.history.objective.append(value)
                self.history.lr.append(lr)
                progress.update(self.step, value)
                if self.converged is not None and self.converged():
                    self.step = options.steps
            else:
                bad += 1
                overall = len(self.history.objective) + 1
                self.history.skipped.append(overall)
                if bad >= MAX_BAD_STEPS:
                    raise NonFiniteError(
                        f"{problem} at step {overall}, {bad} times in a row (the learning rate was halved each "
                        f"time, down to {lr:.3g}); the last good parameters are kept" +
                        describe_non_finite(self.model),
                        "lower the learning rate, add clip=1.0 to train, or check the dynamics for "
                        "divisions by zero, logs of negatives or blow-up")
                self.lr_scale *= 0.5
                progress.note(f"step {overall}: {problem}; skipped, learning rate halved")
            if self.save is not None and self.step % self.every == 0 and problem is None:
                self.save(self.checkpoint(optimizer))
        if self.save is not None:
            self.save(self.checkpoint(optimizer))

    def _step(self, optimizer: torch.optim.Optimizer, options: TrainOptions) -> tuple[float, str | None]:
        """One optimiser step. If the objective or a gradient is not finite, or an ODE solve of the
        step fails (a step into stiff or exploding dynamics, e.g. an L-BFGS line search), the
        parameters go back to the last good ones and no update is made. Returns the objective and
        None, or a description of what went wrong."""
        sign = self.model.problem.objective.scale   # the runtime minimises scale * objective
        evaluated: list[float] = []

        def closure() -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            values = self.objective.evaluate()
            value = values.sum()
            if not value.requires_grad:
                raise NothingToTrain
            (sign * value).backward()
            if options.clip is not None:
                torch.nn.utils.clip_grad_norm_(self.params, options.clip)
            evaluated.append(self.objective.record(values.detach()))
            return sign * value

        try:
            if options.optimizer == "lbfgs":
                self.last_good = [p.detach().clone() for p in self.params]
                optimizer.step(closure)
                problem = self._non_finite(evaluated[0]) or self._non_finite(evaluated[-1], check_params=True)
            else:
                closure()
                problem = self._non_finite(evaluated[0])
                if problem is None:
                    self.last_good = [p.detach().clone() for p in self.params]
                    optimizer.step()
        except SolverFailure as err:
            if self.last_good is None:
                raise      # the initial parameters already fail: nothing to go back to
            problem = "the ODE solve failed (" + str(err).split("\n")[0] + ")"
        if problem is not None:
            self.restore_last_good(optimizer)
        return (evaluated[0] if evaluated else math.nan), problem

    def restore_last_good(self, optimizer: torch.optim.Optimizer | None = None) -> bool:
        """Put back the last parameters whose objective was finite; False if there are none."""
        if self.last_good is not None:
            with torch.no_grad():
                for p, saved in zip(self.params, self.last_good):
                    p.copy_(saved)
        if isinstance(optimizer, torch.optim.LBFGS):
            optimizer.state.clear()
        return self.last_good is not None

    def _non_finite(self, value: float, check_params: bool = False) -> str | None:
        if not math.isfinite(value):
            return f"the objective is {value}"
        tensors = [p if check_params else p.grad for p in self.model.parameters()]
        tensors = [t for t in tensors if t is not None]
        if not tensors or bool(torch.isfinite(torch.nn.utils.get_total_norm(tensors))):
            return None          # one fused norm: finite, so every entry is (else look for the culprit)
        for name, p in self.model.named_parameters():
            tensor = p if check_params else p.grad
            if tensor is not None and not bool(torch.isfinite(tensor).all()):
                return f"the {'value' if check_params else 'gradient'} of {self.model.describe_parameter(name)} " \
                       "is not finite"
        return None


def train(model: CompiledProblem, phases: list[TrainOptions], quiet: bool = True) -> History:
    """Optimise the model's objective in place, phase after phase (e.g. Adam, then L-BFGS)."""
    return Trainer(model, phases, quiet).run()

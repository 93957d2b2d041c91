"""The training loop: an optimiser with a learning-rate schedule on a compiled problem."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..dsl.options import TrainOptions
from .errors import RunError
from .model import CompiledProblem
from .progress import Progress


@dataclass
class History:
    objective: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)


def make_optimizer(params: list[torch.nn.Parameter], options: TrainOptions) -> torch.optim.Optimizer:
    if options.optimizer == "adam":
        return torch.optim.Adam(params, lr=options.lr, betas=options.betas)
    if options.optimizer == "sgd":
        return torch.optim.SGD(params, lr=options.lr, momentum=options.momentum)
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


def train(model: CompiledProblem, phases: list[TrainOptions], quiet: bool = True) -> History:
    """Optimise the model's objective in place, phase after phase (e.g. Adam, then L-BFGS).
    The history holds the objective evaluated at each step."""
    history = History()
    for k, options in enumerate(phases):
        label = model.problem.name + (f" [{k + 1}/{len(phases)} {options.optimizer}]" if len(phases) > 1 else "")
        _train_phase(model, options, history, Progress(options.steps, label, quiet))
    return history


def _train_phase(model: CompiledProblem, options: TrainOptions, history: History, progress: Progress) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return
    sign = -1.0 if model.problem.objective.sense == "maximize" else 1.0
    optimizer = make_optimizer(params, options)
    last_value = math.nan

    def closure() -> torch.Tensor:
        nonlocal last_value
        optimizer.zero_grad(set_to_none=True)
        value = model()
        loss = sign * value
        loss.backward()
        if options.clip is not None:
            torch.nn.utils.clip_grad_norm_(params, options.clip)
        last_value = float(value.detach())
        return loss

    for step in range(options.steps):
        if options.resample:
            model.resample()
        lr = learning_rate(options, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step(closure)
        if not math.isfinite(last_value):
            raise RunError(f"the objective became {last_value} at step {len(history.objective) + 1}",
                           "lower the learning rate (train ...(lr=...)) or add clip=1.0")
        history.objective.append(last_value)
        history.lr.append(lr)
        progress.update(step + 1, last_value)

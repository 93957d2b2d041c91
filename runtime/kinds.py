"""The runtime's two axes: the model class of each time model, and the table of studies (each study
name maps to a runner(model, options) -> Result).

The built-in runners (train, design, identify) are registered by importing `runtime.studies`; a new
study registers its own with `register_runner`.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..compiler import Program
from .errors import RunError
from .model import CompiledProblem
from .ode_model import OdeProblem
from .results import Result
from .rollout import DiscreteProblem
from .run_options import RunOptions

Runner = Callable[[nn.Module, RunOptions], Result]
RUNNERS: dict[str, Runner] = {}


def register_runner(study: str, runner: Runner) -> None:
    """Make `runner` run every compiled problem whose study is `study` (a later call replaces it)."""
    RUNNERS[study] = runner


def time_model_of(problem) -> str:
    """The problem's time model (ode, rollout or static): its `time_model` field, else derived."""
    derived = "rollout" if problem.discrete is not None else "ode" if problem.states else "static"
    return getattr(problem, "time_model", None) or derived   # until the compiler layer lands `time_model`


def compile_model(program: Program, device: torch.device, dtype: torch.dtype, seed: int = 0,
                  realizations: int | None = None) -> CompiledProblem:
    """The model of the program's time model: a DiscreteProblem for a rollout (`realizations` copies
    its nets), else an OdeProblem (which integrates the dynamics, if there are any)."""
    if time_model_of(program.problem) == "rollout":
        return DiscreteProblem(program, device, dtype, seed, realizations)
    return OdeProblem(program, device, dtype, seed)


def study_of(problem) -> str:
    """The problem's study: its `study` field, else derived from the design and identify fields."""
    identify = problem.discrete is not None and problem.discrete.identify is not None
    derived = "design" if problem.design is not None else "identify" if identify else "train"
    return getattr(problem, "study", None) or derived   # until the compiler layer lands `problem.study`


def run_study(model: nn.Module, options: RunOptions) -> Result:
    """Run the compiled problem's study through its registered runner."""
    study = study_of(model.problem)
    if study not in RUNNERS:
        raise RunError(f"no runner is registered for the study '{study}'",
                       f"register one with impsolve.runtime.kinds.register_runner('{study}', ...)", exit_code=2)
    return RUNNERS[study](model, options)

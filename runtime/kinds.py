"""The runtime's table of studies: each study name maps to a runner(model, options) -> Result.

The built-in runners (train, design, identify) register themselves when their modules are imported
(`runtime.studies` imports them all); a new study registers its own with `register_runner`.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from .errors import RunError
from .results import Result
from .run_options import RunOptions

Runner = Callable[[nn.Module, RunOptions], Result]
RUNNERS: dict[str, Runner] = {}


def register_runner(study: str, runner: Runner) -> None:
    """Make `runner` run every compiled problem whose study is `study` (a later call replaces it)."""
    RUNNERS[study] = runner


def study_of(problem) -> str:
    """The problem's study: its `study` field, else derived from the design and identify fields."""
    study = getattr(problem, "study", None)   # until the compiler layer lands `problem.study`
    if study is not None:
        return study
    if problem.design is not None:
        return "design"
    if problem.discrete is not None and problem.discrete.identify is not None:
        return "identify"
    return "train"


def run_study(model: nn.Module, options: RunOptions) -> Result:
    """Run the compiled problem's study through its registered runner."""
    study = study_of(model.problem)
    if study not in RUNNERS:
        raise RunError(f"no runner is registered for the study '{study}'",
                       f"register one with impsolve.runtime.kinds.register_runner('{study}', ...)", exit_code=2)
    return RUNNERS[study](model, options)

"""The runtime's two axes: the model class of each time model, and the table of studies (each study
name maps to a runner(model, options) -> Result).

The built-in runners (train, design, identify) are registered by importing `runtime.studies`; a new
study registers its own with `register_runner`.
"""
from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..compiler import Program
from .errors import RunError
from .fit import FitProblem
from .model import CompiledProblem
from .ode_model import OdeProblem
from .results import Result, write_json
from .rollout import DiscreteProblem
from .run_options import RunOptions

Runner = Callable[[nn.Module, RunOptions], Result]
RUNNERS: dict[str, Runner] = {}


def register_runner(study: str, runner: Runner) -> None:
    """Make `runner` run every compiled problem whose study is `study` (a later call replaces it)."""
    RUNNERS[study] = runner


def compile_model(program: Program, device: torch.device, dtype: torch.dtype, seed: int = 0,
                  realizations: int | None = None) -> CompiledProblem:
    """The model of the program's time model: a DiscreteProblem for a rollout (`realizations` copies
    its nets), a FitProblem for a fit to data, else an OdeProblem (which integrates the dynamics, if
    there are any)."""
    if program.problem.time_model == "rollout":
        return DiscreteProblem(program, device, dtype, seed, realizations)
    if program.problem.fit is not None:
        return FitProblem(program, device, dtype, seed)
    return OdeProblem(program, device, dtype, seed)


def run_study(model: nn.Module, options: RunOptions) -> Result:
    """Run the compiled problem's study through its registered runner."""
    study = model.problem.study
    if study not in RUNNERS:
        raise RunError(f"no runner is registered for the study '{study}'",
                       f"register one with impsolve.runtime.kinds.register_runner('{study}', ...)", exit_code=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = RUNNERS[study](model, options)
    if caught:
        result.warnings.extend(warning_notes(caught))
        if result.out_dir is not None:
            write_json(Path(result.out_dir) / "result.json", result)
    return result


def warning_notes(caught: list[warnings.WarningMessage]) -> list[str]:
    """Python warnings raised during a run (torch's, SymPy's, the runtime's own) as result warnings:
    each message once, with its count, instead of raw lines with source paths on stderr."""
    counts = Counter(str(w.message) for w in caught)
    return [message if n == 1 else f"{message} ({n} times)" for message, n in counts.items()]

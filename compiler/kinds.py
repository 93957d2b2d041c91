"""The compiler's tables of problem kinds, on the two axes the checker records.

- A *time model* ("ode", "rollout", "static", ...) registers how a checked spec of that model is
  lowered to a `Problem` and how a `Problem` is generated as a `Program`.
- A *study* ("train", "design", "identify", ...) may register a step, an IR -> IR pass run after
  the lowering (`fn(problem, checked) -> problem`, identity by default), and what it adds to the
  lowering itself (a factory given the lowering, returning an `expressions.StudyLowering`: its
  params, its calls in objectives and expects, its statements).

The built-in kinds register themselves when their module is imported (compiler/ode.py,
compiler/discrete.py, compiler/bayes_design.py, compiler/identify.py, compiler/fit.py), which
happens on the first look-up or registration of their name (BUILT_IN_TIME_MODELS,
BUILT_IN_STUDIES): `impsolve check` of an ODE spec imports neither the discrete time model nor
the other studies.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from ..dsl.check import CheckedSpec
from . import ir

StudyStep = Callable[[ir.Problem, CheckedSpec], ir.Problem]


@dataclass(frozen=True)
class TimeModel:
    """How one time model is lowered and generated (`generate` returns a `program.Program`)."""

    lower: Callable[[CheckedSpec], ir.Problem]
    generate: Callable[[ir.Problem], Any]


# The module (in this package) that registers each built-in time model and study.
BUILT_IN_TIME_MODELS = {"ode": "ode", "static": "ode", "rollout": "discrete"}
BUILT_IN_STUDIES = {"design": "bayes_design", "identify": "identify", "fit": "fit"}

_TIME_MODELS: dict[str, TimeModel] = {}
_STUDY_STEPS: dict[str, StudyStep] = {}
_STUDY_LOWERINGS: dict[str, Callable[[Any], Any]] = {}


def _built_in(name: str, table: dict[str, str]) -> None:
    """Import the module of the built-in kind `name` (if `table` has it), which registers it.
    Registering a kind imports its built-in first, so that a replacement stays the one registered."""
    if name in table:
        importlib.import_module(f"{__package__}.{table[name]}")


def register_time_model(name: str, lowering: TimeModel) -> None:
    """Register (or replace) the lowering and generation of a time model."""
    _built_in(name, BUILT_IN_TIME_MODELS)
    _TIME_MODELS[name] = lowering


def time_model(name: str) -> TimeModel:
    """The registered time model `name`."""
    _built_in(name, BUILT_IN_TIME_MODELS)
    if name not in _TIME_MODELS:
        raise LookupError(f"no lowering is registered for the time model '{name}' "
                          f"(registered: {', '.join(sorted({*_TIME_MODELS, *BUILT_IN_TIME_MODELS}))})")
    return _TIME_MODELS[name]


def register_study_step(name: str, fn: StudyStep) -> None:
    """Register the extra lowering step of a study: `fn(problem, checked) -> problem`, a pass."""
    _built_in(name, BUILT_IN_STUDIES)
    _STUDY_STEPS[name] = fn


def study_step(name: str) -> StudyStep:
    """The step of a study (identity when it registered none)."""
    _built_in(name, BUILT_IN_STUDIES)
    return _STUDY_STEPS.get(name, _unchanged)


def register_study_lowering(name: str, factory: Callable[[Any], Any]) -> None:
    """Register the study's part of the lowering: `factory(lowering)` -> an `expressions.StudyLowering`."""
    _built_in(name, BUILT_IN_STUDIES)
    _STUDY_LOWERINGS[name] = factory


def study_lowering(name: str) -> Callable[[Any], Any] | None:
    """The factory of a study's part of the lowering, or None."""
    _built_in(name, BUILT_IN_STUDIES)
    return _STUDY_LOWERINGS.get(name)


def _unchanged(problem: ir.Problem, checked: CheckedSpec) -> ir.Problem:
    return problem

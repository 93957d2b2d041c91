"""Checks of a fit on time windows (`train adam(..., window=K, windows=M)`, issue 13).

A windowed phase trains on M random windows of K consecutive data rows per step, each solved
from the data's state at its first row, all M as one batch on one relative time grid (as
torchdiffeq's ode_demo does). That needs: one experiment whose times are evenly spaced, at
least K rows, dynamics that do not read t (the windows share the grid), every state fitted
directly to a column (the window's initial state is read from the data) except integrals that
nothing else reads (they start as declared), and no
Levenberg-Marquardt phase (it fits the whole series through the sensitivity states).
Each unmet need is a located SpecError; the result is the item that measures each state.
"""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from ..dsl import ast
from ..dsl.check import CheckedSpec
from ..dsl.options import TrainOptions
from . import ir
from .expressions import spec_error

EVEN = 1e-3     # largest deviation of a time step from the mean step, relative to it


def _train_statement(checked: CheckedSpec, index: int) -> ast.SettingsStmt | None:
    """The spec's `index`-th train statement (None when the phases are the defaults)."""
    statements = [s for s in checked.spec.statements if isinstance(s, ast.SettingsStmt) and s.kind == "train"]
    return statements[index] if index < len(statements) else None


def _option_span(checked: CheckedSpec, index: int, option: str) -> ast.Span | None:
    """Where phase `index` sets `option` (else its call; None without a train statement)."""
    statement = _train_statement(checked, index)
    if statement is None:
        return None
    return next((k.span for k in statement.call.kwargs if k.name == option), statement.call.span)


def _check_phases(problem: ir.Problem, checked: CheckedSpec) -> list[int]:
    """The windowed phases; `windows=` without `window=`, a windowed lm or lbfgs phase and an lm
    phase beside a windowed one are errors."""
    windowed = []
    for k, phase in enumerate(problem.training):
        if phase.windows is not None and phase.window is None:
            raise spec_error(checked, "windows= is the number of time windows per step; it needs window=",
                             _option_span(checked, k, "windows"), "add window=K (rows per window), e.g. window=10")
        if phase.window is None:
            continue
        if phase.optimizer in ("lm", "lbfgs"):
            raise spec_error(checked, f"{phase.optimizer} cannot train on random time windows (window=)",
                             _option_span(checked, k, "window"),
                             "use adam or sgd for windows, or drop window= to fit the whole series")
        windowed.append(k)
    lm = next((k for k, phase in enumerate(problem.training) if phase.optimizer == "lm"), None)
    if windowed and lm is not None:
        raise spec_error(checked, "a fit with time windows (window=) cannot also have an lm phase",
                         _option_span(checked, windowed[0], "window"),
                         "fit on windows with adam, then polish on the whole series with lbfgs")
    return windowed


def _check_data(problem: ir.Problem, checked: CheckedSpec, phase: TrainOptions, span: ast.Span | None) -> None:
    """One experiment, evenly spaced times, at least `window` rows."""
    fit = problem.fit
    datasets = list(checked.fit.datasets.values())
    if len(fit.experiments) > 1:
        raise spec_error(checked, "time windows (window=) fit one data set; this fit has "
                         f"{len(fit.experiments)}", datasets[1].statement.span,
                         "fit several experiments on their whole series (drop window=)")
    times, where = fit.experiments[0].times, datasets[0].statement.path_span
    if phase.window > len(times):
        raise spec_error(checked, f"window={phase.window} is longer than the data ({len(times)} rows of "
                         f"{fit.experiments[0].path})", span, f"use window={len(times)} or less")
    steps = [b - a for a, b in zip(times, times[1:])]
    mean = (times[-1] - times[0]) / max(len(steps), 1)
    row = next((k for k, h in enumerate(steps) if abs(h - mean) > EVEN * mean), None)
    if row is not None:
        raise spec_error(checked, f"time windows need evenly spaced times; in {fit.experiments[0].path} the step "
                         f"from row {row + 1} to row {row + 2} is {steps[row]:.6g}, the mean step {mean:.6g}",
                         where, "resample the data on an even grid, or drop window=")


def _check_model(problem: ir.Problem, checked: CheckedSpec, span: ast.Span | None) -> list[int]:
    """Dynamics without t; each state fitted directly (the item that measures it, per state; -1
    for an integral that nothing else reads)."""
    for state, rate in problem.dynamics.items():
        if ir.TIME in _symbols(rate):
            der = checked.ders.get(state.split("[")[0])
            raise spec_error(checked, "time windows share one relative time grid, so the dynamics cannot "
                             "read t", der.span if der else span, "drop window=, or make the dynamics autonomous")
    measured = {item.expr: k for k, item in enumerate(problem.fit.items) if isinstance(item.expr, sp.Symbol)}
    items = []
    for state in problem.states:
        if ir.state_symbol(state) not in measured and _integral_only(problem, state):
            items.append(-1)   # an integral nothing else reads (e.g. an error measure): starts as declared
            continue
        if ir.state_symbol(state) not in measured:
            fit = next(s for s in checked.spec.statements if isinstance(s, ast.FitStmt))
            raise spec_error(checked, f"a time window starts from the data's state, but the state '{state}' is "
                             "not fitted to a column", fit.span,
                             f"fit every state directly (fit {state} to <data>.<column>), or drop window=")
        items.append(measured[ir.state_symbol(state)])
    return items


def _integral_only(problem: ir.Problem, state: str) -> bool:
    """True when no other state's dynamics and no fitted expression read `state`."""
    symbol = ir.state_symbol(state)
    readers = [rate for name, rate in problem.dynamics.items() if name != state]
    readers += [item.expr for item in problem.fit.items]
    return not any(symbol in _symbols(expr) for expr in readers)


def _symbols(expr: object) -> set:
    """The free symbols of a lowered expression (none for a plain number)."""
    return expr.free_symbols if isinstance(expr, sp.Basic) else set()


def refuse_windows(problem: ir.Problem, checked: CheckedSpec, message: str) -> None:
    """A located SpecError (`message`) at the first windowed phase, where windows are not supported."""
    windowed = _check_phases(problem, checked)
    if windowed:
        raise spec_error(checked, message, _option_span(checked, windowed[0], "window"))


def check_windows(problem: ir.Problem, checked: CheckedSpec) -> ir.Problem:
    """A new problem with `fit.state_items` set when a phase trains on windows (else the same one)."""
    windowed = _check_phases(problem, checked)
    if not windowed:
        return problem
    for k in windowed:
        _check_data(problem, checked, problem.training[k], _option_span(checked, k, "window"))
    span = _option_span(checked, windowed[0], "window")
    return replace(problem, fit=replace(problem.fit, state_items=_check_model(problem, checked, span)))


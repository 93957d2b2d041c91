"""The train study: train a compiled problem, evaluate its expects, write the results folder."""
from __future__ import annotations

import io
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..dsl.options import TrainOptions
from .checks import evaluate_checks, range_samples
from .constraints import FEASIBLE, AugmentedLagrangian, Outer, final_time_value, history_rows, train_constrained
from .diagnose import NonFiniteError
from .direct import solve_direct
from .errors import RunError, SolverFailure
from .model import CompiledProblem, Solution
from .ode import step_warnings
from .plots import plot_relation, plot_trajectory
from .reference import lqr_report
from .results import Check, ConstraintResult, Result, write_atomic, write_csv, write_json
from .results_folder import (assemble_result, dtype_name, folder_for, objective_result, spec_hash, status_of,
                             write_history, write_model)
from .run_options import RunOptions
from .train import History, Trainer


def run_train(model: CompiledProblem, options: RunOptions) -> Result:
    """Train, check and (optionally) write results to `options.out` (default results/<problem>/).

    With `write`, a checkpoint is saved atomically every `checkpoint_every` steps; `resume`
    continues from it (same spec required)."""
    problem = model.problem
    folder = folder_for(options, problem.name)   # fail before training, not after
    start = time.perf_counter()
    before = _sampled_trajectory(model) if options.write and problem.states and not options.resume \
        and problem.direct is None else None
    solving = time.perf_counter()
    solved = _direct(model, options) if problem.direct is not None else _by_training(model, options, folder)
    solve_time = time.perf_counter() - solving
    solution, history, warnings = solved.solution, solved.history, solved.warnings
    checks = evaluate_checks(model, solution)
    references = {}
    for reference in problem.references:
        references["lqr"], check = lqr_report(model, solution, reference,
                                              folder / "reference_lqr.png" if folder else None)
        if check:
            checks.append(check)
    if not solution.stop_reached:
        warnings.append(f"the stop condition '{problem.stop.text}' was not reached within "
                        f"{problem.stop.max_time:g}; values are at the time limit")
    values = {name: float(solution.sT[..., i].double().mean()) for i, name in enumerate(problem.states)
              if name in problem.user_states}
    values["t_stop" if problem.stop else "T"] = final_time_value(model) or float(solution.T)
    result = assemble_result(
        model, options, start, status=status_of(checks), steps=len(history.objective),
        objective=objective_result(model, solved.objective, history.objective), values=values,
        checks=[Check(**c) for c in checks], warnings=warnings, reference=references,
        solver=solved.solver, constraints=solved.constraints, solve_time_s=round(solve_time, 4))
    if folder is not None:
        write_results(folder, model, solution, result, before, solved.trajectory)
        if solved.outer:
            write_csv(folder / "history.csv", *history_rows(solved.outer, history.objective, solved.names))
        result.out_dir = str(folder)
    return result


@dataclass
class _Solved:
    """What a solve hands to the results: the solution and objective, the history (per training
    step or interior point iteration), the augmented-Lagrangian outer iterations and constraint
    names (training only), the `constraints` and `solver` entries, warnings, and the trajectory the
    results draw when the solve already has it (the direct method's nodes, or the samples the path
    constraints were checked at), else None."""

    solution: Solution
    objective: float
    history: History
    constraints: dict[str, ConstraintResult]
    solver: dict[str, str]
    warnings: list[str]
    outer: list[Outer] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    trajectory: tuple | None = None


def _by_training(model: CompiledProblem, options: RunOptions, folder: Path | None) -> _Solved:
    """Train (in the augmented-Lagrangian loop when there are constraints)."""
    al = AugmentedLagrangian(model) if model.problem.constraints else None
    trainer = _trainer(model, options, folder, al)
    warnings = _setting_warnings(model, options.quiet)
    history, outer = _train(trainer, model, folder, al, options.quiet)
    warnings += trainer.notes
    solution, final = _final_solution(model, trainer, warnings)
    trajectory = model.trajectory(solution) if "path_samples" in model.functions else None
    worst = path_worst(model, trajectory) if trajectory is not None else {}
    warnings += [f"the path constraint '{name}' exceeds its bound by {w:.3g} at a sample of the trajectory "
                 "(training drives the integral of its squared excess to 0, which a small excess barely moves); "
                 "solve direct(...) enforces it at every point" for name, w in worst.items() if w > FEASIBLE]
    return _Solved(solution, final, history, constraint_report(al, outer, worst), model.solver_report(), warnings,
                   outer, al.names if al else [], trajectory)


def _direct(model: CompiledProblem, options: RunOptions) -> _Solved:
    """Solve by the direct method (runtime/direct.py); its history is the objective per iteration."""
    if options.resume:
        raise RunError("--resume is not supported by the direct method (it keeps no checkpoints)",
                       "run without --resume", exit_code=2)
    outcome = solve_direct(model, options.quiet)
    equality = {c.name: c.kind == "eq" for c in model.problem.constraints}
    constraints = {name: ConstraintResult(value=v, violation=x, multiplier=m, worst=worst_value(v, equality[name]))
                   for name, (v, x, m) in outcome.constraints.items()}
    warnings = [] if outcome.converged else \
        [f"the direct method stopped at a feasible point without converging: {outcome.note}"]
    if any(phase != TrainOptions() for phase in model.problem.training):
        warnings.append("training settings (--steps, --set train.<option>) have no effect: the spec is solved by "
                        "the direct method, whose options are set with --set direct.<option>")
    return _Solved(outcome.solution, outcome.objective, History(objective=outcome.history), constraints,
                   outcome.describe(model.problem.direct.options), warnings, trajectory=outcome.trajectory)


def _trainer(model: CompiledProblem, options: RunOptions, folder: Path | None,
             al: AugmentedLagrangian | None) -> Trainer:
    """The trainer of a run: checkpoints into `folder` when writing, restored from it on resume."""
    run = {"spec_sha256": spec_hash(options.spec_source), "seed": options.seed, "dtype": dtype_name(model.dtype)}
    save = (lambda state: write_checkpoint(folder, state | run)) if folder is not None else None
    trainer = Trainer(model, model.problem.training, options.quiet, save=save, every=options.checkpoint_every,
                      objective=al.trainer_objective() if al else None)
    if options.resume and al:
        raise RunError("--resume is not supported with constraints (the multipliers are not checkpointed)",
                       "run without --resume", exit_code=2)
    if options.resume:
        trainer.restore(read_checkpoint(folder, run))
    return trainer


def _train(trainer: Trainer, model: CompiledProblem, folder: Path | None, al: AugmentedLagrangian | None,
           quiet: bool) -> tuple[History, list[Outer]]:
    """Run the trainer (in the augmented-Lagrangian loop with constraints); when the objective turns
    non-finite, save the last good parameters first."""
    try:
        outer = train_constrained(trainer, al, quiet) if al else []
        return (trainer.history if al else trainer.run()), outer
    except (NonFiniteError, RunError):
        if folder is not None:
            write_model(folder, model)   # the last good parameters
        raise


def constraint_report(al: AugmentedLagrangian | None, outer: list[Outer],
                      worst: dict[str, float]) -> dict[str, ConstraintResult]:
    """result.json `constraints`: each constraint's value, violation and multiplier estimate at the
    end, and a path constraint's worst sampled value."""
    if not outer:
        return {}
    last = outer[-1]
    equality = al.equality.tolist()
    return {name: ConstraintResult(value=v, violation=x, multiplier=m, worst=worst.get(name, worst_value(v, eq)))
            for name, v, x, m, eq in zip(al.names, last.values, last.violations,
                                         al.estimate(last.values, last.multipliers, last.mu), equality)}


def worst_value(value: float | None, equality: bool) -> float | None:
    """A terminal (or direct-method path) constraint's worst value: its value, |value| for ==."""
    return None if value is None else abs(value) if equality else value


def path_worst(model: CompiledProblem, trajectory: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
    """The largest g (|g| for ==) of each trained path constraint at the samples (times, states) of
    trajectory.csv (the training enforces ∫ max(g, 0)² dt == 0, which a small pointwise excess barely
    moves)."""
    times, states = trajectory
    with torch.no_grad():
        values = model.functions["path_samples"](times.reshape(-1, *[1] * (states.dim() - 2)), states)
    worst = values.reshape(-1, values.shape[-1]).amax(0).tolist()
    names = [c.name for c in model.problem.constraints if c.sampled is not None]
    return {name: w for name, w in zip(names, worst) if math.isfinite(w)}


def _final_solution(model: CompiledProblem, trainer: Trainer, warnings: list[str]) -> tuple[Solution, float]:
    """The solution and objective after training (at the last good parameters if the last update
    made the objective non-finite or its ODE solve fail)."""
    with torch.no_grad():
        try:
            solution = model.solve()
            final, failure = float(model.objective(solution)), None
        except SolverFailure as err:
            final, failure = math.nan, err
        if not math.isfinite(final) and trainer.restore_last_good():
            broke = "made the objective non-finite" if failure is None else "made its ODE solve fail"
            warnings.append(f"the last update {broke}; the last good parameters are reported")
            solution = model.solve()
            final = float(model.objective(solution))
        elif failure is not None:
            raise failure
    return solution, final


def _setting_warnings(model: CompiledProblem, quiet: bool = True) -> list[str]:
    """Settings that run but not as written (a fixed step longer than the horizon, a solver tol below
    the dtype's precision); printed before training unless quiet, since a long run should not hide them."""
    found = _settings_found(model)
    if not quiet:
        for text in found:
            print(f"warning: {text}", file=sys.stderr)
    return found


def _settings_found(model: CompiledProblem) -> list[str]:
    problem = model.problem
    eps = torch.finfo(model.dtype).eps
    found = [f"the implicit equation '{i.name}' (line {i.line}): tol {i.options.tol:g} is below "
             f"{dtype_name(model.dtype)} precision (machine epsilon {eps:.2g}); it may not converge "
             "(use --dtype float64 or a larger tol)" for i in problem.implicits
             if i.options.tol is not None and i.options.tol < 10 * eps]
    if not problem.states:
        return found
    if problem.stop:
        return found + step_warnings(problem.ode, problem.stop.max_time, "the stop's time limit")
    return found + step_warnings(problem.ode, problem.horizon)


CHECKPOINT = "checkpoint.pt"


def write_checkpoint(folder: Path, state: dict) -> None:
    """checkpoint.pt in `folder`, written atomically."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(folder / CHECKPOINT, buffer.getvalue())


def read_checkpoint(folder: Path | None, run: dict) -> dict:
    """The checkpoint in `folder`, if it was written for the same spec, seed and dtype as `run`."""
    path = folder / CHECKPOINT if folder is not None else None
    if path is None or not path.exists():
        raise RunError(f"no checkpoint to resume from in {folder}", "run without --resume first", exit_code=2)
    try:
        state = torch.load(path, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same answer
        raise RunError(f"the checkpoint {path} cannot be read ({type(err).__name__})", exit_code=2) from None
    if state.get("spec_sha256") != run["spec_sha256"]:
        raise RunError(f"the checkpoint in {folder} was written for a different spec", exit_code=2)
    for key, flag in (("seed", "--seed"), ("dtype", "--dtype")):
        if key in state and state[key] != run[key]:
            raise RunError(f"the checkpoint in {folder} was written with {flag} {state[key]}, not {run[key]}",
                           f"resume with {flag} {state[key]}, or run without --resume to start afresh", exit_code=2)
    return state


def _sampled_trajectory(model: CompiledProblem):
    with torch.no_grad():
        return model.trajectory(model.solve())[1]


def write_results(folder: Path, model: CompiledProblem, solution: Solution, result: Result,
                  before: torch.Tensor | None = None, trajectory: tuple | None = None) -> None:
    """result.json, history.csv, trajectory.csv and PNG plots in `folder`; the trajectory is the
    given (times, states) (the direct method's nodes, or the samples the path constraints were
    checked at), else sampled by the model."""
    problem = model.problem
    write_json(folder / "result.json", result)
    write_model(folder, model)
    reference = next((c.reference for c, e in zip(result.checks, problem.expectations)
                      if e.over is None and e.op == "==" and e.left == problem.objective.expr), None)
    write_history(folder, result.objective.history, problem.objective.sense, reference)
    if not problem.states:
        return
    times, states = trajectory if trajectory is not None else model.trajectory(solution)
    controls = model.controls(times, states)
    if problem.free_time is not None:   # the dynamics run in the rescaled time t / T
        times = times * final_time_value(model)
    names = problem.user_states
    header = ["t", "trajectory", *names, *controls]
    rows = []
    for k in range(states.shape[1]):
        for j, t in enumerate(times.tolist()):
            row = [t, k] + [float(states[j, k, problem.states.index(n)]) for n in names]
            rows.append(row + [float(v[j, k]) for v in controls.values()])
    write_csv(folder / "trajectory.csv", header, rows)
    columns = [problem.states.index(n) for n in names]
    plot_trajectory(folder / "trajectory.png", names, times.cpu().numpy(), states[..., columns].cpu().numpy(),
                    before[..., columns].cpu().numpy() if before is not None else None)
    for i, e in enumerate(problem.expectations):
        if e.over:
            grid, (left, right) = range_samples(model, f"expect_{i}", solution)
            order = grid.argsort()
            plot_relation(folder / f"expect_{i + 1}.png", e.over[0], grid[order].cpu().numpy(),
                          {"learned": left[order].cpu().numpy(), "expected": right[order].cpu().numpy()}, e.text)
    for i, p in enumerate(problem.plots):
        grid, outputs = range_samples(model, f"plot_{i}", solution)
        order = grid.argsort()
        plot_relation(folder / f"plot_{i + 1}.png", p.over[0], grid[order].cpu().numpy(),
                      {label: v[order].cpu().numpy() for label, v in zip(p.labels, outputs)}, ", ".join(p.labels))

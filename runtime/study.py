"""A study: train a compiled problem, evaluate its expects, write the results folder."""
from __future__ import annotations

import hashlib
import io
import platform
import time
from pathlib import Path

import torch

from .. import __version__
from .checks import evaluate_checks, range_samples
from .errors import RunError
from .model import CompiledProblem, Solution
from .plots import plot_history, plot_relation, plot_trajectory
from .reference import lqr_report
from .results import Check, ObjectiveResult, Result, write_atomic, write_csv, write_json
from .train import train


def run_study(model: CompiledProblem, *, seed: int = 0, out: str | Path | None = None, quiet: bool = True,
              write: bool = True, spec_source: str = "", realizations: int | None = None) -> Result:
    """Train, check and (optionally) write results to `out` (default results/<problem>/). A spec with
    `identify` runs the identification study instead (`realizations` overrides its count)."""
    problem = model.problem
    if problem.discrete is not None and problem.discrete.identify is not None:
        from .identify import run_identify
        return run_identify(model, seed=seed, out=out, quiet=quiet, write=write, spec_source=spec_source,
                            realizations=realizations)
    folder = _results_folder(out, problem.name) if write else None   # fail before training, not after
    start = time.perf_counter()
    before = _sampled_trajectory(model) if write and problem.states else None
    history = train(model, problem.training, quiet=quiet)
    with torch.no_grad():
        solution = model.solve()
        final = float(model.objective(solution))
    checks = evaluate_checks(model, solution)
    references = {}
    for reference in problem.references:
        references["lqr"], check = lqr_report(model, solution, reference,
                                              folder / "reference_lqr.png" if folder else None)
        if check:
            checks.append(check)
    wall = time.perf_counter() - start

    warnings = []
    if not solution.stop_reached:
        warnings.append(f"the stop condition '{problem.stop.text}' was not reached within "
                        f"{problem.stop.max_time:g}; values are at the time limit")
    values = {name: float(solution.sT[..., i].double().mean()) for i, name in enumerate(problem.states)
              if name in problem.user_states}
    values["t_stop" if problem.stop else "T"] = float(solution.T)
    result = Result(
        problem=problem.name,
        status="ok" if all(c["passed"] for c in checks) else "expect_failed",
        device=str(model.device), dtype=str(model.dtype).replace("torch.", ""), seed=seed,
        steps=len(history.objective), wall_time_s=round(wall, 3),
        objective=ObjectiveResult(sense=problem.objective.sense, expr=problem.objective.text, final=final,
                                  history=history.objective),
        values=values, checks=[Check(**c) for c in checks], warnings=warnings, reference=references,
        versions={"impsolve": __version__, "torch": torch.__version__,
                  "python": platform.python_version()},
        spec_sha256=hashlib.sha256(spec_source.encode()).hexdigest() if spec_source else "",
    )
    if write:
        write_results(folder, model, solution, result, before)
        result.out_dir = str(folder)
    return result


def _results_folder(out: str | Path | None, name: str) -> Path:
    folder = Path(out) if out is not None else Path("results") / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunError(f"cannot create the results folder {folder}: {err.strerror}", exit_code=2) from None
    return folder


def _sampled_trajectory(model: CompiledProblem):
    with torch.no_grad():
        return model.trajectory(model.solve())[1]


def write_results(folder: Path, model: CompiledProblem, solution: Solution, result: Result,
                  before: torch.Tensor | None = None) -> None:
    """result.json, history.csv, trajectory.csv and PNG plots in `folder`."""
    problem = model.problem
    write_json(folder / "result.json", result)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    write_atomic(folder / "model.pt", buffer.getvalue())
    write_csv(folder / "history.csv", ["step", "objective"],
              [[i + 1, v] for i, v in enumerate(result.objective.history)])
    reference = next((c.reference for c, e in zip(result.checks, problem.expectations)
                      if e.over is None and e.op == "==" and e.left == problem.objective.expr), None)
    if result.objective.history:
        plot_history(folder / "objective.png", result.objective.history, problem.objective.sense, reference)
    if not problem.states:
        return
    times, states = model.trajectory(solution)
    controls = model.controls(times, states)
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

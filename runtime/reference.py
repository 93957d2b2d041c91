"""Reference solutions declared with `reference`: computed from the spec, compared with the learned one."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..compiler import ir
from ..compiler.lqr_check import equilibrium_problem, riccati_problem
from ..compiler.tensor_lqr import OPEN_LOOP
from .lqr import quadratic_cost, solve_riccati
from .errors import RunError
from .model import CompiledProblem, Solution
from .plots import plot_reference

TRAJECTORY_POINTS = 2001


def linearisation(model: CompiledProblem, reference: ir.LqrReference) -> tuple[list[list[float]], list[list[float]]]:
    """A = ∂f/∂x and B = ∂f/∂u at (x = equilibrium, u = 0) for the tensor path: autograd through the
    generated open-loop dynamics (the controls are the input columns after the model's columns), in the
    model's dtype; then the compile-time checks of the scalar path (a true equilibrium, a stabilisable
    pair with a Riccati solution), failing with the reference's line."""
    problem = model.problem
    states, columns = problem.user_states, len(problem.states)
    point = torch.zeros(1, columns + len(problem.controls), dtype=model.dtype, device=model.device)
    point[0, :len(states)] = torch.tensor(reference.equilibrium, dtype=model.dtype)
    t = torch.zeros((), dtype=model.dtype, device=model.device)
    rates_of = lambda z: model.functions[OPEN_LOOP](t, z)[0, :len(states)]   # noqa: E731
    with torch.enable_grad():
        jac = torch.autograd.functional.jacobian(rates_of, point)[:, 0]
    rates = rates_of(point).double().cpu().tolist()
    A, B = jac[:, :len(states)].double().cpu().tolist(), jac[:, columns:].double().cpu().tolist()
    where = f"the LQR reference (line {reference.line}: {reference.text})"
    if not all(np.isfinite(v) for v in [*rates, *np.ravel(A), *np.ravel(B)]):
        raise RunError(f"{where}: the dynamics or their derivatives are not finite at the equilibrium",
                       "the dynamics must be differentiable at the point")
    if found := equilibrium_problem(rates, states) or riccati_problem(A, B, reference.Q, reference.R, states):
        raise RunError(f"{where}: {found}", "LQR linearises at the `at` point with every control 0")
    return A, B


@torch.no_grad()
def lqr_report(model: CompiledProblem, solution: Solution, reference: ir.LqrReference,
               plot_path: Path | None = None) -> tuple[dict, dict | None]:
    """result.json's `reference.lqr` entry, and a check record when `max_ratio` is given."""
    problem = model.problem
    users = [problem.states.index(s) for s in problem.user_states]
    x0 = solution.s0[0, users].double().cpu().numpy()
    A, B = (reference.A, reference.B) if reference.A is not None else linearisation(model, reference)
    riccati = solve_riccati(A, B, reference.Q, reference.R, x0, reference.equilibrium, problem.horizon)
    times, states = model.trajectory(solution, TRAJECTORY_POINTS)
    controls = model.controls(times, states)
    learned_states = states[:, 0, users].double().cpu().numpy()
    learned_controls = np.stack([v[:, 0].double().cpu().numpy() for v in controls.values()], -1)
    learned = quadratic_cost(times.double().cpu().numpy(), learned_states, learned_controls, reference.Q,
                             reference.R, reference.equilibrium)
    report = {"A": A, "B": B, "K": riccati.K.tolist(), "riccati_cost": riccati.cost,
              "learned_cost": learned, "ratio": learned / riccati.cost if riccati.cost > 0 else None}
    if report["ratio"] is None:
        report["ratio_reason"] = "the Riccati optimum is 0 (the initial state is the equilibrium): no ratio"
    if plot_path is not None:
        weighted = [i for i in range(len(users)) if reference.Q[i][i] != 0]
        plot_reference(plot_path, times.cpu().numpy(),
                       {problem.user_states[i]: learned_states[:, i] for i in weighted}
                       | {name: learned_controls[:, k] for k, name in enumerate(controls)},
                       riccati.times,
                       {problem.user_states[i]: riccati.states[:, i] for i in weighted}
                       | {name: riccati.controls[:, k] for k, name in enumerate(controls)})
    check = None
    if reference.max_ratio is not None and report["ratio"] is None:   # optimum 0: the learned cost must be 0 too
        check = {"name": f"{reference.text}: learned cost <= Riccati optimum 0", "value": learned, "reference": 0.0,
                 "error": learned, "tolerance": None, "relative": False, "passed": bool(learned <= 0)}
    elif reference.max_ratio is not None:
        check = {"name": f"{reference.text}: learned cost <= {reference.max_ratio:g} x Riccati optimum",
                 "value": report["ratio"], "reference": reference.max_ratio, "error": max(0.0, report["ratio"] - 1),
                 "tolerance": None, "relative": False, "passed": bool(report["ratio"] <= reference.max_ratio)}
    return report, check

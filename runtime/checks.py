"""Evaluate the spec's `expect` statements on a trained model."""
from __future__ import annotations

import math

import torch

from ..compiler import ir
from .model import CompiledProblem, Solution

GRID_POINTS = 201


def _holds(op: str, left, right):
    """Whether `left op right` holds (elementwise for tensors)."""
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


@torch.no_grad()
def range_samples(model: CompiledProblem, function: str, solution: Solution) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(range values, outputs) of a range function (`expect ... over`, `plot`): on a grid of its
    variable when it depends on nothing else, else along the trajectory where the variable is in range."""
    spec = model.program.ranges[function]
    var, low, high = spec.over
    column = model.problem.states.index(var)
    if spec.on_grid:
        grid = torch.linspace(low, high, GRID_POINTS, dtype=model.dtype, device=model.device)
        states = torch.zeros(GRID_POINTS, len(model.problem.states), dtype=model.dtype, device=model.device)
        states[:, column] = grid
        t = torch.zeros(GRID_POINTS, dtype=model.dtype, device=model.device)
    else:
        times, traj = model.trajectory(solution)
        states = traj.reshape(-1, traj.shape[-1])
        t = times.repeat_interleave(traj.shape[1])
        inside = (states[:, column] >= low) & (states[:, column] <= high)
        states, t = states[inside], t[inside]
        grid = states[:, column]
    outputs = [torch.as_tensor(v, dtype=model.dtype, device=model.device).detach().expand(grid.shape)
               for v in model.functions[function](t, states)]
    return grid, outputs


@torch.no_grad()
def evaluate_checks(model: CompiledProblem, solution: Solution) -> list[dict]:
    """One record per expect: name, value, reference, error, tolerance, passed. Vector expects
    compare entry by entry and report their worst entry."""
    records = []
    for i, e in enumerate(model.problem.expectations):
        if e.over:
            _, outputs = range_samples(model, f"expect_{i}", solution)
        else:
            outputs = model.functions[f"expect_{i}"](None, None, solution.s0, solution.sT, solution.T)
        outputs = torch.broadcast_tensors(*[torch.as_tensor(v, dtype=torch.float64) for v in outputs])
        half = len(outputs) // 2
        left, right = torch.stack(outputs[:half], -1).double(), torch.stack(outputs[half:], -1).double()
        if left.numel() == 0:
            var, low, high = e.over
            records.append(_missing(e, f"the trajectory never enters {var} in [{low:g}, {high:g}]: nothing to "
                                       "compare (widen the range or check the dynamics)"))
            continue
        diff = left - right
        if e.op != "==":   # an inequality: its error is the violation (0 when it holds)
            diff = diff.clamp_min(0) if e.op in ("<", "<=") else (-diff).clamp_min(0)
        if e.relative:
            scale = right.abs().max() if e.over else right.abs()
            if bool((scale == 0).any()):
                records.append(_missing(e, "a relative tolerance against a reference of 0 is undefined: give "
                                           "an absolute tolerance (tol 1e-6, not tol 1%)"))
                continue
            diff = diff / scale
        if e.over and e.rms:
            error = float(diff.pow(2).mean().sqrt())
            value, reference = float(left.mean()), float(right.mean())
        else:
            worst = int(diff.abs().flatten().argmax())
            error = float(diff.abs().flatten()[worst])
            value, reference = float(left.flatten()[worst]), float(right.flatten()[worst])
        passed = error <= e.tolerance if e.op == "==" else bool(_holds(e.op, left, right).all())
        records.append(_record(e, value, reference, error, passed and math.isfinite(error)))
    return records


def _missing(e: ir.Expectation, reason: str) -> dict:
    """A failed expect whose value or error does not exist: nulls and the reason."""
    return {"name": e.text, "value": None, "reference": None, "error": None, "tolerance": e.tolerance,
            "relative": e.relative, "passed": False, "reason": reason}


def _record(e: ir.Expectation, value: float, reference: float, error: float, passed: bool) -> dict:
    """An evaluated expect; a value that is not finite (written as null in result.json) gets a reason
    naming it."""
    record = {"name": e.text, "value": value, "reference": reference, "error": error,
              "tolerance": e.tolerance, "relative": e.relative, "passed": bool(passed)}
    infinite = [f"{k} {v}" for k, v in (("value", value), ("reference", reference), ("error", error))
                if not math.isfinite(v)]
    if infinite:
        record["reason"] = f"not a finite number: {', '.join(infinite)}"
    return record

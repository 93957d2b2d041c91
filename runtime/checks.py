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
    outputs = [torch.as_tensor(v, dtype=model.dtype, device=model.device).expand(grid.shape)
               for v in model.functions[function](t, states)]
    return grid, outputs


@torch.no_grad()
def evaluate_checks(model: CompiledProblem, solution: Solution) -> list[dict]:
    """One record per expect: name, value, reference, error, tolerance, passed."""
    records = []
    for i, e in enumerate(model.problem.expectations):
        if e.over:
            _, (left, right) = range_samples(model, f"expect_{i}", solution)
            if left.numel() == 0:
                records.append(_record(e, math.nan, math.nan, math.nan, False))
                continue
            diff = left - right
            error = float(diff.pow(2).mean().sqrt()) if e.rms else float(diff.abs().max())
            scale = float(right.abs().max()) if e.relative else 1.0
            value, reference = float(left.mean()), float(right.mean())
            passed = error <= e.tolerance * scale if e.op == "==" else bool(_holds(e.op, left, right).all())
        else:
            left, right = model.functions[f"expect_{i}"](None, None, solution.s0, solution.sT, solution.T)
            value = float(torch.as_tensor(left).double().mean())
            reference = float(torch.as_tensor(right).double().mean())
            error = abs(value - reference) / (abs(reference) if e.relative and reference != 0 else 1.0)
            passed = error <= e.tolerance if e.op == "==" else _holds(e.op, value, reference)
        records.append(_record(e, value, reference, error, passed and math.isfinite(error)))
    return records


def _record(e: ir.Expectation, value: float, reference: float, error: float, passed: bool) -> dict:
    tolerance = e.tolerance
    return {"name": e.text, "value": value, "reference": reference, "error": error,
            "tolerance": tolerance, "relative": e.relative, "passed": bool(passed)}

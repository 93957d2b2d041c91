"""Locate numerical faults in the spec: which dynamics term turned non-finite, and where."""
from __future__ import annotations

import torch

from .errors import RunError


class NonFiniteError(RunError):
    """Training met NaN/Inf too often; the model keeps its last good parameters."""


def _state_text(names: list[str], s: torch.Tensor) -> str:
    first = s.reshape(-1, s.shape[-1])[0]
    return ", ".join(f"{n} = {float(v):.4g}" for n, v in zip(names, first))


@torch.no_grad()
def describe_non_finite(model) -> str:
    """'; der(x) is inf at t = 0.99 (x = 1e+15, ...)' for the first non-finite dynamics term, evaluated
    at the initial state and where the solver last evaluated the dynamics; '' when none is found."""
    if getattr(model, "dynamics", None) is None:   # a rollout or a static problem
        return ""
    problem = model.problem
    points = [(torch.zeros((), dtype=model.dtype, device=model.device), model.initial_state())]
    if model.dynamics.last is not None:
        points.append(model.dynamics.last)
    for t, s in points:
        values = model.functions["dynamics"](t, s)
        for i, name in enumerate(problem.states):
            column = values[..., i]
            if not bool(torch.isfinite(column).all()):
                bad = float(column[~torch.isfinite(column)].reshape(-1)[0])
                return f"; der({name}) is {bad} at t = {float(t):.6g} ({_state_text(problem.states, s)})"
    return ""

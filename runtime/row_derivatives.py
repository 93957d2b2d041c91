"""Jacobians and Hessians of functions whose rows are independent (the direct method's N
intervals, or a single row), by plain autograd: one forward and at most two backward passes."""
from __future__ import annotations

from typing import Callable

import torch


def row_derivatives(function: Callable[[torch.Tensor], torch.Tensor], X: torch.Tensor,
                    weights: torch.Tensor | Callable[[torch.Tensor], torch.Tensor], width: int = 0,
                    curvature: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The Jacobians (B x m x d) of a function of B independent rows X (B x d) -> (B x m) and the
    Hessians (B x d x d) of weights_b·function_b: of the N intervals (shoot), or of one row (the
    terminal and initial functions). `weights` (B x m) may be a function of the values at X
    (then m = width). A row of every Jacobian (or Hessian) is one gradient: of Σ_b F_b[i] (or of
    Σ_b ∂(λ_b·F_b)/∂X_b[j]). Each of the m + d rows gets its own copy of X in one
    batched forward pass (the function takes leading copy dimensions); one backward pass (with
    its graph) gives the Jacobian rows and the gradients of λ·F, a second one of the latter's
    selected entries the Hessian rows (skipped when F is linear): plain autograd (torch.func would import
    torch._dynamo and script its forward-mode rules: seconds per process), no vmap over cotangents,
    whose per-pass overhead dominated at these sizes. Without `curvature` the Hessians are zero
    (the second pass is skipped)."""
    m = width if callable(weights) else weights.shape[1]
    B, d = X.shape
    copies = X.detach().expand(m + d, B, d).clone().requires_grad_(True)
    with torch.enable_grad():
        outputs = function(copies)                                        # copies x B x m
        if callable(weights):
            weights = weights(outputs[0].detach())
        if not outputs.requires_grad:                                     # constant
            return X.new_zeros(B, m, d), X.new_zeros(B, d, d)
        first = outputs[:m].diagonal(0, 0, 2).sum() + (weights * outputs[m:]).sum()
        rows, = torch.autograd.grad(first, copies, create_graph=curvature)   # Jacobian rows; gradients of λ·F
        hessian = X.new_zeros(B, d, d)
        if rows.requires_grad:                        # else linear, or no curvature asked: no second pass
            second, = torch.autograd.grad(rows[m:].diagonal(0, 0, 2).sum(), copies, allow_unused=True)
            if second is not None:
                hessian = second[m:].permute(1, 0, 2)
    return rows[:m].detach().permute(1, 0, 2), hessian

"""The helpers that code generated on the tensor path calls (compiler.tensor_codegen): values carry
batch dimensions in front of their logical shape (vector [..., n], matrix [..., n, m])."""
from __future__ import annotations

from typing import Callable

import torch

from .implicit import batched_jacobian, solve_implicit


def _flat(v: torch.Tensor, rank: int) -> torch.Tensor:
    """The entries of a value of `rank` logical dimensions in its last dimension."""
    return v.unsqueeze(-1) if rank == 0 else v.flatten(-2) if rank == 2 else v


def _joined(blocks: list[torch.Tensor], batch: torch.Size) -> torch.Tensor:
    """Blocks broadcast to `batch` and joined in their last dimension (a single one as it is)."""
    blocks = [b if b.shape[:-1] == batch else b.expand(*batch, b.shape[-1]) for b in blocks]
    return blocks[0] if len(blocks) == 1 else torch.cat(blocks, -1)


def _batch_shape(shapes: list[torch.Size]) -> torch.Size:
    """The broadcast batch shape; at once where each shape is the longest one or empty (the common case:
    torch.broadcast_shapes costs ~0.1 ms a call)."""
    longest = max(shapes, key=len)
    if all(not shape or shape == longest for shape in shapes):
        return longest
    return torch.broadcast_shapes(*shapes)


def derivative(function: Callable, x: torch.Tensor, value_rank: int, target_rank: int) -> torch.Tensor:
    """d(function(x), x) by autograd, per batch entry, in the shape of `tensors.derivative` (a
    number for one entry each, x's shape for a scalar value, the value's for a scalar x, else the
    Jacobian with one row per entry of the value). Differentiable itself where gradients are
    recorded (create_graph), so a derivative may sit in an objective."""
    outer = torch.is_grad_enabled()
    with torch.enable_grad():
        v = x if x.requires_grad else x.detach().requires_grad_(True)
        y = torch.as_tensor(function(v), dtype=x.dtype, device=x.device)
        batch = y.shape[:y.dim() - value_rank]
        if batch != v.shape[:v.dim() - target_rank]:   # a value of each batch entry: a target of each too
            v = v.expand(*batch, *v.shape[v.dim() - target_rank:])
            y = function(v)
        flat = y.reshape(*batch, -1)
        rows = []
        for i in range(flat.shape[-1]):
            found = torch.autograd.grad(flat[..., i].sum(), v, retain_graph=True, create_graph=outer,
                                        allow_unused=True)[0] if flat.requires_grad else None
            rows.append((found if found is not None else torch.zeros_like(v)).reshape(*batch, -1))
    jacobian = torch.stack(rows, -2)
    m, k = jacobian.shape[-2:]
    if m == 1 and k == 1:
        result = jacobian[..., 0, 0]
    elif m == 1:
        result = jacobian[..., 0, :].reshape(*batch, *x.shape[x.dim() - target_rank:])
    elif k == 1:
        result = jacobian[..., :, 0].reshape(*batch, *y.shape[y.dim() - value_rank:])
    else:
        result = jacobian
    return result if outer else result.detach()


def sensitivity(function: Callable, theta: torch.Tensor, s0: torch.Tensor | None, sT: torch.Tensor | None,
                columns: tuple[int, int] | None) -> torch.Tensor:
    """sens(e, theta) of a design study: d/dv e(v, s0 + (v - theta) S(0), sT + (v - theta) S(T)) at
    v = theta, S = ∂x/∂theta the `columns` = (start, count) of the states' sensitivity (None: no
    states), which move the first `count` columns: ∂e/∂theta + ∂e/∂x(0) S(0) + ∂e/∂x(T) S(T)."""
    def moved(s: torch.Tensor | None, shift: torch.Tensor) -> torch.Tensor | None:
        if s is None or columns is None:
            return s
        start, count = columns
        return torch.cat([s[..., :count] + shift[..., None] * s[..., start:start + count], s[..., count:]], -1)

    def along(v: torch.Tensor) -> torch.Tensor:
        shift = v - theta.detach()
        return function(v, moved(s0, shift), moved(sT, shift))
    return derivative(along, theta, 0, 0)


def tensor_helpers(tensor: Callable, implicits: list, dtype: torch.dtype, device: torch.device) -> dict:
    """`_fill`, `_param`, `_rows`, `_cat`, `_state_blocks`, `_entries`, `_pair`, `_repeat_rows`, `_eye`,
    `_solve_tensor` (Newton with the generated Jacobian, or torch.func's where there is none), `_derivative`,
    `_sensitivity`."""

    def fill(v, dims):
        v = tensor(v)
        return v.reshape(*v.shape, *[1] * len(dims)).expand(*v.shape, *dims)

    def param(v, dims):
        return tensor(v).to(dtype=dtype, device=device).expand(dims).clone()

    def rows(*vs):
        return torch.stack(torch.broadcast_tensors(*[tensor(v) for v in vs]), -2)

    def cat(*blocks):
        blocks = [tensor(b) for b in blocks]
        return _joined(blocks, _batch_shape([b.shape[:-1] for b in blocks]))

    def state_blocks(s, *blocks):
        return _joined([_flat(tensor(v), rank) for v, rank in blocks], s.shape[:-1])

    def entries(v, rank):
        return tuple(_flat(tensor(v), rank).unbind(-1))

    def pair(left, left_rank, right, right_rank):
        rank = max(left_rank, right_rank)
        left, right = (tensor(v)[(..., *[None] * (rank - r))] for v, r in ((left, left_rank), (right, right_rank)))
        left, right = torch.broadcast_tensors(left, right)
        return (*_flat(left, rank).unbind(-1), *_flat(right, rank).unbind(-1))

    def repeat_rows(J, m):
        return J.unsqueeze(-2).expand(*J.shape[:-1], m, J.shape[-1])

    def eye(n):
        return torch.eye(n, dtype=dtype, device=device)

    like = torch.empty((), dtype=dtype, device=device)
    labels = [f"'{i.name}' (line {i.line}: {i.text})" for i in implicits]

    def solve(residual, jacobian, size, *, tol, max_iter, damping, label):
        return solve_implicit(residual, jacobian or batched_jacobian(residual), size, tol=tol, max_iter=max_iter,
                              damping=damping, newton=implicits[label].options.method == "newton",
                              label=labels[label], like=like)

    return {"_fill": fill, "_param": param, "_rows": rows, "_cat": cat, "_state_blocks": state_blocks,
            "_entries": entries, "_pair": pair, "_repeat_rows": repeat_rows, "_eye": eye, "_solve_tensor": solve,
            "_derivative": derivative, "_sensitivity": sensitivity}

"""The implicit layer: solve φ(y, x) = 0 by damped Newton, differentiate by the implicit function theorem.

Forward: Newton iterations without an autograd graph (memory independent of the iteration count).
Backward (report eq. 2.18-2.20, option (b)): the output is attached to the graph as
    y = y* - J⁻¹ φ(y*, x),   J = ∂φ/∂y at y* (held constant),
whose value is y* (φ(y*, x) = 0) and whose vector-Jacobian product is -(J⁻ᵀ ȳ)ᵀ ∂φ/∂x:
one linear solve with Jᵀ, then one product with ∂φ/∂x.
"""
from __future__ import annotations

from typing import Callable

import torch

from .errors import RunError

Residual = Callable[[torch.Tensor], torch.Tensor]
LAST_ITERATIONS: dict[str, int] = {}   # label -> iterations of its latest forward solve (diagnostics)
DEFAULT_TOL = 1e-12          # the default tol in float64
DEFAULT_TOL_EPSILONS = 32    # ... and at least this many machine epsilons of the dtype (float32: 3.8e-6)


def default_tol(dtype: torch.dtype) -> float:
    """The tol of an implicit equation whose spec sets none: 1e-12, or 32 machine epsilons where the
    dtype cannot reach that (float32), so that a spec runs in float32 as written."""
    return max(DEFAULT_TOL, DEFAULT_TOL_EPSILONS * torch.finfo(dtype).eps)


def _autograd_jacobian(residual: Residual, y: torch.Tensor) -> torch.Tensor:
    """∂φ/∂y by autograd (when nets of y make the symbolic Jacobian unavailable)."""
    with torch.enable_grad():
        y = y.detach().requires_grad_(True)
        phi = residual(y)
        rows = [torch.autograd.grad(phi[..., i].sum(), y, retain_graph=True)[0] for i in range(phi.shape[-1])]
    return torch.stack(rows, -2)


def batched_jacobian(residual: Residual) -> Callable[[torch.Tensor], torch.Tensor]:
    """y -> ∂φ/∂y (..., n, n) by torch.func.jacrev: the entries of a batch are independent, so the
    Jacobian of φ summed over the batch holds every entry's own Jacobian (n vector-Jacobian
    products, vmapped, for any batch size)."""
    def summed(y: torch.Tensor) -> torch.Tensor:
        phi = residual(y)
        return phi.reshape(-1, phi.shape[-1]).sum(0)

    def jacobian(y: torch.Tensor) -> torch.Tensor:
        return torch.func.jacrev(summed)(y).movedim(0, -2)
    return jacobian


def iterate(residual: Residual, jacobian: Callable | None, y: torch.Tensor, tol: float, max_iter: int,
            damping: bool, newton: bool = True, phi: torch.Tensor | None = None) -> tuple[torch.Tensor, float, int]:
    """Damped Newton from y (fixed-point steps y - φ(y) where the Jacobian is singular, or
    everywhere with newton=False); `phi`, where given, is φ(y) already evaluated. Returns the solution,
    its largest residual and the iterations. One host read of the largest residual per trial point
    (the convergence test of the next iteration reuses the accepted trial's)."""
    phi = residual(y) if phi is None else phi
    error = float(phi.abs().max())
    for iteration in range(1, max_iter + 1):
        if error <= tol:
            return y, error, iteration - 1
        step = _newton_step(residual, jacobian, y, phi) if newton else phi
        alpha = 1.0
        while True:
            candidate = y - step if alpha == 1.0 else y - alpha * step
            new_phi = residual(candidate)
            new_error = float(new_phi.abs().max())
            if not damping or new_error < error or alpha < 1e-4:
                break
            alpha /= 2
        y, phi, error = candidate, new_phi, new_error
    return y, error, max_iter


def _newton_step(residual: Residual, jacobian: Callable | None, y: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """J⁻¹ φ at y, or φ itself (a fixed-point step) for the entries whose Jacobian is singular; chosen
    on the device, without reading the solver's status back to the host."""
    J = jacobian(y) if jacobian is not None else _autograd_jacobian(residual, y)
    step, info = _solve_vectors(J, phi)
    return torch.where((info == 0).unsqueeze(-1), step, phi)


def _solve_vectors(J: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x with J x = b for vectors b (..., n), and LAPACK's status per system (0: solved; no host read).
    A Jacobian per entry takes b as a batch of vectors; one Jacobian shared by a batch is broadcast."""
    if J.shape[:-1] == b.shape:
        return torch.linalg.solve_ex(J, b)
    x, info = torch.linalg.solve_ex(J, b.unsqueeze(-1))
    return x.squeeze(-1), info


def solve_implicit(residual: Residual, jacobian: Callable | None, size: int, *, tol: float | None, max_iter: int,
                   damping: bool, newton: bool, label: str, like: torch.Tensor) -> torch.Tensor:
    """The unknowns y (..., size) with φ(y) = 0, differentiable by the implicit function theorem;
    tol None is the dtype's default."""
    tol = default_tol(like.dtype) if tol is None else tol
    with torch.no_grad():
        start = torch.zeros(size, dtype=like.dtype, device=like.device)
        phi = residual(start)   # its shape gives the batch; its value is φ at the broadcast start
        start = start.expand(phi.shape).clone()
        y, error, iterations = iterate(residual, jacobian, start, tol, max_iter, damping, newton, phi)
    if not error <= tol:
        eps = torch.finfo(like.dtype).eps
        below = f"; tol {tol:g} is below {str(like.dtype).replace('torch.', '')} precision (machine epsilon " \
                f"{eps:.2g})" if tol < 10 * eps else ""
        raise RunError(f"the implicit equation {label} did not converge: largest residual {error:.3g} after "
                       f"{iterations} iterations (tol {tol:g}){below}",
                       "use --dtype float64 or a tol above the precision" if below else
                       f"raise max_iter or tol with 'using {'newton' if newton else 'picard'}(...)'"
                       + ("" if newton else ", try 'using newton(...)'") + ", or check that a solution exists")
    LAST_ITERATIONS[label] = iterations
    y = y.detach()
    phi = residual(y)
    if not phi.requires_grad:
        return y
    J = (jacobian(y) if jacobian is not None else _autograd_jacobian(residual, y)).detach()
    return y - torch.linalg.solve(J, phi.unsqueeze(-1)).squeeze(-1)

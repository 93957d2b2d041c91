"""The helpers that generated code calls (`_matrix`, `_smin`, `_solve_implicit`, ...), bound to a
dtype and device. The compiler only names them; this module gives them their meaning."""
from __future__ import annotations

import warnings

import torch

from ..compiler import ir
from .implicit import solve_implicit
from .tensor_library import tensor_helpers

COINCIDENT = 1e-10   # relative gap under which singular values count as equal


def build_generated(source: str, dtype: torch.dtype, device: torch.device, implicits: list[ir.Implicit],
                    params: list, nets: list) -> dict:
    """Run the generated module (see compiler.codegen: only validated symbols and numbers reach its
    source) with this library's helpers, and return its functions bound to `params` and `nets`."""
    return module(source, dtype, device, implicits)["build"](params, nets)


def module(source: str, dtype: torch.dtype, device: torch.device, implicits: list) -> dict:
    """The globals of the generated module, run with this library's helpers."""
    globals_ = namespace(dtype, device, implicits)
    globals_.update(tensor_helpers(globals_["_tensor"], implicits, dtype, device))
    return run_generated(source, globals_)


def run_generated(source: str, globals_: dict, filename: str = "<impsolve generated>") -> dict:
    """Run source that impsolve generated (compiler.codegen, compiler.py_kernel: only validated
    symbols, mangled names and numbers reach it) in `globals_`, and return them: the one place
    anything is executed."""
    exec(compile(source, filename, "exec"), globals_)  # noqa: S102 - generated code only
    return globals_


def namespace(dtype: torch.dtype, device: torch.device, implicits: list[ir.Implicit]) -> dict:
    """Globals for a generated module."""

    def tensor(v):
        return v if isinstance(v, torch.Tensor) else torch.tensor(v, dtype=dtype, device=device)

    def column(v):
        return tensor(v).unsqueeze(-1)

    def stack(*vs):
        first = vs[0]
        if isinstance(first, torch.Tensor) and all(isinstance(v, torch.Tensor) and v.shape == first.shape for v in vs):
            return torch.stack(vs, -1)   # nothing to broadcast: no expand nodes in the graph
        return torch.stack(torch.broadcast_tensors(*[tensor(v) for v in vs]), -1)

    def matrix(rows: int, cols: int, *entries):
        flat = stack(*entries)
        return flat.reshape(*flat.shape[:-1], rows, cols)

    def like(v, ref):
        return tensor(v).expand(ref.shape)

    def batch_mean(v):
        return v.mean(-1) if isinstance(v, torch.Tensor) and v.dim() > 0 else v

    def svdvals(m):
        values = torch.linalg.svdvals(m)
        if values.shape[-1] > 1 and m.requires_grad:
            held = values.detach()        # the check records no autograd nodes
            gaps = (held[..., :-1] - held[..., 1:]).abs() / held[..., :1].abs().clamp_min(1e-300)
            if bool((gaps < COINCIDENT).any()):
                warnings.warn("singular values coincide: the SVD adjoint (eq. 2.33) is ill-conditioned there",
                              RuntimeWarning, stacklevel=2)
        return values

    def solve(residual, jacobian, size, *, tol, max_iter, damping, label):
        implicit = implicits[label]
        return solve_implicit(residual, jacobian, size, tol=tol, max_iter=max_iter, damping=damping,
                              newton=implicit.options.method == "newton",
                              label=f"'{implicit.name}' (line {implicit.line}: {implicit.text})",
                              like=torch.empty((), dtype=dtype, device=device))

    return {
        "_tensor": tensor, "_column": column, "_stack": stack, "_matrix": matrix, "_like": like,
        "_batch_mean": batch_mean, "_svdvals": svdvals,
        "_smin": lambda m: svdvals(m)[..., -1], "_smax": lambda m: svdvals(m)[..., 0],
        "_eigvalsh": torch.linalg.eigvalsh, "_logdet": lambda m: torch.linalg.slogdet(m)[1],
        "_det": torch.linalg.det, "_solve_implicit": solve,
    }

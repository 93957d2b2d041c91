"""Forward sensitivities of a tensor-path model by automatic differentiation (issue 11).

The scalar path writes the variational equations with SymPy (compiler.fit, compiler.passes); on
the tensor path the compiler only asks for them (`tensors.Sensitivities`) and this module wraps the
generated functions so that the runtime sees the same columns and outputs as on the scalar path:

- `dynamics(t, s)`: the base rates, then dS_k/dt = ∂f/∂x S_k + ∂f/∂θ_k for every fitted param
  entry θ_k (parameter-major, the states' columns inside);
- `initial`, `fit_initial_k`: the base initial values, then ∂x(0)/∂θ_k;
- `fit_observed(t, s)`: each fitted value, then its total derivative ∂e/∂θ_k + ∂e/∂x S_k
  (item-major).

Each is a Jacobian-vector product J v_k with v_k = (S_k, e_k), taken in reverse mode by the double
vector-Jacobian product: g(w) = Jᵀw (one backward pass with a graph), then J v_k, the product of
∂g/∂w with v_k (one small backward pass per direction). Not forward-mode AD: in torch 2.13 an operation between a dual
tensor and a plain one (a Python number, a const) goes through a zero tensor whose shape is found
by a Python meta kernel, ~150 µs an operation against ~2 µs.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch

from ..compiler.tensors import Sensitivities

Functions = dict[str, Callable]


class ForwardSensitivities:
    """The generated functions of a tensor model with the sensitivity columns of `spec` added."""

    def __init__(self, params: list[torch.Tensor], spec: Sensitivities, functions: Functions) -> None:
        self.spec, self.base = spec, functions
        self.fitted = [params[j] for j in spec.params]
        self.count = sum(p.numel() for p in self.fitted)
        self.units: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}   # the directions e_k, per dtype

    def unit(self, like: torch.Tensor) -> torch.Tensor:
        """The identity whose rows are the directions e_k, built once per dtype and device (jvps runs
        at every right-hand-side evaluation)."""
        key = (like.dtype, like.device)
        if key not in self.units:
            self.units[key] = torch.eye(self.count, dtype=like.dtype, device=like.device)
        return self.units[key]

    def jvps(self, function: Callable[[torch.Tensor | None], torch.Tensor], x: torch.Tensor | None,
             tangents: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """y = function(x) and J v_k for every direction k ([..., directions, outputs]): v_k moves the
        fitted params' entry k by 1 and x's first `states` columns by tangents[..., k, :].

        Both are taken on detached copies of x and the tangents and attached to the originals by
        `_Reattached`: an `autograd.grad` whose graph reaches the solve's history walks all of it
        (each step would cost as much as every step before it)."""
        outer = torch.is_grad_enabled()
        frozen = [p for p in self.fitted if not p.requires_grad]   # a design study's theta: not trained
        with torch.enable_grad(), _requiring_grad(frozen):
            local_x = None if x is None else x.detach().requires_grad_(True)
            local_t = None if tangents is None else tangents.detach().requires_grad_(outer)
            y = function(local_x)
            if not y.requires_grad:
                return y.detach(), y.new_zeros(*y.shape[:-1], self.count, y.shape[-1])
            w = torch.zeros_like(y, requires_grad=True)
            inputs = [local_x, *self.fitted] if x is not None else self.fitted
            grads = torch.autograd.grad(y, inputs, w, create_graph=True, allow_unused=True)
            g_x = grads[0][..., :self.spec.states] if x is not None and grads[0] is not None else None
            g_p = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                             for g, p in zip(grads[len(inputs) - len(self.fitted):], self.fitted)])
            unit = self.unit(y)
            columns = []
            for k in range(self.count):
                outputs, cotangents = [g_p], [unit[k]]
                if g_x is not None:
                    outputs.append(g_x)
                    cotangents.append(local_t[..., k, :])
                needed = [(o, c) for o, c in zip(outputs, cotangents) if o.requires_grad]
                found = torch.autograd.grad([o for o, _ in needed], w, [c for _, c in needed], retain_graph=True,
                                            create_graph=outer, allow_unused=True)[0] if needed else None
                columns.append(found if found is not None else torch.zeros_like(y))
            derivatives = torch.stack(columns, -2)
        if not outer:
            return y.detach(), derivatives.detach()
        joined = _Reattached.apply(torch.cat([y.unsqueeze(-2), derivatives], -2), [local_x, local_t], x, tangents)
        return joined[..., 0, :], joined[..., 1:, :]

    def tangents(self, s: torch.Tensor) -> torch.Tensor:
        """The sensitivity columns of an augmented state as [..., directions, states]."""
        return s[..., self.spec.columns:].unflatten(-1, (self.count, self.spec.states))

    def dynamics(self, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """[f(x), dS_0/dt, dS_1/dt, ...]."""
        rates, derivatives = self.jvps(lambda x: self.base["dynamics"](t, x), s[..., :self.spec.columns],
                                       self.tangents(s))
        return torch.cat([rates, derivatives[..., :self.spec.states].flatten(-2)], -1)

    def initial(self, name: str) -> Callable:
        """An initial-value function (`initial`, `fit_initial_k`) with ∂x(0)/∂θ_k after its entries."""
        def values(t, s, s0=None, sT=None, T=None):
            like = self.fitted[0]
            stacked = lambda _: torch.stack([torch.as_tensor(v, dtype=like.dtype, device=like.device)  # noqa: E731
                                             for v in self.base[name](t, s)])
            value, derivatives = self.jvps(stacked, None, None)
            return (*value.unbind(-1), *derivatives[..., :self.spec.states].flatten(-2).unbind(-1))
        return values

    def observed(self, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """[e_1..e_m, de_1/dθ_0.., de_2/dθ_0.., ...] (item-major), as compiler.fit's `fit_observed`."""
        values, derivatives = self.jvps(lambda x: self.base["fit_observed"](t, x), s[..., :self.spec.columns],
                                        self.tangents(s))
        return torch.cat([values, derivatives.transpose(-1, -2).flatten(-2)], -1)

    def functions(self) -> Functions:
        """The wrapped functions (the others read only base columns and stay as generated)."""
        wrapped = dict(self.base)
        if "dynamics" in wrapped:
            wrapped["dynamics"] = self.dynamics
        for name in wrapped:
            if name == "initial" or name.startswith("fit_initial_"):
                wrapped[name] = self.initial(name)
        if "fit_observed" in wrapped:
            wrapped["fit_observed"] = self.observed
        return wrapped


class _Reattached(torch.autograd.Function):
    """A value computed from detached copies of some tensors, attached to the originals: backward
    sends the gradient into the value's own graph (params) and, through it, to each original as
    the gradient of its copy."""

    @staticmethod
    def forward(ctx, local: torch.Tensor, copies: list, *originals: torch.Tensor | None) -> torch.Tensor:
        ctx.local, ctx.copies = local, copies
        return local.detach().clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        pairs = [c for c in ctx.copies if c is not None and c.requires_grad]
        with torch.enable_grad():
            found = iter(torch.autograd.grad(ctx.local, pairs, grad, retain_graph=True, allow_unused=True)
                         if pairs else ())
        return (grad, None, *(next(found) if c is not None and c.requires_grad else None for c in ctx.copies))


@contextmanager
def _requiring_grad(tensors: list[torch.Tensor]) -> Iterator[None]:
    """The leaves require grad inside (so autograd reaches them), as before after."""
    for t in tensors:
        t.requires_grad_(True)
    try:
        yield
    finally:
        for t in tensors:
            t.requires_grad_(False)


def with_sensitivities(functions: Functions, params: list[torch.Tensor], spec: Sensitivities | None) -> Functions:
    """The generated functions, with the forward sensitivities of `spec` when it asks for any."""
    if spec is None:
        return functions
    return ForwardSensitivities(params, spec, functions).functions()

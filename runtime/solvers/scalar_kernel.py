"""The plain-torch tier's right-hand side for one trajectory on the CPU: the dynamics' expressions
evaluated on Python floats (compiler.py_kernel), the nets as torch modules.

`KernelDynamics(t, s)` is a drop-in for the generated torch dynamics: same values (to round-off),
same gradients. The expressions between the nets become one autograd node each (`Expressions`),
whose backward is the generated vector-Jacobian product. Where Python raises on a float operation
(log(0), sqrt(-1), 1/0.0, exp overflow) the call is evaluated by the generated torch dynamics,
which give torch's inf or nan; a backward that raises is evaluated again on numpy float64s, whose
IEEE arithmetic gives inf and nan where torch's does (and finite gradients where only an unused
branch or a factor 0 meets the singularity). Any other call (a batch, another dtype or device)
goes to the torch dynamics too."""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Callable

import numpy
import torch

from ...compiler.py_kernel import ScalarKernel
from ..library import run_generated

KERNEL_FILENAME = "<impsolve kernel>"
FLOAT_ERRORS = (ArithmeticError, ValueError)   # ZeroDivisionError, OverflowError, math domain errors


def _sign(x: float) -> float:
    return float(x > 0.0) - float(x < 0.0)      # 0 for nan, as torch.sign


def _max(a: float, b: float) -> float:
    return a if a >= b else b if b >= a else a + b          # a nan propagates, as torch.maximum


def _min(a: float, b: float) -> float:
    return a if a <= b else b if b <= a else a + b


def _exp_functions(m) -> dict[str, Callable]:
    """sigmoid, softplus (torch's threshold 20) and sech through the module `m`'s exp and log1p,
    written so that math's never overflow where torch's give 0 or x."""
    def sigmoid(x: float) -> float:
        if x >= 0.0:
            return 1.0 / (1.0 + m.exp(-x))
        e = m.exp(x)
        return e / (1.0 + e)

    def softplus(x: float) -> float:
        return x if x > 20.0 else m.log1p(m.exp(x))

    def sech(x: float) -> float:
        e = m.exp(-abs(x))              # 2 / (e^x + e^-x), without cosh's overflow
        return 2.0 * e / (1.0 + e * e)
    return {"_sigmoid": sigmoid, "_softplus": softplus, "_sech": sech}


KERNEL_LIBRARY = {"_math": math, "_abs": abs, "_sign": _sign, "_max": _max, "_min": _min, **_exp_functions(math)}
IEEE_MATH = SimpleNamespace(sin=numpy.sin, cos=numpy.cos, tan=numpy.tan, asin=numpy.arcsin, acos=numpy.arccos,
                            atan=numpy.arctan, atan2=numpy.arctan2, sinh=numpy.sinh, cosh=numpy.cosh,
                            tanh=numpy.tanh, exp=numpy.exp, log=numpy.log, log1p=numpy.log1p, sqrt=numpy.sqrt,
                            pow=numpy.power)
# the kernel's functions on numpy float64s: inf and nan, never an exception
IEEE_LIBRARY = {**KERNEL_LIBRARY, "_math": IEEE_MATH, **_exp_functions(IEEE_MATH)}


def _vjp(vjps: tuple[Callable, Callable], values: list[float], adjoints: list[float]) -> list[float]:
    """The VJP on Python floats; where Python raises, the same source on numpy float64s."""
    exact, ieee = vjps
    try:
        return exact(values, adjoints)
    except FLOAT_ERRORS:
        with numpy.errstate(all="ignore"):
            return [float(v) for v in ieee([numpy.float64(v) for v in values], [numpy.float64(g) for g in adjoints])]


def _values(tensors: tuple[torch.Tensor, ...]) -> list[float]:
    """The entries of `tensors`, flattened in order, as Python floats."""
    out: list[float] = []
    for x in tensors:
        out += x.reshape(-1).tolist()
    return out


class Expressions(torch.autograd.Function):
    """The expressions' `outputs` (1 x m, computed from `values`, the entries of `tensors`) as one
    autograd node; backward by the generated VJP (`vjps`: on floats, and on numpy float64s)."""

    @staticmethod
    def forward(ctx, vjps: tuple[Callable, Callable], values: list[float], outputs: list[float],
                *tensors: torch.Tensor) -> torch.Tensor:
        ctx.vjps, ctx.values, ctx.shapes = vjps, values, [x.shape for x in tensors]
        return torch.tensor([outputs], dtype=torch.float64)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if torch.is_grad_enabled():     # create_graph: the gradients below are floats, with no graph
            raise RuntimeError("a second derivative through the torch tier's float kernel is not computed; "
                               "compile with solve.backend=torchdiffeq for one")
        flat = _vjp(ctx.vjps, ctx.values, grad.reshape(-1).tolist())
        grads, start = [], 0
        for shape, needed in zip(ctx.shapes, ctx.needs_input_grad[3:]):
            size = math.prod(shape)
            grads.append(torch.tensor(flat[start:start + size], dtype=grad.dtype).reshape(shape) if needed else None)
            start += size
        return None, None, None, *grads


class KernelDynamics:
    """f(t, s) by the kernel for one float64 trajectory on the CPU, by `fallback` (the generated
    torch dynamics) otherwise."""

    def __init__(self, kernel: ScalarKernel, fallback: Callable, params: list[torch.Tensor],
                 nets: list[torch.nn.Module]) -> None:
        functions = run_generated(kernel.source, dict(KERNEL_LIBRARY), KERNEL_FILENAME)
        ieee = run_generated(kernel.source, dict(IEEE_LIBRARY), KERNEL_FILENAME)
        self.rhs, self.rhs_vjp = functions["_rhs"], (functions["_rhs_vjp"], ieee["_rhs_vjp"])
        self.inputs, self.inputs_vjp = functions.get("_inputs"), (functions.get("_inputs_vjp"), ieee.get("_inputs_vjp"))
        self.kernel, self.fallback = kernel, fallback
        self.params = [params[j] for j in kernel.params]
        self.nets = [nets[c.net] for c in kernel.calls]

    def __call__(self, t: torch.Tensor, s: torch.Tensor, *rest, **named) -> torch.Tensor:
        if rest or named or s.dim() != 2 or s.shape[0] != 1 or s.dtype != torch.float64 or s.device.type != "cpu":
            return self.fallback(t, s, *rest, **named)
        head = (t, s, *self.params)
        try:
            head_values = _values(head)
            outputs = self._net_outputs(head, head_values)
            inputs = (*head, *outputs)
            values = head_values + _values(outputs)
            derivatives = self.rhs(values)
        except FLOAT_ERRORS:
            return self.fallback(t, s)
        if not torch.is_grad_enabled():
            return torch.tensor([derivatives], dtype=s.dtype)
        return Expressions.apply(self.rhs_vjp, values, derivatives, *inputs)

    def _net_outputs(self, head: tuple[torch.Tensor, ...], values: list[float]) -> list[torch.Tensor]:
        """Each call's net output (1 x outputs), its inputs sliced from s or from the kernel's
        (`values`: the entries of `head`)."""
        computed = head[1]
        if self.kernel.computes_inputs:
            entries = self.inputs(values)
            computed = Expressions.apply(self.inputs_vjp, values, entries, *head) if torch.is_grad_enabled() \
                else torch.tensor([entries], dtype=torch.float64)
        outputs, start, s = [], 0, head[1]
        for call, net in zip(self.kernel.calls, self.nets):
            if call.states is not None:     # an Mlp reads the columns without a slice in the graph
                first, stop = call.states
                columns = getattr(net, "of_columns", None)
                outputs.append(columns(s, first, stop) if columns else net(s[..., first:stop]))
            else:
                outputs.append(net(computed[..., start:start + call.inputs]))
                start += call.inputs
        return outputs

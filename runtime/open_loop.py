"""Open-loop controls (`control u in [low, high] piecewise(N=50)`): a trained value per interval
(or per node) of [0, T], evaluated at the rescaled time s = t / T in [0, 1]."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..compiler import ir
from .nets import build_mlp


class PiecewiseControl(nn.Module):
    """u(s) on N intervals of [0, 1]: constant on each (N values) or linear between N + 1 nodes.

    Bounds are kept by the smooth map u = low + (high - low)(1 + sin r)/2 of the trained r: it
    reaches the bounds at finite r (so a bang-bang optimum is representable exactly) and any
    optimiser can be used unchanged (no projection step)."""

    def __init__(self, spec: ir.OpenLoop, dtype: torch.dtype, device: torch.device | str) -> None:
        super().__init__()
        self.spec = spec
        self.intervals = spec.options.N
        count = self.intervals + (spec.options.hold == "linear")
        bounded = spec.low is not None
        init = spec.options.init if spec.options.init is not None else \
            (0.5 * (spec.low + spec.high) if bounded else 0.0)
        raw = math.asin(min(1.0, max(-1.0, 2 * (init - spec.low) / (spec.high - spec.low) - 1))) if bounded else init
        self.raw = nn.Parameter(torch.full((count,), raw, dtype=dtype, device=device))

    def values(self) -> torch.Tensor:
        """The control's values on the intervals (or at the nodes)."""
        if self.spec.low is None:
            return self.raw
        return self.spec.low + (self.spec.high - self.spec.low) * 0.5 * (1 + torch.sin(self.raw))

    def set_values(self, values: torch.Tensor) -> None:
        """Set the trained r so that values() gives `values` (the inverse of its map, clamped to the bounds)."""
        if self.spec.low is not None:
            scaled = 2 * (values - self.spec.low) / (self.spec.high - self.spec.low) - 1
            values = torch.asin(scaled.clamp(-1.0, 1.0))
        with torch.no_grad():
            self.raw.copy_(values.to(self.raw))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """u at the rescaled times x (..., 1) -> (..., 1)."""
        s = x[..., 0].clamp(0.0, 1.0) * self.intervals
        k = torch.floor(s.detach()).clamp(max=self.intervals - 1)
        values, index = self.values(), k.long()
        if self.spec.options.hold == "constant":
            return values[index].unsqueeze(-1)
        w = s - k
        return (values[index] * (1 - w) + values[index + 1] * w).unsqueeze(-1)


def build_net(net: ir.Net, dtype: torch.dtype, device: torch.device | str) -> nn.Module:
    """The module bound to a net of the problem: an MLP, or an open-loop control's values."""
    if isinstance(net.options, ir.OpenLoop):
        return PiecewiseControl(net.options, dtype, device)
    return build_mlp(net.width, net.options).to(device=device, dtype=dtype)

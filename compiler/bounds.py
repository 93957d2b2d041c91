"""Param bounds (`param k > 0 = 1`, `param k in [a, b] = v`): the generated code holds an
unbounded raw value r and the spec sees the bounded one, low + exp(r), high - exp(r) or
low + (high - low) sigmoid(r), so any optimiser step stays inside and the bound is never reached
(a fit of k > 0 is a fit of log k)."""
from __future__ import annotations

import math

import sympy as sp

from .functions import sigmoid


def bounded(raw: sp.Expr, low: float | None, high: float | None) -> sp.Expr:
    """The value a spec sees for the raw param `raw`."""
    if low is not None and high is not None:
        return sp.Float(low) + sp.Float(high - low) * sigmoid(raw)
    if low is not None:
        return (sp.Float(low) if low else sp.Integer(0)) + sp.exp(raw)
    return sp.Float(high) - sp.exp(raw)


def raw_value(value: float, low: float | None, high: float | None) -> float:
    """The raw value that gives `value` (strictly inside the bounds)."""
    if low is not None and high is not None:
        return math.log((value - low) / (high - value))
    return math.log(value - low) if low is not None else math.log(high - value)


def inside(value: float, low: float | None, high: float | None) -> bool:
    """Whether `value` lies strictly within the bounds."""
    return (low is None or value > low) and (high is None or value < high)


def natural(raw: float, low: float | None, high: float | None) -> float:
    """The bounded value of a raw number (the runtime's report of a fitted param)."""
    if low is not None and high is not None:
        return low + (high - low) / (1.0 + math.exp(-raw))
    return low + math.exp(raw) if low is not None else high - math.exp(raw)

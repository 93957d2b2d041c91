"""Uncertainty of fitted params (issue 13): the covariance σ² (JᵀJ)⁻¹ at the optimum (J of the
scaled residuals, so σ is in it; an estimated σ enters with n/(n - p) for the fitted entries),
standard errors, 95 % intervals and the correlation matrix, and a located explanation when JᵀJ
is singular (which params the data cannot tell apart)."""
from __future__ import annotations

import math

import torch

from ..compiler import ir
from ..compiler.bounds import natural
from ..compiler.values import component_names
from .errors import RunError

Z95 = 1.959963984540054          # the standard normal's 97.5 % quantile
SINGULAR = 1e-10                 # smallest / largest eigenvalue of the scaled JᵀJ below this: not identifiable


def entry_bounds(problem: ir.Problem) -> tuple[list[str], list[tuple[float | None, float | None] | None]]:
    """The fitted entries' names (row-major for vectors and matrices) and each one's bounds."""
    names, bounds = [], []
    for name in problem.fit.params:
        param = problem.params[name]
        for component in component_names(name, param.shape):
            names.append(component)
            bounds.append(param.bounds)
    return names, bounds


def identifiable(jac: torch.Tensor, names: list[str]) -> None:
    """A RunError naming the params the data cannot separate when JᵀJ is (nearly) singular."""
    normal = jac.T @ jac
    diagonal = normal.diagonal()
    for i, d in enumerate(diagonal.tolist()):
        if not d > 0:
            raise RunError(f"the fit is not identifiable: the data do not depend on '{names[i]}'",
                           "fix it as a const, or fit data that it changes", exit_code=2)
    scaled = normal / torch.sqrt(diagonal[:, None] * diagonal[None, :])
    values, vectors = torch.linalg.eigh(scaled)
    if float(values[0]) > SINGULAR * float(values[-1]):
        return
    direction = vectors[:, 0]
    involved = [(abs(float(w)), names[i], float(w)) for i, w in enumerate(direction) if abs(float(w)) > 0.1]
    involved.sort(reverse=True)
    quoted = " and ".join(f"'{n}'" for _, n, _ in involved) if len(involved) <= 2 else \
        ", ".join(f"'{n}'" for _, n, _ in involved[:-1]) + f" and '{involved[-1][1]}'"
    combination = " ".join(f"{w:+.2f}·{n}" for _, n, w in involved)
    raise RunError(f"the fit is not identifiable: {quoted} are confounded (JᵀJ is singular: changing them "
                   f"together along {combination} leaves the residuals unchanged)",
                   "fix one of them as a const, reparametrise (e.g. fit their product), or add data that "
                   "separates them", exit_code=2)


def estimates(problem: ir.Problem, theta: torch.Tensor, jac: torch.Tensor, inflation: float
              ) -> tuple[dict[str, dict], dict[str, dict[str, float]], dict[str, float]]:
    """Per fitted entry {value, stderr, ci95}, the correlation matrix and the raw covariance's
    diagonal. `inflation` multiplies the covariance (n/(n-p) for estimated sigmas, else 1). The
    interval of a bounded param is the raw interval mapped through its bound (so it stays inside);
    its stderr is the delta method's."""
    names, bounds = entry_bounds(problem)
    identifiable(jac, names)
    cov = torch.linalg.inv(jac.T @ jac) * inflation
    raw_se = torch.sqrt(cov.diagonal().clamp(min=0.0)).tolist()
    out, slopes = {}, []
    for i, name in enumerate(names):
        r, se, (low, high) = float(theta[i]), raw_se[i], bounds[i] or (None, None)
        value = _value(r, low, high)
        slope = _slope(r, low, high)
        ends = sorted((_value(r - Z95 * se, low, high), _value(r + Z95 * se, low, high)))
        out[name] = {"value": value, "stderr": abs(slope) * se, "ci95": ends}
        slopes.append(slope)
    d = torch.tensor(slopes, dtype=cov.dtype, device=cov.device)
    natural_cov = d[:, None] * cov * d[None, :]
    sd = torch.sqrt(natural_cov.diagonal().clamp(min=1e-300))
    corr = (natural_cov / (sd[:, None] * sd[None, :])).tolist()
    correlation = {a: {b: corr[i][j] for j, b in enumerate(names)} for i, a in enumerate(names)}
    return out, correlation, {n: raw_se[i] for i, n in enumerate(names)}


def _value(raw: float, low: float | None, high: float | None) -> float:
    if low is None and high is None:
        return raw
    try:
        return natural(raw, low, high)
    except OverflowError:
        return math.inf


def _slope(raw: float, low: float | None, high: float | None) -> float:
    """d value / d raw."""
    if low is not None and high is not None:
        s = 1.0 / (1.0 + math.exp(-raw))
        return (high - low) * s * (1 - s)
    if low is not None:
        return math.exp(raw)
    return -math.exp(raw) if high is not None else 1.0

"""A primal-dual interior point method for small dense NLPs (the direct method's, runtime/direct.py):

    minimise f(x)  subject to  c_E(x) = 0,  c_I(x) <= 0,  l <= x <= u.

Inequalities get slacks (c_I(x) + s = 0, s >= 0), so every inequality is a bound. It follows IPOPT
(Wächter & Biegler 2006) in a reduced form: Newton steps on the primal-dual equations of the log
barrier problem, the KKT matrix factorised by LDLᵀ (Bunch-Kaufman) with inertia correction, the
fraction-to-the-boundary rule, a filter line search on (constraint violation, barrier objective),
and the monotone barrier update. There is no feasibility restoration phase: a line search that
fails, or the iteration limit, ends the solve (`IpmResult.converged` False) with its last point.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

MU_INIT = 0.1
KAPPA_EPS, KAPPA_MU, THETA_MU = 10.0, 0.2, 1.5       # barrier update
TAU_MIN = 0.99                                        # fraction to the boundary
GAMMA_THETA, GAMMA_PHI, ETA_PHI = 1e-5, 1e-5, 1e-4   # filter margins, Armijo
DELTA, S_THETA, S_PHI = 1.0, 1.1, 2.3                # switching condition
KAPPA_SIGMA = 1e10                                   # bound multipliers stay near μ / distance
PUSH = 1e-2                                          # initial point: this far inside the bounds
MIN_STEP = 1e-12


@dataclass
class Nlp:
    """The problem: `values(x)` -> (f, c) with c = [c_E; c_I]; `derivatives(x, y)` -> (∇f, J, W),
    J = ∂c/∂x (dense, m x n) and W the Hessian of f + yᵀc."""

    lower: torch.Tensor                   # -inf where unbounded
    upper: torch.Tensor                   # +inf where unbounded
    equalities: int
    inequalities: int
    values: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    derivatives: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@dataclass
class IpmResult:
    """The last iterate: variables x, multipliers y of c, objective, constraint values, and how it ended."""

    x: torch.Tensor
    y: torch.Tensor
    objective: float
    constraints: torch.Tensor
    converged: bool
    iterations: int
    message: str
    history: list[float] = field(default_factory=list)   # the objective after each iteration


class _Slacked:
    """The NLP with slacks: variables (x, s), constraints [c_E(x); c_I(x) + s] = 0."""

    def __init__(self, nlp: Nlp) -> None:
        self.nlp = nlp
        self.n = nlp.lower.numel()
        self.m = nlp.equalities + nlp.inequalities
        inf = torch.full((nlp.inequalities,), math.inf, dtype=nlp.lower.dtype)
        self.lower = torch.cat([nlp.lower, torch.zeros_like(inf)])
        self.upper = torch.cat([nlp.upper, inf])

    def values(self, v: torch.Tensor) -> tuple[float, torch.Tensor]:
        f, c = self.nlp.values(v[:self.n])
        c = c.clone()
        c[self.nlp.equalities:] += v[self.n:]
        return float(f), c

    def derivatives(self, v: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        g, jac, w = self.nlp.derivatives(v[:self.n], y)
        size, extra = v.numel(), self.nlp.inequalities
        grad = torch.cat([g, torch.zeros(extra, dtype=g.dtype)])
        full = torch.zeros(self.m, size, dtype=g.dtype)
        full[:, :self.n] = jac
        full[self.nlp.equalities:, self.n:] = torch.eye(extra, dtype=g.dtype)
        hessian = torch.zeros(size, size, dtype=g.dtype)
        hessian[:self.n, :self.n] = w
        return grad, full, hessian


def inertia(ld: torch.Tensor, pivots: torch.Tensor) -> tuple[int, int, int]:
    """(positive, negative, zero) eigenvalue counts of a Bunch-Kaufman LDLᵀ factor's D."""
    diagonal, below, piv = ld.diagonal().tolist(), ld.diagonal(-1).tolist(), pivots.tolist()
    counts, i, size = [0, 0, 0], 0, len(diagonal)
    scale = max(1.0, max(abs(d) for d in diagonal)) * 1e-14
    while i < size:
        if piv[i] > 0 or i + 1 == size:
            d = diagonal[i]
            counts[0 if d > scale else 1 if d < -scale else 2] += 1
            i += 1
            continue
        a, b, c = diagonal[i], below[i], diagonal[i + 1]
        det = a * c - b * b
        if det < 0:
            counts[0] += 1
            counts[1] += 1
        elif abs(det) <= scale * scale:
            counts[2] += 1
            counts[0 if a + c > 0 else 1] += 1
        else:
            counts[0 if a + c > 0 else 1] += 2
        i += 2
    return counts[0], counts[1], counts[2]


class _Kkt:
    """Factorises [[W + Σ + δw I, Jᵀ], [J, -δc I]] with the inertia (n, m, 0), raising δw as needed."""

    def __init__(self) -> None:
        self.last_delta = 0.0

    def solve(self, w: torch.Tensor, sigma: torch.Tensor, jac: torch.Tensor, rhs: torch.Tensor,
              mu: float) -> torch.Tensor:
        n, m = w.shape[0], jac.shape[0]
        k = torch.zeros(n + m, n + m, dtype=w.dtype)
        k[:n, :n] = w + torch.diag(sigma)
        k[n:, :n] = jac
        k[:n, n:] = jac.T
        delta, delta_c = 0.0, 0.0
        for attempt in range(60):
            shifted = k.clone()
            shifted.diagonal()[:n] += delta
            shifted.diagonal()[n:] -= delta_c
            ld, pivots, info = torch.linalg.ldl_factor_ex(shifted)
            positive, negative, zero = inertia(ld, pivots)
            if int(info) == 0 and (positive, negative, zero) == (n, m, 0):
                self.last_delta = delta
                return torch.linalg.ldl_solve(ld, pivots, rhs.unsqueeze(-1)).squeeze(-1)
            if zero and delta_c == 0.0:
                delta_c = 1e-8 * mu ** 0.25
                continue
            if delta == 0.0:
                delta = 1e-4 if self.last_delta == 0.0 else max(1e-20, self.last_delta / 3)
            else:
                delta *= 100.0 if self.last_delta == 0.0 else 8.0
            if delta > 1e40:
                break
        raise FloatingPointError("the KKT matrix could not be made to have the right inertia")


def _fraction_to_boundary(v, dv, lower, upper, tau) -> float:
    """The largest α <= 1 with v + α dv at least a fraction (1 - τ) of the way from each bound."""
    alpha = 1.0
    for bound, sign in ((lower, 1.0), (upper, -1.0)):
        finite = torch.isfinite(bound)
        step = sign * dv
        moving = finite & (step < 0)
        if bool(moving.any()):
            room = sign * (v - bound)
            alpha = min(alpha, float((-tau * room[moving] / step[moving]).min()))
    return alpha


def _positive_fraction(z, dz, tau) -> float:
    moving = dz < 0
    return min(1.0, float((-tau * z[moving] / dz[moving]).min())) if bool(moving.any()) else 1.0


def _initial_point(x0: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """x0 moved inside its bounds by PUSH (relative to the bound, and to the interval's width)."""
    x = x0.clone()
    width = upper - lower
    low_push = PUSH * torch.clamp(lower.abs(), min=1.0)
    high_push = PUSH * torch.clamp(upper.abs(), min=1.0)
    both = torch.isfinite(width)
    low_push = torch.where(both, torch.minimum(low_push, 0.5 * PUSH * width.nan_to_num(1.0)), low_push)
    high_push = torch.where(both, torch.minimum(high_push, 0.5 * PUSH * width.nan_to_num(1.0)), high_push)
    x = torch.where(torch.isfinite(lower), torch.maximum(x, lower + low_push), x)
    return torch.where(torch.isfinite(upper), torch.minimum(x, upper - high_push), x)


def solve(nlp: Nlp, x0: torch.Tensor, tol: float = 1e-8, max_iter: int = 200,
          report: Callable[[int, float, float, float], None] | None = None) -> IpmResult:
    """Solve the NLP from x0 (moved inside its bounds); `report(iteration, objective, violation, μ)`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # the matrices are small: threads cost more than they give
    try:
        return _solve(_Slacked(nlp), x0, tol, max_iter, report)
    finally:
        torch.set_num_threads(threads)


def _solve(p: _Slacked, x0: torch.Tensor, tol: float, max_iter: int, report) -> IpmResult:
    dtype = x0.dtype
    _, c_start = p.nlp.values(x0)
    slack0 = torch.clamp(-c_start[p.nlp.equalities:], min=PUSH)
    v = _initial_point(torch.cat([x0, slack0]), p.lower, p.upper)
    has_low, has_up = torch.isfinite(p.lower), torch.isfinite(p.upper)
    zl, zu = has_low.to(dtype), has_up.to(dtype)
    y = torch.zeros(p.m, dtype=dtype)
    mu, kkt = MU_INIT, _Kkt()
    f, c = p.values(v)
    theta_max = 1e4 * max(1.0, float(c.abs().sum()))
    theta_min = 1e-4 * max(1.0, float(c.abs().sum()))
    filter_: list[tuple[float, float]] = []
    history: list[float] = []
    message = f"the iteration limit ({max_iter}) was reached"
    converged = False
    iteration = 0
    for iteration in range(max_iter + 1):
        grad, jac, w = p.derivatives(v, y)
        dl = torch.where(has_low, v - p.lower, torch.ones_like(v))
        du = torch.where(has_up, p.upper - v, torch.ones_like(v))
        dual = grad + jac.T @ y - zl + zu
        scale = max(100.0, float(y.abs().sum() + zl.abs().sum() + zu.abs().sum()) / max(1, p.m + 2 * v.numel())) / 100

        def error(mu_: float) -> float:
            comp = torch.cat([torch.where(has_low, zl * dl - mu_, torch.zeros_like(v)),
                              torch.where(has_up, zu * du - mu_, torch.zeros_like(v))])
            return max(float(dual.abs().max()) / scale, float(c.abs().max()) if p.m else 0.0,
                       float(comp.abs().max()) / scale)

        if error(0.0) <= tol:
            converged, message = True, f"converged in {iteration} iterations"
            break
        if iteration == max_iter:
            break
        while error(mu) <= KAPPA_EPS * mu and mu > tol / 10:
            mu = max(tol / 10, min(KAPPA_MU * mu, mu ** THETA_MU))
            filter_ = []
        sigma = torch.where(has_low, zl / dl, torch.zeros_like(v)) + torch.where(has_up, zu / du, torch.zeros_like(v))
        barrier_grad = grad - torch.where(has_low, mu / dl, torch.zeros_like(v)) + \
            torch.where(has_up, mu / du, torch.zeros_like(v))
        rhs = -torch.cat([barrier_grad + jac.T @ y, c])
        try:
            step = kkt.solve(w, sigma, jac, rhs, mu)
        except FloatingPointError as err:
            message = str(err)
            break
        dv, dy = step[:v.numel()], step[v.numel():]
        dzl = torch.where(has_low, mu / dl - zl - zl / dl * dv, torch.zeros_like(v))
        dzu = torch.where(has_up, mu / du - zu + zu / du * dv, torch.zeros_like(v))
        tau = max(TAU_MIN, 1 - mu)
        alpha = _fraction_to_boundary(v, dv, p.lower, p.upper, tau)
        alpha_z = min(_positive_fraction(zl[has_low], dzl[has_low], tau),
                      _positive_fraction(zu[has_up], dzu[has_up], tau))
        phi = _barrier(f, v, p, mu, has_low, has_up)
        theta = float(c.abs().sum())
        slope = float(barrier_grad @ dv)
        accepted = None
        while alpha >= MIN_STEP:
            trial = v + alpha * dv
            f_trial, c_trial = p.values(trial)
            theta_t, phi_t = float(c_trial.abs().sum()), _barrier(f_trial, trial, p, mu, has_low, has_up)
            if math.isfinite(phi_t) and math.isfinite(theta_t) and theta_t <= theta_max and \
                    not any(theta_t >= a and phi_t >= b for a, b in filter_):
                switching = slope < 0 and alpha * (-slope) ** S_PHI > DELTA * theta ** S_THETA
                if theta <= theta_min and switching:
                    if phi_t <= phi + ETA_PHI * alpha * slope:
                        accepted = (trial, f_trial, c_trial, False)
                        break
                elif theta_t <= (1 - GAMMA_THETA) * theta or phi_t <= phi - GAMMA_PHI * theta:
                    accepted = (trial, f_trial, c_trial, True)
                    break
            alpha /= 2
        if accepted is None:
            message = "the line search failed (no step reduces the constraint violation or the objective)"
            break
        v, f, c, augment = accepted
        if augment:
            filter_.append(((1 - GAMMA_THETA) * theta, phi - GAMMA_PHI * theta))
        y = y + alpha * dy
        zl = _safeguard(zl + alpha_z * dzl, mu, v - p.lower, has_low)
        zu = _safeguard(zu + alpha_z * dzu, mu, p.upper - v, has_up)
        history.append(f)
        if report is not None:
            report(iteration + 1, f, float(c.abs().max()) if p.m else 0.0, mu)
    return IpmResult(v[:p.n], y, f, p.nlp.values(v[:p.n])[1], converged, iteration, message, history)


def _barrier(f: float, v: torch.Tensor, p: _Slacked, mu: float, has_low, has_up) -> float:
    """f - μ Σ log(distance to each finite bound); inf outside the bounds."""
    low, up = (v - p.lower)[has_low], (p.upper - v)[has_up]
    if bool((low <= 0).any()) or bool((up <= 0).any()):
        return math.inf
    return f - mu * float(torch.log(low).sum() + torch.log(up).sum())


def _safeguard(z: torch.Tensor, mu: float, distance: torch.Tensor, finite: torch.Tensor) -> torch.Tensor:
    """Bound multipliers kept within [μ / (κ d), κ μ / d] (IPOPT's safeguard), 0 where unbounded."""
    d = torch.where(finite, distance, torch.ones_like(distance))
    kept = torch.minimum(torch.maximum(z, mu / (KAPPA_SIGMA * d)), KAPPA_SIGMA * mu / d)
    return torch.where(finite, kept, torch.zeros_like(z))

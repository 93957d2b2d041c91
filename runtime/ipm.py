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
    first_order: Callable | None = None   # as `derivatives` with W left out (zero); None: `derivatives`


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
        """f and the constraints with slacks."""
        f, c = self.nlp.values(v[:self.n])
        c = c.clone()
        c[self.nlp.equalities:] += v[self.n:]
        return float(f), c

    def derivatives(self, v: torch.Tensor, y: torch.Tensor, curvature: bool = True
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """∇f, J and W of the NLP, padded for the slacks (J gains an identity block); W may be left
        zero without `curvature` where the NLP can skip it (`Nlp.first_order`)."""
        derive = self.nlp.derivatives if curvature or self.nlp.first_order is None else self.nlp.first_order
        g, jac, w = derive(v[:self.n], y)
        size, extra = v.numel(), self.nlp.inequalities
        grad = torch.cat([g, torch.zeros(extra, dtype=g.dtype)])
        full = torch.zeros(self.m, size, dtype=g.dtype)
        full[:, :self.n] = jac
        full[self.nlp.equalities:, self.n:] = torch.eye(extra, dtype=g.dtype)
        hessian = torch.zeros(size, size, dtype=g.dtype)
        hessian[:self.n, :self.n] = w
        return grad, full, hessian


def inertia(ld: torch.Tensor, pivots: torch.Tensor, magnitude: float | None = None) -> tuple[int, int, int]:
    """(positive, negative, zero) eigenvalue counts of a Bunch-Kaufman LDLᵀ factor's D. A pivot is
    zero below 1e-14 times `magnitude`, the size of the entries whose cancellation makes a pivot
    vanish (default: the largest pivot). The KKT matrix passes the largest entry of W and J: its
    barrier terms Σ reach 1e12 near the optimum, and the small pivots they leave (1/Σ, eliminating
    an active slack) are exact, not the rounding of a singular matrix."""
    diagonal, below, piv = ld.diagonal().tolist(), ld.diagonal(-1).tolist(), pivots.tolist()
    counts, i, size = [0, 0, 0], 0, len(diagonal)
    if magnitude is None:
        magnitude = max(abs(d) for d in diagonal) if diagonal else 1.0
    scale = max(1.0, magnitude) * 1e-14
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
    """Factorises [[W + Σ + δw I, Jᵀ], [J, -δc I]] with the inertia (n, m, 0), raising δw as needed;
    the factor is kept for more right-hand sides (second-order corrections)."""

    def __init__(self) -> None:
        self.last_delta = 0.0
        self.factor: tuple[torch.Tensor, torch.Tensor] | None = None

    def factorise(self, w: torch.Tensor, sigma: torch.Tensor, jac: torch.Tensor, mu: float) -> None:
        """Factorise the KKT matrix, regularised until its inertia is right (else FloatingPointError)."""
        n, m = w.shape[0], jac.shape[0]
        k = torch.zeros(n + m, n + m, dtype=w.dtype)
        k[:n, :n] = w + torch.diag(sigma)
        k[n:, :n] = jac
        k[:n, n:] = jac.T
        delta, delta_c = 0.0, 0.0
        magnitude = max([1.0, *(float(a.abs().max()) for a in (w, jac) if a.numel())])
        diagonal = k.diagonal().clone()
        while delta <= 1e40:
            k.diagonal()[:n] = diagonal[:n] + delta       # in place: the factorisation copies k
            k.diagonal()[n:] = diagonal[n:] - delta_c
            ld, pivots, info = torch.linalg.ldl_factor_ex(k)
            positive, negative, zero = inertia(ld, pivots, magnitude)
            if int(info) == 0 and (positive, negative, zero) == (n, m, 0):
                self.last_delta, self.factor = delta, (ld, pivots)
                return
            if zero and delta_c == 0.0:
                delta_c = 1e-8 * mu ** 0.25
                continue
            if delta == 0.0:
                delta = 1e-4 if self.last_delta == 0.0 else max(1e-20, self.last_delta / 3)
            else:
                delta *= 100.0 if self.last_delta == 0.0 else 8.0
        raise FloatingPointError("the KKT matrix could not be made to have the right inertia")

    def solve(self, rhs: torch.Tensor) -> torch.Tensor:
        """The step for a right-hand side, with the last factor."""
        ld, pivots = self.factor
        return torch.linalg.ldl_solve(ld, pivots, rhs.unsqueeze(-1)).squeeze(-1)


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
    width = (upper - lower).nan_to_num(1.0)
    both = torch.isfinite(upper - lower)
    low_push = PUSH * torch.clamp(lower.abs(), min=1.0)
    high_push = PUSH * torch.clamp(upper.abs(), min=1.0)
    low_push = torch.where(both, torch.minimum(low_push, 0.5 * PUSH * width), low_push)
    high_push = torch.where(both, torch.minimum(high_push, 0.5 * PUSH * width), high_push)
    x = torch.where(torch.isfinite(lower), torch.maximum(x0, lower + low_push), x0)
    return torch.where(torch.isfinite(upper), torch.minimum(x, upper - high_push), x)


def solve(nlp: Nlp, x0: torch.Tensor, tol: float = 1e-8, max_iter: int = 200,
          report: Callable[[int, float, float, float], None] | None = None) -> IpmResult:
    """Solve the NLP from x0 (moved inside its bounds); `report(iteration, objective, violation, μ)`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # the matrices are small: threads cost more than they give
    try:
        return _InteriorPoint(_Slacked(nlp), x0).run(tol, max_iter, report)
    finally:
        torch.set_num_threads(threads)


class _InteriorPoint:
    """The iterates (v, y, zl, zu), the barrier parameter μ and the filter of one solve."""

    def __init__(self, p: _Slacked, x0: torch.Tensor) -> None:
        self.p = p
        _, c_start = p.nlp.values(x0)
        slack0 = torch.clamp(-c_start[p.nlp.equalities:], min=PUSH)
        self.v = _initial_point(torch.cat([x0, slack0]), p.lower, p.upper)
        self.has_low, self.has_up = torch.isfinite(p.lower), torch.isfinite(p.upper)
        self.zl, self.zu = self.has_low.to(x0.dtype), self.has_up.to(x0.dtype)
        self.y = _least_squares_multipliers(p, self.v, self.zl, self.zu)
        self.mu, self.kkt = MU_INIT, _Kkt()
        self.f, self.c = p.values(self.v)
        theta = float(self.c.abs().sum())
        self.theta_max, self.theta_min = 1e4 * max(1.0, theta), 1e-4 * max(1.0, theta)
        self.filter: list[tuple[float, float]] = []

    def run(self, tol: float, max_iter: int, report) -> IpmResult:
        """Iterate until the optimality error is below tol, the limit, or a failed step."""
        history: list[float] = []
        message, converged, iteration = f"the iteration limit ({max_iter}) was reached", False, 0
        for iteration in range(max_iter + 1):
            grad, jac, w = self.p.derivatives(self.v, self.y)
            if self.error(grad, jac, 0.0) <= tol:
                converged, message = True, f"converged in {iteration} iterations"
                break
            if iteration == max_iter:
                break
            while self.error(grad, jac, self.mu) <= KAPPA_EPS * self.mu and self.mu > tol / 10:
                self.mu = max(tol / 10, min(KAPPA_MU * self.mu, self.mu ** THETA_MU))
                self.filter = []
            try:
                self.iterate(grad, jac, w)
            except FloatingPointError as err:
                message = str(err)
                break
            history.append(self.f)
            if report is not None:
                report(iteration + 1, self.f, float(self.c.abs().max()) if self.p.m else 0.0, self.mu)
        p = self.p
        return IpmResult(self.v[:p.n], self.y, self.f, p.nlp.values(self.v[:p.n])[1], converged, iteration, message,
                         history)

    def distances(self) -> tuple[torch.Tensor, torch.Tensor]:
        """v - lower and upper - v (1 where unbounded)."""
        one = torch.ones_like(self.v)
        return (torch.where(self.has_low, self.v - self.p.lower, one),
                torch.where(self.has_up, self.p.upper - self.v, one))

    def error(self, grad: torch.Tensor, jac: torch.Tensor, mu: float) -> float:
        """The optimality error of the barrier problem μ (of the NLP for μ = 0), IPOPT's scaling."""
        dl, du = self.distances()
        zero = torch.zeros_like(self.v)
        dual = grad + jac.T @ self.y - self.zl + self.zu
        comp = torch.cat([torch.where(self.has_low, self.zl * dl - mu, zero),
                          torch.where(self.has_up, self.zu * du - mu, zero)])
        total = float(self.y.abs().sum() + self.zl.abs().sum() + self.zu.abs().sum())
        scale = max(100.0, total / max(1, self.p.m + 2 * self.v.numel())) / 100
        return max(float(dual.abs().max()) / scale, float(self.c.abs().max()) if self.p.m else 0.0,
                   float(comp.abs().max()) / scale)

    def iterate(self, grad: torch.Tensor, jac: torch.Tensor, w: torch.Tensor) -> None:
        """One Newton step on the primal-dual equations with a filter line search."""
        p, mu, zero = self.p, self.mu, torch.zeros_like(self.v)
        dl, du = self.distances()
        sigma = torch.where(self.has_low, self.zl / dl, zero) + torch.where(self.has_up, self.zu / du, zero)
        barrier_grad = grad - torch.where(self.has_low, mu / dl, zero) + torch.where(self.has_up, mu / du, zero)
        dual = barrier_grad + jac.T @ self.y
        self.kkt.factorise(w, sigma, jac, mu)
        step = self.kkt.solve(-torch.cat([dual, self.c]))
        n = self.v.numel()
        dv, dy = step[:n], step[n:]
        tau = max(TAU_MIN, 1 - mu)
        alpha = _fraction_to_boundary(self.v, dv, p.lower, p.upper, tau)
        found = self.line_search(dv, alpha, float(barrier_grad @ dv), dual, tau)
        if found is None:
            raise FloatingPointError("the line search failed (no step reduces the constraint violation or the "
                                     "objective)")
        alpha, v, f, c, augment = found
        if augment:
            theta, phi = float(self.c.abs().sum()), self.barrier(self.f, self.v)
            self.filter.append(((1 - GAMMA_THETA) * theta, phi - GAMMA_PHI * theta))
        dzl = torch.where(self.has_low, mu / dl - self.zl - self.zl / dl * dv, zero)
        dzu = torch.where(self.has_up, mu / du - self.zu + self.zu / du * dv, zero)
        alpha_z = min(_positive_fraction(self.zl[self.has_low], dzl[self.has_low], tau),
                      _positive_fraction(self.zu[self.has_up], dzu[self.has_up], tau))
        self.v, self.f, self.c = v, f, c
        self.y = self.y + alpha * dy
        self.zl = _safeguard(self.zl + alpha_z * dzl, mu, v - p.lower, self.has_low)
        self.zu = _safeguard(self.zu + alpha_z * dzu, mu, p.upper - v, self.has_up)

    def line_search(self, dv: torch.Tensor, alpha: float, slope: float, dual: torch.Tensor, tau: float):
        """(α, v, f, c, whether the filter grows) of the first acceptable trial step, halving α from
        its largest value; a rejected full step that raised the violation tries up to four
        second-order corrections first. None when α falls below MIN_STEP."""
        theta, phi = float(self.c.abs().sum()), self.barrier(self.f, self.v)
        first = True
        while alpha >= MIN_STEP:
            trial = self.v + alpha * dv
            f_t, c_t = self.p.values(trial)
            verdict = self.acceptable(theta, phi, alpha, slope, f_t, c_t, trial)
            if verdict is not None:
                return alpha, trial, f_t, c_t, verdict
            if first and float(c_t.abs().sum()) >= theta:
                corrected = self.second_order(theta, phi, alpha, slope, c_t, dual, tau)
                if corrected is not None:
                    return corrected
            first = False
            alpha /= 2
        return None

    def second_order(self, theta, phi, alpha, slope, c_trial, dual, tau):
        """IPOPT's second-order corrections: the step for c_soc = α c + c(v + α dv), repeated."""
        c_soc, theta_old = alpha * self.c + c_trial, float(c_trial.abs().sum())
        n = self.v.numel()
        for _ in range(4):
            dv = self.kkt.solve(-torch.cat([dual, c_soc]))[:n]
            alpha_soc = _fraction_to_boundary(self.v, dv, self.p.lower, self.p.upper, tau)
            trial = self.v + alpha_soc * dv
            f_t, c_t = self.p.values(trial)
            verdict = self.acceptable(theta, phi, alpha, slope, f_t, c_t, trial)
            if verdict is not None:
                return alpha, trial, f_t, c_t, verdict
            theta_soc = float(c_t.abs().sum())
            if theta_soc > 0.99 * theta_old:
                return None
            c_soc, theta_old = alpha_soc * c_soc + c_t, theta_soc
        return None

    def acceptable(self, theta, phi, alpha, slope, f_t, c_t, trial) -> bool | None:
        """None when the trial point is rejected; else whether the filter is to grow (an h-type step)."""
        theta_t, phi_t = float(c_t.abs().sum()), self.barrier(f_t, trial)
        if not (math.isfinite(phi_t) and math.isfinite(theta_t)) or theta_t > self.theta_max:
            return None
        if any(theta_t >= a and phi_t >= b for a, b in self.filter):
            return None
        switching = slope < 0 and alpha * (-slope) ** S_PHI > DELTA * theta ** S_THETA
        if theta <= self.theta_min and switching:
            return False if phi_t <= phi + ETA_PHI * alpha * slope else None
        if theta_t <= (1 - GAMMA_THETA) * theta or phi_t <= phi - GAMMA_PHI * theta:
            return True
        return None

    def barrier(self, f: float, v: torch.Tensor) -> float:
        """f - μ Σ log(distance to each finite bound); inf outside the bounds."""
        low, up = (v - self.p.lower)[self.has_low], (self.p.upper - v)[self.has_up]
        if bool((low <= 0).any()) or bool((up <= 0).any()):
            return math.inf
        return f - self.mu * float(torch.log(low).sum() + torch.log(up).sum())


def _least_squares_multipliers(p: _Slacked, v: torch.Tensor, zl: torch.Tensor, zu: torch.Tensor) -> torch.Tensor:
    """The y that best satisfies ∇f + Jᵀy = zl - zu at the start (IPOPT's estimate): without it the
    first steps see no curvature from the constraints (W = ∇²f only); 0 when it is larger than 1e3."""
    if p.m == 0:
        return torch.zeros(0, dtype=v.dtype)
    grad, jac, _ = p.derivatives(v, torch.zeros(p.m, dtype=v.dtype), curvature=False)
    y = torch.linalg.lstsq(jac.T, (zl - zu - grad).unsqueeze(-1)).solution.squeeze(-1)
    return y if bool(torch.isfinite(y).all()) and float(y.abs().max()) <= 1e3 else torch.zeros_like(y)


def _safeguard(z: torch.Tensor, mu: float, distance: torch.Tensor, finite: torch.Tensor) -> torch.Tensor:
    """Bound multipliers kept within [μ / (κ d), κ μ / d] (IPOPT's safeguard), 0 where unbounded."""
    d = torch.where(finite, distance, torch.ones_like(distance))
    kept = torch.minimum(torch.maximum(z, mu / (KAPPA_SIGMA * d)), KAPPA_SIGMA * mu / d)
    return torch.where(finite, kept, torch.zeros_like(z))

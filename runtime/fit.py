"""Residuals of a fit to data and Levenberg-Marquardt on them (issue 13).

`FitResiduals` integrates each experiment once through its observation times and returns the
scaled residuals r = (model - data) / sigma and, with the forward-sensitivity states the
compiler added (compiler.fit), their Jacobian with respect to the fitted params' raw entries.
`levenberg_marquardt` minimises ½|r|² with Marquardt's diagonal scaling and Nielsen's damping
update; an estimated sigma is re-estimated between LM runs (the profile likelihood's fixed point).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from . import ode
from .errors import RunError
from .ode_model import OdeProblem
from .solvers.errors import SolverError

GTOL, FTOL, XTOL = 1e-10, 1e-12, 1e-12     # convergence: gradient, relative cost decrease, relative step
MAX_SIGMA_ROUNDS = 20


@dataclass
class LmReport:
    """What one Levenberg-Marquardt run did: accepted iterations, evaluations, costs, why it stopped."""

    iterations: int = 0
    evaluations: int = 0
    history: list[float] = field(default_factory=list)   # the NLL after each accepted iteration
    reason: str = ""
    last: tuple[torch.Tensor, torch.Tensor] | None = None   # (r, J) at the returned params


def gaussian_nll(squares: torch.Tensor, n: int, sigma: float | None) -> torch.Tensor:
    """The Gaussian negative log-likelihood of n residuals whose squares sum to `squares`: with a
    known sigma, or (sigma None) with the estimated one at its profile optimum, squares / n."""
    if sigma is None:
        return 0.5 * n * (torch.log(2 * math.pi * squares / n) + 1)
    return 0.5 * squares / sigma ** 2 + n * math.log(sigma * math.sqrt(2 * math.pi))


class FitResiduals:
    """The residuals of a compiled fit problem as a function of the fitted params' raw entries."""

    def __init__(self, model: OdeProblem) -> None:
        self.model = model
        self.fit = model.problem.fit
        names = list(model.problem.params)
        self.tensors = [model.params[names.index(p)] for p in self.fit.params]
        self.sigma = [item.sigma if item.sigma is not None else 1.0 for item in self.fit.items]
        kw = {"dtype": model.dtype, "device": model.device}
        self.data = [torch.tensor(item.data, **kw) for item in self.fit.items]
        self.times = [torch.tensor(e.times, **kw) for e in self.fit.experiments]

    @property
    def size(self) -> int:
        return sum(t.numel() for t in self.tensors)

    def get(self) -> torch.Tensor:
        """The raw entries of the fitted params, flat."""
        if not self.tensors:
            return torch.zeros(0, dtype=self.model.dtype, device=self.model.device)
        return torch.cat([t.detach().reshape(-1) for t in self.tensors]).clone()

    @torch.no_grad()
    def set(self, theta: torch.Tensor) -> None:
        offset = 0
        for t in self.tensors:
            t.copy_(theta[offset:offset + t.numel()].reshape(t.shape))
            offset += t.numel()

    def observed(self, k: int) -> torch.Tensor:
        """fit_observed along experiment k's times (times x outputs), with the graph of the params."""
        model = self.model
        s0 = torch.stack([torch.as_tensor(v, dtype=model.dtype, device=model.device)
                          for v in model.functions[f"fit_initial_{k}"](None, None)]).unsqueeze(0)
        times = self.times[k]
        grid = times if float(times[0]) == 0.0 else torch.cat([times.new_zeros(1), times])
        model.dynamics.start()
        states = ode.integrate(model.dynamics, s0, grid, model.problem.ode, model.solver_plan.adjoint,
                               model.solver_plan.backend)[grid.numel() - times.numel():]
        return model.functions["fit_observed"](times.reshape(-1, 1), states)[:, 0, :]

    def predictions(self) -> list[torch.Tensor]:
        """Each item's model values at its data's times (differentiable: for Adam and L-BFGS)."""
        outputs = [self.observed(k) for k in range(len(self.fit.experiments))]
        return [outputs[item.experiment][:, j] for j, item in enumerate(self.fit.items)]

    def evaluate(self, jacobian: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(r, J): the scaled residuals of every item (concatenated) and d r / d theta. Under
        inference mode (no graph, no version counters): ~17 % less time per solve than no_grad;
        under no_grad on the tensor path, whose sensitivities are taken by autograd
        (runtime.tensor_sensitivity), which needs graphs of the states."""
        with torch.no_grad() if self.model.problem.tensor is not None else torch.inference_mode():
            return self._evaluate(jacobian)

    def _evaluate(self, jacobian: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        outputs = [self.observed(k) for k in range(len(self.fit.experiments))]
        m, p = len(self.fit.items), self.size
        residuals, rows = [], []
        for j, item in enumerate(self.fit.items):
            out = outputs[item.experiment]
            residuals.append((out[:, j] - self.data[j]) / self.sigma[j])
            if jacobian:
                rows.append(out[:, m + j * p: m + (j + 1) * p] / self.sigma[j])
        return torch.cat(residuals), torch.cat(rows) if jacobian else None

    def item_sums(self, r: torch.Tensor) -> list[float]:
        """Σ (model - data)² of each item (unscaled)."""
        sums, offset = [], 0
        for j, data in enumerate(self.data):
            part = r[offset:offset + data.numel()] * self.sigma[j]
            sums.append(float((part ** 2).sum()))
            offset += data.numel()
        return sums

    def nll(self, r: torch.Tensor) -> float:
        """The Gaussian negative log-likelihood at residuals r (with the current sigmas)."""
        n = [d.numel() for d in self.data]
        constant = sum(k * math.log(s * math.sqrt(2 * math.pi)) for k, s in zip(n, self.sigma))
        return 0.5 * float(r @ r) + constant

    def nll_tensor(self) -> torch.Tensor:
        """The NLL as a differentiable tensor (Adam, L-BFGS); estimated sigmas at their profile optimum."""
        total = torch.zeros((), dtype=self.model.dtype, device=self.model.device)
        for j, (prediction, item) in enumerate(zip(self.predictions(), self.fit.items)):
            total = total + gaussian_nll(((prediction - self.data[j]) ** 2).sum(), prediction.numel(), item.sigma)
        return total

    def update_sigmas(self, r: torch.Tensor) -> float:
        """Estimated sigmas -> sqrt(RSS/n) of their item (the profile likelihood's optimum); the
        largest relative change."""
        change = 0.0
        for j, (item, squares) in enumerate(zip(self.fit.items, self.item_sums(r))):
            if item.sigma is None:
                new = max(math.sqrt(squares / self.data[j].numel()), 1e-300)
                change = max(change, abs(new - self.sigma[j]) / new)
                self.sigma[j] = new
        return change


class FitProblem(OdeProblem):
    """The model of a fit: `forward()` is the negative log-likelihood of the data at the current
    params (the objective a fit adds; its compiled `nll` holds a value only after the fit, for the expects)."""

    def forward(self) -> torch.Tensor:
        return FitResiduals(self).nll_tensor()


def _trial(residuals: FitResiduals, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Residuals and Jacobian at theta, or None when the solve fails or is not finite there."""
    residuals.set(theta)
    try:
        r, jac = residuals.evaluate()
    except (RunError, SolverError):
        return None
    return (r, jac) if bool(torch.isfinite(r).all() and torch.isfinite(jac).all()) else None


def levenberg_marquardt(residuals: FitResiduals, steps: int, report: LmReport | None = None) -> LmReport:
    """Minimise ½|r|² over the fitted params (at most `steps` accepted iterations), in place."""
    report = report or LmReport()
    theta = residuals.get()
    first = _trial(residuals, theta)
    report.evaluations += 1
    if first is None:
        raise RunError("the residuals are not finite at the starting params",
                       "start the params closer to the data (their '= value'), or check the dynamics")
    r, jac = first
    cost, lam, nu = 0.5 * float(r @ r), 1e-3, 2.0
    while report.iterations < steps:
        gradient, normal = jac.T @ r, jac.T @ jac
        if float(gradient.abs().max()) <= GTOL * max(1.0, cost):
            report.reason = "gradient below tolerance"
            break
        scale = torch.clamp(normal.diagonal(), min=1e-12 * float(normal.diagonal().max()) + 1e-300)
        step = torch.linalg.solve(normal + lam * torch.diag(scale), -gradient)
        trial = _trial(residuals, theta + step)
        report.evaluations += 1
        new_cost = 0.5 * float(trial[0] @ trial[0]) if trial is not None else math.inf
        predicted = -float(step @ gradient) - 0.5 * float(step @ normal @ step)
        if new_cost < cost:
            rho = (cost - new_cost) / max(predicted, 1e-300)
            decrease, size = cost - new_cost, float(step.norm()) / (float(theta.norm()) + XTOL)
            theta, (r, jac), cost = theta + step, trial, new_cost
            lam, nu = lam * max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3), 2.0
            report.iterations += 1
            report.history.append(residuals.nll(r))
            if decrease <= FTOL * cost or size <= XTOL:
                report.reason = "cost change below tolerance"
                break
        else:
            lam, nu = lam * nu, nu * 2.0
            if lam > 1e16:
                report.reason = "no step decreases the cost"
                break
    else:
        report.reason = f"reached steps={steps}"
    residuals.set(theta)
    report.last = (r, jac)
    return report


def fit_lm(residuals: FitResiduals, steps: int) -> LmReport:
    """LM; with estimated sigmas, alternate LM runs and sigma updates until the sigmas settle."""
    report = levenberg_marquardt(residuals, steps)
    if all(item.sigma is not None for item in residuals.fit.items):
        return report
    for _ in range(MAX_SIGMA_ROUNDS):
        r, _ = residuals.evaluate(jacobian=False)
        if residuals.update_sigmas(r) < 1e-8:
            break
        levenberg_marquardt(residuals, steps, report)
    report.last = None   # the sigmas changed after it
    return report

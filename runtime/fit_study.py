"""The fit study's runner (issue 13): fit the params to the data (Levenberg-Marquardt, Adam or
L-BFGS phases, in order), then the covariance at the optimum, the expects (which may read `nll`
and `stderr(k)`) and the results folder: result.json with `estimates` and `correlation`,
fit.csv, and plots of the data with the fitted trajectories, the residuals and the estimates."""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from .checks import evaluate_checks
from .fit import FitResiduals, fit_lm
from .fit_estimates import entry_bounds, estimates
from .fit_plots import plot_estimates, plot_fit, plot_residuals
from .fit_windows import KeepBest, WindowedNll
from .ode_model import OdeProblem
from .results import Check, Estimate, ObjectiveResult, Result, write_csv, write_json
from .results_folder import assemble_result, folder_for, status_of, write_history, write_model
from .run_options import RunOptions
from .train import Objective, Trainer

OBJECTIVE_TEXT = "negative log-likelihood of the data"


def _optimise(model: OdeProblem, residuals: FitResiduals, quiet: bool) -> tuple[list[float], dict, list[str]]:
    """Run the training phases; the NLL history, LM's report (with `last`: (r, J) at the end when
    the last phase was LM) and notes."""
    history, report, notes = [], {}, []
    for phase in model.problem.training:
        report.pop("last", None)
        if phase.optimizer == "lm":
            lm = fit_lm(residuals, phase.steps)
            history += lm.history
            report = {"iterations": report.get("iterations", 0) + lm.iterations,
                      "evaluations": report.get("evaluations", 0) + lm.evaluations, "stopped": lm.reason,
                      "last": lm.last}
        else:
            loss = WindowedNll(residuals, phase) if phase.window else residuals.nll_tensor
            trainer = Trainer(model, [phase], quiet, objective=Objective(loss))
            keep = KeepBest(residuals, phase.steps) if phase.window else None
            if keep is not None:
                trainer.converged = keep.after_step
            history += trainer.run().objective
            notes += trainer.notes
            if keep is not None:
                report["window_kept_step"] = keep.restore()
    return history, report, notes


def _jacobian(residuals: FitResiduals, lm: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Residuals and their Jacobian at the current params: from the sensitivity states with an LM
    phase, else by one backward pass per residual."""
    if lm:
        return residuals.evaluate()
    predictions = residuals.predictions()
    r = torch.cat([(p - d) / s for p, d, s in zip(predictions, residuals.data, residuals.sigma)])
    rows = []
    for i in range(r.numel()):
        grads = torch.autograd.grad(r[i], residuals.tensors, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(g if g is not None else torch.zeros_like(t)).reshape(-1)
                               for g, t in zip(grads, residuals.tensors)]))
    return r.detach(), torch.stack(rows)


def _set_study_params(model: OdeProblem, nll: float, rmse: float, found: dict[str, dict]) -> None:
    """`nll`, `rmse` and `stderr(k)` for the expects."""
    names, fit = list(model.problem.params), model.problem.fit
    with torch.no_grad():
        model.params[names.index(fit.nll)].fill_(nll)
        model.params[names.index(fit.rmse)].fill_(rmse)
        for param, holder in fit.stderr.items():
            if param in found:
                model.params[names.index(holder)].fill_(found[param]["stderr"])


def run_fit(model: OdeProblem, options: RunOptions) -> Result:
    """Fit, estimate the uncertainty, check and (optionally) write the results folder."""
    problem, fit = model.problem, model.problem.fit
    folder = folder_for(options, problem.name)
    start = time.perf_counter()
    residuals = FitResiduals(model)
    history, report, warnings = _optimise(model, residuals, options.quiet)
    lm = any(phase.optimizer == "lm" for phase in problem.training)
    if any(item.sigma is None for item in fit.items):
        residuals.update_sigmas(residuals.evaluate(jacobian=False)[0])
    last = report.pop("last", None)
    n, p = sum(d.numel() for d in residuals.data), residuals.size
    if p:
        r, jac = last if last is not None else _jacobian(residuals, lm)
    else:   # only nets are fitted (a universal differential equation): no covariance of params
        with torch.no_grad():
            r = torch.cat([(q - d) / s for q, d, s in zip(residuals.predictions(), residuals.data, residuals.sigma)])
    nll = residuals.nll(r)
    rmse = math.sqrt(sum(residuals.item_sums(r)) / n)
    estimated = any(item.sigma is None for item in fit.items)
    inflation = n / (n - p) if estimated and n > p else 1.0
    found, correlation = estimates(problem, residuals.get(), jac, inflation)[:2] if p else ({}, {})
    _set_study_params(model, nll, rmse, found)
    with torch.no_grad():
        checks = evaluate_checks(model, model.solve())
    sigmas = {f"{fit.experiments[i.experiment].name}.{i.column}": s for i, s in zip(fit.items, residuals.sigma)}
    summary = {"optimizer": [phase.optimizer for phase in problem.training], **report, "observations": n,
               "fitted": p, "sigma": sigmas, "sigma_estimated": estimated}
    result = assemble_result(
        model, options, start, status=status_of(checks), steps=len(history),
        objective=ObjectiveResult(sense="minimize", expr=OBJECTIVE_TEXT, final=nll, history=history),
        values={**{k: v["value"] for k, v in found.items()}, "nll": nll, "rmse": rmse},
        checks=[Check(**c) for c in checks], warnings=warnings, solver=model.solver_report(),
        estimates={k: Estimate(**v) for k, v in found.items()}, correlation=correlation,
        fit={**summary, "wall_time_fit_s": round(time.perf_counter() - start, 4)})
    if folder is not None:
        write_fit_results(folder, model, residuals, result)
        result.out_dir = str(folder)
    return result


def write_fit_results(folder: Path, model: OdeProblem, residuals: FitResiduals, result: Result) -> None:
    """result.json, model.pt, history.csv, fit.csv and the plots."""
    write_json(folder / "result.json", result)
    write_model(folder, model)
    write_history(folder, result.objective.history, "minimize")
    fit = model.problem.fit
    with torch.no_grad():
        predictions = [p.detach().cpu() for p in residuals.predictions()]
    rows = []
    for item, prediction, sigma in zip(fit.items, predictions, residuals.sigma):
        experiment = fit.experiments[item.experiment]
        for t, d, m in zip(experiment.times, item.data, prediction.tolist()):
            rows.append([experiment.name, item.column, item.text, t, d, m, (m - d) / sigma])
    write_csv(folder / "fit.csv", ["experiment", "column", "model", "t", "data", "fitted", "residual"], rows)
    plot_fit(folder, model, residuals)
    plot_residuals(folder / "residuals.png", rows)
    names, _ = entry_bounds(model.problem)
    plot_estimates(folder / "estimates.png", names, result.estimates)

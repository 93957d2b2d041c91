"""Pictures of a fit (issue 13): per experiment the data points and the fitted trajectories, the
scaled residuals, and the estimates with their 95 % intervals."""
from __future__ import annotations

from pathlib import Path

import torch

from . import ode
from .plots import plt, save_figure

POINTS = 400


@torch.no_grad()
def _dense(model, residuals, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Experiment k's fitted expressions on a fine grid from 0 to its last time."""
    times = torch.linspace(0.0, float(residuals.times[k][-1]), POINTS, dtype=model.dtype, device=model.device)
    s0 = torch.stack([torch.as_tensor(v, dtype=model.dtype, device=model.device)
                      for v in model.functions[f"fit_initial_{k}"](None, None)]).unsqueeze(0)
    model.dynamics.start()
    states = ode.integrate(model.dynamics, s0, times, model.problem.ode, adjoint=False,
                           backend=model.solver_plan.backend)
    return times, model.functions["fit_observed"](times.reshape(-1, 1), states)[:, 0, :]


def plot_fit(folder: Path, model, residuals) -> None:
    """fit_<experiment>.png: data points and fitted curves of each item of the experiment."""
    fit = model.problem.fit
    for k, experiment in enumerate(fit.experiments):
        times, values = _dense(model, residuals, k)
        fig, ax = plt.subplots(figsize=(7, 4))
        for j, item in enumerate(fit.items):
            if item.experiment != k:
                continue
            color = f"C{j % 10}"
            ax.plot(experiment.times, item.data, "o", ms=3, color=color, label=f"{experiment.name}.{item.column}")
            ax.plot(times.cpu().numpy(), values[:, j].cpu().numpy(), "-", color=color, label=f"fitted {item.text}")
        ax.set_xlabel("t")
        ax.set_title(f"data '{experiment.name}' ({experiment.path}) and the fitted model")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        save_figure(fig, folder / f"fit_{experiment.name}.png")


def plot_residuals(path: Path, rows: list[list]) -> None:
    """Scaled residuals (model - data) / sigma against time, one colour per fitted column."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    groups: dict[str, list] = {}
    for experiment, column, _, t, _, _, r in rows:
        groups.setdefault(f"{experiment}.{column}", []).append((t, r))
    for i, (label, points) in enumerate(groups.items()):
        ax.plot([p[0] for p in points], [p[1] for p in points], "o", ms=3, color=f"C{i % 10}", label=label)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xlabel("t")
    ax.set_ylabel("(model - data) / sigma")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def plot_estimates(path: Path, names: list[str], found: dict) -> None:
    """Each estimate with its 95 % interval."""
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.4 * len(names)))
    for i, name in enumerate(names):
        e = found[name]
        lo, hi = e.ci95
        ax.plot([lo, hi], [i, i], "-", color="C0")
        ax.plot([e.value], [i], "o", color="C0")
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_title("estimates and 95 % intervals")
    ax.grid(alpha=0.3)
    save_figure(fig, path)

"""PNG plots of a run: objective history, trajectory, controls against expected relations."""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .results import write_atomic  # noqa: E402

MAX_STATE_CURVES = 12   # state curves drawn against time (more make the legend unreadable)


def save_figure(fig, path: Path) -> None:
    """Write a figure as a PNG (atomically) and close it."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())


def plot_history(path: Path, history: list[float], sense: str, reference: float | None) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    steps = range(1, len(history) + 1)
    if reference is not None:
        gap = [abs(h - reference) / max(abs(reference), 1e-300) for h in history]
        ax.semilogy(steps, gap, color="C0")
        ax.set_ylabel("relative gap to the expected value")
    else:
        ax.plot(steps, history, color="C0")
        ax.set_ylabel("objective")
    ax.set_xlabel("training step")
    ax.set_title(f"objective ({sense})")
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def plot_trajectory(path: Path, names: list[str], times, after, before=None, max_lines: int = 20) -> None:
    """States against time (first trajectory) and, with two or more states, the first two
    against each other for up to `max_lines` trajectories, before training (grey) and after."""
    phase = len(names) >= 2
    fig, axes = plt.subplots(1, 2 if phase else 1, figsize=(12 if phase else 6, 4), squeeze=False)
    ax = axes[0][0]
    shown = names[:MAX_STATE_CURVES]   # a latent state of 128 entries: the first few, said in the title
    for i, name in enumerate(shown):
        ax.plot(times, after[:, 0, i], label=name)
    ax.set_xlabel("t")
    ax.set_title("states after training" + (" (first trajectory)" if after.shape[1] > 1 else "")
                 + (f", first {len(shown)} of {len(names)}" if len(shown) < len(names) else ""))
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    if phase:
        ax = axes[0][1]
        lines = min(after.shape[1], max_lines)
        for k in range(lines):
            if before is not None:
                ax.plot(before[:, k, 0], before[:, k, 1], color="0.7", lw=1,
                        label="before training" if k == 0 else None)
            ax.plot(after[:, k, 0], after[:, k, 1], color="C3", lw=1.2, label="after training" if k == 0 else None)
        ax.plot(after[0, :lines, 0], after[0, :lines, 1], "o", color="C3", ms=3, label="start")
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        ax.set_title("trajectories")
        ax.legend()
        ax.grid(alpha=0.3)
    save_figure(fig, path)


def plot_relation(path: Path, variable: str, grid, curves: dict[str, "list"], title: str) -> None:
    """Curves over a range of one variable (e.g. a learned quantity against the expected one)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (label, values) in enumerate(curves.items()):
        ax.plot(grid, values, linestyle="--" if label == "expected" else "-",
                color="k" if label == "expected" else f"C{i}", label=label)
    ax.set_xlabel(variable)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def plot_reference(path: Path, times, learned: dict[str, "list"], ref_times, reference: dict[str, "list"]) -> None:
    """Learned states and controls against a reference solution (e.g. Riccati), one panel each."""
    names = list(learned)
    fig, axes = plt.subplots(len(names), 1, figsize=(6, 2.6 * len(names)), squeeze=False, sharex=True)
    for ax, name in zip(axes[:, 0], names):
        ax.plot(ref_times, reference[name], "k--", label="reference (Riccati)")
        ax.plot(times, learned[name], color="C1", label="learned")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0, 0].legend()
    axes[-1, 0].set_xlabel("t")
    save_figure(fig, path)


def plot_identification(path: Path, report: dict, strategies: tuple[str, ...], title: str) -> None:
    """Estimation error per epoch against the observed steps, mean ± standard error over the
    realisations, log scale (the report's figure 15)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    steps = report["steps"]
    for i, name in enumerate(strategies):
        mean, err = report[name]["error"], report[name]["stderr"]
        ax.plot(steps, mean, "o-", color=f"C{i}", label=name)
        ax.fill_between(steps, [m - e for m, e in zip(mean, err)], [m + e for m, e in zip(mean, err)],
                        color=f"C{i}", alpha=0.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("observed steps")
    ax.set_ylabel("estimation error")
    ax.set_title(f"{title}: mean ± standard error, {report['realizations']} realisations", fontsize=10)
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    save_figure(fig, path)

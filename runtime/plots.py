"""PNG plots of a run: objective history, trajectory, controls against expected relations."""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .results import write_atomic  # noqa: E402


def _save(fig, path: Path) -> None:
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
    _save(fig, path)


def plot_trajectory(path: Path, times, series: dict[str, "list"], phase: tuple[str, str] | None) -> None:
    """States against time; with two or more states also the first two against each other."""
    columns = 2 if phase else 1
    fig, axes = plt.subplots(1, columns, figsize=(6 * columns, 4), squeeze=False)
    ax = axes[0][0]
    for name, values in series.items():
        ax.plot(times, values, label=name)
    ax.set_xlabel("t")
    ax.set_title("states")
    ax.legend()
    ax.grid(alpha=0.3)
    if phase:
        a, b = phase
        ax = axes[0][1]
        ax.plot(series[a], series[b], color="C3")
        ax.plot(series[a][0], series[b][0], "o", color="C3", label="start")
        ax.set_xlabel(a)
        ax.set_ylabel(b)
        ax.set_title("trajectory")
        ax.legend()
        ax.grid(alpha=0.3)
    _save(fig, path)


def plot_relation(path: Path, variable: str, grid, learned, reference, title: str) -> None:
    """A learned quantity against the spec's expected relation over a range."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(grid, reference, "k--", label="expected")
    ax.plot(grid, learned, color="C1", label="learned")
    ax.set_xlabel(variable)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    _save(fig, path)

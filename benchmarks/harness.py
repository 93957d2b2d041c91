"""Shared parts of the benchmarks: a timed training step, interleaving, summaries, environment."""
from __future__ import annotations

import platform
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torchdiffeq
from torch import nn

import impsolve

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class StepRecord:
    """One training step: the objective evaluated in it, its timings and dynamics evaluations."""

    value: float
    seconds: float           # zero_grad + forward + backward (+ clip) + optimiser step
    forward_s: float
    backward_s: float
    nfe_forward: int
    nfe_backward: int        # adjoint solve + the event-time gradient


@dataclass
class Contender:
    """A model to train: a loss closure, its parameters, an optimiser and an evaluation counter."""

    name: str
    loss: Callable[[], torch.Tensor]        # the value to minimise
    evaluations: Callable[[], int]          # dynamics evaluations so far
    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    clip: float | None = None
    records: list[StepRecord] = field(default_factory=list)

    def step(self, lr: float) -> StepRecord:
        """One timed training step at learning rate `lr`."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        n0 = self.evaluations()
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss()
        forward_end = time.perf_counter()
        n1 = self.evaluations()
        loss.backward()
        if self.clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        backward_end = time.perf_counter()
        n2 = self.evaluations()
        self.optimizer.step()
        end = time.perf_counter()
        record = StepRecord(float(loss.detach()), end - start, forward_end - start, backward_end - forward_end,
                            n1 - n0, n2 - n1)
        self.records.append(record)
        return record


def interleaved(step: int, pair: tuple[Contender, Contender]) -> tuple[Contender, Contender]:
    """ABAB with the order swapped every other step (AB BA AB ...), so neither always goes first."""
    return pair if step % 2 == 0 else (pair[1], pair[0])


def summarise(records: list[StepRecord]) -> dict:
    """Medians (and spread) of a list of timed steps."""
    seconds = sorted(r.seconds for r in records)
    return {
        "median_s": statistics.median(seconds),
        "p10_s": seconds[len(seconds) // 10],
        "p90_s": seconds[min(len(seconds) - 1, (9 * len(seconds)) // 10)],
        "median_forward_s": statistics.median(r.forward_s for r in records),
        "median_backward_s": statistics.median(r.backward_s for r in records),
        "median_nfe_forward": statistics.median(r.nfe_forward for r in records),
        "median_nfe_backward": statistics.median(r.nfe_backward for r in records),
        "median_s_per_nfe": statistics.median(r.seconds / max(1, r.nfe_forward + r.nfe_backward)
                                              for r in records),
    }


def environment(threads: int | None) -> dict:
    """What the numbers were measured on."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                                    text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    return {
        "python": platform.python_version(), "torch": torch.__version__,
        "torchdiffeq": torchdiffeq.__version__, "impsolve": impsolve.__version__,
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(), "threads_flag": threads,
        "git_commit": commit, "git_dirty": dirty,
    }

"""The results folder and the parts every study's Result shares: one home for result assembly.

A runner calls `results_folder` before its work (so a bad `--out` fails first), `assemble_result`
with its own fields after it, and `write_model` / `write_history` for the files every study writes.
"""
from __future__ import annotations

import hashlib
import io
import platform
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..version import __version__
from .errors import RunError
from .plots import plot_history
from .results import ObjectiveResult, Result, remove_stale_temporaries, write_atomic, write_csv
from .run_options import RunOptions


def results_folder(out: str | Path | None, name: str) -> Path:
    """`out`, or results/<name>/ by default, created if missing (and cleared of a killed run's
    temporary files); a folder that cannot be made is a RunError."""
    folder = Path(out) if out is not None else Path("results") / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunError(f"cannot create the results folder {folder}: {err.strerror}", exit_code=2) from None
    remove_stale_temporaries(folder)
    return folder


def folder_for(options: RunOptions, name: str) -> Path | None:
    """The results folder of a run that writes (with spec.imp, a copy of the spec it runs, which
    `impsolve export` reads), else None."""
    if not options.write:
        return None
    folder = results_folder(options.out, name)
    if options.spec_source:
        write_atomic(folder / "spec.imp", options.spec_source.encode())
    return folder


def spec_hash(source: str) -> str:
    """The SHA-256 of the spec text ("" when there is none)."""
    return hashlib.sha256(source.encode()).hexdigest() if source else ""


def dtype_name(dtype: torch.dtype) -> str:
    """'torch.float64' -> 'float64'."""
    return str(dtype).replace("torch.", "")


def versions() -> dict[str, str]:
    """The versions result.json records."""
    return {"impsolve": __version__, "torch": torch.__version__, "python": platform.python_version()}


def objective_result(model: nn.Module, final: float | None, history: list[float]) -> ObjectiveResult:
    """The objective entry: its sense and text as written, the final value and the history."""
    objective = model.problem.objective
    return ObjectiveResult(sense=objective.sense, expr=objective.text, final=final, history=history)


def assemble_result(model: nn.Module, options: RunOptions, started: float, **fields: Any) -> Result:
    """A Result with the fields every study shares (problem, device, dtype, seed, wall time since
    `started` (a perf_counter reading), versions, spec hash) and the study's own `fields`."""
    base = {"problem": model.problem.name, "device": str(model.device), "dtype": dtype_name(model.dtype),
            "seed": options.seed, "wall_time_s": round(time.perf_counter() - started, 3), "versions": versions(),
            "spec_sha256": spec_hash(options.spec_source)}
    return Result(**(base | fields))


def status_of(checks: list) -> str:
    """'ok' when every check passed, else 'expect_failed' (checks as dicts or Check models)."""
    passed = (c["passed"] if isinstance(c, dict) else c.passed for c in checks)
    return "ok" if all(passed) else "expect_failed"


def write_model(folder: Path, model: nn.Module) -> None:
    """model.pt: the module's state dict, written atomically."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    write_atomic(folder / "model.pt", buffer.getvalue())


def write_history(folder: Path, history: list[float], sense: str, reference: float | None = None) -> None:
    """history.csv and (for a non-empty history) objective.png."""
    write_csv(folder / "history.csv", ["step", "objective"], [[i + 1, v] for i, v in enumerate(history)])
    if history:
        plot_history(folder / "objective.png", history, sense, reference)

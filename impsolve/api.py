"""The Python API: load a spec, compile it to an nn.Module, or solve it end to end."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .compiler import compile_spec
from .dsl import CheckedSpec, read_spec

if TYPE_CHECKING:  # torch is imported only when compiling
    from .runtime.model import CompiledProblem
    from .runtime.results import Result


class Problem:
    """A checked and compiled spec: lowered to SymPy and generated as torch source, so every spec
    mistake (shapes included) surfaces here. No torch import until `compile`."""

    def __init__(self, checked: CheckedSpec) -> None:
        self.checked = checked
        self.program = compile_spec(checked)

    @property
    def name(self) -> str:
        return self.checked.name

    def source(self) -> str:
        """The generated torch source of this problem (what `impsolve compile --emit` prints)."""
        return self.program.source

    def compile(self, device: str = "auto", dtype: str = "float64", seed: int = 0,
                realizations: int | None = None) -> "CompiledProblem":
        """An nn.Module whose `forward()` returns the objective (as written: minimised or maximised).
        Discrete-time specs give a `DiscreteProblem`; `realizations=R` copies its nets R times."""
        from .runtime.device import resolve_device, resolve_dtype
        from .runtime.model import CompiledProblem
        if self.program.problem.discrete is not None:
            from .runtime.rollout import DiscreteProblem
            return DiscreteProblem(self.program, resolve_device(device), resolve_dtype(dtype), seed, realizations)
        return CompiledProblem(self.program, resolve_device(device), resolve_dtype(dtype), seed)


def load(path_or_text: str | Path, overrides: dict[str, str] | None = None) -> Problem:
    """Parse, check and compile a spec (file path or text). Raises SpecError on any mistake."""
    checked = read_spec(path_or_text)
    if overrides:
        checked.with_overrides(overrides)
    return Problem(checked)


def solve(path_or_text: str | Path, *, out: str | Path | None = None, device: str = "auto",
          dtype: str = "float64", seed: int = 0, steps: int | None = None,
          overrides: dict[str, Any] | None = None, quiet: bool = True, write: bool = True,
          resume: bool = False, checkpoint_every: int = 10, realizations: int | None = None) -> "Result":
    """Train the spec's objective, evaluate its expects, write the results folder; return the Result.
    For a spec with `identify`, run the identification study with `realizations` runs (default: the spec's)."""
    from .runtime.study import run_study
    settings = {k: str(v) for k, v in (overrides or {}).items()}
    if steps is not None:
        settings["train.steps"] = str(steps)
    problem = load(path_or_text, settings)
    return run_study(problem.compile(device, dtype, seed), seed=seed, out=out, quiet=quiet, write=write,
                     spec_source=problem.checked.spec.source, resume=resume, checkpoint_every=checkpoint_every,
                     realizations=realizations)

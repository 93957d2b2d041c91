"""Errors raised while running a compiled problem (not spec mistakes)."""
from __future__ import annotations


class RunError(Exception):
    """A run-time failure the user can act on (solver failure, missing device, ...).

    The CLI prints it without a traceback (exit code 2 for setup problems, 3 otherwise)."""

    def __init__(self, message: str, hint: str | None = None, exit_code: int = 3) -> None:
        self.hint = hint
        self.exit_code = exit_code
        super().__init__(message + (f"\n  hint: {hint}" if hint else ""))


class SolverFailure(RunError):
    """An ODE solve that could not finish: the step count ran out, the step size underflowed or
    the dynamics turned out stiff. Training skips a step that meets one (runtime.train)."""

"""A live progress display for long runs: step, objective, rate, ETA.

On a terminal, and in a Jupyter notebook (whose output area honours a carriage return), one line
is rewritten in place (a few times a second). When the output is not a
terminal (CI logs, `nohup`), a line is printed at every ~10 % of the steps, or when `log_interval`
seconds pass without one (that wait doubles each time it triggers, so a slow run still logs only a
few extra lines), plus the last step: at most ~20 lines a run."""
from __future__ import annotations

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def is_terminal(stream: TextIO) -> bool:
    """Whether `stream` is an interactive terminal."""
    return bool(getattr(stream, "isatty", None)) and stream.isatty()


def is_live(stream: TextIO) -> bool:
    """Whether a line written to `stream` can be rewritten in place: a terminal, or a Jupyter
    kernel's output stream (ipykernel's OutStream renders a carriage return as in a terminal)."""
    return is_terminal(stream) or type(stream).__module__.startswith("ipykernel")


class Progress:
    """Rewrites one line on a terminal (at most every `interval` s); logs sparse lines otherwise."""

    def __init__(self, total: int, label: str, quiet: bool = False, stream: TextIO | None = None,
                 interval: float = 0.5, log_interval: float = 10.0) -> None:
        self.total, self.label, self.quiet = total, label, quiet
        self.stream = stream or sys.stderr
        self.tty = is_live(self.stream)
        self.interval = interval if self.tty else log_interval
        self.stride = max(1, total // 10)   # non-terminal: a line every ~10 % of the steps
        self.start = self.last = time.perf_counter()
        self.last_step = 0

    def _due(self, step: int, now: float) -> bool:
        if step >= self.total or (not self.tty and step - self.last_step >= self.stride):
            return True
        if now - self.last < self.interval:
            return False
        if not self.tty:
            self.interval *= 2   # a slow run: each time-triggered log line waits twice as long
        return True

    def update(self, step: int, objective: float) -> None:
        now = time.perf_counter()
        if self.quiet or not self._due(step, now):
            return
        self.last, self.last_step = now, step
        rate = step / max(now - self.start, 1e-9)
        eta = (self.total - step) / rate if rate > 0 else 0.0
        line = (f"{self.label}  step {step:>{len(str(self.total))}}/{self.total}  objective {objective:.7g}  "
                f"{rate:.1f} steps/s  ETA {_clock(eta)}")
        if self.tty:
            self.stream.write("\r" + line + ("\n" if step >= self.total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def note(self, message: str) -> None:
        """A one-off message (e.g. a skipped step) on its own line."""
        if not self.quiet:
            self.stream.write(("\n" if self.tty else "") + f"{self.label}  {message}\n")
            self.stream.flush()

"""A one-line live progress display for long runs: step, objective, rate, ETA."""
from __future__ import annotations

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Prints at most every `interval` seconds; rewrites one line on a terminal."""

    def __init__(self, total: int, label: str, quiet: bool = False, stream: TextIO | None = None,
                 interval: float = 0.5) -> None:
        self.total, self.label, self.quiet = total, label, quiet
        self.stream = stream or sys.stderr
        self.interval = interval
        self.start = self.last = time.perf_counter()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, step: int, objective: float) -> None:
        now = time.perf_counter()
        if self.quiet or (now - self.last < self.interval and step < self.total):
            return
        self.last = now
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

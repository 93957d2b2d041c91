"""RunOptions: how one study runs (seed, where and whether to write, resume), handed to its runner."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunOptions:
    """What a runner needs besides the compiled model. `spec_source` is hashed into result.json;
    `resume` and `checkpoint_every` concern training; `realizations` overrides an identification
    study's count (None: the spec's)."""

    seed: int = 0
    out: str | Path | None = None
    quiet: bool = True
    write: bool = True
    spec_source: str = ""
    resume: bool = False
    checkpoint_every: int = 10
    realizations: int | None = None

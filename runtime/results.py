"""The results contract: `result.json` (a pydantic schema), CSV series, written atomically."""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel


class Check(BaseModel):
    name: str
    value: float
    reference: float
    error: float
    tolerance: float | None
    relative: bool = False
    passed: bool


class ObjectiveResult(BaseModel):
    sense: Literal["minimize", "maximize"]
    expr: str
    final: float
    history: list[float]


class DesignRound(BaseModel):
    """One round of a design study: the design chosen with the prior belief, what was observed,
    the posterior (per uncertain param), the criterion at the design and the `each round` expects."""

    design: dict[str, float]
    prior_mean: dict[str, float]
    prior_var: dict[str, float]
    observation: float
    mean: dict[str, float]
    var: dict[str, float]
    error: dict[str, float]
    criterion: float
    cov: list[list[float]]
    expects: list[Check] = []


class Result(BaseModel):
    """What a run produces; users' scripts read these fields from result.json."""

    problem: str
    status: Literal["ok", "expect_failed"]
    device: str
    dtype: str
    seed: int
    steps: int
    wall_time_s: float
    objective: ObjectiveResult
    values: dict[str, float]
    checks: list[Check]
    warnings: list[str] = []
    reference: dict[str, dict] = {}
    versions: dict[str, str] = {}
    spec_sha256: str = ""
    rounds: list[DesignRound] = []    # design studies only
    identify: dict[str, Any] = {}      # identification studies (runtime.identify); empty otherwise
    solver: dict[str, str] = {}        # the ODE solver tier that ran and why (runtime.solvers.plan); ODE specs
    out_dir: str | None = None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and os.replace: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: Path, result: Result) -> None:
    payload = result.model_dump(exclude={"out_dir"})
    write_atomic(path, (json.dumps(payload, indent=2, allow_nan=True) + "\n").encode())


def write_csv(path: Path, header: list[str], rows: list[list[float]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([[f"{v:.10g}" if isinstance(v, float) else v for v in row] for row in rows])
    write_atomic(path, buffer.getvalue().encode())

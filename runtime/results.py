"""The results contract: `result.json` (a pydantic schema), CSV series, written atomically."""
from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel


class Check(BaseModel):
    """One `expect`: value, reference and error are null (with a `reason`) when they do not exist."""

    name: str
    value: float | None
    reference: float | None
    error: float | None
    tolerance: float | None
    relative: bool = False
    passed: bool
    reason: str | None = None


class ObjectiveResult(BaseModel):
    sense: Literal["minimize", "maximize"]
    expr: str
    final: float | None            # null (with a warning) when the objective is not finite
    history: list[float | None]


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


class Estimate(BaseModel):
    """A fitted param entry (fit studies): its value, standard error and 95 % interval."""

    value: float | None
    stderr: float | None
    ci95: list[float | None]


class ConstraintResult(BaseModel):
    """One `subject to` constraint at the end: its value c (wanted c == 0 or c <= 0; a path
    constraint's is ∫ max(g, 0)² dt when trained, its largest g over the points under the direct
    method), its violation and its Lagrange multiplier estimate (summed over the points), and `worst`:
    its largest g (|g| for ==) where it applies: a trained path constraint's at the samples of
    trajectory.csv, else from its value."""

    value: float | None
    violation: float | None
    multiplier: float | None
    worst: float | None = None


class Result(BaseModel):
    """What a run produces; users' scripts read these fields from result.json."""

    problem: str
    status: Literal["ok", "expect_failed"]
    device: str
    dtype: str
    seed: int
    steps: int
    wall_time_s: float                 # the run after compiling: solve, checks, references (not the file writing)
    objective: ObjectiveResult
    values: dict[str, float | None]
    checks: list[Check]
    warnings: list[str] = []
    reference: dict[str, dict] = {}
    versions: dict[str, str] = {}
    spec_sha256: str = ""
    rounds: list[DesignRound] = []    # design studies only
    identify: dict[str, Any] = {}      # identification studies (runtime.identify); empty otherwise
    solver: dict[str, str] = {}        # the ODE solver tier that ran and why (runtime.solvers.plan); ODE specs
    estimates: dict[str, Estimate] = {}   # fit studies (runtime.fit_study): per fitted param entry
    correlation: dict[str, dict[str, float | None]] = {}   # fit studies: the estimates' correlation matrix
    fit: dict[str, Any] = {}           # fit studies: optimiser iterations, observations, sigmas
    constraints: dict[str, ConstraintResult] = {}   # `subject to` constraints (runtime.constraints); else empty
    solve_time_s: float | None = None  # train studies: the solve alone (training or the direct method), no checks
    out_dir: str | None = None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def _repr_html_(self) -> str:
        """Jupyter shows a Result as a table of objective, checks and values, with its figures."""
        from .notebook import result_html
        return result_html(self)


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and os.replace: never a half-written file. The
    file gets the permissions of a plain `open()` (0666 less the umask), not mkstemp's 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_temporaries(folder: Path) -> None:
    """Delete the temporary files of `write_atomic` that a killed run left in `folder` (a SIGKILL
    between mkstemp and os.replace leaves `.NAME.XXXX.tmp`; the file it was writing is intact)."""
    for stale in folder.glob(".*.tmp"):
        stale.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def finite_payload(value: Any, where: str = "") -> tuple[Any, list[str]]:
    """`value` with every NaN/Inf number replaced by null, and one note per replacement naming where
    it was and what it was: result.json is strict JSON (no NaN) and says why a number is missing."""
    if isinstance(value, float) and not math.isfinite(value):
        return None, [f"{where or 'a value'} was {value} and is written as null"]
    notes: list[str] = []
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out[key], found = finite_payload(item, f"{where}.{key}" if where else str(key))
            notes += found
        return out, notes
    if isinstance(value, (list, tuple)):
        out_list = []
        for i, item in enumerate(value):
            clean, found = finite_payload(item, f"{where}[{i}]")
            out_list.append(clean)
            notes += found
        return out_list, notes
    return value, notes


def write_json(path: Path, result: Result) -> None:
    """result.json, the one place it is written: non-finite numbers become null, each recorded in
    `warnings` (and on `result`), and the JSON is strict (allow_nan=False)."""
    payload, notes = finite_payload(result.model_dump(exclude={"out_dir"}))
    if notes:
        result.warnings.extend(n for n in notes if n not in result.warnings)   # a rewrite adds none twice
        payload["warnings"] = list(result.warnings)
    write_atomic(path, (json.dumps(payload, indent=2, allow_nan=False) + "\n").encode())


def write_csv(path: Path, header: list[str], rows: list[list[float]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([[f"{v:.10g}" if isinstance(v, float) else v for v in row] for row in rows])
    write_atomic(path, buffer.getvalue().encode())


def result_schema() -> dict[str, Any]:
    """The JSON Schema of result.json: the Result model as written (without `out_dir`)."""
    schema = Result.model_json_schema(mode="serialization")
    schema["properties"].pop("out_dir", None)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["additionalProperties"] = False
    return schema

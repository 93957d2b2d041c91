"""Measured data for fits: read a CSV table (header row of column names, one row per time) and
validate it, each problem a located SpecError naming the file, the row and the column."""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import did_you_mean

MAX_ROWS = 1_000_000
Error = Callable[..., Exception]   # (message, hint=None) -> a located SpecError


@dataclass(frozen=True)
class Table:
    """A CSV table: its file (as shown), column names in order and each column's numbers."""

    path: str
    names: tuple[str, ...]
    columns: dict[str, tuple[float, ...]]

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def column(self, name: str, error: Error) -> tuple[float, ...]:
        """The numbers of column `name`; a missing one is an error with a did-you-mean hint."""
        if name not in self.columns:
            raise error(f"{self.path} has no column '{name}' (its columns: {', '.join(self.names)})",
                        did_you_mean(name, self.names))
        return self.columns[name]


def resolve(path: str, spec_file: str) -> Path:
    """A data path relative to the spec's folder (or to the working folder for spec text)."""
    candidate = Path(path)
    if candidate.is_absolute() or spec_file.startswith("<"):
        return candidate
    return Path(spec_file).parent / candidate


def base_folder(spec_file: str) -> str:
    """What `resolve` reads a relative data path against, in words."""
    return "the working folder" if spec_file.startswith("<") else "the spec's folder"


def read_table(file: Path, error: Error, base: str = "the spec's folder") -> Table:
    """Read and check a CSV file: it exists, has a header of distinct names and at least one row,
    and every cell is a finite number. `base` is the folder a relative path was read against."""
    shown = file.as_posix()
    try:
        with open(file, newline="", encoding="utf-8-sig") as handle:
            rows = list(_limited(csv.reader(handle), shown, error))
    except FileNotFoundError:
        raise error(f"no such data file: {shown}", f"the path is relative to {base}") from None
    except UnicodeDecodeError:
        raise error(f"{shown} is not UTF-8 text") from None
    except IsADirectoryError:
        raise error(f"{shown} is a folder, not a CSV file") from None
    except OSError as err:
        raise error(f"cannot read {shown}: {err.strerror}") from None
    except csv.Error as err:
        raise error(f"{shown} is not a valid CSV file: {err}") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise error(f"{shown} is empty", "the first row names the columns, e.g. t,prey,predator")
    names = tuple(cell.strip() for cell in rows[0])
    _check_header(names, shown, error)
    if len(rows) < 2:
        raise error(f"{shown} has a header but no rows of data")
    values: list[list[float]] = [[] for _ in names]
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(names):
            raise error(f"{shown}, row {number}: {len(row)} cells for {len(names)} columns")
        for j, cell in enumerate(row):
            values[j].append(_number(cell, shown, number, names[j], error))
    return Table(shown, names, {n: tuple(v) for n, v in zip(names, values)})


def _limited(reader, shown: str, error: Error):
    for i, row in enumerate(reader):
        if i > MAX_ROWS:
            raise error(f"{shown} has more than {MAX_ROWS} rows")
        yield row


def _check_header(names: tuple[str, ...], shown: str, error: Error) -> None:
    for j, name in enumerate(names):
        if not name:
            raise error(f"{shown}: column {j + 1} of the header has no name")
        if name in names[:j]:
            raise error(f"{shown}: the column '{name}' appears twice in the header")
        try:
            float(name)
        except ValueError:
            continue
        raise error(f"{shown}: the first row must name the columns, but it holds the number {name}",
                    "add a header row, e.g. t,prey,predator")


def _number(cell: str, shown: str, row: int, column: str, error: Error) -> float:
    text = cell.strip()
    try:
        value = float(text)
    except ValueError:
        what = "is empty" if not text else f"holds '{text[:40]}', not a number"
        raise error(f"{shown}, row {row}, column '{column}' {what}",
                    "every cell of a data file is a number; remove or fill the row") from None
    if not math.isfinite(value):
        raise error(f"{shown}, row {row}, column '{column}' is {text}, not a finite number",
                    "remove the row, or fit only columns without missing values")
    return value


def check_times(times: tuple[float, ...], table: Table, column: str, error: Error) -> None:
    """Observation times: at or after 0 (the states start at t = 0) and strictly increasing."""
    if times[0] < 0:
        raise error(f"{table.path}, row 2, column '{column}': the time {times[0]:g} is before 0, where the "
                    "states start")
    for i in range(1, len(times)):
        if not times[i] > times[i - 1]:
            raise error(f"{table.path}, row {i + 2}, column '{column}': the times must increase, but "
                        f"{times[i]:g} follows {times[i - 1]:g}", "sort the rows by time; drop repeated times")

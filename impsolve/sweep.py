"""`impsolve sweep`: one spec over seeds and settings (a product of lists), one results folder per
run, a summary (sweep.csv, sweep.json, sweep.png). Backends: a local process pool (one torch
thread per worker) or Ray. A failed run is reported and does not stop the sweep; a rerun skips the
runs whose results are complete for the same spec text and settings."""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .dsl import SpecError

DONE_MARKER = "sweep_run.json"   # written after result.json: its presence means "complete"


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: its seed, its settings and its results folder."""

    seed: int
    settings: tuple[tuple[str, str], ...]
    folder: str

    def key(self, spec_hash: str) -> dict[str, Any]:
        return {"spec_sha256": spec_hash, "seed": self.seed, "settings": dict(self.settings)}


@dataclass
class SweepState:
    """Counts for the progress line and the rows of the summary."""

    total: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    start: float = field(default_factory=time.perf_counter)
    fresh: int = 0

    def line(self) -> str:
        done = sum(r["status"] != "failed" for r in self.rows)
        failed = len(self.rows) - done
        remaining = self.total - len(self.rows)
        rate = self.fresh / max(time.perf_counter() - self.start, 1e-9)
        eta = f"{remaining / rate:.0f} s" if rate > 0 else "?"
        return f"sweep  done {done}  failed {failed}  remaining {remaining}  ETA {eta}"


def parse_seeds(text: str) -> list[int]:
    """'0-99', '1,4,7' or '3,10-12' -> the seeds in order, without repeats."""
    seeds: list[int] = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        try:
            span = range(int(first), int(last) + 1) if dash else [int(first)]
        except ValueError:
            raise SpecError(f"--seeds: expected e.g. 0-99 or 1,4,7, got '{text}'", None, filename="--seeds")
        seeds.extend(s for s in span if s not in seeds)
    if not seeds:
        raise SpecError(f"--seeds: no seeds in '{text}'", None, filename="--seeds")
    return seeds


def parse_grid(items: Iterable[str]) -> list[tuple[str, list[str]]]:
    """['train.lr=0.01,0.05', ...] -> [('train.lr', ['0.01', '0.05']), ...]."""
    grid = []
    for item in items:
        key, sep, values = item.partition("=")
        choices = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not choices:
            raise SpecError(f"--set needs KEY=V1,V2,..., got '{item}'", None, filename="--set")
        grid.append((key.strip(), choices))
    return grid


def plan(seeds: list[int], grid: list[tuple[str, list[str]]]) -> list[RunSpec]:
    """The product of the seeds and every setting's list, each with a readable folder name."""
    keys = [k for k, _ in grid]
    runs = []
    for combo in itertools.product(*(values for _, values in grid)):
        settings = tuple(zip(keys, combo))
        suffix = "".join(f"__{k}={v}" for k, v in settings)
        runs.extend(RunSpec(seed, settings, f"seed{seed:04d}{suffix}") for seed in seeds)
    return runs


def is_complete(folder: Path, key: dict[str, Any]) -> bool:
    """Whether `folder` holds a finished run of exactly this spec text, seed and settings."""
    try:
        marker = json.loads((folder / DONE_MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker == key and (folder / "result.json").is_file()


def run_one(spec: str, run: RunSpec, out: str, spec_hash: str, steps: int | None) -> dict[str, Any]:
    """Run one sweep member in this process (a worker): train with one torch thread, write its
    folder and the completion marker; a failure becomes a row with the error, not an exception."""
    import torch

    from .api import solve
    from .runtime.results import write_atomic
    torch.set_num_threads(1)
    folder = Path(out) / run.folder
    try:
        solve(spec, out=folder, seed=run.seed, steps=steps, overrides=dict(run.settings), quiet=True)
    except Exception as err:  # noqa: BLE001 - a failed run is reported, the sweep goes on
        return {"run": run.folder, "seed": run.seed, **dict(run.settings), "status": "failed",
                "error": f"{type(err).__name__}: {err}"}
    write_atomic(folder / DONE_MARKER, json.dumps(run.key(spec_hash)).encode())
    return summary_row(run, json.loads((folder / "result.json").read_text()))


def summary_row(run: RunSpec, result: dict[str, Any]) -> dict[str, Any]:
    """One row of sweep.csv/json from a run's result.json: objective, checks, final errors."""
    row: dict[str, Any] = {"run": run.folder, "seed": run.seed, **dict(run.settings), "status": result["status"],
                           "objective": result["objective"]["final"],
                           "checks_passed": sum(c["passed"] for c in result["checks"]),
                           "checks": len(result["checks"]), "wall_time_s": result["wall_time_s"]}
    if result.get("rounds"):
        row.update({f"error.{k}": v for k, v in result["rounds"][-1]["error"].items()})
    row.update({f"value.{k}": v for k, v in result["values"].items()})
    return row


Report = Callable[[dict[str, Any]], None]


def _process_pool(tasks: list[tuple], jobs: int, report: Report) -> None:
    """Run `tasks` (arguments of run_one) on a local pool of `jobs` spawned worker processes."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_one, *task): task[1] for task in tasks}
        for future in as_completed(futures):
            try:
                report(future.result())
            except Exception as err:  # noqa: BLE001 - a worker died (e.g. killed): report, go on
                run = futures[future]
                report({"run": run.folder, "seed": run.seed, **dict(run.settings), "status": "failed",
                        "error": f"worker failed: {type(err).__name__}: {err}"})


def _ray(tasks: list[tuple], jobs: int, report: Report, address: str | None) -> None:
    """Run `tasks` as Ray tasks (one CPU each): on the cluster at `address`, else a local Ray."""
    try:
        import ray
    except ImportError:
        raise SpecError("--backend ray needs Ray: pip install 'impsolve[ray]'", None, filename="--backend")
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else jobs, include_dashboard=False,
                 log_to_driver=False, ignore_reinit_error=True)
    remote = ray.remote(num_cpus=1)(run_one)
    pending = {remote.remote(*task): task[1] for task in tasks}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            run = pending.pop(ready[0])
            try:
                report(ray.get(ready[0]))
            except Exception as err:  # noqa: BLE001 - a task that died is a failed run
                report({"run": run.folder, "seed": run.seed, **dict(run.settings), "status": "failed",
                        "error": f"ray task failed: {type(err).__name__}: {err}"})
    finally:
        if started:
            ray.shutdown()


def sweep(spec: str, runs: list[RunSpec], out: str | Path, *, jobs: int = 1, backend: str = "process",
          address: str | None = None, steps: int | None = None, quiet: bool = False) -> list[dict[str, Any]]:
    """Run every run not already complete in `out`, then write the summary; return its rows."""
    from .api import load
    text = Path(spec).read_text()
    spec_hash = hashlib.sha256(text.encode()).hexdigest()
    for settings in {r.settings for r in runs}:   # every combination checks before any run starts
        load(spec, dict(settings) | ({"train.steps": str(steps)} if steps is not None else {}))
    out = Path(out)
    state = SweepState(len(runs))
    todo = []
    for run in runs:
        if is_complete(out / run.folder, run.key(spec_hash)):
            state.rows.append(summary_row(run, json.loads((out / run.folder / "result.json").read_text())))
        else:
            todo.append((str(spec), run, str(out), spec_hash, steps))

    def report(row: dict[str, Any]) -> None:
        state.rows.append(row)
        state.fresh += 1
        if row["status"] == "failed" and not quiet:
            print(f"sweep  run {row['run']} failed: {row['error']}", file=sys.stderr)
        if not quiet:
            print(state.line(), file=sys.stderr, flush=True)

    if not quiet:
        print(f"sweep  {len(runs)} runs: {len(runs) - len(todo)} already complete, {len(todo)} to run "
              f"({backend}, {jobs} jobs)", file=sys.stderr, flush=True)
    if todo and backend == "ray":
        _ray(todo, jobs, report, address)
    elif todo:
        _process_pool(todo, jobs, report)
    order = {run.folder: i for i, run in enumerate(runs)}
    state.rows.sort(key=lambda row: order[row["run"]])
    write_summary(out, state.rows)
    return state.rows


def write_summary(out: Path, rows: list[dict[str, Any]]) -> None:
    """sweep.csv and sweep.json (one row per run) and sweep.png (objective and checks per run)."""
    import csv
    import io

    from .runtime.results import write_atomic
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out / "sweep.csv", buffer.getvalue().encode())
    write_atomic(out / "sweep.json", (json.dumps({"runs": rows}, indent=2) + "\n").encode())
    _plot(out / "sweep.png", rows)


def _plot(path: Path, rows: list[dict[str, Any]]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    done = [r for r in rows if r["status"] != "failed"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    top.plot(range(len(done)), [r["objective"] for r in done], "o")
    top.set_ylabel("final objective")
    bottom.bar(range(len(done)), [r["checks_passed"] for r in done], label="passed")
    bottom.plot(range(len(done)), [r["checks"] for r in done], "k_", markersize=12, label="checks")
    bottom.set_ylabel("checks passed")
    bottom.set_xlabel("run")
    bottom.legend(loc="lower right")
    fig.suptitle(f"{len(done)} runs, {len(rows) - len(done)} failed")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str]) -> int:
    """The `impsolve sweep` command: exit 0 if every run passed, 1 if one failed or missed an expect."""
    parser = argparse.ArgumentParser(prog="impsolve sweep", description="Run a spec over seeds and settings.")
    parser.add_argument("spec", help="path to a .imp file")
    parser.add_argument("--seeds", default="0", help="e.g. 0-99 or 1,4,7 (default 0)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=V1,V2",
                        help="a setting and its values; several --set make a product (repeatable)")
    parser.add_argument("--steps", type=int, help="override train steps")
    parser.add_argument("--jobs", type=int, default=1, help="parallel runs (default 1)")
    parser.add_argument("--backend", choices=["process", "ray"], default="process")
    parser.add_argument("--address", help="ray: address of an existing cluster (default: a local Ray)")
    parser.add_argument("--out", help="sweep folder (default results/sweep-<spec name>/)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if not Path(args.spec).is_file():
        parser.error(f"no such spec file: {args.spec}")
    runs = plan(parse_seeds(args.seeds), parse_grid(args.set))
    out = Path(args.out or f"results/sweep-{Path(args.spec).stem}")
    rows = sweep(args.spec, runs, out, jobs=args.jobs, backend=args.backend, address=args.address,
                 steps=args.steps, quiet=args.quiet)
    failed = sum(r["status"] == "failed" for r in rows)
    print(f"sweep: {len(rows) - failed} runs done, {failed} failed; summary in {out}/sweep.csv")
    return 0 if all(r["status"] == "ok" for r in rows) else 1

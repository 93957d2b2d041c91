"""`impsolve sweep`: one folder per run, a summary equal to single runs, failures reported,
reruns skip complete runs (also after SIGKILL), and the Ray backend gives the same numbers."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import impsolve
from impsolve.sweep import DONE_MARKER, parse_grid, parse_seeds, plan, sweep

from conftest import spec_path

SPEC = str(spec_path("decay_design_closed"))
STEPS = 2


def _single_errors(seeds: list[int]) -> dict[int, float]:
    return {s: impsolve.solve(SPEC, seed=s, steps=STEPS, write=False).rounds[-1].error["theta"] for s in seeds}


def _check_against_single_runs(rows: list[dict], out: Path, seeds: list[int]) -> None:
    assert [r["seed"] for r in rows] == seeds and all(r["status"] == "ok" for r in rows)
    assert all((out / r["run"] / "result.json").is_file() for r in rows)
    assert {r["seed"]: r["error.theta"] for r in rows} == _single_errors(seeds)
    summary = json.loads((out / "sweep.json").read_text())["runs"]
    assert [r["error.theta"] for r in summary] == [r["error.theta"] for r in rows]
    assert len((out / "sweep.csv").read_text().splitlines()) == len(seeds) + 1
    assert (out / "sweep.png").stat().st_size > 0


def test_seeds_and_settings_make_a_product() -> None:
    assert parse_seeds("0-2,5,1") == [0, 1, 2, 5]
    runs = plan([0, 1], parse_grid(["train.lr=0.01,0.05", "rounds=3"]))
    assert len(runs) == 4 and len({r.folder for r in runs}) == 4
    assert runs[0].settings == (("train.lr", "0.01"), ("rounds", "3"))


@pytest.mark.parametrize("text", ["", "a-b", "3-"])
def test_bad_seed_lists_are_clear_errors(text: str) -> None:
    done = subprocess.run([sys.executable, "-m", "impsolve", "sweep", SPEC, "--seeds", text],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "--seeds" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_process_pool_sweep_equals_single_runs_and_reports_failures(tmp_path: Path) -> None:
    seeds = [0, 1, 2]
    runs = plan(seeds, [])
    (tmp_path / runs[1].folder).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / runs[1].folder).write_text("not a folder")        # this run cannot write: it fails
    rows = sweep(SPEC, runs, tmp_path, jobs=2, steps=STEPS, quiet=True)
    assert [r["status"] for r in rows] == ["ok", "failed", "ok"] and rows[1]["error"]
    (tmp_path / runs[1].folder).unlink()
    rows = sweep(SPEC, runs, tmp_path, jobs=2, steps=STEPS, quiet=True)   # reruns only the failed one
    _check_against_single_runs(rows, tmp_path, seeds)


def test_rerun_after_sigkill_completes_only_the_missing_runs(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "impsolve", "sweep", SPEC, "--seeds", "0-3", "--steps", str(STEPS),
            "--jobs", "1", "--out", str(tmp_path)]
    first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not list(tmp_path.glob(f"*/{DONE_MARKER}")) and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    complete = {p.parent.name: p.parent.joinpath("result.json").stat().st_mtime_ns
                for p in tmp_path.glob(f"*/{DONE_MARKER}")}
    assert 1 <= len(complete) < 4 and not (tmp_path / "sweep.csv").exists()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"{len(complete)} already complete, {4 - len(complete)} to run" in done.stderr
    assert {name: tmp_path.joinpath(name, "result.json").stat().st_mtime_ns for name in complete} == complete
    assert len(list(tmp_path.glob(f"*/{DONE_MARKER}"))) == 4


@pytest.mark.slow
def test_ray_local_sweep_equals_single_runs(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    seeds = [0, 1]
    _check_against_single_runs(sweep(SPEC, plan(seeds, []), tmp_path, jobs=2, backend="ray", steps=STEPS,
                                     quiet=True), tmp_path, seeds)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["process", "ray"])
def test_twenty_seed_sweep_equals_single_runs(backend: str, tmp_path: Path) -> None:
    if backend == "ray":
        pytest.importorskip("ray")
    seeds = list(range(20))
    rows = sweep(SPEC, plan(seeds, []), tmp_path, jobs=2, backend=backend, quiet=True)
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 20
    assert [r["seed"] for r in rows] == seeds and all(r["status"] == "ok" for r in rows)
    single = {s: impsolve.solve(SPEC, seed=s, write=False).rounds[-1].error["theta"] for s in seeds}
    assert {r["seed"]: r["error.theta"] for r in rows} == single

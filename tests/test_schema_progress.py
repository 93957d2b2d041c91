"""`impsolve schema` is the contract of result.json; progress logs stay short off a terminal."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from impsolve.runtime.progress import Progress
from impsolve.runtime.results import result_schema

from conftest import SPEC_FILES, spec_path

SLOW = {"isochronism", "cartpole", "cartpole_lqr", "ols_design", "ols_design_aopt", "decay_design", "sysid",
        "zermelo_open_loop", "min_time_double_integrator"}   # minutes each (augmented-Lagrangian loop)


def _run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "impsolve", *argv], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_schema_command_prints_the_pydantic_schema() -> None:
    done = _run("schema")
    assert done.returncode == 0, done.stderr
    schema = json.loads(done.stdout)
    assert schema == result_schema()
    assert {"problem", "objective", "checks", "values"} <= set(schema["required"])


def test_python_m_impsolve_runs_a_spec(tmp_path: Path) -> None:
    spec = spec_path("fixed_point")
    done = _run(str(spec), "--out", str(tmp_path / "r"), "--steps", "3")
    assert done.returncode in (0, 1), done.stderr
    assert (tmp_path / "r" / "result.json").is_file()


@pytest.mark.parametrize("spec", [pytest.param(s, marks=pytest.mark.slow) if s.stem in SLOW else s
                                  for s in SPEC_FILES], ids=[s.stem for s in SPEC_FILES])
def test_shipped_spec_results_validate_against_the_schema(spec: Path, tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    done = _run(str(spec), "--out", str(tmp_path / "r"), "--steps", "3", "--realizations", "1", "--quiet")
    assert done.returncode in (0, 1), done.stderr
    payload = json.loads((tmp_path / "r" / "result.json").read_text())
    jsonschema.validate(payload, result_schema())
    payload["unexpected_field"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(payload, result_schema())


def test_progress_off_a_terminal_prints_about_ten_lines() -> None:
    stream = io.StringIO()
    progress = Progress(300, "zermelo", stream=stream)
    for step in range(1, 301):
        progress.update(step, 1.0 / step)
    lines = stream.getvalue().splitlines()
    assert 10 <= len(lines) <= 12
    assert lines[-1].split()[2] == "300/300"


def test_progress_in_a_jupyter_kernel_rewrites_one_line() -> None:
    """ipykernel's OutStream is no tty, but the notebook honours a carriage return: one live line."""
    kernel_stream = type("OutStream", (io.StringIO,), {"__module__": "ipykernel.iostream"})()
    progress = Progress(300, "zermelo", stream=kernel_stream, interval=0.0)
    for step in range(1, 301):
        progress.update(step, 1.0 / step)
    text = kernel_stream.getvalue()
    assert text.count("\r") == 300 and text.count("\n") == 1 and text.endswith("300/300  objective 0.003333333  "
                                                                            + text.split("objective 0.003333333  ")[-1])


def test_progress_off_a_terminal_prints_every_ten_seconds_for_slow_runs(monkeypatch) -> None:
    clock = iter(float(t) for t in range(0, 10_000, 4))   # each update 4 s later
    monkeypatch.setattr("impsolve.runtime.progress.time.perf_counter", lambda: next(clock))
    stream = io.StringIO()
    progress = Progress(1000, "slow", stream=stream)
    for step in range(1, 31):
        progress.update(step, 0.0)
    assert len(stream.getvalue().splitlines()) == 3   # at 12 s, 32 s, 72 s: the wait doubles (10, 20, 40 s)


def test_a_slow_run_off_a_terminal_still_prints_at_most_twenty_lines(monkeypatch) -> None:
    clock = iter(float(t) for t in range(0, 100_000, 5))   # 0.2 steps/s: a contended machine
    monkeypatch.setattr("impsolve.runtime.progress.time.perf_counter", lambda: next(clock))
    stream = io.StringIO()
    progress = Progress(300, "zermelo", stream=stream)
    for step in range(1, 301):
        progress.update(step, 0.0)
    assert len(stream.getvalue().splitlines()) <= 20


def test_result_renders_as_html_with_table_and_figures(tmp_path: Path) -> None:
    import impsolve
    result = impsolve.solve(spec_path("fixed_point"), steps=3, out=tmp_path / "r")
    page = result._repr_html_()
    assert result.problem in page and "<table>" in page
    assert all(c.name in page for c in result.checks) and all(name in page for name in result.values)
    assert page.count("data:image/png;base64,") == len(list((tmp_path / "r").glob("*.png"))) > 0


def test_a_trajectory_plot_of_many_states_draws_the_first_few_without_warnings(tmp_path) -> None:
    """A 128-entry latent state drew 128 curves and a legend matplotlib could not lay out (a warning
    in every result): now the first MAX_STATE_CURVES, said in the title."""
    import warnings

    import numpy as np

    from impsolve.runtime.plots import MAX_STATE_CURVES, plot_trajectory
    names = [f"z[{i}]" for i in range(128)]
    times = np.linspace(0, 1, 11)
    after = np.random.default_rng(0).normal(size=(11, 2, 128))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_trajectory(tmp_path / "trajectory.png", names, times, after)
    assert (tmp_path / "trajectory.png").stat().st_size > 0 and MAX_STATE_CURVES < 128

"""A toy study registered from the tests in all three layers: "grid" evaluates the objective on a
grid of one param's values (`study grid(param=k, low=..., high=..., points=...)`) and reports the
best, run end to end through impsolve.solve without editing any file of the package."""
from __future__ import annotations

import dataclasses
import json
import time

import pytest
import torch

import impsolve
from impsolve.compiler import kinds as compiler_kinds
from impsolve.dsl import SpecError, register_study
from impsolve.dsl.kinds import STUDIES
from impsolve.runtime.errors import RunError
from impsolve.runtime.kinds import RUNNERS, register_runner
from impsolve.runtime.results import write_json
from impsolve.runtime.results_folder import assemble_result, folder_for, objective_result, write_history

SPEC = """
problem bowl
param k = 0
minimize (k - 1.25)^2
study grid(param=k, low=-2, high=2, points=9)
"""


def check_grid(spec, statement) -> None:
    """dsl: the settings name a param and a grid of at least two points."""
    settings = spec.study_settings
    if settings.get("param") not in spec.params:
        raise SpecError("grid: 'param' must name a param of the spec", statement.call.span, hint="e.g. param=k")
    if not isinstance(settings.get("points"), int) or settings["points"] < 2:
        raise SpecError("grid: 'points' must be a whole number of at least 2", statement.call.span)


def grid_step(problem, checked):
    """compiler: the grid's values become part of the problem (a pass: the input is not changed)."""
    s = checked.study_settings
    values = [s["low"] + (s["high"] - s["low"]) * i / (s["points"] - 1) for i in range(s["points"])]
    return dataclasses.replace(problem, study_settings={**problem.study_settings, "values": values})


def run_grid(model, options):
    """runtime: evaluate the objective at each grid value; the best value is the result."""
    folder = folder_for(options, model.problem.name)
    start = time.perf_counter()
    settings = model.problem.study_settings
    name = settings["param"]
    param = model.params[list(model.problem.params).index(name)]
    values = []
    with torch.no_grad():
        for value in settings["values"]:
            param.fill_(value)
            values.append(float(model()))
    best = min(range(len(values)), key=values.__getitem__)
    result = assemble_result(model, options, start, status="ok", steps=len(values),
                             objective=objective_result(model, values[best], values),
                             values={name: settings["values"][best]}, checks=[])
    if folder is not None:
        write_json(folder / "result.json", result)
        write_history(folder, values, model.problem.objective.sense)
        result.out_dir = str(folder)
    return result


@pytest.fixture
def grid_study(monkeypatch):
    """The "grid" study registered in the dsl, the compiler and the runtime (removed after the test)."""
    register_study("grid", {"static", "ode"}, check_grid)
    monkeypatch.setitem(RUNNERS, "grid", None)
    register_runner("grid", run_grid)
    compiler_kinds.register_study_step("grid", grid_step)
    yield
    del STUDIES["grid"]
    compiler_kinds.register_study_step("grid", lambda problem, checked: problem)


def test_a_study_registered_from_the_tests_runs_end_to_end(grid_study, tmp_path):
    result = impsolve.solve(SPEC, out=tmp_path, seed=3)
    grid = [-2 + 0.5 * i for i in range(9)]
    assert result.values == {"k": 1.0}
    assert result.objective.final == pytest.approx(0.0625)
    assert result.objective.history == pytest.approx([(g - 1.25) ** 2 for g in grid])
    assert result.steps == 9 and result.seed == 3 and result.spec_sha256
    written = json.loads((tmp_path / "result.json").read_text())
    assert written["values"] == {"k": 1.0} and (tmp_path / "history.csv").exists()


def test_the_problem_records_the_study_and_its_settings(grid_study):
    problem = impsolve.load(SPEC).program.problem
    assert (problem.study, problem.time_model) == ("grid", "static")
    assert problem.study_settings["values"][0] == -2 and len(problem.study_settings["values"]) == 9


def test_the_registered_check_gives_a_located_error(grid_study):
    with pytest.raises(SpecError, match="'points' must be a whole number") as err:
        impsolve.load(SPEC.replace("points=9", "points=1"))
    assert err.value.line == 5


def test_a_study_without_a_runner_is_a_clean_error(grid_study, monkeypatch):
    monkeypatch.delitem(RUNNERS, "grid")
    with pytest.raises(RunError, match="no runner is registered for the study 'grid'") as err:
        impsolve.solve(SPEC, write=False)
    assert err.value.exit_code == 2

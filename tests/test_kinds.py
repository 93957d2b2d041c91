"""A toy study registered from the tests: "grid" evaluates the objective on a grid of one param's
values and reports the best, run end to end through impsolve.solve without editing the package."""
from __future__ import annotations

import json
import time

import pytest
import torch

import impsolve
from impsolve.api import Problem
from impsolve.runtime.errors import RunError
from impsolve.runtime.kinds import RUNNERS, register_runner, study_of
from impsolve.runtime.results import write_json
from impsolve.runtime.results_folder import assemble_result, folder_for, objective_result, write_history

SPEC = """
problem bowl
param k = 0
minimize (k - 1.25)^2
"""
GRID = [0.5 * i for i in range(-4, 5)]


def run_grid(model, options):
    """Evaluate the objective at each grid value of the first param; the best value is the result."""
    folder = folder_for(options, model.problem.name)
    start = time.perf_counter()
    name, param = next(iter(model.problem.params)), model.params[0]
    values = []
    with torch.no_grad():
        for value in GRID:
            param.fill_(value)
            values.append(float(model()))
    best = min(range(len(GRID)), key=values.__getitem__)
    result = assemble_result(model, options, start, status="ok", steps=len(GRID),
                             objective=objective_result(model, values[best], values),
                             values={name: GRID[best]}, checks=[])
    if folder is not None:
        write_json(folder / "result.json", result)
        write_history(folder, values, model.problem.objective.sense)
        result.out_dir = str(folder)
    return result


def compile_as(monkeypatch, study: str) -> None:
    """Make every compiled problem a `study` study."""
    compile_problem = Problem.compile

    def compile_as_study(self, *args, **kwargs):
        model = compile_problem(self, *args, **kwargs)
        model.problem.study = study   # by hand until the dsl's `study NAME(...)` statement lands
        return model
    monkeypatch.setattr(Problem, "compile", compile_as_study)


@pytest.fixture
def grid_study(monkeypatch):
    """The "grid" runner registered (and removed again after the test); problems compiled as grid studies."""
    monkeypatch.setitem(RUNNERS, "grid", None)   # restored (removed) after the test
    register_runner("grid", run_grid)
    compile_as(monkeypatch, "grid")


def test_a_study_registered_from_the_tests_runs_end_to_end(grid_study, tmp_path):
    result = impsolve.solve(SPEC, out=tmp_path, seed=3)
    assert result.values == {"k": 1.0}
    assert result.objective.final == pytest.approx(0.0625)
    assert result.objective.history == pytest.approx([(g - 1.25) ** 2 for g in GRID])
    assert result.steps == len(GRID) and result.seed == 3 and result.spec_sha256
    written = json.loads((tmp_path / "result.json").read_text())
    assert written["values"] == {"k": 1.0} and (tmp_path / "history.csv").exists()


def test_the_study_is_read_from_the_problem(grid_study):
    assert study_of(impsolve.load(SPEC).compile(device="cpu").problem) == "grid"
    assert study_of(impsolve.load(SPEC).program.problem) == "train"


def test_a_study_without_a_runner_is_a_clean_error(monkeypatch):
    monkeypatch.delitem(RUNNERS, "grid", raising=False)
    compile_as(monkeypatch, "grid")
    with pytest.raises(RunError, match="no runner is registered for the study 'grid'") as err:
        impsolve.solve(SPEC, write=False)
    assert err.value.exit_code == 2

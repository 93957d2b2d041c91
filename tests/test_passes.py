"""The IR passes (compiler/passes.py) and the kind tables (compiler/kinds.py): every pass returns a
new problem and leaves its input unchanged; the pipeline is the lowering the golden files pin."""
from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import pytest
import sympy as sp

import impsolve
from impsolve.compiler import constraints, ir, kinds, lower, passes

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.imp"))


def _stages(spec: Path) -> list[tuple[str, ir.Problem, ir.Problem]]:
    """(pass name, input, output) of each pass of the pipeline, in order."""
    checked = impsolve.load(spec).checked
    problem = kinds.time_model(checked.time_model).lower(checked)
    problem = replace(problem, time_model=checked.time_model, study=checked.study)
    steps = [("final_values", passes.final_values), ("running_costs", passes.running_costs),
             ("constraint_functions", constraints.constraint_functions),
             ("free_final_time", constraints.free_final_time),
             ("study_step", lambda p: kinds.study_step(checked.study)(p, checked)),
             ("to_minimize", passes.to_minimize)]
    stages = []
    for name, step in steps:
        before = copy.deepcopy(problem)
        after = step(problem)
        stages.append((name, before, problem))
        problem = after
    stages.append(("result", problem, lower(checked)))
    return stages


@pytest.mark.parametrize("spec", SPECS, ids=[s.stem for s in SPECS])
def test_each_pass_leaves_its_input_unchanged_and_the_pipeline_is_lower(spec: Path) -> None:
    stages = _stages(spec)
    for name, before, given in stages[:-1]:
        assert given == before, f"{name} changed its input"
    _, piped, lowered = stages[-1]
    assert piped.objective == lowered.objective and piped.dynamics == lowered.dynamics
    assert piped.states == lowered.states and piped.functions == lowered.functions


def test_maximize_becomes_a_scale_of_minus_one_and_keeps_the_objective_as_written() -> None:
    problem = lower(impsolve.load(ROOT / "specs" / "decay_design.imp").checked)
    assert problem.objective.sense == "maximize" and problem.objective.scale == -1.0
    assert problem.objective.text == "information_gain"
    assert lower(impsolve.load(ROOT / "specs" / "zermelo.imp").checked).objective.scale == 1.0


def test_running_costs_become_states_that_start_at_zero() -> None:
    checked = impsolve.load(ROOT / "specs" / "cartpole_lqr.imp").checked
    raw = kinds.time_model(checked.time_model).lower(checked)
    assert raw.running_costs and not set(raw.running_costs) & set(raw.states)
    done = passes.running_costs(raw)
    assert not done.running_costs and done.states == [*raw.states, *raw.running_costs]
    assert all(done.initial[name] == 0 for name in raw.running_costs)


def test_final_values_take_a_pointwise_objective_at_the_end() -> None:
    checked = impsolve.load(ROOT / "specs" / "zermelo.imp").checked
    raw = kinds.time_model(checked.time_model).lower(checked)
    done = passes.final_values(raw)
    states = {ir.state_symbol(s) for s in raw.user_states}
    assert done.objective.at is None and not done.objective.expr.free_symbols & states
    assert passes.at_final(ir.state_symbol("x") + ir.TIME, ["x"], sp.Integer(3)) == ir.final_symbol("x") + 3


def test_a_study_without_a_step_is_left_unchanged() -> None:
    problem = lower(impsolve.load(ROOT / "specs" / "zermelo.imp").checked)
    assert kinds.study_step("no such study")(problem, None) is problem
    with pytest.raises(LookupError, match="no lowering is registered"):
        kinds.time_model("no such time model")


def test_a_study_registered_from_outside_gets_its_step_run() -> None:
    seen = []

    def step(problem: ir.Problem, checked) -> ir.Problem:
        seen.append(problem.study)
        return replace(problem, title="stepped")

    kinds.register_study_step("toy_grid", step)
    checked = impsolve.load(ROOT / "specs" / "zermelo.imp").checked
    checked.study = "toy_grid"
    problem = lower(checked)
    assert seen == ["toy_grid"] and problem.title == "stepped" and problem.study == "toy_grid"
    assert problem.time_model == "ode" and problem.study_settings == {}

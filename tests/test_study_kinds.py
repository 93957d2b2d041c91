"""Problem kinds in the dsl: the two axes every checked spec records, the studies table
(`impsolve.dsl.register_study`) and the generic `study NAME(key=value, ...)` statement."""
from __future__ import annotations

import pytest

from impsolve.dsl import SpecError, check, parse, register_study
from impsolve.dsl.kinds import STUDIES

STATIC = "param k = 1\nminimize (k - 2)^2\n"                                          # 2 lines
ODE = "state x = 1\nparam k = 1\nder(x) = -k*x\nhorizon 1\nminimize x(T)^2\n"          # 5 lines
ROLLOUT = "state x = 1\nparam k = 1\nnext(x) = x - k*x\nsteps 5\nminimize x(T)^2\n"   # 5 lines


def checked(text: str):
    return check(parse(text, "kinds.imp"))


@pytest.fixture
def grid():
    """A toy study registered from the tests: it evaluates the objective on a grid of one param."""
    seen = []

    def check_grid(spec, statement):
        if spec.study_settings.get("param") not in spec.params:
            raise SpecError("'param' names a param of the spec", statement.call.span, hint="e.g. param=k")
        seen.append(statement.name)

    register_study("toy_grid", {"ode", "static"}, check_grid)
    yield seen
    del STUDIES["toy_grid"]


@pytest.mark.parametrize("text, time_model, study", [
    (STATIC, "static", "train"), (ODE, "ode", "train"), (ROLLOUT, "rollout", "train"),
    (STATIC + "study train()\n", "static", "train"),
])
def test_every_spec_records_its_two_axes(text, time_model, study):
    spec = checked(text)
    assert (spec.time_model, spec.study) == (time_model, study)


def test_a_registered_study_gets_its_settings(grid):
    spec = checked(ODE + "study toy_grid(param=k, n=5, low=-1.5, values=[1, 2, 3], fine=true)\n")
    assert spec.study == "toy_grid" and spec.time_model == "ode"
    assert spec.study_settings == {"param": "k", "n": 5, "low": -1.5, "values": [1, 2, 3], "fine": True}
    assert spec.study_statement.name == "toy_grid" and spec.study_statement.span.line == 6
    assert grid == ["toy_grid"]


def test_a_registered_study_rejects_a_time_model_it_does_not_accept(grid):
    with pytest.raises(SpecError) as err:
        checked(ROLLOUT + "study toy_grid(param=k)\n")
    assert (err.value.line, err.value.column) == (6, 1)
    assert "'study toy_grid' is not supported in a discrete-time spec" in err.value.message
    assert "continuous-time (der, horizon) or static (no states)" in err.value.message
    assert "because of 'next(x)' on line 3" in err.value.hint


def test_the_study_check_errors_are_located_in_the_spec(grid):
    with pytest.raises(SpecError) as err:
        checked(STATIC + "study toy_grid(param=q)\n")
    assert (err.value.line, err.value.column) == (3, 7)
    assert err.value.render().startswith("kinds.imp:3:7: error: 'param' names a param of the spec")


def test_an_unknown_study_lists_the_registered_ones(grid):
    with pytest.raises(SpecError) as err:
        checked(STATIC + "study sweep()\n")
    assert (err.value.line, err.value.column) == (3, 7)
    assert "registered studies:" in err.value.hint and "toy_grid" in err.value.hint
    assert "design" not in err.value.hint   # written with statements of its own


def test_study_settings_are_name_value_pairs(grid):
    with pytest.raises(SpecError, match="option 'n' is given twice"):
        checked(STATIC + "study toy_grid(param=k, n=1, n=2)\n")
    with pytest.raises(SpecError, match="a settings value must be"):
        checked(STATIC + "study toy_grid(param=k, n=1 + 2)\n")


@pytest.mark.parametrize("args, problem", [
    (("bad name", {"ode"}), "a study's name is a name"),
    (("toy_other", {"continuous"}), "time models are some of"),
    (("toy_other", set()), "time models are some of"),
])
def test_register_study_validates_its_arguments(args, problem):
    with pytest.raises(ValueError, match=problem):
        register_study(*args)
    assert "toy_other" not in STUDIES


def test_the_built_in_studies_and_their_time_models():
    assert STUDIES["train"].time_models == {"ode", "rollout", "static"}
    assert STUDIES["design"].time_models == {"ode", "static"}
    assert STUDIES["identify"].time_models == {"rollout"}


def test_a_discrete_design_study_exits_2_with_a_located_message(tmp_path, capsys):
    from impsolve.cli import main
    spec = tmp_path / "decay.imp"
    spec.write_text("param theta ~ normal(2, 1)\ntruth theta = 1.7\nstate x = 1\nnext(x) = x - 0.1*theta*x\n"
                    "steps 10\ndesign tobs in [0, 5]\nobserve x(tobs) + normal(0, 0.1)\nmaximize information_gain\n")
    assert main(["check", str(spec)]) == 2
    assert f"{spec}:1:15: error: 'param ~ normal(...)' is not supported in a discrete-time spec" \
        in capsys.readouterr().err

"""Issue 12, runtime side: arguments, settings, checks and result.json never go wrong silently."""
import json
import math
import os
import re

import pytest
import torch

import impsolve
from impsolve.api import ArgumentError
from impsolve.cli import main
from impsolve.dsl import SpecError
from impsolve.runtime.ode import spectral_radius, stiffness_ratio
from impsolve.runtime.results import finite_payload

from conftest import SPECS, spec_path

ZERMELO, SYSID = str(spec_path("zermelo")), str(spec_path("sysid"))

DECAY = """
problem decay "x' = -k x"
param k = 1
state x = 1
der(x) = -k*x
horizon 1
minimize (k - 1)^2
train sgd(lr=0.1, steps=2)
"""


# ---- item 4: --set goes through the spec's rules; a step larger than the horizon is said
def test_set_fixed_step_method_without_step_size_is_refused_like_the_spec(tmp_path, capsys):
    assert main([ZERMELO, "--out", str(tmp_path / "o"), "--quiet", "--set", "solve.method=rk4"]) == 2
    err = capsys.readouterr().err
    assert "--set: error: the fixed-step method 'rk4' needs step_size" in err and "step_size=0.01" in err
    assert not (tmp_path / "o" / "result.json").exists()


def test_step_size_beyond_the_horizon_is_a_recorded_warning(tmp_path, capsys, write_spec):
    spec = write_spec(DECAY + "solve ode(method=euler, step_size=10)\n")
    assert main([spec, "--out", str(tmp_path / "o"), "--quiet"]) == 0
    warning = "solve ode: step_size=10 is larger than the horizon 1: one step of 1 is taken"
    assert warning in capsys.readouterr().out
    assert any(warning in w for w in json.loads((tmp_path / "o" / "result.json").read_text())["warnings"])


# ---- item 10: optimiser settings torch would refuse are located errors
@pytest.mark.parametrize("train, message", [
    ("adam(betas=[1, 1])", "invalid value for 'betas': Input should be less than 1"),
    ("adam(betas=[-0.1, 0.9])", "invalid value for 'betas': Input should be greater than or equal to 0"),
    ("sgd(momentum=-1)", "invalid value for 'momentum': Input should be greater than or equal to 0"),
])
def test_optimiser_settings_are_checked(train, message):
    with pytest.raises(SpecError) as caught:
        impsolve.load(DECAY.replace("train sgd(lr=0.1, steps=2)", f"train {train}"))
    assert message in caught.value.message and caught.value.line == 8


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_set_of_a_non_finite_setting_is_refused(value):
    with pytest.raises(SpecError) as caught:
        impsolve.load(DECAY, {"train.lr": value})
    assert caught.value.render().startswith("--set: error: invalid value for train.lr: Input should be")


# ---- item 12, 14: CLI numbers are checked by the flag the user typed
@pytest.mark.parametrize("flag, value, message", [
    ("--seed", "100000000000000000000000", "argument --seed: 100000000000000000000000 is out of range"),
    ("--seed", "-1", "argument --seed: -1 is out of range"),
    ("--steps", "-5", "argument --steps: -5 is out of range: use an integer from 1 up"),
    ("--checkpoint-every", "0", "argument --checkpoint-every: 0 is out of range"),
    ("--realizations", "0", "argument --realizations: 0 is out of range"),
    ("--out", "", "argument --out: the results folder must not be empty"),
])
def test_cli_flags_are_usage_errors(flag, value, message, tmp_path, capsys):
    assert main([ZERMELO, flag, value, "--quiet"]) == 2
    assert message in capsys.readouterr().err


def test_set_clip_on_an_identify_spec_is_refused_before_training(tmp_path, capsys):
    assert main([SYSID, "--out", str(tmp_path / "o"), "--quiet", "--set", "train.clip=1"]) == 2
    assert "--set: error: 'identify' does not clip gradients" in capsys.readouterr().err


# ---- item 13: the Python API validates its arguments
@pytest.mark.parametrize("call, message", [
    (lambda: impsolve.solve(ZERMELO, checkpoint_every=0),
     "solve(): checkpoint_every: Input should be greater than or equal to 1 (got 0)"),
    (lambda: impsolve.solve(ZERMELO, realizations=2.5), "solve(): realizations: Input should be a valid integer"),
    (lambda: impsolve.solve(ZERMELO, realizations=-2), "realizations: Input should be greater than or equal to 1"),
    (lambda: impsolve.solve(ZERMELO, realizations=0), "realizations: Input should be greater than or equal to 1"),
    (lambda: impsolve.solve(ZERMELO, overrides=["train.lr=1"]), "overrides: Input should be a valid dictionary"),
    (lambda: impsolve.solve(ZERMELO, seed="abc"), "solve(): seed: Input should be a valid integer (got 'abc')"),
    (lambda: impsolve.solve(ZERMELO, seed=None), "solve(): seed: Input should be a valid integer (got None)"),
    (lambda: impsolve.load(None), "load(): path_or_text: Input should be a valid string"),
    (lambda: impsolve.load(42), "load(): path_or_text: Input should be a valid string"),
    (lambda: impsolve.load(b"problem p"), "load(): path_or_text: Input should be a valid string"),
    (lambda: impsolve.load(ZERMELO).compile(seed=-1), "compile(): seed: Input should be greater than or equal to 0"),
])
def test_api_arguments_are_validated(call, message):
    with pytest.raises(ArgumentError) as caught:
        call()
    assert message in str(caught.value)


def test_api_load_of_a_folder_is_a_spec_error():
    with pytest.raises(SpecError) as caught:
        impsolve.load(str(SPECS))
    assert "is a folder, not a spec" in caught.value.message


def test_api_overrides_follow_the_spec_rules():
    with pytest.raises(SpecError) as caught:
        impsolve.load(ZERMELO, {"solve.method": "euler"})
    assert "needs step_size" in caught.value.message


# ---- item 14: expects that cannot be evaluated say why; result.json is strict JSON
RANGES = DECAY.replace("minimize", "expect k*t == x over x in [5, 6] tol 0.1\nexpect x at end == 0 tol 1%\nminimize")


def test_unevaluable_expects_are_failed_with_null_and_a_reason(tmp_path, capsys, write_spec):
    out = tmp_path / "o"
    assert main([write_spec(RANGES), "--out", str(out), "--quiet"]) == 1
    checks = json.loads((out / "result.json").read_text())["checks"]
    assert checks[0]["value"] is None and checks[0]["error"] is None and not checks[0]["passed"]
    assert checks[0]["reason"].startswith("the trajectory never enters x in [5, 6]")
    assert checks[1]["value"] is None and "relative tolerance against a reference of 0" in checks[1]["reason"]
    printed = capsys.readouterr().out
    assert "FAIL  expect k*t == x over x in [5, 6] tol 0.1: the trajectory never enters" in printed
    assert "nan" not in printed and "e+299" not in printed


def test_result_json_is_strict_and_says_why_a_number_is_missing():
    payload, notes = finite_payload({"objective": {"final": math.nan, "history": [1.0, math.inf]}, "seed": 0})
    assert payload == {"objective": {"final": None, "history": [1.0, None]}, "seed": 0}
    assert notes == ["objective.final was nan and is written as null", "objective.history[1] was inf and is "
                     "written as null"]
    json.dumps(payload, allow_nan=False)


def test_results_files_respect_the_umask(tmp_path, write_spec):
    old = os.umask(0o022)
    try:
        assert main([write_spec(DECAY), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    finally:
        os.umask(old)
    for name in ("result.json", "history.csv", "model.pt"):
        assert (tmp_path / "o" / name).stat().st_mode & 0o777 == 0o644, name


# ---- small: --resume refuses another seed or dtype
@pytest.mark.parametrize("flag, value, message", [
    ("--seed", "1", "was written with --seed 0, not 1"), ("--dtype", "float32", "was written with --dtype float64, not float32")])
def test_resume_refuses_another_seed_or_dtype(flag, value, message, tmp_path, capsys, write_spec):
    spec, out = write_spec(DECAY), str(tmp_path / "o")
    assert main([spec, "--out", out, "--quiet"]) == 0
    assert main([spec, "--out", out, "--quiet", "--resume", flag, value]) == 2
    assert message in capsys.readouterr().err


# ---- item 11: an objective of nothing trainable is evaluated, with a note
def test_objective_of_nothing_trainable_is_evaluated_with_a_note(tmp_path, capsys, write_spec):
    spec = write_spec(DECAY.replace("minimize (k - 1)^2", "minimize x(T)^2").replace("der(x) = -k*x", "der(x) = -x")
                 + "train lbfgs(lr=1, steps=2)\n")
    assert main([spec, "--out", str(tmp_path / "o"), "--quiet"]) == 0
    data = json.loads((tmp_path / "o" / "result.json").read_text())
    assert data["steps"] == 0 and data["objective"]["final"] == pytest.approx(math.exp(-2))
    assert data["warnings"][0].startswith("nothing to train: the objective does not depend on any param or net")
    assert "warning: nothing to train" in capsys.readouterr().out


# ---- item 14: a tolerance below float32 precision is said up front and in the failure
def test_float32_with_a_tolerance_below_its_precision_says_so(tmp_path, capsys, write_spec):
    spec = write_spec("problem fp\nparam a = 0.5\nsolve y: y = a*cos(y) using newton(tol=1e-12)\n"
                           "minimize (y - 0.3)^2\ntrain adam(lr=0.01, steps=2)\n")
    assert main([spec, "--out", str(tmp_path / "o"), "--dtype", "float32"]) == 0   # converges: warned only
    err = capsys.readouterr().err
    assert "warning: the implicit equation 'y' (line 3): tol 1e-12 is below float32 precision (machine epsilon " \
           "1.2e-07)" in err
    assert "is below float32 precision" in json.loads((tmp_path / "o" / "result.json").read_text())["warnings"][0]


def test_deq_in_float32_names_the_precision_when_it_does_not_converge(tmp_path, capsys, write_spec):
    text = spec_path("deq").read_text().replace("z = tanh(W @ z + x)", "z = tanh(W @ z + x) using newton(tol=1e-12)")
    assert "tol=1e-12" in text   # a tol written in the spec is kept in float32 (only the default adapts)
    code = main([write_spec(text), "--out", str(tmp_path / "o"), "--dtype", "float32", "--steps", "1", "--quiet"])
    assert code == 3
    assert "(tol 1e-12); tol 1e-12 is below float32 precision (machine epsilon 1.2e-07)\n  hint: use --dtype " \
           "float64" in capsys.readouterr().err


# ---- item 15: a collapsing step size stops early, naming stiffness
ROBERTSON = """
problem robertson "Robertson's stiff kinetics"
param k1 = 0.04
state a = 1, b = 0, c = 0
der(a) = -k1*a + 1e4*b*c
der(b) = k1*a - 1e4*b*c - 3e7*b^2
der(c) = 3e7*b^2
horizon 40
minimize (k1 - 0.04)^2 + c(T)
train adam(lr=0.001, steps=2)
solve ode(max_steps=2000)
"""


def test_stiff_dynamics_stop_early_with_a_hint(tmp_path, capsys, write_spec):
    assert main([write_spec(ROBERTSON), "--out", str(tmp_path / "o"), "--quiet"]) == 3
    err = capsys.readouterr().err
    # the first look after 1000 evaluations: the plain-torch tier counts a step's evaluations at its end
    found = re.search(r"error: the ODE solve is not progressing: after (\d+) evaluations of the dynamics it reached t = ",
                      err)
    assert found and 1000 <= int(found.group(1)) < 1010, err
    assert "more than max_steps=2000 (dopri5" in err and "the dynamics are probably stiff" in err
    assert "loosen rtol/atol, use a fixed-step method" in err


SLOW_LOW_ORDER = """
problem osc "a harmonic oscillator at a tolerance too tight for a second-order method"
param k = 1
state x = 1, v = 0
der(x) = v
der(v) = -k*x
horizon 20
minimize x(T)^2
train adam(lr=0.001, steps=2)
solve ode(method=adaptive_heun, rtol=1e-9, atol=1e-11, max_steps=2000)
"""


@pytest.mark.parametrize("backend", ["torch", "torchdiffeq"])
def test_a_step_held_by_accuracy_is_not_called_stiff(tmp_path, capsys, write_spec, backend):
    """The pace projects past max_steps, but the step is far inside the stability region: the hint is
    a higher-order method, not stiffness (it used to say 'the dynamics are probably stiff')."""
    assert main([write_spec(SLOW_LOW_ORDER), "--out", str(tmp_path / "o"), "--quiet", "--backend", backend]) == 3
    err = capsys.readouterr().err
    assert "the ODE solve is not progressing" in err and "stiff" not in err
    assert "held by accuracy, not stability" in err and "use a higher-order method" in err


def test_stiff_dynamics_with_default_settings_stop_within_a_few_thousand_evaluations(tmp_path, capsys, write_spec):
    spec = ROBERTSON.replace("solve ode(max_steps=2000)\n", "")
    assert main([write_spec(spec), "--out", str(tmp_path / "o"), "--quiet"]) == 3
    err = capsys.readouterr().err
    assert "error: the dynamics are stiff: after " in err and "at the edge of dopri5's stability region" in err
    evaluations = int(err.split("the dynamics are stiff: after ")[1].split()[0])
    assert evaluations <= 5000   # without the check the first solve alone takes ~250,000 (about a minute)
    assert "looser tolerances will not help" in err and "solve ode(max_steps=...) of at least" in err


def test_a_long_solve_that_is_not_stiff_is_not_stopped(tmp_path, write_spec):
    """Harmonic oscillator over 200 time units: ~1,000 accuracy-limited steps, more than a quarter of
    max_steps=3000, yet h*|lambda| stays far from the stability boundary, so it runs to the end."""
    spec = """problem oscillator
param w = 1
state x = 1, v = 0
der(x) = v
der(v) = -w^2*x
horizon 200
minimize (w - 1)^2 + 0*x(T)
train adam(lr=0.001, steps=1)
solve ode(max_steps=3000)
expect x(T) == cos(200) tol 1e-4
"""
    assert main([write_spec(spec), "--out", str(tmp_path / "o"), "--quiet"]) == 0


def test_spectral_radius_of_a_linear_system():
    A = torch.tensor([[-1.0, 0.0], [0.0, -1000.0]], dtype=torch.float64)
    rho = spectral_radius(lambda t, s: s @ A.T, torch.tensor(0.0), torch.ones(3, 2, dtype=torch.float64))
    assert rho == pytest.approx(1000.0, rel=1e-3)


def test_a_blow_up_is_not_called_stiff():
    """x' = x^2 near its blow-up: h*|lambda| is large, but the fast mode is the motion itself
    (|lambda| * |x| / |x'| = 2), so the stiffness ratio stays far below the threshold."""
    x = torch.tensor([1e6], dtype=torch.float64)
    function = lambda t, s: s ** 2
    rho = spectral_radius(function, torch.tensor(0.0), x)
    assert stiffness_ratio(function, torch.tensor(0.0), x, rho) == pytest.approx(2.0, rel=1e-3)


def test_python_warnings_of_a_run_become_result_warnings_not_raw_stderr(write_spec, tmp_path, capsys) -> None:
    """Issue 12 (small): a warning raised while training (here the SVD adjoint's, at coincident
    singular values) is written once into result.json's warnings and printed as one clean line,
    not as a raw Python warning with a source path."""
    spec = write_spec("param X[3, 2] = [[1, 0], [0, 1], [0, 0]]\nmaximize smin(X)\ntrain adam(lr=0.01, steps=2)\n")
    assert main([spec, "--out", str(tmp_path / "out"), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "RuntimeWarning" not in captured.err and "library.py" not in captured.err + captured.out
    assert "warning: singular values coincide" in captured.out
    written = json.loads((tmp_path / "out" / "result.json").read_text())["warnings"]
    assert [w for w in written if w.startswith("singular values coincide")] and len(set(written)) == len(written)

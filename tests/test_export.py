"""`impsolve export`: the trained control law as TorchScript / ONNX, loaded without impsolve."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import impsolve
from impsolve.cli import main
from impsolve.export import control_law, export

from conftest import spec_path

EXPORTED = ["zermelo", "cartpole"]


@pytest.fixture(scope="module", params=EXPORTED)
def trained(request, tmp_path_factory) -> tuple[Path, Path]:
    """A results folder of a short training of a shipped spec, and the spec."""
    spec = spec_path(request.param)
    out = tmp_path_factory.mktemp(request.param)
    # a small learning rate keeps the L-BFGS phase tame: at lr 1 two steps from an untrained cart-pole
    # policy can drive the ODE stiff (seconds on the native tier, minutes on the plain-torch tier)
    impsolve.solve(spec, steps=2, seed=3, out=out, overrides={"train.lr": 0.001})
    return out, spec


def _model_controls(results: Path, spec: Path, t: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """The controls the trained model computes (rebuilt through the public API, not the export)."""
    result = json.loads((results / "result.json").read_text())
    model = impsolve.load(spec).compile(device="cpu", dtype="float64", seed=result["seed"])
    model.load_state_dict(torch.load(results / "model.pt", weights_only=True))
    full = torch.cat([states, states.new_zeros(states.shape[0], len(model.problem.states) - states.shape[1])], -1)
    with torch.no_grad():
        values = model.controls(t.reshape(1), full.unsqueeze(0))
    return torch.stack([v[0] for v in values.values()], -1)


def test_torchscript_round_trip_loads_without_impsolve(trained, tmp_path: Path) -> None:
    results, spec = trained
    path = export(results, "torchscript", spec, tmp_path / "law.pt")
    states = torch.randn(50, len(json.loads((tmp_path / "law.pt.json").read_text())["inputs"]["state"]),
                         dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = torch.tensor(0.3, dtype=torch.float64)
    expected = _model_controls(results, spec, t, states)
    torch.save({"t": t, "states": states}, tmp_path / "inputs.pt")
    script = ("import sys, torch; law = torch.jit.load(sys.argv[1]); x = torch.load(sys.argv[2]); "
              "assert 'impsolve' not in sys.modules; torch.save(law(x['t'], x['states']), sys.argv[3])")
    subprocess.run([sys.executable, "-c", script, str(path), str(tmp_path / "inputs.pt"), str(tmp_path / "out.pt")],
                   check=True, cwd=tmp_path)
    got = torch.load(tmp_path / "out.pt")
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, rtol=0, atol=1e-10)


def test_the_results_folder_holds_its_spec_so_export_needs_no_spec_option(trained, capsys) -> None:
    results, spec = trained
    assert (results / "spec.imp").read_text() == spec.read_text()
    assert main(["export", str(results), "--format", "torchscript"]) == 0, capsys.readouterr().err
    assert (results / "controller.pt").exists() and (results / "controller.pt.json").exists()


def test_onnx_round_trip_in_float32(trained, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    results, spec = trained
    path = export(results, "onnx", spec, tmp_path / "law.onnx")
    law, states_names, _, _ = control_law(results, spec)
    states = torch.randn(20, len(states_names), generator=torch.Generator().manual_seed(1)).double()  # float32-exact
    t = torch.tensor(0.3, dtype=torch.float64)
    expected = _model_controls(results, spec, t, states)
    session = ort.InferenceSession(str(path))
    assert [i.name for i in session.get_inputs()] == ["t", "state"]   # also where the law does not read t
    got = session.run(None, {"t": t.float().numpy(), "state": states.float().numpy()})[0]
    error = (torch.from_numpy(got).double() - expected).abs().max()
    # float32 rounds each layer to ~1e-7 relative; a law with gains ~100 cancels to small controls, so the
    # error is measured against the size of the controls, not entry by entry
    assert error <= 1e-5 * expected.abs().max(), f"max |onnx - torch| = {error:.3g}"


def test_export_errors_are_clear(tmp_path: Path, capsys) -> None:
    assert main(["export", str(tmp_path)]) == 2
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "result.json").write_text(json.dumps({"spec_sha256": "0" * 64, "dtype": "float64", "seed": 0}))
    assert main(["export", str(tmp_path)]) == 2
    assert "holds no copy of its spec" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--spec", str(spec_path("zermelo"))]) == 2
    assert "is not the spec" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--format", "pickle"]) == 2


@pytest.fixture(scope="module")
def identified(tmp_path_factory) -> Path:
    """A results folder of a short identification study (sysid: 2 realisations, 2 planner steps per epoch)."""
    out = tmp_path_factory.mktemp("sysid")
    impsolve.solve(spec_path("sysid"), steps=2, realizations=2, seed=3, out=out)
    return out


@pytest.mark.parametrize("realization", [0, 1])
def test_identification_planner_exports_the_controls_it_played(identified: Path, tmp_path: Path,
                                                               realization: int) -> None:
    """The exported law of realisation r, fed the states of the planner's own last-epoch rollout,
    gives the controls that rollout played (the adaptive copy r; t = the step index)."""
    spec = spec_path("sysid")
    result = json.loads((identified / "result.json").read_text())
    steps = int(result["values"]["T"])
    model = impsolve.load(spec).compile(device="cpu", seed=result["seed"],
                                        realizations=2 * result["identify"]["realizations"])
    model.set_steps(steps)
    model.load_state_dict(torch.load(identified / "model.pt", weights_only=True))
    with torch.no_grad():
        played = model.rollout(model.initial_state(), model.noise, model.estimate)
    columns = [model.problem.states.index(c) for c in model.discrete.control_columns]
    law = torch.jit.load(str(export(identified, "torchscript", spec, tmp_path / "law.pt", realization)))
    for t in (0, 7, steps - 1):
        expected = played.inputs[t, realization][..., columns]
        got = law(torch.tensor(float(t), dtype=torch.float64), played.states[t, realization])
        assert torch.allclose(got, expected, rtol=0, atol=1e-10)
    assert json.loads((tmp_path / "law.pt.json").read_text())["realization"] == realization


def test_identification_export_names_a_realisation_it_has(identified: Path, capsys) -> None:
    assert main(["export", str(identified), "--spec", str(spec_path("sysid")), "--realization", "2"]) == 2
    assert "--realization 2 is not one of the study's realisations 0..1" in capsys.readouterr().err


ROLLOUT = """
const A[3, 3] = [[0.9, 0.5, 0], [0, 0.9, 0.5], [0, 0, 0.9]]
noise w[3] ~ normal(0, 0.1)
state x[3] = 0
net policy(x, t): mlp(hidden=[8], act=tanh, out=3)
control u[3] = normalize(policy(x, t/T))
next(x) = A @ x + u + w
steps 12
maximize smin(total(outer(x, x)))
train adam(lr=0.01, steps=2)
"""


def test_rollout_law_gives_the_controls_of_its_rollout(write_spec, tmp_path: Path) -> None:
    spec = Path(write_spec(ROLLOUT))
    results = tmp_path / "results"
    impsolve.solve(spec, seed=1, out=results)
    model = impsolve.load(spec).compile(device="cpu", seed=1)
    model.load_state_dict(torch.load(results / "model.pt", weights_only=True))
    with torch.no_grad():
        played = model.rollout(model.initial_state(), model.noise, model.estimate)
    columns = [model.problem.states.index(c) for c in model.discrete.control_columns]
    law = torch.jit.load(str(export(results, "torchscript", spec, tmp_path / "law.pt")))
    for t in (0, 5, 11):
        got = law(torch.tensor(float(t), dtype=torch.float64), played.states[t])
        assert torch.allclose(got, played.inputs[t][..., columns], rtol=0, atol=1e-10)
        assert got.grad_fn is None and not got.requires_grad   # a deployed law records no graph


def test_open_loop_sequences_have_no_control_law(write_spec, tmp_path: Path, capsys) -> None:
    spec = write_spec(ROLLOUT.replace("control u[3] = normalize(policy(x, t/T))", "control u[3] over steps")
                      .replace("net policy(x, t): mlp(hidden=[8], act=tanh, out=3)\n", ""))
    impsolve.solve(spec, seed=1, out=tmp_path / "results")
    assert main(["export", str(tmp_path / "results"), "--spec", spec]) == 2
    assert "u: an open-loop control sequence is not a function of the state" in capsys.readouterr().err

"""Numerical faults, solver failures, checkpoints and resume, reproducibility (issue 7)."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import impsolve
from impsolve.cli import main
from impsolve.runtime.diagnose import NonFiniteError
from impsolve.runtime.errors import RunError

def _record(figure: str, value: str) -> None:
    """Add a row to tools/reliability_report.py's table when IMPSOLVE_RELIABILITY_DIR is set."""
    folder = os.environ.get("IMPSOLVE_RELIABILITY_DIR")
    if not folder:
        return
    path = Path(folder) / "runtime.json"
    data = json.loads(path.read_text()) if path.exists() else {"rows": {}}
    data["rows"][figure] = value
    path.write_text(json.dumps(data))


TRAIN = """
problem steer "Steer a damped scalar"
param k = 0.2, c = 0.5
state x = 0, v = 0
der(x) = v
der(v) = k - c*v
horizon 2
minimize (x(T) - 1)^2 + 0.01*integral(v^2)
train adam(lr=0.05, steps={steps})
"""


def test_nan_from_the_start_stops_with_a_located_message(tmp_path):
    spec = "param a = 1\nstate x = 1\nder(x) = -a*x\nhorizon 1\nminimize log(x(T) - 2)\ntrain adam(steps=20)\n"
    with pytest.raises(NonFiniteError, match=r"the objective is nan at step 1, 5 times in a row"):
        impsolve.solve(spec, out=tmp_path)
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert float(state["params.0"]) == 1.0          # the last good (initial) parameters were kept


def test_nan_mid_training_is_skipped_and_training_recovers():
    # SGD overshoots into a < 0, where sqrt is NaN; the step is undone and the rate halved
    spec = "param a = 1\nminimize (a - 0.05)^2 + sqrt(a)\ntrain sgd(lr=0.9, steps=40)\n"
    result = impsolve.solve(spec, write=False)
    assert torch.isfinite(torch.tensor(result.objective.history)).all()
    assert result.objective.final < 0.3
    _record("NaN handling", "NaN/Inf steps undone and retried at half the rate; stops after 5 with the der() term")


def test_nan_names_the_dynamics_term():
    spec = ("param a = 1\nstate x = 1, y = 0\nder(x) = -a*x\nder(y) = log(x - 2)\nhorizon 1\n"
            "minimize y(T)\ntrain adam(steps=10)\n")
    with pytest.raises(RunError, match=r"der\(y\) is nan at t = 0 \(x = 1, y = 0\)"):
        impsolve.solve(spec, write=False)


def test_blow_up_reports_time_and_state():
    spec = ("state x = 1\nder(x) = x^2\nhorizon 2\nminimize x(T)\n"
            "solve ode(max_steps=2000)\ntrain adam(steps=1)\n")
    with pytest.raises(RunError, match=r"at t = (0\.99\d*|1) \(state \d\.\d+e\+\d+\)") as err:
        impsolve.solve(spec, write=False)
    assert "blow up" in str(err.value)


BLOW_UP = """param k = 0.5
state x = 1
der(x) = k*x^2
horizon 1
maximize x(T)
solve ode(max_steps=2000)
train adam(lr=0.3, steps=12)
"""


@pytest.mark.parametrize("backend", ["torch", "torchdiffeq"])
def test_a_step_whose_solve_fails_is_skipped_and_the_last_good_params_are_kept(backend, capsys):
    """x' = k x^2 blows up at t = 1/k: training pushes k past 1, those steps' solves fail, and each is
    skipped with the learning rate halved (as a non-finite step is) instead of ending the run."""
    result = impsolve.solve(BLOW_UP, write=False, quiet=False, overrides={"solve.backend": backend})
    err = capsys.readouterr().err
    assert "the ODE solve failed (the ODE solver" in err and "skipped, learning rate halved" in err
    k = 1 - 1 / result.objective.final             # x(T) = 1 / (1 - k)
    assert 0.5 < k < 1 and result.objective.final == pytest.approx(max(result.objective.history), rel=0.05)
    assert any("the last good parameters are reported" in w for w in result.warnings) or \
        result.objective.final == pytest.approx(result.objective.history[-1], rel=1e-6)


@pytest.mark.parametrize("backend", ["auto", "torch"])   # the torch tier counts a step's evaluations at once
def test_stiff_van_der_pol_is_a_clear_error(backend):
    spec = ("const mu = 1000\nstate x = 2, y = 0\nder(x) = y\nder(y) = mu*(1 - x^2)*y - x\nhorizon 3000\n"
            "minimize x(T)^2\nsolve ode(max_steps=3000)\ntrain adam(steps=1)\n")
    with pytest.raises(RunError, match="stiff") as caught:
        impsolve.solve(spec, write=False, overrides={"solve.backend": backend})
    assert 1000 <= int(str(caught.value).split("after ")[1].split()[0]) < 1010   # stopped at the first look


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_solve_timeout(backend):
    """A long solve that is neither stiff nor over max_steps (an oscillator over 1e5 time units)
    is stopped by its timeout."""
    spec = ("state x = 1, y = 0\nder(x) = y\nder(y) = -x\nhorizon 100000\n"
            "minimize x(T)^2\nsolve ode(timeout=0.2, max_steps=100000000)\ntrain adam(steps=1)\n")
    with pytest.raises(RunError, match=r"took longer than 0.2 s"):
        impsolve.solve(spec, write=False, overrides={"solve.backend": backend})


def test_cli_exit_codes_for_run_errors(tmp_path, capsys):
    path = tmp_path / "blow.imp"
    path.write_text("state x = 1\nder(x) = x^2\nhorizon 2\nminimize x(T)\nsolve ode(max_steps=500)\n")
    assert main([str(path), "--quiet", "--out", str(tmp_path / "o")]) == 3
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err and "hint:" in err


def test_results_folder_that_cannot_be_made_is_a_clean_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    path = tmp_path / "s.imp"
    path.write_text(TRAIN.format(steps=2))
    assert main([str(path), "--quiet", "--out", str(blocker / "out")]) == 2
    assert "cannot create the results folder" in capsys.readouterr().err


def test_resume_continues_the_history_bit_identically(tmp_path, monkeypatch):
    spec = TRAIN.format(steps=30)
    reference = impsolve.solve(spec, write=False).objective.history

    from impsolve.runtime import train_study as study
    calls = {"n": 0}
    original = study.write_checkpoint

    def interrupted(folder, state):
        original(folder, state)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt   # dies right after the second checkpoint (step 10)

    monkeypatch.setattr(study, "write_checkpoint", interrupted)
    with pytest.raises(KeyboardInterrupt):
        impsolve.solve(spec, out=tmp_path, checkpoint_every=5)
    monkeypatch.setattr(study, "write_checkpoint", original)
    resumed = impsolve.solve(spec, out=tmp_path, resume=True)
    assert resumed.objective.history == reference


def test_resume_refuses_another_spec(tmp_path):
    impsolve.solve(TRAIN.format(steps=3), out=tmp_path)
    with pytest.raises(RunError, match="different spec"):
        impsolve.solve(TRAIN.format(steps=4), out=tmp_path, resume=True)


def _strip_timings(data: dict) -> dict:
    return {k: v for k, v in data.items() if k not in ("wall_time_s", "solve_time_s")}


def test_same_spec_and_seed_give_identical_results(tmp_path):
    spec_path = tmp_path / "steer.imp"
    spec_path.write_text(TRAIN.format(steps=10))
    texts = []
    for name in ("a", "b"):
        assert main([str(spec_path), "--quiet", "--out", str(tmp_path / name), "--seed", "7"]) == 0
        texts.append(json.loads((tmp_path / name / "result.json").read_text()))
    assert _strip_timings(texts[0]) == _strip_timings(texts[1])
    assert texts[0]["spec_sha256"] and texts[0]["versions"]["torch"] == torch.__version__
    assert texts[0]["seed"] == 7 and texts[0]["device"] == "cpu"
    _record("reproducible hashes", "identical result.json (timings aside) for the same spec and seed")


def _kill_campaign(tmp_path: Path, kills: int) -> int:
    """Run the CLI, SIGKILL it at random moments, check every file, resume; count clean recoveries."""
    spec_path = tmp_path / "steer.imp"
    spec_path.write_text(TRAIN.format(steps=60))
    out = tmp_path / "out"
    reference = impsolve.solve(spec_path, write=False).objective.history
    env = dict(os.environ, PYTHONHASHSEED="0")
    rng = random.Random(0)
    clean = 0
    for _ in range(kills):
        command = [sys.executable, "-m", "impsolve.cli", str(spec_path), "--quiet", "--out", str(out),
                   "--checkpoint-every", "1"]
        if (out / "checkpoint.pt").exists():
            command.append("--resume")
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.5, 6.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
        if (out / "checkpoint.pt").exists():
            state = torch.load(out / "checkpoint.pt", weights_only=True)   # complete, or this raises
            assert state["history"]["objective"] == reference[: len(state["history"]["objective"])]
        if (out / "result.json").exists():
            json.loads((out / "result.json").read_text())
        # a kill during an atomic write leaves its temporary `.NAME.XXXX.tmp` (the next run removes it)
        assert not [p for p in out.glob("*") if p.suffix not in (".pt", ".json", ".csv", ".png", ".imp", ".tmp")]
        clean += 1
    done = subprocess.run([sys.executable, "-m", "impsolve.cli", str(spec_path), "--quiet", "--out", str(out)]
                          + (["--resume"] if (out / "checkpoint.pt").exists() else []), env=env)
    assert done.returncode == 0
    assert json.loads((out / "result.json").read_text())["objective"]["history"] == reference
    assert not list(out.glob("*.tmp"))
    return clean


def test_a_new_run_removes_the_temporaries_a_killed_one_left(tmp_path):
    from impsolve.runtime.results_folder import results_folder
    (tmp_path / ".checkpoint.pt.k3x9.tmp").write_bytes(b"half")
    (tmp_path / "checkpoint.pt").write_bytes(b"whole")
    assert results_folder(tmp_path, "p") == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_killed_runs_resume_cleanly(tmp_path):
    assert _kill_campaign(tmp_path, kills=3) == 3
    _record("kill/resume campaign", "3/3 SIGKILLs clean, resumed bit-identically (50/50 with -m slow)")


@pytest.mark.slow
def test_fifty_kills_resume_cleanly(tmp_path):
    assert _kill_campaign(tmp_path, kills=50) == 50
    _record("kill/resume campaign", "50/50 SIGKILLs clean, resumed bit-identically")

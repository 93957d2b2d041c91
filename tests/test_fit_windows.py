"""Fits on random time windows (`train adam(..., window=K, windows=M)`, issue 13), `rmse` in a
fit's expects, and the spiral neural ODE (slow). The located errors of windows are golden files
(tests/golden_errors/106-116)."""
from __future__ import annotations

import csv
import math
import random
from pathlib import Path

import pytest

import impsolve
from impsolve.dsl import SpecError

ROOT = Path(__file__).resolve().parents[1]
TRUTH_K = 0.7


def decay_spec(folder: Path, train: str, expect: str = "") -> Path:
    """x' = -k x measured at t = 0, 0.2, ..., 3.8 with noise 0.02; k starts at 0.3."""
    rng = random.Random(3)
    rows = [f"{0.2 * i:.3f},{2 * math.exp(-TRUTH_K * 0.2 * i) + rng.gauss(0, 0.02):.6f}" for i in range(20)]
    (folder / "decay.csv").write_text("t,x\n" + "\n".join(rows) + "\n", encoding="utf-8")
    spec = folder / "decay.imp"
    spec.write_text(f"""problem decay
param k > 0 = 0.3
state x = 2
der(x) = -k*x
data d = csv("decay.csv", time=t)
fit x to d.x sigma 0.02
{train}
{expect}
""", encoding="utf-8")
    return spec


def test_a_windowed_fit_lowers_its_loss_and_finds_the_rate(tmp_path: Path) -> None:
    result = impsolve.solve(decay_spec(tmp_path, "train adam(lr=0.05, steps=150, window=5, windows=4)"),
                            write=False)
    history = result.objective.history
    assert len(history) == 150
    assert sum(history[-10:]) / 10 < sum(history[:10]) / 10
    assert abs(result.estimates["k"].value - TRUTH_K) < 0.1   # from 0.3
    assert 1 <= result.fit["window_kept_step"] <= 150   # the params with the best whole-series NLL


def test_window_draws_follow_the_seed(tmp_path: Path) -> None:
    spec = decay_spec(tmp_path, "train adam(lr=0.05, steps=5, window=3, windows=2)")
    first, again, other = (impsolve.solve(spec, write=False, seed=s).objective.history for s in (0, 0, 1))
    assert first == again and first != other


def test_an_integral_nothing_reads_may_stay_unmeasured(tmp_path: Path) -> None:
    """A window starts an unmeasured integral (here of x^2) at its declared value; the final value
    is of the whole series."""
    spec = decay_spec(tmp_path, "state e = 0\nder(e) = x^2\ntrain adam(lr=0.05, steps=3, window=3, windows=2)",
                      "expect e(T) > 0")
    result = impsolve.solve(spec, write=False)
    assert result.status == "ok" and result.checks[0].value > 0


def test_rmse_is_the_root_mean_square_error_of_the_fit(tmp_path: Path) -> None:
    result = impsolve.solve(decay_spec(tmp_path, "train lm(steps=20)", "expect rmse < 0.03\nexpect rmse > 0.01"),
                            out=tmp_path / "r")
    assert result.status == "ok"
    with open(tmp_path / "r" / "fit.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    manual = math.sqrt(sum((float(r["fitted"]) - float(r["data"])) ** 2 for r in rows) / len(rows))
    assert result.values["rmse"] == pytest.approx(manual, rel=1e-5)
    failed = impsolve.solve(decay_spec(tmp_path, "train lm(steps=20)", "expect rmse < 0.001"), write=False)
    assert failed.status != "ok"


@pytest.mark.parametrize("key", ["train.window", "train.windows", "train1.window"])
def test_setting_windows_on_a_spec_without_data_is_an_error(key: str) -> None:
    """`--set` reaches options the spec's own check never saw: window= there would be ignored."""
    zermelo = Path(__file__).resolve().parents[1] / "specs" / "zermelo.imp"
    with pytest.raises(SpecError, match="cannot set 'window'/'windows': time windows train on measured"):
        impsolve.load(zermelo, {key: 5})


@pytest.mark.slow
def test_spiral_neural_ode_on_windows_meets_its_expect() -> None:
    """specs/spiral.imp: torchdiffeq's ode_demo, fitted on windows; the trajectory expect holds."""
    result = impsolve.solve(ROOT / "specs" / "spiral.imp", write=False)
    assert result.status == "ok", [c for c in result.checks if not c.passed]
    assert result.values["rmse"] < 0.3

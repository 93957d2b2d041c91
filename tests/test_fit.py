"""Fits to measured data (issue 13): data and fit statements, bounds, Levenberg-Marquardt,
the covariance and its intervals, several experiments, estimated sigmas, and what cannot be fitted."""
from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

import impsolve
from impsolve.dsl import SpecError
from impsolve.runtime.errors import RunError

ROOT = Path(__file__).resolve().parents[1]
TRUTH_K, TRUTH_X0, SIGMA = 0.7, 2.0, 0.05


def decay_csv(path: Path, x0: float = TRUTH_X0, seed: int = 1, sigma: float = SIGMA, rows: int = 20) -> Path:
    """x(t) = x0 exp(-k t) with Gaussian noise, at t = 0.2, 0.4, ..."""
    rng = random.Random(seed)
    lines = ["t,x"] + [f"{0.2 * i:.3f},{x0 * math.exp(-TRUTH_K * 0.2 * i) + rng.gauss(0, sigma):.6f}"
                       for i in range(1, rows + 1)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def decay_spec(folder: Path, fit: str = "fit x to d.x sigma 0.05", extra: str = "", train: str = "") -> Path:
    decay_csv(folder / "decay.csv")
    spec = folder / "decay.imp"
    spec.write_text(f"""problem decay
param k > 0 = 0.3, x0 in [0, 10] = 1
state x = x0
der(x) = -k*x
data d = csv("decay.csv", time=t)
{fit}
{extra}
{train}
""", encoding="utf-8")
    return spec


def test_levenberg_marquardt_finds_the_truth_with_intervals(tmp_path: Path) -> None:
    result = impsolve.solve(decay_spec(tmp_path, extra="expect abs(k - 0.7) < 4*stderr(k)"), out=tmp_path / "r")
    assert result.status == "ok"
    k, x0 = result.estimates["k"], result.estimates["x0"]
    assert abs(k.value - TRUTH_K) < 4 * k.stderr and abs(x0.value - TRUTH_X0) < 4 * x0.stderr
    assert k.ci95[0] < k.value < k.ci95[1] and 0 < x0.ci95[0] < x0.ci95[1] < 10   # a bounded interval stays inside
    assert 0 < k.stderr < 0.1
    assert result.correlation["k"]["k"] == pytest.approx(1.0)
    assert result.correlation["k"]["x0"] == pytest.approx(result.correlation["x0"]["k"])
    assert result.fit["iterations"] < 30 and result.fit["observations"] == 20
    for name in ("result.json", "fit.csv", "fit_d.png", "residuals.png", "estimates.png"):
        assert (tmp_path / "r" / name).is_file()


def test_sigma_estimated_is_the_residual_scale(tmp_path: Path) -> None:
    result = impsolve.solve(decay_spec(tmp_path, fit="fit x to d.x sigma estimated"), write=False)
    assert result.fit["sigma_estimated"]
    assert 0.5 * SIGMA < result.fit["sigma"]["d.x"] < 2 * SIGMA
    known = impsolve.solve(decay_spec(tmp_path), write=False)
    assert result.estimates["k"].value == pytest.approx(known.estimates["k"].value, rel=1e-6)


def test_adam_reaches_the_lm_optimum_with_the_same_intervals(tmp_path: Path) -> None:
    lm = impsolve.solve(decay_spec(tmp_path), write=False)
    adam = impsolve.solve(decay_spec(tmp_path, train="train adam(lr=0.05, steps=400)\ntrain lbfgs(steps=20)"),
                          write=False)
    assert adam.estimates["k"].value == pytest.approx(lm.estimates["k"].value, rel=1e-4)
    assert adam.estimates["k"].stderr == pytest.approx(lm.estimates["k"].stderr, rel=1e-3)


def test_two_experiments_share_the_rate(tmp_path: Path) -> None:
    decay_csv(tmp_path / "second.csv", x0=5.0, seed=2)
    spec = decay_spec(tmp_path, fit='data e = csv("second.csv", time=t) with x = x1\nfit x to d.x, x to e.x sigma 0.05',
                      extra="param x1 > 0 = 3")
    result = impsolve.solve(spec, write=False)
    assert abs(result.estimates["x1"].value - 5.0) < 4 * result.estimates["x1"].stderr
    (tmp_path / "one").mkdir()
    one = impsolve.solve(decay_spec(tmp_path / "one"), write=False)
    assert result.estimates["k"].stderr < one.estimates["k"].stderr   # more data: a narrower interval


def test_confounded_params_are_named(tmp_path: Path) -> None:
    spec = decay_spec(tmp_path)
    spec.write_text(spec.read_text().replace("der(x) = -k*x", "param a > 0 = 1\nder(x) = -k*a*x"))
    with pytest.raises(RunError, match="'k' and 'a' are confounded|'a' and 'k' are confounded"):
        impsolve.solve(spec, write=False)


def test_set_points_a_data_set_at_another_file(tmp_path: Path) -> None:
    spec = decay_spec(tmp_path)
    other = decay_csv(tmp_path / "other.csv", x0=3.0, seed=5)
    result = impsolve.solve(spec, write=False, overrides={"data.d": str(other)})
    assert abs(result.estimates["x0"].value - 3.0) < 4 * result.estimates["x0"].stderr
    with pytest.raises(SpecError, match="no data set 'q'"):
        impsolve.load(spec, {"data.q": str(other)})


def test_lm_needs_a_fit() -> None:
    with pytest.raises(SpecError, match="lm .Levenberg-Marquardt. fits data"):
        impsolve.load("param a = 1\nminimize (a - 1)^2\ntrain lm(steps=3)\n")


def test_bounds_hold_in_any_study() -> None:
    result = impsolve.solve("param a in [0, 1] = 0.5, b > 2 = 3\nminimize (a - 2)^2 + (b - 1)^2\n"
                            "train adam(lr=0.1, steps=200)\nexpect a < 1\nexpect b > 2\n", write=False)
    assert result.status == "ok"
    with pytest.raises(SpecError, match="not inside its bound"):
        impsolve.load("param a > 0 = 0\nminimize a\n")


def test_lotka_volterra_estimates_are_within_two_stderr() -> None:
    result = impsolve.solve(ROOT / "specs" / "lotka_volterra.imp", write=False)
    assert result.status == "ok", [c for c in result.checks if not c.passed]
    assert len(result.checks) == 6 and result.fit["iterations"] <= 30


def test_a_net_is_fitted_with_adam_and_lm_says_why_not(tmp_path: Path) -> None:
    spec = decay_spec(tmp_path, train="train adam(lr=0.01, steps=5)")
    spec.write_text(spec.read_text().replace("param k > 0 = 0.3, x0 in [0, 10] = 1", "net rate(x): mlp(hidden=[4])")
                    .replace("state x = x0", "state x = 2").replace("der(x) = -k*x", "der(x) = -rate(x)"))
    result = impsolve.solve(spec, write=False)
    assert result.estimates == {} and len(result.objective.history) == 5
    spec.write_text(spec.read_text().replace("train adam(lr=0.01, steps=5)", "train lm(steps=5)"))
    with pytest.raises(SpecError, match="fit nets with train adam"):
        impsolve.load(spec)

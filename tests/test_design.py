"""Sequential Bayesian experimental design (report §6): sensitivities, the belief update, the
chosen designs, the two forms of the decay model, results, and a random-design baseline."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import impsolve
from impsolve.cli import main
from impsolve.runtime.bayesian_design import SequentialDesign
from impsolve.runtime.bayesian_design_study import run_design_study
from impsolve.runtime.results import Result
from impsolve.runtime.run_options import RunOptions

from conftest import spec_path

ODE_SPEC = spec_path("decay_design")
CLOSED_SPEC = spec_path("decay_design_closed")
SIGMA, TRUTH = 0.1, 1.7

TWO_PARAMS = """
param a ~ normal(1, 0.5), k ~ normal(1, 0.5)
truth a = 1.2, k = 0.8
design x in [0, 5]
{model}
observe {observed} + normal(0, 0.05)
maximize information_gain
rounds {rounds}
solve ode(rtol=1e-9, atol=1e-11)
train adam(lr=0.1, steps=20)
train lbfgs(lr=1, steps=1)
"""
TWO_CLOSED = {"model": "", "observed": "a*exp(-k*x)"}
TWO_ODE = {"model": "state u = a\nder(u) = -k*u", "observed": "u(x)"}


def study(spec, rounds: int | None = None, seed: int = 0, **replace: str) -> SequentialDesign:
    text = spec.read_text() if isinstance(spec, Path) else spec
    if rounds is not None:
        text = text.replace("rounds 30", f"rounds {rounds}")
    for old, new in replace.items():
        text = text.replace(old, new)
    return SequentialDesign(impsolve.load(text).compile(device="cpu"), seed=seed)


def raw(runner: SequentialDesign, name: str = "tobs") -> torch.Tensor:
    return runner.params[f"raw({name})"]


def observation(runner: SequentialDesign) -> tuple[torch.Tensor, ...]:
    """The generated observation function (value, sensitivities) with gradients."""
    solution = runner.model.solve()
    return tuple(torch.as_tensor(v).reshape(()) for v in
                 runner.model.functions["observation"](None, None, solution.s0, solution.sT, solution.T))


# ------------------------------------------------------------ sensitivities
@pytest.mark.parametrize("spec", [ODE_SPEC, CLOSED_SPEC], ids=["ode", "closed"])
@pytest.mark.parametrize("theta, t", [(2.0, 0.5), (1.7, 0.2), (0.8, 3.1)])
def test_sensitivity_is_minus_t_exp_minus_theta_t(spec, theta, t):
    runner = study(spec)
    runner.set_theta([theta])
    runner.set_design([t])
    value, g = runner.predict()
    assert value == pytest.approx(math.exp(-theta * t), rel=1e-8)
    assert float(g[0]) == pytest.approx(-t * math.exp(-theta * t), rel=1e-7)


def test_ode_sensitivity_equals_autograd_through_the_solver_and_finite_differences():
    runner = study(ODE_SPEC, **{"rtol=1e-8, atol=1e-10": "rtol=1e-11, atol=1e-13"})
    runner.set_design([0.9])
    theta = runner.params["theta"]
    theta.requires_grad_(True)
    value, g = observation(runner)
    (autograd,) = torch.autograd.grad(value, theta)
    h = 1e-5
    runner.set_theta([2.0 + h])
    up, _ = runner.predict()
    runner.set_theta([2.0 - h])
    down, _ = runner.predict()
    assert float(g.detach()) == pytest.approx(float(autograd), rel=1e-8)
    assert float(g.detach()) == pytest.approx((up - down) / (2 * h), rel=1e-7)


@pytest.mark.parametrize("spec", [ODE_SPEC, CLOSED_SPEC], ids=["ode", "closed"])
def test_sensitivity_is_differentiable_in_the_observation_time(spec):
    """dg/dt through the rescaled ODE (report eq. 6.24) = the analytic derivative = finite differences."""
    runner = study(spec, **{"rtol=1e-8, atol=1e-10": "rtol=1e-11, atol=1e-13"})
    theta, t = 2.0, 0.7
    runner.set_design([t])
    _, g = observation(runner)
    (dg_draw,) = torch.autograd.grad(g, raw(runner))
    sig = torch.sigmoid(raw(runner).detach())
    dg_dt = float(dg_draw / (5 * sig * (1 - sig)))
    analytic = (theta * t - 1) * math.exp(-theta * t)
    h = 1e-5
    gs = []
    for shifted in (t + h, t - h):
        runner.set_design([shifted])
        gs.append(float(runner.predict()[1][0]))
    assert dg_dt == pytest.approx(analytic, rel=1e-7)
    assert dg_dt == pytest.approx((gs[0] - gs[1]) / (2 * h), rel=1e-6)


def test_two_parameter_ode_sensitivities_include_the_initial_value():
    """u(0) = a: the sensitivity state starts at du/da(0) = 1 (S(0) = dx0/dtheta)."""
    runner = study(TWO_PARAMS.format(rounds=1, **TWO_ODE))
    a, k, x = 1.3, 0.6, 1.7
    runner.set_theta([a, k])
    runner.set_design([x])
    value, g = runner.predict()
    assert value == pytest.approx(a * math.exp(-k * x), rel=1e-9)
    torch.testing.assert_close(g, torch.tensor([math.exp(-k * x), -a * x * math.exp(-k * x)], dtype=torch.float64),
                               rtol=1e-8, atol=0)


def test_time_dependent_dynamics_are_rescaled_to_the_observation_time():
    """du/dt = -theta t u: u(t) = exp(-theta t^2 / 2), du/dtheta = -t^2/2 u (t runs to the design)."""
    runner = study(ODE_SPEC, **{"der(u) = -theta*u": "der(u) = -theta*t*u", "rtol=1e-8": "rtol=1e-10"})
    theta, t = 1.3, 1.6
    runner.set_theta([theta])
    runner.set_design([t])
    value, g = runner.predict()
    assert value == pytest.approx(math.exp(-theta * t * t / 2), rel=1e-8)
    assert float(g[0]) == pytest.approx(-t * t / 2 * value, rel=1e-7)


def test_design_in_the_initial_value_observed_at_the_horizon():
    """u(0) = d, observed at T = 1.5: g = -T d exp(-k T) is largest at the upper bound d = 2."""
    text = """param k ~ normal(1, 0.3)
truth k = 1.2
design d in [0.1, 2]
state u = d
der(u) = -k*u
horizon 1.5
observe u(T) + normal(0, 0.05)
maximize information_gain
rounds 2
solve ode(rtol=1e-10, atol=1e-12)
train adam(lr=1, steps=5)
"""
    runner = study(text)
    runner.set_design([0.7])
    value, g = runner.predict()
    assert value == pytest.approx(0.7 * math.exp(-1.5), rel=1e-8)
    assert float(g[0]) == pytest.approx(-1.5 * 0.7 * math.exp(-1.5), rel=1e-8)
    assert all(r.design["d"] > 2 - 1e-3 for r in runner.run())


def test_two_designs_time_and_initial_dose():
    """u(0) = d, observed at tobs: g = -tobs d exp(-k tobs) is largest at d = 2, tobs = 1/k."""
    text = """param k ~ normal(1.25, 0.3)
truth k = 1.2
design d in [0.1, 2]
design tobs in [0, 5]
state u = d
der(u) = -k*u
observe u(tobs) + normal(0, 0.05)
maximize information_gain
solve ode(rtol=1e-7, atol=1e-9)
train lbfgs(lr=1, steps=1)
"""
    (r,) = study(text).run()
    assert r.design["d"] > 2 - 2e-3
    assert r.design["tobs"] == pytest.approx(1 / 1.25, rel=1e-3)


def test_criterion_is_the_information_gain_of_the_sensitivity():
    runner = study(CLOSED_SPEC)
    runner.set_belief(torch.tensor([1.5], dtype=torch.float64), torch.tensor([[0.3]], dtype=torch.float64))
    runner.set_design([0.8])
    g = -0.8 * math.exp(-1.5 * 0.8)
    assert runner.criterion() == pytest.approx(0.5 * math.log(1 + g * g * 0.3 / SIGMA**2), rel=1e-12)


# ------------------------------------------------------------ the rounds
def test_each_round_applies_the_linearised_gaussian_update():
    """C+ = C - (Cg)^2/(s^2 + g'Cg), m+ = m + Cg (y - exp(-m t))/(s^2 + g'Cg), g at the prior mean."""
    rounds = study(CLOSED_SPEC, rounds=6).run()
    for r in rounds:
        m, c, t = r.prior_mean["theta"], r.prior_var["theta"], r.design["tobs"]
        g = -t * math.exp(-m * t)
        s = SIGMA**2 + g * g * c
        assert r.var["theta"] == pytest.approx(c - (c * g) ** 2 / s, rel=1e-12)
        assert r.mean["theta"] == pytest.approx(m + c * g * (r.observation - math.exp(-m * t)) / s, rel=1e-12)
        assert r.error["theta"] == pytest.approx(abs(r.mean["theta"] - TRUTH), abs=1e-15)
    for before, after in zip(rounds, rounds[1:]):
        assert after.prior_mean == before.mean and after.prior_var == before.var


def noise(r) -> float:
    """The simulated measurement error of a decay round: observation - exp(-truth * tobs)."""
    return r.observation - math.exp(-TRUTH * r.design["tobs"])


def assert_same_rounds(ode, closed) -> None:
    """Same designs (to the optimiser's 1e-6), beliefs, and measurement noise draws (to 1e-7: the ODE
    form's u(tobs) to its rtol 1e-8). The raw observations differ by up to |u'| * 1e-6 where the
    designs differ, so the noise is compared, not the observation."""
    assert len(ode) == len(closed)
    for a, b in zip(ode, closed):
        assert a.design["tobs"] == pytest.approx(b.design["tobs"], abs=1e-6)
        assert a.mean["theta"] == pytest.approx(b.mean["theta"], abs=1e-6)
        assert noise(a) == pytest.approx(noise(b), abs=1e-7)


def test_closed_and_ode_forms_choose_the_same_designs():
    assert_same_rounds(study(ODE_SPEC, rounds=5, seed=4).run(), study(CLOSED_SPEC, rounds=5, seed=4).run())


def test_same_seed_same_rounds_other_seed_other_noise():
    first, again, other = (study(CLOSED_SPEC, rounds=4, seed=s).run() for s in (1, 1, 2))
    assert [r.observation for r in first] == [r.observation for r in again]
    assert [r.observation for r in first] != [r.observation for r in other]


@pytest.mark.parametrize("form", ["closed", "ode"])
def test_two_parameter_designs_maximise_the_criterion(form):
    """Chosen designs against a dense grid of the criterion under each round's prior belief
    (often the boundary x = 0, where a is measured directly; else an interior point)."""
    rounds = 8 if form == "closed" else 3
    runner = study(TWO_PARAMS.format(rounds=rounds, **(TWO_CLOSED if form == "closed" else TWO_ODE)), seed=3)
    grid = np.linspace(0.0, 5.0, 20001)
    cov = np.diag([0.25, 0.25])
    for r in runner.run():
        a, k = r.prior_mean["a"], r.prior_mean["k"]

        def criterion(x):
            g = np.stack([np.exp(-k * x), -a * x * np.exp(-k * x)])
            return 0.5 * np.log1p(np.einsum("in,ij,jn->n", g, cov, g) / 0.05**2)

        best = criterion(grid).max()
        assert criterion(np.array([r.design["x"]]))[0] == pytest.approx(r.criterion, rel=1e-8)
        assert r.criterion >= best * (1 - 1e-6), (r.design, grid[criterion(grid).argmax()])
        cov = np.array(r.cov)


# ------------------------------------------------------------ end to end
def test_closed_form_study_meets_the_acceptance_and_writes_its_results(tmp_path):
    result = impsolve.solve(CLOSED_SPEC, out=tmp_path, device="cpu", seed=0)
    assert result.status == "ok" and [c.passed for c in result.checks] == [True, True]
    assert len(result.rounds) == 30
    for r in result.rounds:   # every design within 1% of the analytic optimum 1/theta_n
        assert abs(r.design["tobs"] * r.prior_mean["theta"] - 1) < 0.01
    last = result.rounds[-1]
    assert abs(last.mean["theta"] - TRUTH) < 3 * math.sqrt(last.var["theta"])
    data = json.loads((tmp_path / "result.json").read_text())
    for key in ("problem", "status", "device", "dtype", "seed", "steps", "wall_time_s", "objective", "values",
                "checks", "rounds"):
        assert key in data
    first = data["rounds"][0]
    assert set(first) >= {"design", "prior_mean", "prior_var", "observation", "mean", "var", "error"}
    assert first["prior_mean"] == {"theta": 2.0} and first["prior_var"] == {"theta": 1.0}
    assert data["values"] == {"mean(theta)": last.mean["theta"], "var(theta)": last.var["theta"]}
    assert len(data["objective"]["history"]) == 30
    rows = list(csv.DictReader((tmp_path / "rounds.csv").open()))
    assert len(rows) == 30 and float(rows[-1]["mean(theta)"]) == pytest.approx(last.mean["theta"], rel=1e-9)
    assert (tmp_path / "rounds.png").stat().st_size > 0


def test_failed_each_round_expect_is_reported_with_its_worst_round(tmp_path):
    text = CLOSED_SPEC.read_text().replace("rounds 30", "rounds 3").replace("1/mean(theta) tol 1%",
                                                                            "1.1/mean(theta) tol 1%")
    result = run_design_study(impsolve.load(text).compile(device="cpu"), RunOptions(write=False))
    check = result.checks[0]
    assert result.status == "expect_failed" and not check.passed
    assert check.error == max(e.error for r in result.rounds for e in r.expects)


@pytest.mark.slow
def test_ode_study_meets_the_acceptance_and_agrees_with_the_closed_form(tmp_path):
    assert main([str(ODE_SPEC), "--out", str(tmp_path), "--quiet", "--device", "cpu"]) == 0
    data = json.loads((tmp_path / "result.json").read_text())
    assert data["status"] == "ok" and data["wall_time_s"] < 120
    for r in data["rounds"]:
        assert abs(r["design"]["tobs"] * r["prior_mean"]["theta"] - 1) < 0.01
    closed = impsolve.solve(CLOSED_SPEC, device="cpu", write=False)
    assert_same_rounds(Result.model_validate(data).rounds, closed.rounds)


def final_errors(seeds: range, choose_random: bool) -> list[float]:
    runner = study(CLOSED_SPEC)
    model = runner.model
    errors = []
    for seed in seeds:
        runner = SequentialDesign(model, seed=seed)
        designs = np.random.default_rng([seed, 1])
        choose = (lambda n: [designs.uniform(0.0, 5.0)]) if choose_random else None
        errors.append(runner.run(choose)[-1].error["theta"])
    return errors


@pytest.mark.slow
def test_sequential_design_beats_random_designs():
    """Median final |mean - truth| over 50 seeds: the sequential design against t ~ U[0, 5]."""
    seeds = range(50)
    sequential, random = np.median(final_errors(seeds, False)), np.median(final_errors(seeds, True))
    assert sequential < random, (sequential, random)

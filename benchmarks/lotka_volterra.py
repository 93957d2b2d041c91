"""Fitting Lotka-Volterra to noisy counts (issue 13): Levenberg-Marquardt on the compiled spec vs
Adam on the same spec vs scipy.optimize.least_squares on solve_ivp (skipped without scipy), and
the coverage of the 95 % intervals over noise seeds.

    python benchmarks/lotka_volterra.py --quick         # LM, Adam (300 steps), scipy; 10 seeds
    python benchmarks/lotka_volterra.py                 # Adam 2000 steps; 100 seeds
    python benchmarks/lotka_volterra.py --seeds 0       # no coverage run
    python benchmarks/lotka_volterra.py --quick --seeds 0 --repeat 5   # + LM vs scipy, alternated

Same data (specs/data/lotka_volterra.csv), same start (the spec's), same ODE tolerances (the spec's
rtol/atol; scipy's RK45 is dopri5 too), the same log-parametrisation for every contender. "Reached"
means an NLL within 1e-3 of LM's optimum (the NLL's statistical spread is ~1).
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

import impsolve
from impsolve.runtime.fit import FitResiduals, fit_lm
from impsolve.runtime.fit_estimates import estimates

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "specs" / "lotka_volterra.imp"
sys.path.insert(0, str(ROOT / "tools"))
from make_lotka_volterra_data import SIGMA, TIMES, TRUTH, noisy_rows, trajectory  # noqa: E402

NAMES = ["alpha", "beta", "gamma", "delta", "x0", "y0"]
REACHED = 1e-3


def compiled(overrides: dict | None = None):
    return impsolve.load(SPEC, overrides).compile("cpu", "float64", 0)


def run_lm() -> tuple[float, int, float, dict]:
    """The spec as shipped: seconds of the fit (result.fit.wall_time_fit_s), iterations, NLL, estimates."""
    result = impsolve.solve(SPEC, write=False)
    return result.fit["wall_time_fit_s"], result.fit["iterations"], result.objective.final, result.estimates


def run_adam(steps: int, target: float) -> tuple[int | None, float | None, float, float]:
    """Adam (lr 0.01) on the NLL: steps and seconds until it is within REACHED of the LM optimum."""
    model = compiled({"train.optimizer": "adam", "train.lr": "0.01"})
    residuals = FitResiduals(model)
    params = [p for p in residuals.tensors]
    optimizer = torch.optim.Adam(params, lr=0.01)
    start, reached, seconds, value = time.perf_counter(), None, None, math.inf
    for step in range(1, steps + 1):
        optimizer.zero_grad()
        loss = residuals.nll_tensor()
        loss.backward()
        optimizer.step()
        value = loss.item()
        if reached is None and value <= target + REACHED:
            reached, seconds = step, time.perf_counter() - start
            break
    return reached, seconds, value, time.perf_counter() - start


def run_scipy(rtol: float, atol: float):
    """scipy.optimize.least_squares (trf, 2-point Jacobian) on solve_ivp (RK45), log-params."""
    try:
        import numpy as np
        from scipy.integrate import solve_ivp
        from scipy.optimize import least_squares
    except ImportError:
        return None
    data = np.loadtxt(ROOT / "specs" / "data" / "lotka_volterra.csv", delimiter=",", skiprows=1)
    t, observed = data[:, 0], data[:, 1:]

    def residuals(log_p):
        a, b, c, d, x0, y0 = np.exp(log_p)
        solution = solve_ivp(lambda _, s: [a * s[0] - b * s[0] * s[1], -c * s[1] + d * s[0] * s[1]],
                             (0.0, t[-1]), [x0, y0], t_eval=t, rtol=rtol, atol=atol, method="RK45")
        return ((solution.y.T - observed) / SIGMA).ravel()

    start = np.log([1.2, 0.8, 2.5, 0.8, 1.2, 0.8])
    began = time.perf_counter()
    fitted = least_squares(residuals, start, method="trf", x_scale="jac", ftol=1e-12, xtol=1e-12, gtol=1e-10)
    seconds = time.perf_counter() - began
    n = observed.size
    nll = fitted.cost + n * math.log(SIGMA * math.sqrt(2 * math.pi))
    return seconds, fitted.nfev, fitted.njev, nll, dict(zip(NAMES, np.exp(fitted.x)))


def interleaved_lm_scipy(repeat: int, rtol: float, atol: float) -> tuple[list[float], list[float]] | None:
    """Seconds of `repeat` LM fits (one compiled model, reset to the spec's start) and `repeat`
    scipy fits, alternated (LM first on even rounds) so machine load hits both alike."""
    if run_scipy(rtol, atol) is None:
        return None
    model = compiled()
    residuals = FitResiduals(model)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    lm, scipy = [], []

    def one_lm() -> None:
        model.load_state_dict(start)
        began = time.perf_counter()
        fit_lm(residuals, 100)
        lm.append(time.perf_counter() - began)

    def one_scipy() -> None:
        scipy.append(run_scipy(rtol, atol)[0])

    for k in range(repeat):
        for contender in (one_lm, one_scipy)[::1 if k % 2 == 0 else -1]:
            contender()
    return lm, scipy


def coverage(seeds: int) -> tuple[list[int], int, float]:
    """Per param, in how many of `seeds` noise draws its 95 % interval holds the truth."""
    model = compiled()
    residuals = FitResiduals(model)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    clean = trajectory(TIMES)
    covered, failed, began = [0] * len(NAMES), 0, time.perf_counter()
    for seed in range(seeds):
        model.load_state_dict(start)
        rows = noisy_rows(seed, clean)
        residuals.data = [torch.tensor([r[1] for r in rows], dtype=torch.float64),
                          torch.tensor([r[2] for r in rows], dtype=torch.float64)]
        fit_lm(residuals, 100)
        r, jac = residuals.evaluate()
        try:
            found, _, _ = estimates(model.problem, residuals.get(), jac, 1.0)
        except Exception as err:  # noqa: BLE001 - a failed seed is counted, not hidden
            failed += 1
            print(f"  seed {seed}: {err}")
            continue
        for i, name in enumerate(NAMES):
            lo, hi = found[name]["ci95"]
            covered[i] += lo <= TRUTH[name] <= hi
    return covered, failed, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--adam-steps", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=0, help="interleaved LM / scipy timings (medians)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = args.seeds if args.seeds is not None else (10 if args.quick else 100)
    adam_steps = args.adam_steps or (300 if args.quick else 2000)
    ode = impsolve.load(SPEC).checked.ode
    print(f"solver: {compiled().solver_plan.note}")   # the native tier where a C compiler is found
    seconds, iterations, nll, found = run_lm()
    print(f"LM (compiled spec): {iterations} iterations, {seconds:.2f} s, NLL {nll:.6f}")
    print("  " + ", ".join(f"{n} = {found[n].value:.4f} ± {found[n].stderr:.4f}" for n in NAMES))
    scipy = run_scipy(ode.rtol, ode.atol)
    if scipy is None:
        print("scipy: not installed, skipped")
    else:
        s_seconds, nfev, njev, s_nll, s_found = scipy
        print(f"scipy least_squares on solve_ivp: {nfev} residual evaluations, {njev} Jacobians, {s_seconds:.2f} s, "
              f"NLL {s_nll:.6f}")
        print("  " + ", ".join(f"{n} = {s_found[n]:.4f}" for n in NAMES))
    timings = interleaved_lm_scipy(args.repeat, ode.rtol, ode.atol) if args.repeat else None
    if timings is not None:
        lm_median, scipy_median = statistics.median(timings[0]), statistics.median(timings[1])
        print(f"interleaved, {args.repeat} fits each: LM median {lm_median:.3f} s, scipy median {scipy_median:.3f} s, "
              f"ratio LM / scipy {lm_median / scipy_median:.2f}")
    reached, a_seconds, a_value, a_total = run_adam(adam_steps, nll)
    if reached is None:
        print(f"Adam (lr 0.01): not within {REACHED} of the LM optimum in {adam_steps} steps ({a_total:.1f} s); "
              f"NLL {a_value:.4f}")
    else:
        print(f"Adam (lr 0.01): {reached} steps, {a_seconds:.1f} s to within {REACHED} of the LM optimum")
    if seeds:
        covered, failed, c_seconds = coverage(seeds)
        print(f"coverage of the 95 % intervals over {seeds} noise seeds ({c_seconds:.0f} s, {failed} failed):")
        print("  " + ", ".join(f"{n} {c}/{seeds}" for n, c in zip(NAMES, covered)))
        print(f"  all params together: {sum(covered)}/{seeds * len(NAMES)} = {sum(covered) / (seeds * len(NAMES)):.3f}")


if __name__ == "__main__":
    main()

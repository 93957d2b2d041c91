"""Benchmark: the optimal-control specs against CasADi + IPOPT (multiple shooting, N = 50
intervals, one RK4 step each, piecewise-constant control), the reference a user of the field
would reach for. The specs with `solve direct` (multiple shooting + impsolve's interior point
method) are the default; `zermelo_open_loop` (augmented Lagrangian around L-BFGS, single shooting)
takes minutes.

    pip install casadi                       # only for this benchmark; not a dependency of impsolve
    python benchmarks/optimal_control.py [--specs zermelo_direct cartpole_swingup_constrained ...]

For each spec it reports the objective of both, their relative difference, the largest constraint
violation of impsolve, the solve times, cold (the first in the process) and warm (the median of
--repeat solves, interleaved impsolve / CasADi), the median of the pairwise warm ratios impsolve /
CasADi, and the whole-process time of each (a fresh interpreter running the solve). impsolve's solve time is `result.solve_time_s` (the
solve alone, training or the direct method: not parsing, compiling or the expects' checks, which
`wall_time_s` adds), CasADi's the wall time of `opti.solve()`. Without casadi it reports impsolve's side and says so. Writes
benchmarks/results/optimal_control.json.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
N = 50


def _rk4(f, x, u, h):
    k1 = f(x, u)
    k2 = f(x + h / 2 * k1, u)
    k3 = f(x + h / 2 * k2, u)
    k4 = f(x + h * k3, u)
    return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def zermelo(ca):
    """Minimal drift crossing; heading in [0, pi], free final time, y(T) = 2."""
    opti = ca.Opti()
    X, U, T = opti.variable(2, N + 1), opti.variable(1, N), opti.variable()

    def f(s, u):
        w = 1.1 + 0.9 * ca.exp(-((s[1] - 1) / 0.2) ** 2)
        return ca.vertcat(ca.cos(u) + w, ca.sin(u))

    for k in range(N):
        opti.subject_to(X[:, k + 1] == _rk4(f, X[:, k], U[k], T / N))
    opti.subject_to(X[:, 0] == 0)
    opti.subject_to(X[1, N] == 2)
    opti.subject_to(opti.bounded(0, U, math.pi))
    opti.subject_to(opti.bounded(1, T, 8))
    opti.set_initial(U, math.pi / 2)
    opti.set_initial(T, 4.5)
    opti.minimize(X[0, N])
    return opti, lambda sol: float(sol.value(X[0, N]))


def cartpole(ca):
    """Swing-up with |f| <= 50, phi(T) = phid(T) = x(T) = 0, T = 2, minimise the integral of f²."""
    opti = ca.Opti()
    X, U = opti.variable(4, N + 1), opti.variable(1, N)

    def f(s, u):
        den = 1 + ca.sin(s[2]) ** 2
        return ca.vertcat(s[1], (u + ca.sin(s[2]) * (s[3] ** 2 - 9.8 * ca.cos(s[2]))) / den, s[3],
                          (-u * ca.cos(s[2]) - s[3] ** 2 * ca.sin(s[2]) * ca.cos(s[2]) + 2 * 9.8 * ca.sin(s[2])) / den)

    for k in range(N):
        opti.subject_to(X[:, k + 1] == _rk4(f, X[:, k], U[k], 2 / N))
    opti.subject_to(X[:, 0] == ca.DM([0, 0, math.pi, 0]))
    opti.subject_to(X[[0, 2, 3], N] == 0)
    opti.subject_to(opti.bounded(-50, U, 50))
    for k in range(N + 1):
        opti.set_initial(X[2, k], math.pi * (1 - k / N))
    opti.minimize(ca.sumsqr(U) * 2 / N)
    return opti, lambda sol: float(sol.value(ca.sumsqr(U) * 2 / N))


def min_time(ca):
    """Double integrator from x = 1 to rest at 0 in minimum time, |u| <= 1, free T in [0.5, 5]."""
    opti = ca.Opti()
    X, U, T = opti.variable(2, N + 1), opti.variable(1, N), opti.variable()

    def f(s, u):
        return ca.vertcat(s[1], u)

    for k in range(N):
        opti.subject_to(X[:, k + 1] == _rk4(f, X[:, k], U[k], T / N))
    opti.subject_to(X[:, 0] == ca.DM([1, 0]))
    opti.subject_to(X[:, N] == 0)
    opti.subject_to(opti.bounded(-1, U, 1))
    opti.subject_to(opti.bounded(0.5, T, 5))
    opti.set_initial(T, 2.75)
    for k in range(N + 1):
        opti.set_initial(X[0, k], 1 - k / N)
    opti.minimize(T)
    return opti, lambda sol: float(sol.value(T))


def bryson_denham(ca):
    """x'' = u from (0, 1) to (0, -1) at T = 1, x <= 1/9 at the nodes, min ∫u²/2: N = 36, u linear
    between N + 1 node values (as the spec's hold=linear), classic RK4."""
    intervals, h, wall = 36, 1 / 36, 1 / 9
    opti = ca.Opti()
    X, U = opti.variable(2, intervals + 1), opti.variable(1, intervals + 1)

    def f(s, u):
        return ca.vertcat(s[1], u)

    for k in range(intervals):
        a, b, x = U[k], U[k + 1], X[:, k]
        k1 = f(x, a)
        k2 = f(x + h / 2 * k1, (a + b) / 2)
        k3 = f(x + h / 2 * k2, (a + b) / 2)
        k4 = f(x + h * k3, b)
        opti.subject_to(X[:, k + 1] == x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4))
    opti.subject_to(X[:, 0] == ca.DM([0, 1]))
    opti.subject_to(X[:, intervals] == ca.DM([0, -1]))
    opti.subject_to(X[0, :] <= wall)
    cost = sum(h / 6 * (U[k] ** 2 + U[k] * U[k + 1] + U[k + 1] ** 2) for k in range(intervals))
    opti.minimize(cost)
    return opti, lambda sol: float(sol.value(cost))


# spec -> the CasADi formulation of the same problem
PROBLEMS = {"zermelo_direct": zermelo, "cartpole_swingup_constrained": cartpole,
            "min_time_double_integrator_direct": min_time, "bryson_denham_direct": bryson_denham,
            "zermelo_open_loop": zermelo}
DEFAULT = ["zermelo_direct", "cartpole_swingup_constrained", "min_time_double_integrator_direct",
           "bryson_denham_direct"]


def casadi_run(name: str) -> dict:
    """Build and solve the CasADi formulation once: the solve's wall time, objective, IPOPT's iterations."""
    import casadi as ca
    opti, objective = PROBLEMS[name](ca)
    opti.solver("ipopt", {"print_time": False}, {"print_level": 0, "sb": "yes"})
    solving = time.perf_counter()
    sol = opti.solve()
    return {"solve_s": time.perf_counter() - solving, "objective": objective(sol),
            "iterations": int(opti.stats()["iter_count"])}


def spec_file(name: str) -> Path:
    """The shipped spec."""
    return ROOT / "specs" / f"{name}.imp"


def impsolve_run(name: str) -> dict:
    """Solve the spec once in this process (no results folder): `result.solve_time_s` (the solve
    alone) and `wall_time_s` (with the expects' checks), the objective, the largest constraint
    violation and the iterations."""
    import impsolve
    result = impsolve.solve(spec_file(name), device="cpu", write=False)
    violation = max((c.violation for c in result.constraints.values()), default=0.0)
    return {"solve_s": result.solve_time_s, "with_checks_s": result.wall_time_s, "objective": result.objective.final,
            "violation": violation, "iterations": result.steps}


def measure(name: str, repeat: int, have_casadi: bool) -> dict:
    """Cold solves (the first of each in this process), then `repeat` warm pairs interleaved
    (impsolve, CasADi, impsolve, ...) so that load hits both alike; medians and the median of the
    pairwise ratios."""
    sides = {"impsolve": impsolve_run, **({"casadi": casadi_run} if have_casadi else {})}
    runs = {side: [run(name)] for side, run in sides.items()}
    for _ in range(repeat):
        for side, run in sides.items():
            runs[side].append(run(name))
    row = {}
    for side, done in runs.items():
        warm = [r["solve_s"] for r in done[1:]] or [done[0]["solve_s"]]
        row[side] = done[-1] | {"cold_s": done[0]["solve_s"], "solve_s": statistics.median(warm)}
    if have_casadi:
        pairs = [a["solve_s"] / b["solve_s"] for a, b in zip(runs["impsolve"][1:], runs["casadi"][1:])]
        row["solve_ratio"] = statistics.median(pairs) if pairs else row["impsolve"]["solve_s"] / row["casadi"]["solve_s"]
    return row


def process_time(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", nargs="+", default=DEFAULT, choices=list(PROBLEMS))
    parser.add_argument("--repeat", type=int, default=3, help="warm solves per side (their median is reported)")
    args = parser.parse_args()
    try:
        import casadi  # noqa: F401
        have_casadi = True
    except ImportError:
        have_casadi = False
        print("casadi is not installed (pip install casadi): impsolve's side only")
    rows = {}
    for name in args.specs:
        row = rows[name] = measure(name, args.repeat, have_casadi)
        mine = row["impsolve"]
        mine["process_s"] = process_time(["-m", "impsolve", "run", str(spec_file(name)), "--quiet"])
        print(f"{name}: impsolve objective {mine['objective']:.9g}, violation {mine['violation']:.1e}, "
              f"{mine['iterations']} iterations, solve {mine['solve_s']:.3f} s warm, {mine['cold_s']:.3f} s cold, "
              f"process {mine['process_s']:.2f} s")
        if not have_casadi:
            continue
        theirs = row["casadi"]
        theirs["process_s"] = process_time(["-c", f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                                           f"import optimal_control as b; b.casadi_run({name!r})"])
        row |= {"objective_gap": mine["objective"] / theirs["objective"] - 1,
                "process_ratio": mine["process_s"] / theirs["process_s"]}
        print(f"{'':{len(name)}}  casadi   objective {theirs['objective']:.9g} (gap {row['objective_gap']:+.2e}), "
              f"{theirs['iterations']} iterations, solve {theirs['solve_s']:.3f} s warm, {theirs['cold_s']:.3f} s cold, "
              f"process {theirs['process_s']:.2f} s; ratio impsolve / casadi: solve {row['solve_ratio']:.2f} "
              f"(median of interleaved pairs), process {row['process_ratio']:.2f}")
    out = ROOT / "benchmarks" / "results" / "optimal_control.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

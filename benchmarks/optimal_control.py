"""Benchmark: the optimal-control specs (augmented Lagrangian around L-BFGS, single shooting)
against CasADi + IPOPT (multiple shooting, N = 50 intervals, one RK4 step each, piecewise-constant
control), the reference a user of the field would reach for.

    pip install casadi                       # only for this benchmark; not a dependency of impsolve
    python benchmarks/optimal_control.py [--specs zermelo_open_loop cartpole_swingup_constrained]

For each spec it reports the objective of both, their relative difference, the largest constraint
violation of impsolve, the solve times (impsolve: `result.wall_time_s`, training included; CasADi:
the wall time of `opti.solve()`), their ratio impsolve / CasADi, and the whole-process time of each (a fresh
interpreter running the solve). Without casadi it says so and exits 0. Writes
benchmarks/results/optimal_control.json.
"""
from __future__ import annotations

import argparse
import json
import math
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


PROBLEMS = {"zermelo_open_loop": zermelo, "cartpole_swingup_constrained": cartpole}


def casadi_run(name: str) -> dict:
    import casadi as ca
    start = time.perf_counter()
    opti, objective = PROBLEMS[name](ca)
    opti.solver("ipopt", {"print_time": False}, {"print_level": 0, "sb": "yes"})
    solving = time.perf_counter()
    sol = opti.solve()
    done = time.perf_counter()
    return {"objective": objective(sol), "solve_s": done - solving, "in_process_s": done - start,
            "iterations": int(opti.stats()["iter_count"])}


def spec_file(name: str) -> Path:
    """The spec: shipped in specs/, or (not yet verified for every seed) next to this script."""
    shipped = ROOT / "specs" / f"{name}.imp"
    return shipped if shipped.exists() else Path(__file__).parent / f"{name}.imp"


def impsolve_run(name: str) -> dict:
    import impsolve
    result = impsolve.solve(spec_file(name), device="cpu")
    violation = max((c.violation for c in result.constraints.values()), default=0.0)
    return {"objective": result.objective.final, "solve_s": result.wall_time_s, "violation": violation}


def process_time(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    args = parser.parse_args()
    try:
        import casadi  # noqa: F401
    except ImportError:
        print("casadi is not installed (pip install casadi); nothing to compare")
        return 0
    rows = {}
    for name in args.specs:
        mine, theirs = impsolve_run(name), casadi_run(name)
        mine["process_s"] = process_time(["-m", "impsolve", "run", str(spec_file(name)), "--quiet"])
        theirs["process_s"] = process_time(["-c", f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                                        f"import optimal_control as b; b.casadi_run({name!r})"])
        rows[name] = {"impsolve": mine, "casadi": theirs,
                      "objective_gap": mine["objective"] / theirs["objective"] - 1,
                      "solve_ratio": mine["solve_s"] / theirs["solve_s"]}
        print(f"{name}: objective impsolve {mine['objective']:.7g} casadi {theirs['objective']:.7g} "
              f"(gap {rows[name]['objective_gap']:+.2e}); violation {mine['violation']:.1e}; solve "
              f"{mine['solve_s']:.2f} s vs {theirs['solve_s']:.3f} s (ratio {rows[name]['solve_ratio']:.0f}); "
              f"process {mine['process_s']:.1f} s vs {theirs['process_s']:.1f} s")
    out = ROOT / "benchmarks" / "results" / "optimal_control.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

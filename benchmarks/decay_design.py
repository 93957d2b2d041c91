"""Benchmark: sequential Bayesian design of the decay model (report §6.5) over many seeds.

The model u(t) = exp(-theta t), observed with N(0, 0.1^2) noise at a design time t in [0, 5], prior
theta ~ N(2, 1), truth theta* = 1.7, 30 rounds (`specs/decay_design_closed.imp`, or the ODE form
`specs/decay_design.imp`). For each seed (the seed of the observation noise) it runs

  - the sequential design of the spec (each round maximises information_gain), and
  - a baseline with random designs t ~ U[0, 5] and the same noise sequence,

and reports over the seeds: the median final |mean - theta*|, the coverage of the final 95%
posterior interval mean ± 1.96 std, the largest relative deviation of a design from the analytic
optimum 1/mean_n (mean_n: the belief the design was chosen with), and the time per study.

    python benchmarks/decay_design.py [--seeds N] [--form closed|ode] [--quick] [--threads T]

prints a table and writes benchmarks/results/decay_design.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

import impsolve
from impsolve.runtime.bayesian_design import SequentialDesign

ROOT = Path(__file__).resolve().parent.parent
SPECS = {"closed": ROOT / "specs" / "decay_design_closed.imp", "ode": ROOT / "specs" / "decay_design.imp"}
RESULTS = Path(__file__).resolve().parent / "results" / "decay_design.json"
Z95 = 1.959963984540054


def one_study(runner: SequentialDesign, random_designs: np.random.Generator | None) -> dict:
    """One seed's study: final error, 95% coverage, worst design deviation from 1/mean, time."""
    study = runner.study
    low, high = study.designs[0].low, study.designs[0].high
    choose = (lambda n: [random_designs.uniform(low, high)]) if random_designs is not None else None
    start = time.perf_counter()
    rounds = runner.run(choose)
    seconds = time.perf_counter() - start
    param, design = study.uncertain[0], study.designs[0].name
    last = rounds[-1]
    std = last.var[param] ** 0.5
    return {"final_error": last.error[param], "final_std": std, "covered": last.error[param] <= Z95 * std,
            "worst_design_deviation": max(abs(r.design[design] * r.prior_mean[param] - 1) for r in rounds),
            "seconds": seconds}


def run(form: str, seeds: int) -> dict:
    model = impsolve.load(SPECS[form]).compile(device="cpu", dtype="float64")
    results = {}
    for strategy in ("sequential", "random"):
        records = []
        for seed in range(seeds):
            runner = SequentialDesign(model, seed=seed)
            designs = np.random.default_rng([seed, 1]) if strategy == "random" else None
            records.append(one_study(runner, designs))
        errors = [r["final_error"] for r in records]
        results[strategy] = {
            "median_final_error": statistics.median(errors), "mean_final_error": statistics.fmean(errors),
            "coverage_95": sum(r["covered"] for r in records) / len(records),
            "median_final_std": statistics.median(r["final_std"] for r in records),
            "worst_design_deviation": max(r["worst_design_deviation"] for r in records),
            "median_seconds": statistics.median(r["seconds"] for r in records), "runs": records,
        }
    return results


def environment(threads: int | None) -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"python": platform.python_version(), "torch": torch.__version__, "impsolve": impsolve.__version__,
            "machine": platform.machine(), "threads": threads or torch.get_num_threads(), "git_commit": commit,
            "argv": sys.argv[1:]}


def print_report(report: dict) -> None:
    print(f"decay design ({report['form']} form, {report['seeds']} seeds, theta* = 1.7, 30 rounds)")
    print(f"{'designs':<12}{'median |err|':>14}{'95% coverage':>14}{'median std':>12}{'worst design':>14}"
          f"{'s/study':>10}")
    for strategy, r in report["results"].items():
        worst = f"{r['worst_design_deviation']:.2e}" if strategy == "sequential" else "-"
        print(f"{strategy:<12}{r['median_final_error']:>14.4f}{r['coverage_95']:>14.2f}{r['median_final_std']:>12.4f}"
              f"{worst:>14}{r['median_seconds']:>10.2f}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=None, help="noise seeds (default 100)")
    parser.add_argument("--form", choices=sorted(SPECS), default="closed",
                        help="closed: exp(-theta t); ode: du/dt = -theta u (slower, same designs)")
    parser.add_argument("--quick", action="store_true", help="10 seeds")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (e.g. 1)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    seeds = args.seeds or (10 if args.quick else 100)
    report = {"form": args.form, "seeds": seeds, "environment": environment(args.threads),
              "results": run(args.form, seeds)}
    print_report(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

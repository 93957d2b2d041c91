"""Benchmark: the solver tiers (runtime.solvers) against hand-written torchdiffeq `odeint`.

For each of Zermelo, cart-pole swing-up, cart-pole LQR and isochronism (batch 100), one process
trains four contenders from the same weights with the spec's first-phase Adam settings:

  - the compiled spec on the native tier (`solve.backend=native`: the generated C solver),
  - the compiled spec on the plain-torch tier (`solve.backend=torch`),
  - the compiled spec on the torchdiffeq tier (`solve.backend=torchdiffeq`),
  - the hand-written torch + torchdiffeq module of benchmarks/zermelo.py and neural_odes.py
    (`odeint`/`odeint_event`, backprop through the solver, the spec's solver settings).

Steps are interleaved (the order rotates every step) so a shared machine's noise hits all four
alike; reported per tier: the median step time over the hand-written one's (ratio of medians and
median of per-step ratios), the dynamics evaluations per step, and the objective and gradient
difference to the hand-written module at the initial weights.

    python benchmarks/solver_tiers.py [--steps N] [--warmup W] [--quick] [--only SPEC]

prints a table and writes benchmarks/results/solver_tiers.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

import impsolve
from harness import Contender, environment, summarise
from impsolve.runtime.train import learning_rate, make_optimizer
from neural_odes import hand_written
from zermelo import HandWrittenZermelo

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "solver_tiers.json"
SPECS = ("zermelo", "cartpole", "cartpole_lqr", "isochronism")
TIERS = ("native", "torch", "torchdiffeq")


def contenders(name: str, seed: int) -> list[Contender]:
    """The compiled spec on each tier and the hand-written module, all from the same weights."""
    out = []
    for tier in TIERS:
        problem = impsolve.load(ROOT / "specs" / f"{name}.imp", {"solve.backend": tier})
        model = problem.compile(device="cpu", dtype="float64", seed=seed)
        assert model.solver_plan.backend == tier, model.solver_plan.note
        params = [p for p in model.parameters() if p.requires_grad]
        train = problem.checked.training[0]
        out.append(Contender(tier, model, lambda m=model: m.dynamics.evaluations, params,
                             make_optimizer(params, train), train.clip))
    ode = problem.checked.ode
    hand = HandWrittenZermelo(ode) if name == "zermelo" else hand_written(name, ode, model)
    hand.net.load_state_dict(model.nets[0].state_dict())
    params = list(hand.parameters())
    out.append(Contender("hand-written", hand.objective, lambda: hand.evaluations, params,
                         torch.optim.Adam(params, lr=train.lr, betas=train.betas), train.clip))
    return out


def agreement(name: str, seed: int) -> dict:
    """Each tier's objective and gradient against the hand-written module's, at the same weights."""
    values, grads = {}, {}
    for c in contenders(name, seed):
        value = c.loss()
        value.backward()
        values[c.name] = float(value.detach())
        grads[c.name] = torch.cat([p.grad.reshape(-1) for p in c.params])
    hand_value, hand_grad = values["hand-written"], grads["hand-written"]
    return {tier: {"value": values[tier], "rel_value_difference": abs(values[tier] - hand_value) / abs(hand_value),
                   "rel_grad_difference": float((grads[tier] - hand_grad).abs().max() / hand_grad.abs().max())}
            for tier in TIERS}


def step_times(name: str, steps: int, warmup: int, seed: int) -> dict:
    """Interleaved training steps of the contenders; ratios to the hand-written one."""
    group = contenders(name, seed)
    options = impsolve.load(ROOT / "specs" / f"{name}.imp").checked.training[0]
    for k in range(warmup + steps):
        lr = learning_rate(options, k)
        for c in group[k % len(group):] + group[:k % len(group)]:
            c.step(lr)
    timed = {c.name: c.records[warmup:] for c in group}
    summary = {n: summarise(r) for n, r in timed.items()}
    hand = summary["hand-written"]["median_s"]
    return {"summary": summary, "tiers": {tier: {
        "ratio_of_medians": summary[tier]["median_s"] / hand,
        "median_paired_ratio": statistics.median(a.seconds / b.seconds
                                                 for a, b in zip(timed[tier], timed["hand-written"]))}
        for tier in TIERS}}


def print_report(report: dict) -> None:
    print(f"Solver tiers vs hand-written torchdiffeq odeint (torch {report['environment']['torch']}, "
          f"{report['environment']['torch_threads']} thread(s)), median over {report['settings']['steps']} steps")
    print(f"  {'spec':14}{'tier':13}{'step ms':>9}{'hand ms':>9}{'ratio':>8}{'paired':>8}{'nfe f/b':>10}"
          f"{'rel dvalue':>12}{'rel dgrad':>11}")
    for name, spec in report["specs"].items():
        summary, hand = spec["step_time"]["summary"], spec["step_time"]["summary"]["hand-written"]
        for tier in TIERS:
            s, r, a = summary[tier], spec["step_time"]["tiers"][tier], spec["agreement"][tier]
            nfe = f"{s['median_nfe_forward']:g}/{s['median_nfe_backward']:g}"
            print(f"  {name:14}{tier:13}{1e3 * s['median_s']:>9.1f}{1e3 * hand['median_s']:>9.1f}"
                  f"{r['ratio_of_medians']:>8.3f}{r['median_paired_ratio']:>8.3f}{nfe:>10}"
                  f"{a['rel_value_difference']:>12.1e}{a['rel_grad_difference']:>11.1e}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=None, help="timed steps per spec (default 30)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed warm-up steps (default 2)")
    parser.add_argument("--quick", action="store_true", help="6 timed steps per spec")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--only", choices=SPECS, action="append", default=None, help="run only this spec")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or (6 if args.quick else 30)
    report = {"benchmark": "solver_tiers", "environment": environment(args.threads),
              "settings": {"steps": steps, "warmup": args.warmup}, "specs": {}}
    for name in args.only or SPECS:
        report["specs"][name] = {"agreement": agreement(name, seed=0),
                                 "step_time": step_times(name, steps, args.warmup, seed=0)}
    print_report(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

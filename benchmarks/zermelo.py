"""Benchmark: the compiled `specs/zermelo.imp` against a hand-written torch + torchdiffeq script.

Zermelo's river crossing (report §4.2): states (x, y) start at (0, 0),

    dx/dt = v cos u + w(y),   dy/dt = v sin u,   v = 1,  l = 2,
    w(y)  = wmin + (wmax - wmin) exp(-((y - l/2) / (l/10))^2),  wmin = 1.1,  wmax = 2,
    u     = pi * sigmoid(MLP(y)),  MLP 1 -> 16 -> 16 -> 1 with tanh,

integrated with torchdiffeq's `odeint_event` until y >= l; the loss is x at the event.
The solver and optimiser settings of both contenders are read from the loaded spec
(`checked.ode`, `checked.training[0]`), and the hand-written net starts from a copy of the compiled
module's weights, so both do the same work. Everything runs in one process, float64, on the CPU,
and the measurements of the two contenders are interleaved (ABAB, with the order swapped on
every other step) so that noise from a shared machine hits both alike.

Measured:
  (a) wall time of one training step (zero_grad + forward + backward + optimiser step), median
      over N steps after a few warm-up steps, and the ratio compiled / hand-written;
  (b) dynamics evaluations (forward solve, backward/adjoint solve) per step;
  (c) steps and seconds until the objective is within 0.5% of x* = 1.4125753, over a few seeds,
      with the spec's own training settings (schedule from `runtime.train.learning_rate`),
      capped at the spec's step count.

    python benchmarks/zermelo.py [--steps N] [--seeds K] [--quick] [--threads T]

prints a table and writes benchmarks/results/zermelo.json.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint, odeint_event

import impsolve
from harness import Contender, environment, interleaved, summarise
from impsolve.dsl.options import OdeOptions, TrainOptions
from impsolve.runtime.model import CompiledProblem
from impsolve.runtime.train import learning_rate, make_optimizer

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "zermelo.imp"
RESULTS = Path(__file__).resolve().parent / "results" / "zermelo.json"
DTYPE = torch.float64
DEVICE = torch.device("cpu")

# The problem, written out by hand (the spec's constants).
V, L = 1.0, 2.0
WMIN, WMAX = V + 0.1, 2 * V
X_STAR = 1.4125753   # Pontryagin optimum of x at the event
TOLERANCE = 0.005    # "within 0.5% of the optimum"


# ---------------------------------------------------------------------------------------------
# The hand-written contender
# ---------------------------------------------------------------------------------------------
class HandWrittenZermelo(nn.Module):
    """Zermelo's problem as one would write it directly with torch and torchdiffeq.

    The module is the ODE right-hand side (so that the adjoint finds the net's parameters);
    `objective()` integrates to the event y = l and returns x there."""

    def __init__(self, ode: OdeOptions) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1))
        self.net.to(device=DEVICE, dtype=DTYPE)
        self.ode = ode
        self.evaluations = 0

    def heading(self, y: torch.Tensor) -> torch.Tensor:
        """u(y) = pi * sigmoid(MLP(y)), a heading in [0, pi]."""
        return math.pi * torch.sigmoid(self.net(y.unsqueeze(-1)).squeeze(-1))

    @staticmethod
    def wind(y: torch.Tensor) -> torch.Tensor:
        """The river's current, strongest mid-river."""
        return WMIN + (WMAX - WMIN) * torch.exp(-(((y - L / 2) / (L / 10)) ** 2))

    def forward(self, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        self.evaluations += 1
        y = s[..., 1]
        u = self.heading(y)
        return torch.stack((V * torch.cos(u) + self.wind(y), V * torch.sin(u)), -1)

    def objective(self) -> torch.Tensor:
        """x at the first time y reaches l."""
        s0 = torch.zeros(2, dtype=DTYPE, device=DEVICE)
        t0 = torch.zeros((), dtype=DTYPE, device=DEVICE)
        _, states = odeint_event(self, s0, t0, event_fn=lambda t, s: s[1] - L,
                                 odeint_interface=odeint_adjoint if self.ode.adjoint else odeint,
                                 method=self.ode.method, rtol=self.ode.rtol, atol=self.ode.atol)
        return states[-1, 0]


# ---------------------------------------------------------------------------------------------
# The two contenders behind one interface
# ---------------------------------------------------------------------------------------------


def make_pair(problem: impsolve.Problem, seed: int) -> tuple[Contender, Contender, HandWrittenZermelo]:
    """The compiled module (initialised with `seed`) and the hand-written one with the same weights."""
    checked = problem.checked
    train: TrainOptions = checked.training[0]
    if train.optimizer != "adam":
        raise SystemExit(f"this benchmark's hand-written side uses Adam; the spec trains with {train.optimizer}")
    compiled: CompiledProblem = problem.compile(device="cpu", dtype="float64", seed=seed)
    if compiled.problem.objective.sense != "minimize":
        raise SystemExit("the spec no longer minimises x at stop")
    hand = HandWrittenZermelo(checked.ode)
    hand.net.load_state_dict(compiled.nets[0].state_dict())

    compiled_params = [p for p in compiled.parameters() if p.requires_grad]
    hand_params = list(hand.parameters())
    a = Contender("compiled", compiled, lambda: compiled.dynamics.evaluations, compiled_params,
                  make_optimizer(compiled_params, train), train.clip)
    b = Contender("hand-written", hand.objective, lambda: hand.evaluations, hand_params,
                  torch.optim.Adam(hand_params, lr=train.lr, betas=train.betas), train.clip)
    return a, b, hand


# ---------------------------------------------------------------------------------------------
# The measurements
# ---------------------------------------------------------------------------------------------
def agreement_at_init(problem: impsolve.Problem, seed: int) -> dict:
    """Objective, gradient and evaluation counts of both at the same initial weights (sanity check)."""
    a, b, _ = make_pair(problem, seed)
    out: dict = {}
    grads = {}
    for c in (a, b):
        n0 = c.evaluations()
        value = c.loss()
        n1 = c.evaluations()
        value.backward()
        n2 = c.evaluations()
        grads[c.name] = torch.cat([p.grad.reshape(-1) for p in c.params])
        out[c.name] = {"value": float(value.detach()), "nfe_forward": n1 - n0, "nfe_backward": n2 - n1}
    out["abs_value_difference"] = abs(out["compiled"]["value"] - out["hand-written"]["value"])
    out["max_abs_grad_difference"] = float((grads["compiled"] - grads["hand-written"]).abs().max())
    out["max_abs_grad"] = float(grads["hand-written"].abs().max())
    return out


def step_times(problem: impsolve.Problem, steps: int, warmup: int, seed: int) -> dict:
    """(a) and (b): per-step time and dynamics evaluations of both, trained side by side."""
    options = problem.checked.training[0]
    a, b, _ = make_pair(problem, seed)
    for k in range(warmup + steps):
        lr = learning_rate(options, k)
        for contender in interleaved(k, (a, b)):
            contender.step(lr)
    timed = {c.name: c.records[warmup:] for c in (a, b)}
    ratios = [ra.seconds / rb.seconds for ra, rb in zip(timed["compiled"], timed["hand-written"])]
    same_nfe = sum((ra.nfe_forward, ra.nfe_backward) == (rb.nfe_forward, rb.nfe_backward)
                   for ra, rb in zip(timed["compiled"], timed["hand-written"]))
    summary = {name: summarise(records) for name, records in timed.items()}
    return {
        "seed": seed, "steps": steps, "warmup": warmup,
        "summary": summary,
        "ratio_of_medians": summary["compiled"]["median_s"] / summary["hand-written"]["median_s"],
        "median_paired_ratio": statistics.median(ratios),
        "steps_with_equal_nfe": same_nfe,
        "records": {name: [asdict(r) for r in c.records] for name, c in (("compiled", a), ("hand-written", b))},
    }


def time_to_optimum(problem: impsolve.Problem, seed: int, cap: int) -> dict:
    """(c): steps and seconds until the objective evaluated in a step is within 0.5% of x*.

    Both train in lockstep (interleaved) with the spec's settings; each stops once it gets there.
    "steps" counts the steps taken including the one whose objective first met the tolerance, and
    "seconds" is their summed step time."""
    options = problem.checked.training[0]
    a, b, _ = make_pair(problem, seed)
    reached: dict[str, dict | None] = {a.name: None, b.name: None}
    elapsed = {a.name: 0.0, b.name: 0.0}
    for k in range(cap):
        lr = learning_rate(options, k)
        for contender in interleaved(k, (a, b)):
            if reached[contender.name] is not None:
                continue
            record = contender.step(lr)
            elapsed[contender.name] += record.seconds
            if not math.isfinite(record.value):
                reached[contender.name] = {"steps": None, "seconds": None, "diverged_at": k + 1}
            elif abs(record.value - X_STAR) <= TOLERANCE * abs(X_STAR):
                reached[contender.name] = {"steps": k + 1, "seconds": elapsed[contender.name],
                                           "value": record.value}
        if all(r is not None for r in reached.values()):
            break
    result = {}
    for c in (a, b):
        got = reached[c.name] or {"steps": None, "seconds": None}
        got.setdefault("value", c.records[-1].value)
        got["steps_run"] = len(c.records)
        got["seconds_run"] = elapsed[c.name]
        got["total_nfe"] = sum(r.nfe_forward + r.nfe_backward for r in c.records)
        result[c.name] = got
    return {"seed": seed, "cap": cap, **result}


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{1e3 * seconds:8.1f}"


def print_report(report: dict) -> None:
    """A readable table of the results."""
    env, ode, train = report["environment"], report["settings"]["ode"], report["settings"]["train"]
    print(f"Zermelo benchmark: compiled spec vs hand-written torch + torchdiffeq "
          f"(torch {env['torch']}, torchdiffeq {env['torchdiffeq']}, {env['torch_threads']} thread(s))")
    print(f"  ode: {ode['method']} rtol={ode['rtol']} atol={ode['atol']} adjoint={ode['adjoint']}; "
          f"train: {train['optimizer']} lr={train['lr']} schedule={train['schedule']} steps={train['steps']}")

    init = report["agreement_at_init"]
    print("\nSame weights, one forward + backward (seed 0):")
    print(f"  x at stop: compiled {init['compiled']['value']:.10f}, hand-written "
          f"{init['hand-written']['value']:.10f} (|diff| {init['abs_value_difference']:.1e})")
    print(f"  max |grad diff| {init['max_abs_grad_difference']:.1e} (max |grad| {init['max_abs_grad']:.1e}); "
          f"nfe fwd/bwd: compiled {init['compiled']['nfe_forward']}/{init['compiled']['nfe_backward']}, "
          f"hand-written {init['hand-written']['nfe_forward']}/{init['hand-written']['nfe_backward']}")

    st = report["step_time"]
    print(f"\n(a, b) Training step, median over {st['steps']} steps after {st['warmup']} warm-up (ms):")
    print(f"  {'':14}{'step':>8}{'p10':>9}{'p90':>9}{'forward':>9}{'backward':>9}"
          f"{'nfe fwd':>9}{'nfe bwd':>9}{'us/nfe':>8}")
    for name, s in st["summary"].items():
        print(f"  {name:14}{_ms(s['median_s'])}{_ms(s['p10_s']):>9}{_ms(s['p90_s']):>9}"
              f"{_ms(s['median_forward_s']):>9}{_ms(s['median_backward_s']):>9}"
              f"{s['median_nfe_forward']:>9g}{s['median_nfe_backward']:>9g}{1e6 * s['median_s_per_nfe']:>8.0f}")
    print(f"  compiled / hand-written: {st['ratio_of_medians']:.3f} (ratio of medians), "
          f"{st['median_paired_ratio']:.3f} (median of per-step ratios); "
          f"equal nfe in {st['steps_with_equal_nfe']}/{st['steps']} steps")

    print(f"\n(c) Time to within {100 * TOLERANCE:g}% of x* = {X_STAR} "
          f"(cap {report['settings']['time_to_optimum_cap']} steps):")
    print(f"  {'seed':>4}  {'compiled steps':>14} {'s':>7}   {'hand-written steps':>18} {'s':>7}")
    for run in report["time_to_optimum"]:
        cells = []
        for name in ("compiled", "hand-written"):
            r = run[name]
            steps = "not reached" if r["steps"] is None else str(r["steps"])
            secs = f"{r['seconds']:.2f}" if r["seconds"] is not None else f"({r['seconds_run']:.1f})"
            cells.append((steps, secs))
        print(f"  {run['seed']:>4}  {cells[0][0]:>14} {cells[0][1]:>7}   {cells[1][0]:>18} {cells[1][1]:>7}")
    totals = report["time_to_optimum_summary"]
    if totals["median_seconds_ratio"] is not None:
        print(f"  median seconds ratio compiled / hand-written (seeds both reached): "
              f"{totals['median_seconds_ratio']:.3f}")


def summarise_runs(runs: list[dict]) -> dict:
    """The median of compiled/hand-written seconds over the seeds where both reached x*."""
    ratios = [r["compiled"]["seconds"] / r["hand-written"]["seconds"] for r in runs
              if r["compiled"]["seconds"] and r["hand-written"]["seconds"]]
    return {"median_seconds_ratio": statistics.median(ratios) if ratios else None, "seeds_both_reached": len(ratios)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None, help="timed training steps for (a, b) (default 50)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed warm-up steps (default 3)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds for (c) (default 3)")
    parser.add_argument("--cap", type=int, default=None,
                        help="step cap for (c) (default: the spec's train steps)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run under a minute: 10 timed steps, 1 seed, (c) capped at 120 steps")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (e.g. 1)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    problem = impsolve.load(SPEC)
    checked = problem.checked
    steps = args.steps or (10 if args.quick else 50)
    warmup = args.warmup if args.warmup is not None else (2 if args.quick else 3)
    seeds = args.seeds or (1 if args.quick else 3)
    cap = args.cap or (min(120, checked.training[0].steps) if args.quick else checked.training[0].steps)

    started = time.perf_counter()
    report: dict = {
        "benchmark": "zermelo",
        "environment": environment(args.threads),
        "settings": {"spec": str(SPEC.relative_to(ROOT)), "ode": checked.ode.model_dump(),
                     "train": checked.training[0].model_dump(), "steps": steps, "warmup": warmup, "seeds": seeds,
                     "time_to_optimum_cap": cap, "x_star": X_STAR, "tolerance": TOLERANCE,
                     "quick": args.quick},
    }
    report["agreement_at_init"] = agreement_at_init(problem, seed=0)
    report["step_time"] = step_times(problem, steps, warmup, seed=0)
    report["time_to_optimum"] = [time_to_optimum(problem, seed, cap) for seed in range(seeds)]
    report["time_to_optimum_summary"] = summarise_runs(report["time_to_optimum"])
    report["wall_seconds"] = time.perf_counter() - started

    print_report(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
    out = args.out.resolve()
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    print(f"\nwall time {report['wall_seconds']:.1f} s; results written to {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

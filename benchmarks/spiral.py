"""Benchmark: specs/spiral.imp (torchdiffeq's ode_demo fitted on time windows) compiled vs the
hand-written demo script with the same settings.

The hand-written contender is the demo's own code (an `nn.Module` vector field net(y**3), `odeint`
on windows of `batch_time` rows from the data's state at the window start, `batch_size` windows per
step) with the spec's settings read from the loaded spec: the same MLP (a copy of the compiled
net's weights), the spec's optimiser (RMSprop, as the demo) and learning-rate schedule, the spec's
window and windows, the spec's solver tolerances,
and the spec's loss (the Gaussian negative log-likelihood of the windowed values with sigma 0.01).
Both draw the same windows at every step, so they follow the same loss history to round-off.
One process, float64, CPU, steps interleaved (AB BA ...).

Measured:
  - (a) the median wall time of one training step and the ratio compiled / hand-written;
    `--backend torchdiffeq` forces the compiled spec onto the torchdiffeq tier (the hand-written
    script always uses torchdiffeq);
  - (b) time to the same loss: every `--every` steps the whole-trajectory RMS error (solved from
    y0, untimed); the summed step time until each first reaches `--target`.

    python benchmarks/spiral.py --quick            # 30 timed steps, no time-to-loss run
    python benchmarks/spiral.py                    # 100 timed steps; then the spec's 2000 steps
    python benchmarks/spiral.py --backend torchdiffeq --quick

prints a table and writes benchmarks/results/spiral.json.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torchdiffeq import odeint

import impsolve
from harness import Contender, environment, interleaved, summarise
from impsolve.runtime.fit import FitResiduals
from impsolve.runtime.fit_windows import WindowedNll
from impsolve.runtime.train import learning_rate, make_optimizer

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "specs" / "spiral.imp"
RESULTS = Path(__file__).resolve().parent / "results" / "spiral.json"
SIGMA = 0.01


class DemoField(nn.Module):
    """The demo's ODEFunc: net(y**3) with the demo's layers (2 -> 50 -> tanh -> 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 50), nn.Tanh(), nn.Linear(50, 2)).double()

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(y ** 3)


class Demo:
    """The hand-written demo: windows of the data solved with torchdiffeq's odeint."""

    def __init__(self, times: torch.Tensor, data: torch.Tensor, weights: dict, window: int, rtol: float,
                 atol: float) -> None:
        self.field = DemoField()
        self.field.net.load_state_dict(weights)
        self.times, self.data, self.window, self.rtol, self.atol = times, data, window, rtol, atol
        self.starts = torch.zeros(1, dtype=torch.long)
        self.evaluations = 0
        self.field.register_forward_hook(lambda *_: self._count())

    def _count(self) -> None:
        self.evaluations += 1

    def loss(self) -> torch.Tensor:
        batch_y0 = self.data[self.starts]                                              # M x 2
        batch_t = self.times[:self.window] - self.times[0]
        batch_y = torch.stack([self.data[self.starts + i] for i in range(self.window)], 0)   # K x M x 2
        pred = odeint(self.field, batch_y0, batch_t, rtol=self.rtol, atol=self.atol, method="dopri5")
        n = batch_y.numel()
        return 0.5 * ((pred - batch_y) ** 2).sum() / SIGMA ** 2 + n * math.log(SIGMA * math.sqrt(2 * math.pi))

    @torch.no_grad()
    def rmse(self) -> float:
        pred = odeint(self.field, self.data[0], self.times, rtol=self.rtol, atol=self.atol, method="dopri5")
        return float(((pred - self.data) ** 2).mean().sqrt())


def contenders(backend: str | None) -> tuple[Contender, Contender, WindowedNll, Demo, FitResiduals]:
    """The compiled spec and the demo, at the same weights and settings."""
    overrides = {"solve.backend": backend} if backend else None
    model = impsolve.load(SPEC, overrides).compile("cpu", "float64", 0)
    phase = model.problem.training[0]
    residuals = FitResiduals(model)
    windowed = WindowedNll(residuals, phase)
    data = torch.stack(residuals.data, -1)
    net = next(iter(model.nets))
    demo = Demo(residuals.times[0], data, net.state_dict(), phase.window, model.problem.ode.rtol,
                model.problem.ode.atol)
    params = [p for p in model.parameters() if p.requires_grad]
    compiled = Contender("compiled", windowed, lambda: model.dynamics.evaluations, params,
                         make_optimizer(params, phase))
    hand_params = list(demo.field.parameters())
    hand = Contender("hand-written", demo.loss, lambda: demo.evaluations, hand_params,
                     make_optimizer(hand_params, phase))
    return compiled, hand, windowed, demo, residuals


def full_rmse(residuals: FitResiduals) -> float:
    with torch.no_grad():
        predictions = residuals.predictions()
    squares = sum(float(((p - d) ** 2).sum()) for p, d in zip(predictions, residuals.data))
    return math.sqrt(squares / sum(d.numel() for d in residuals.data))


def run(steps: int, warmup: int, every: int, target: float | None, backend: str | None) -> dict:
    compiled, hand, windowed, demo, residuals = contenders(backend)
    phase = residuals.model.problem.training[0]
    generator = torch.Generator().manual_seed(0)
    draws = residuals.times[0].numel() - phase.window + 1
    shared = {"starts": None}
    windowed.starts = lambda: shared["starts"]
    reached = {"compiled": None, "hand-written": None}
    elapsed = {"compiled": 0.0, "hand-written": 0.0}
    curve = []
    for step in range(steps):
        shared["starts"] = torch.randint(draws, (phase.windows or 20,), generator=generator)
        demo.starts = shared["starts"]
        for contender in interleaved(step, (compiled, hand)):
            elapsed[contender.name] += contender.step(learning_rate(phase, step)).seconds
        if target is not None and (step + 1) % every == 0:
            errors = {"compiled": full_rmse(residuals), "hand-written": demo.rmse()}
            curve.append({"step": step + 1, **errors})
            for name, error in errors.items():
                if reached[name] is None and error <= target:
                    reached[name] = {"step": step + 1, "seconds": elapsed[name]}
    a, b = summarise(compiled.records[warmup:]), summarise(hand.records[warmup:])
    ratios = [x.seconds / y.seconds for x, y in zip(compiled.records[warmup:], hand.records[warmup:])]
    return {"compiled": a, "hand_written": b, "ratio_of_medians": a["median_s"] / b["median_s"],
            "median_ratio": statistics.median(ratios),
            "loss_agreement": max(abs(x.value - y.value) / abs(y.value) for x, y in zip(compiled.records, hand.records)),
            "solver": residuals.model.solver_report(), "reached": reached, "target": target, "curve": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 100, --target: the spec's)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--every", type=int, default=100, help="steps between two whole-trajectory errors")
    parser.add_argument("--target", type=float, default=0.3, help="whole-trajectory RMS error to reach")
    parser.add_argument("--backend", choices=["torch", "torchdiffeq"], default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="30 timed steps, no time-to-loss run")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    spec_steps = impsolve.load(SPEC).checked.training[0].steps
    steps = args.steps or (30 if args.quick else spec_steps)
    target = None if args.quick else args.target
    start = time.perf_counter()
    result = run(steps, args.warmup, args.every, target, args.backend)
    result.update(settings=vars(args) | {"steps": steps}, environment=environment(args.threads),
                  wall_s=time.perf_counter() - start)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    a, b = result["compiled"], result["hand_written"]
    print(f"spiral: {steps} steps, solver {result['solver']}")
    print(f"  step time   compiled {a['median_s'] * 1e3:.1f} ms   hand-written {b['median_s'] * 1e3:.1f} ms   "
          f"ratio {result['ratio_of_medians']:.3f} (median of per-step ratios {result['median_ratio']:.3f})")
    print(f"  evaluations per step (forward/backward)  compiled {a['median_nfe_forward']:.0f}/"
          f"{a['median_nfe_backward']:.0f}   hand-written {b['median_nfe_forward']:.0f}/{b['median_nfe_backward']:.0f}")
    print(f"  largest relative loss difference {result['loss_agreement']:.2e}")
    if target is not None:
        for name, hit in result["reached"].items():
            where = f"step {hit['step']}, {hit['seconds']:.1f} s of steps" if hit else "not reached"
            print(f"  rmse <= {target}: {name} {where}")
        if result["curve"]:
            print(f"  final rmse: {result['curve'][-1]}")


if __name__ == "__main__":
    main()

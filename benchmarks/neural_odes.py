"""Benchmark: three compiled neural-ODE specs against hand-written torch + torchdiffeq scripts.

For each spec a hand-written module solves the same problem the way one would write it directly:

  isochronism   (report §3)   a batch of 100 initial (q, p), dq/dt = p, dp/dt = f(q) with f the
                              1 -> 16 -> 16 -> 1 tanh MLP, horizon 2 pi;
                              loss mean((q(T) - q(0))^2 + (p(T) - p(0))^2).
  cartpole      (report §4.3) the cart-pole of eq. 4.9 with m = M = L = 1, g = 9.8, from hanging
                              at rest (0, 0, pi, 0), force f = MLP(x, xd, sin phi, cos phi, phid)
                              (5 -> 16 -> 16 -> 1 tanh), horizon 2; loss phi(T)^2 + phid(T)^2.
  cartpole_lqr  (report §4.3) the same cart-pole from (0, 0, 0.1, 0) with f = 10 MLP(x, xd, phi, phid)
                              (4 -> 16 -> 16 -> 1 tanh) and
                              the running cost c' = q_x x^2 + q_phi phi^2 + r f^2 integrated as
                              a fifth ODE state (q_x = 1e-4, q_phi = 100, r = 1e-2); loss c(T).

The solver settings (`checked.ode`) and the first training phase's optimiser settings
(`checked.training[0]`, with its learning-rate schedule) of both contenders are read from the
loaded spec, and the hand-written net starts from a copy of the compiled net's weights (via
state_dict); the isochronism batch is the compiled model's `initial_state()`. Everything runs in
one process, float64, on the CPU, and the two contenders' steps are interleaved (ABAB, the order
swapped on every other step) so that noise from a shared machine hits both alike.

Measured, per spec:
  - agreement at init: objective, gradient and dynamics evaluations of both at the same weights
    (they should agree to round-off, with equal evaluation counts);
  - the wall time of one training step (zero_grad + forward + backward + optimiser step),
    median over N steps after a few warm-up steps, and the ratio compiled / hand-written;
  - dynamics evaluations per step (compiled: `model.dynamics.evaluations`), forward and backward.

    python benchmarks/neural_odes.py [--steps N] [--quick] [--threads T] [--only NAME]

prints a table and writes benchmarks/results/neural_odes.json. Unlike zermelo.py it runs torch on
one thread unless told otherwise (`--threads 0` keeps torch's default): the nets are 16 wide and
the batches at most 100, so intra-op parallelism has nothing to gain, and on a shared 2-core
machine OpenMP's waiting threads made the batched isochronism step ~200x slower (10 s instead of
50 ms) while the batch-1 cart-poles were unaffected.
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
from torchdiffeq import odeint, odeint_adjoint

import impsolve
from harness import Contender, environment, interleaved, summarise
from impsolve.dsl.options import OdeOptions, TrainOptions
from impsolve.runtime.model import CompiledProblem
from impsolve.runtime.train import learning_rate, make_optimizer

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "neural_odes.json"
DTYPE = torch.float64
DEVICE = torch.device("cpu")

# Cart-pole constants (eq. 4.9) and the LQR running-cost weights, as the specs set them.
M_POLE, M_CART, LENGTH, GRAVITY = 1.0, 1.0, 1.0, 9.8
Q_X, Q_PHI, R_F = 1e-4, 100.0, 1e-2
FORCE_UNIT = 10.0   # cartpole_lqr: the net gives the force in units of 10 N


def mlp(n_inputs: int) -> nn.Sequential:
    """The specs' net: n_inputs -> 16 -> 16 -> 1 with tanh, in float64 on the CPU."""
    net = nn.Sequential(nn.Linear(n_inputs, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1))
    return net.to(device=DEVICE, dtype=DTYPE)


# ---------------------------------------------------------------------------------------------
# The hand-written contenders
# ---------------------------------------------------------------------------------------------
class HandWritten(nn.Module):
    """A neural ODE written directly with torch and torchdiffeq.

    The module is the ODE right-hand side (so that an adjoint solve finds the net's parameters)
    and counts its evaluations; `objective()` integrates from `s0` over [0, horizon] with the
    spec's solver settings and returns the loss."""

    def __init__(self, ode: OdeOptions, net: nn.Module, s0: torch.Tensor, horizon: float) -> None:
        super().__init__()
        self.net = net
        self.ode = ode
        self.register_buffer("s0", s0)
        self.horizon = horizon
        self.evaluations = 0

    def rhs(self, s: torch.Tensor) -> torch.Tensor:
        """ds/dt (the problems are autonomous)."""
        raise NotImplementedError

    def loss(self, s0: torch.Tensor, sT: torch.Tensor) -> torch.Tensor:
        """The scalar to minimise, from the initial and final states."""
        raise NotImplementedError

    def forward(self, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        self.evaluations += 1
        return self.rhs(s)

    def objective(self) -> torch.Tensor:
        """Integrate to the horizon and return the loss."""
        times = torch.tensor([0.0, self.horizon], dtype=DTYPE, device=DEVICE)
        solver = odeint_adjoint if self.ode.adjoint else odeint
        options = {"step_size": self.ode.step_size} if self.ode.step_size is not None else None
        states = solver(self, self.s0, times, method=self.ode.method, rtol=self.ode.rtol, atol=self.ode.atol,
                        options=options)
        return self.loss(self.s0, states[-1])


class HandWrittenIsochronism(HandWritten):
    """dq/dt = p, dp/dt = f(q) for a batch of (q, p); loss: mean squared return error after 2 pi."""

    def __init__(self, ode: OdeOptions, s0: torch.Tensor) -> None:
        super().__init__(ode, mlp(1), s0, 2 * math.pi)

    def rhs(self, s: torch.Tensor) -> torch.Tensor:
        q, p = s[..., 0], s[..., 1]
        return torch.stack((p, self.net(q.unsqueeze(-1)).squeeze(-1)), -1)

    def loss(self, s0: torch.Tensor, sT: torch.Tensor) -> torch.Tensor:
        return ((sT - s0) ** 2).sum(-1).mean()


class HandWrittenCartPole(HandWritten):
    """The cart-pole (eq. 4.9), state (x, xd, phi, phid), phi = 0 upright, force
    f = net(x, xd, sin phi, cos phi, phid); swing up from hanging at rest, loss phi(T)^2 + phid(T)^2."""

    def __init__(self, ode: OdeOptions, s0: tuple[float, ...] = (0.0, 0.0, math.pi, 0.0), inputs: int = 5) -> None:
        super().__init__(ode, mlp(inputs), torch.tensor(s0, dtype=DTYPE, device=DEVICE), 2.0)

    def features(self, s: torch.Tensor) -> torch.Tensor:
        """The net's inputs: the angle as its sine and cosine."""
        phi = s[..., 2]
        return torch.stack((s[..., 0], s[..., 1], torch.sin(phi), torch.cos(phi), s[..., 3]), -1)

    def force(self, s: torch.Tensor) -> torch.Tensor:
        """The horizontal force on the cart."""
        return self.net(self.features(s)).squeeze(-1)

    @staticmethod
    def mechanics(s: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """Eq. 4.9: d/dt (x, xd, phi, phid) under the force f."""
        xd, phi, phid = s[..., 1], s[..., 2], s[..., 3]
        sin, cos = torch.sin(phi), torch.cos(phi)
        den = M_CART + M_POLE * sin ** 2
        xdd = (f + M_POLE * sin * (LENGTH * phid ** 2 - GRAVITY * cos)) / den
        phidd = ((-f * cos - M_POLE * LENGTH * phid ** 2 * sin * cos + (M_CART + M_POLE) * GRAVITY * sin)
                 / (LENGTH * den))
        return torch.stack((xd, xdd, phid, phidd), -1)

    def rhs(self, s: torch.Tensor) -> torch.Tensor:
        return self.mechanics(s, self.force(s))

    def loss(self, s0: torch.Tensor, sT: torch.Tensor) -> torch.Tensor:
        return sT[..., 2] ** 2 + sT[..., 3] ** 2


class HandWrittenCartPoleLQR(HandWrittenCartPole):
    """Balancing near upright: f = 10 net(state), and the running cost
    q_x x^2 + q_phi phi^2 + r f^2 integrated as a fifth state c; loss c(T)."""

    def __init__(self, ode: OdeOptions) -> None:
        super().__init__(ode, (0.0, 0.0, 0.1, 0.0, 0.0), inputs=4)

    def features(self, s: torch.Tensor) -> torch.Tensor:
        return s[..., :4]

    def force(self, s: torch.Tensor) -> torch.Tensor:
        return FORCE_UNIT * super().force(s)

    def rhs(self, s: torch.Tensor) -> torch.Tensor:
        f = self.force(s)
        cost = Q_X * s[..., 0] ** 2 + Q_PHI * s[..., 2] ** 2 + R_F * f ** 2
        return torch.cat((self.mechanics(s, f), cost.unsqueeze(-1)), -1)

    def loss(self, s0: torch.Tensor, sT: torch.Tensor) -> torch.Tensor:
        return sT[..., 4]


def hand_written(name: str, ode: OdeOptions, compiled: CompiledProblem) -> HandWritten:
    """The hand-written module for spec `name`."""
    if name == "isochronism":
        return HandWrittenIsochronism(ode, compiled.initial_state().detach().clone())
    if name == "cartpole":
        return HandWrittenCartPole(ode)
    if name == "cartpole_lqr":
        return HandWrittenCartPoleLQR(ode)
    raise KeyError(name)


SPECS = ("isochronism", "cartpole", "cartpole_lqr")


# ---------------------------------------------------------------------------------------------
# The two contenders behind one interface
# ---------------------------------------------------------------------------------------------


def make_pair(name: str, problem: impsolve.Problem, seed: int) -> tuple[Contender, Contender]:
    """The compiled module (initialised with `seed`) and the hand-written one with the same weights."""
    checked = problem.checked
    train: TrainOptions = checked.training[0]
    if train.optimizer != "adam":
        raise SystemExit(f"{name}: the hand-written side uses Adam; the spec's first phase is {train.optimizer}")
    compiled: CompiledProblem = problem.compile(device="cpu", dtype="float64", seed=seed)
    if compiled.problem.objective.sense != "minimize":
        raise SystemExit(f"{name}: the spec no longer minimises its objective")
    hand = hand_written(name, checked.ode, compiled)
    hand.net.load_state_dict(compiled.nets[0].state_dict())

    compiled_params = [p for p in compiled.parameters() if p.requires_grad]
    hand_params = list(hand.parameters())
    a = Contender("compiled", compiled, lambda: compiled.dynamics.evaluations, compiled_params,
                  make_optimizer(compiled_params, train), train.clip)
    b = Contender("hand-written", hand.objective, lambda: hand.evaluations, hand_params,
                  torch.optim.Adam(hand_params, lr=train.lr, betas=train.betas), train.clip)
    return a, b


# ---------------------------------------------------------------------------------------------
# The measurements
# ---------------------------------------------------------------------------------------------
def agreement_at_init(name: str, problem: impsolve.Problem, seed: int) -> dict:
    """Objective, gradient and evaluation counts of both at the same initial weights (sanity check)."""
    pair = make_pair(name, problem, seed)
    out: dict = {}
    grads = {}
    for c in pair:
        n0 = c.evaluations()
        value = c.loss()
        n1 = c.evaluations()
        value.backward()
        n2 = c.evaluations()
        grads[c.name] = torch.cat([p.grad.reshape(-1) for p in c.params])
        out[c.name] = {"value": float(value.detach()), "nfe_forward": n1 - n0, "nfe_backward": n2 - n1}
    out["abs_value_difference"] = abs(out["compiled"]["value"] - out["hand-written"]["value"])
    out["rel_value_difference"] = out["abs_value_difference"] / max(abs(out["hand-written"]["value"]), 1e-300)
    out["max_abs_grad_difference"] = float((grads["compiled"] - grads["hand-written"]).abs().max())
    out["max_abs_grad"] = float(grads["hand-written"].abs().max())
    return out


def step_times(name: str, problem: impsolve.Problem, steps: int, warmup: int, seed: int) -> dict:
    """Per-step time and dynamics evaluations of both, trained side by side (first phase's settings)."""
    options = problem.checked.training[0]
    a, b = make_pair(name, problem, seed)
    for k in range(warmup + steps):
        lr = learning_rate(options, k)
        for contender in interleaved(k, (a, b)):
            contender.step(lr)
    timed = {c.name: c.records[warmup:] for c in (a, b)}
    ratios = [ra.seconds / rb.seconds for ra, rb in zip(timed["compiled"], timed["hand-written"])]
    same_nfe = sum((ra.nfe_forward, ra.nfe_backward) == (rb.nfe_forward, rb.nfe_backward)
                   for ra, rb in zip(timed["compiled"], timed["hand-written"]))
    summary = {c: summarise(records) for c, records in timed.items()}
    return {
        "seed": seed, "steps": steps, "warmup": warmup,
        "summary": summary,
        "ratio_of_medians": summary["compiled"]["median_s"] / summary["hand-written"]["median_s"],
        "median_paired_ratio": statistics.median(ratios),
        "steps_with_equal_nfe": same_nfe,
        "final_values": {c.name: c.records[-1].value for c in (a, b)},
        "records": {c.name: [asdict(r) for r in c.records] for c in (a, b)},
    }


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{1e3 * seconds:.1f}"


def _nfe(summary: dict) -> str:
    return f"{summary['median_nfe_forward']:g}/{summary['median_nfe_backward']:g}"


def print_report(report: dict) -> None:
    """A readable table of the results."""
    env = report["environment"]
    steps, warmup = report["settings"]["steps"], report["settings"]["warmup"]
    print(f"Neural-ODE benchmark: compiled specs vs hand-written torch + torchdiffeq "
          f"(torch {env['torch']}, torchdiffeq {env['torchdiffeq']}, {env['torch_threads']} thread(s))")
    for name, spec in report["specs"].items():
        ode, train = spec["ode"], spec["train"]
        print(f"  {name}: ode {ode['method']} rtol={ode['rtol']} atol={ode['atol']} adjoint={ode['adjoint']}; "
              f"train {train['optimizer']} lr={train['lr']} schedule={train['schedule']}")

    print("\nSame weights, one forward + backward (seed 0):")
    print(f"  {'spec':14}{'objective (compiled)':>22}{'rel |diff|':>12}{'max |grad diff|':>17}{'max |grad|':>12}"
          f"{'nfe fwd/bwd c / h':>20}")
    for name, spec in report["specs"].items():
        init = spec["agreement_at_init"]
        nfe = (f"{init['compiled']['nfe_forward']}/{init['compiled']['nfe_backward']} / "
               f"{init['hand-written']['nfe_forward']}/{init['hand-written']['nfe_backward']}")
        print(f"  {name:14}{init['compiled']['value']:>22.12g}{init['rel_value_difference']:>12.1e}"
              f"{init['max_abs_grad_difference']:>17.1e}{init['max_abs_grad']:>12.1e}{nfe:>20}")

    print(f"\nTraining step (zero_grad + forward + backward + Adam step), median over {steps} steps "
          f"after {warmup} warm-up, ms:")
    header = (f"  {'spec':14}{'compiled':>10}{'hand':>10}{'ratio':>8}{'paired':>8}"
              f"{'c fwd':>9}{'c bwd':>9}{'h fwd':>9}{'h bwd':>9}{'nfe c':>8}{'nfe h':>8}{'same nfe':>10}")
    print(header)
    for name, spec in report["specs"].items():
        st = spec["step_time"]
        c, h = st["summary"]["compiled"], st["summary"]["hand-written"]
        print(f"  {name:14}{_ms(c['median_s']):>10}{_ms(h['median_s']):>10}{st['ratio_of_medians']:>8.3f}"
              f"{st['median_paired_ratio']:>8.3f}{_ms(c['median_forward_s']):>9}{_ms(c['median_backward_s']):>9}"
              f"{_ms(h['median_forward_s']):>9}{_ms(h['median_backward_s']):>9}{_nfe(c):>8}{_nfe(h):>8}"
              f"{st['steps_with_equal_nfe']:>6}/{st['steps']}")
    print("  ratio: compiled / hand-written (ratio of medians); paired: median of per-step ratios; "
          "nfe: dynamics evaluations per step, forward/backward")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None, help="timed training steps per spec (default 40)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed warm-up steps (default 3)")
    parser.add_argument("--quick", action="store_true", help="a smoke run under a minute: 6 timed steps, 2 warm-up")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads (default 1; 0 keeps torch's default). These problems are "
                             "tiny, and on a busy machine intra-op threads make steps up to ~200x slower")
    parser.add_argument("--only", choices=SPECS, action="append", default=None,
                        help="run only this spec (may be repeated)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or (6 if args.quick else 40)
    warmup = args.warmup if args.warmup is not None else (2 if args.quick else 3)
    names = [n for n in SPECS if args.only is None or n in args.only]

    started = time.perf_counter()
    report: dict = {
        "benchmark": "neural_odes",
        "environment": environment(args.threads),
        "settings": {"steps": steps, "warmup": warmup, "quick": args.quick, "only": args.only},
        "specs": {},
    }
    for name in names:
        spec = ROOT / "specs" / f"{name}.imp"
        problem = impsolve.load(spec)
        checked = problem.checked
        report["specs"][name] = {
            "spec": str(spec.relative_to(ROOT)),
            "ode": checked.ode.model_dump(), "train": checked.training[0].model_dump(),
            "agreement_at_init": agreement_at_init(name, problem, seed=0),
            "step_time": step_times(name, problem, steps, warmup, seed=0),
        }
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

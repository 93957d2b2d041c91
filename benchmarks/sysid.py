"""Benchmark: the identification study's planning of `specs/sysid.imp` against a hand-written torch loop.

The planning problem of one epoch of length T (report eq. 5.22), for 2R independent copies (the
adaptive and oracle planners of R realisations, as the study batches them):

    x_{t+1} = Â x_t + B u_t + w_t,   x_0 = 0,   u_t = γ normalize(MLP(x_t, t/T)),
    maximize  smin(Σ_{t<T} x_t x_tᵀ)   with Adam,

MLP 4 -> 16 -> 16 -> 3 with tanh, one weight set per copy. The hand-written contender is what one
would write directly: batched weights (2R x in x out) applied with `torch.baddbmm`, the same
noise, estimate and initial weights as the compiled planner (so both compute the same numbers,
checked at the first step), and the spec's `train adam(...)` settings. The compiled contender is
`runtime.identify.Study.plan`, the code the study runs. Every copy plans with the true A (an
estimate near this Jordan block can be unstable, and then the timings measure overflow). Both run
in one process with one torch thread (as the study does on the CPU), after two warm-up steps each;
each epoch is timed `--repeats` times per contender, alternating which goes first, and the fastest
run of each counts, in CPU seconds of this process (the development machine is shared: wall times
of single runs vary by tens of percent; they are kept in the JSON too).

    python benchmarks/sysid.py [--realizations R] [--steps N] [--epochs E] [--repeats K] [--quick]

prints the planning CPU time per epoch and the ratio compiled / hand-written, and writes
benchmarks/results/sysid.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

import impsolve
from impsolve.dsl.options import TrainOptions
from impsolve.runtime.identify import Study, one_thread
from impsolve.runtime.rollout import DiscreteProblem
from impsolve.runtime.train import learning_rate

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "sysid.imp"
RESULTS = Path(__file__).resolve().parent / "results" / "sysid.json"


class HandWritten:
    """The planning loop written directly in torch, on copies of the compiled planner's weights."""

    def __init__(self, planner: DiscreteProblem, B: torch.Tensor, gamma: float) -> None:
        net = planner.nets[0]
        self.weights = [w.detach().clone().requires_grad_() for w in net.weights]
        self.biases = [b.detach().clone().requires_grad_() for b in net.biases]
        self.estimate = planner.estimate.detach().reshape(planner.estimate.shape[0], 1, 3, 3)
        self.noise = planner.noise.detach().clone()
        self.B, self.gamma = B, gamma

    def parameters(self) -> list[torch.Tensor]:
        return [*self.weights, *self.biases]

    def policy(self, x: torch.Tensor, t: float, T: float) -> torch.Tensor:
        h = torch.cat([x, torch.full_like(x[..., :1], t / T)], -1)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < len(self.weights) - 1:
                h = torch.tanh(h)
        return self.gamma * h / h.norm(dim=-1, keepdim=True)

    def objective(self) -> torch.Tensor:
        """smin of the Gram matrix of each copy (copies,)."""
        T = self.noise.shape[0]
        x = torch.zeros(self.noise.shape[1:], dtype=self.noise.dtype)
        states = []
        A_T = self.estimate[:, 0].transpose(-1, -2)
        for t in range(T):
            states.append(x)
            x = x @ A_T + self.policy(x, t, T) @ self.B.T + self.noise[t]
        X = torch.stack(states, 1)                                  # copies x T x rollouts x d
        gram = torch.einsum("ctri,ctrj->crij", X, X)
        return torch.linalg.svdvals(gram)[..., -1].mean(-1)


def hand_written_plan(contender: HandWritten, options: TrainOptions) -> list[float]:
    optimizer = torch.optim.Adam(contender.parameters(), lr=options.lr, betas=options.betas)
    history = []
    for step in range(options.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(options, step)
        optimizer.zero_grad(set_to_none=True)
        values = contender.objective()
        (-values.sum()).backward()
        optimizer.step()
        history.append(float(values.detach().mean()))
    return history


def time_epoch(study: Study, contender: HandWritten, plan: tuple, options: TrainOptions,
               repeats: int) -> tuple[dict[str, list[float]], list[float], list[float]]:
    """CPU seconds of each timed run of both contenders (the order alternates; wall seconds under
    "..._wall"), and their last histories. `plan` is study.plan's (T, estimate, epoch); a repeat
    trains on from the current weights."""
    times: dict[str, list[float]] = {"compiled": [], "hand_written": [], "compiled_wall": [], "hand_written_wall": []}
    compiled_history, hand_history = [], []
    for repeat in range(repeats):
        for name in ("hand_written", "compiled") if repeat % 2 == 0 else ("compiled", "hand_written"):
            if name == "hand_written":
                rival = contender if repeat == 0 else HandWritten(study.planner, contender.B, contender.gamma)
                start, cpu = time.perf_counter(), time.process_time()
                hand_history = hand_written_plan(rival, options)
            else:
                before = len(study.history)
                start, cpu = time.perf_counter(), time.process_time()
                study.plan(*plan)
                compiled_history = study.history[before:]
            times[name].append(time.process_time() - cpu)
            times[f"{name}_wall"].append(time.perf_counter() - start)
    return times, compiled_history, hand_history


def run(realizations: int, steps: int | None, epochs: int | None, seed: int, repeats: int = 1) -> dict:
    problem = impsolve.load(SPEC, {"train.steps": str(steps)} if steps else None)
    model = problem.compile(device="cpu", seed=seed)
    options = problem.checked.training[0]
    B, gamma = torch.eye(3, dtype=torch.float64), 1.0           # the spec's constants
    study = Study(model, realizations, seed, quiet=True)
    estimate = study.truth.reshape(1, 9).expand(realizations, 9)    # every copy plans with the true A
    warm_up = TrainOptions.model_validate({**options.model_dump(), "steps": 2})
    study.planner.set_steps(study.lengths[0])
    hand_written_plan(HandWritten(study.planner, B, gamma), warm_up)
    study.train_planner([warm_up])
    lengths = study.lengths[1:][:epochs] if epochs else study.lengths[1:]
    rows = []
    for epoch, T in enumerate(lengths, start=1):
        study.planner.estimate = torch.cat([estimate, estimate]).unsqueeze(1)       # as study.plan sets it
        study.planner.set_steps(T)
        contender = HandWritten(study.planner, B, gamma)
        with torch.no_grad():
            compiled_value = study.planner.objectives(study.planner.solve())
            hand_value = contender.objective()
        agreement = float((compiled_value - hand_value).abs().max() / hand_value.abs().max())
        times, compiled_history, hand_history = time_epoch(study, contender, (T, estimate, epoch), options, repeats)
        compiled_seconds, hand_seconds = min(times["compiled"]), min(times["hand_written"])
        rows.append({"epoch": epoch, "T": T, "training_steps": options.steps, "runs_s": times,
                     "compiled_s": compiled_seconds, "hand_written_s": hand_seconds,
                     "ratio": compiled_seconds / hand_seconds, "relative_difference_at_start": agreement,
                     "final_objective": {"compiled": compiled_history[-1], "hand_written": hand_history[-1]}})
        print(f"  epoch {epoch}: T={T:4d}  compiled {compiled_seconds:7.2f} CPU s  "
              f"hand-written {hand_seconds:7.2f} CPU s  "
              f"ratio {compiled_seconds / hand_seconds:5.2f}  (objectives agree to {agreement:.1e} at the start)",
              flush=True)
    total = sum(r["compiled_s"] for r in rows) / sum(r["hand_written_s"] for r in rows)
    return {"realizations": realizations, "copies": 2 * realizations, "repeats": repeats, "epochs": rows,
            "total_ratio": total}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--realizations", type=int, default=50, help="R (the planner trains 2R copies; default 50)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per epoch (default: the spec's)")
    parser.add_argument("--epochs", type=int, default=None, help="only the first epochs (default: all)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: R=10, 10 steps, 3 epochs")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs of each contender per epoch, alternating; the fastest counts (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    realizations, steps, epochs = (10, 10, 3) if args.quick else (args.realizations, args.steps, args.epochs)
    repeats = 1 if args.quick else args.repeats
    print(f"sysid planning: compiled study vs hand-written torch, {2 * realizations} copies, one thread")
    with one_thread(torch.device("cpu")):
        report = run(realizations, steps, epochs, args.seed, repeats)
    report["environment"] = {"python": platform.python_version(), "torch": torch.__version__,
                             "impsolve": impsolve.__version__, "platform": platform.platform()}
    print(f"  all epochs: compiled / hand-written = {report['total_ratio']:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"  results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

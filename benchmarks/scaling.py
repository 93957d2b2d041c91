"""Benchmark: how compile time, step time and memory grow with the size of vectors (issue 11).

Two problems, each compiled by impsolve and written by hand, trained side by side in one process
(steps interleaved ABAB with the order swapped every other step, `harness.interleaved`):

  node  neural ODE  der(z) = tanh(W @ z) - z, state z[n] = 1, param W[n, n] = 0.1 randn(),
        horizon 1, dopri5 rtol 1e-6 atol 1e-8, minimize sum(z(T)^2); hand-written: the same
        right-hand side `torch.tanh(z @ W.T) - z` with torchdiffeq.odeint (backprop through the
        solver), n in {8, 32, 128, 512, 2048};
  deq   deep-equilibrium layer  solve z[n]: z = tanh(W @ z + x), param W[n, n] = (0.3 / sqrt(n)) randn(),
        param x[n] = randn(), minimize sum((z - 0.5)^2); hand-written: Newton with the analytic
        Jacobian I - diag(1 - z^2) W and the implicit-function-theorem backward (one solve with J),
        n in {8, 64, 256, 1024}.

Both contenders start from the compiled model's initial weights. Per n it prints: which path the
size rule chose (scalar or tensor), the compile seconds (parse + check + lower + generate), the
median step seconds of each, their ratio, and the peak memory of a step: on CUDA
torch.cuda.max_memory_allocated, on the CPU the growth of the resident memory during the step (sampled every
millisecond; memory the allocator reuses from an earlier step does not count, so small sizes read 0).

    python benchmarks/scaling.py [--steps N] [--device cpu|cuda] [--only node|deq] [--sizes 8,32]

writes benchmarks/results/scaling.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from pathlib import Path

import torch
from torch import nn
from torchdiffeq import odeint

import impsolve
from harness import Contender, environment, interleaved, summarise

RESULTS = Path(__file__).resolve().parent / "results" / "scaling.json"
SIZES = {"node": [8, 32, 128, 512, 2048], "deq": [8, 64, 256, 1024]}


def node_spec(n: int) -> str:
    return f"""problem node{n} "neural ODE, n = {n}"
const n = {n}
state z[n] = 1
param W[n, n] = 0.1 * randn()
der(z) = tanh(W @ z) - z
horizon 1
solve ode(method=dopri5, rtol=1e-6, atol=1e-8)
minimize sum(z(T)^2)
train adam(lr=0.01, steps=10)
"""


def deq_spec(n: int) -> str:
    return f"""problem deq{n} "deep-equilibrium layer, n = {n}"
const n = {n}
param W[n, n] = {0.3 / math.sqrt(n)!r} * randn()
param x[n] = randn()
solve z[n]: z = tanh(W @ z + x)
minimize sum((z - 0.5)^2)
train adam(lr=0.01, steps=10)
"""


class HandNode(nn.Module):
    """The neural ODE as one would write it with torchdiffeq."""

    def __init__(self, W: torch.Tensor, n: int) -> None:
        super().__init__()
        self.W = nn.Parameter(W.detach().clone())
        self.z0 = torch.ones(1, n, dtype=W.dtype, device=W.device)
        self.evaluations = 0

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        self.evaluations += 1
        return torch.tanh(z @ self.W.T) - z

    def loss(self) -> torch.Tensor:
        times = torch.tensor([0.0, 1.0], dtype=self.W.dtype, device=self.W.device)
        zT = odeint(self, self.z0, times, method="dopri5", rtol=1e-6, atol=1e-8)[-1]
        return (zT ** 2).sum()


class HandDeq(nn.Module):
    """The DEQ layer as one would write it: Newton forward, IFT backward with the analytic Jacobian."""

    def __init__(self, W: torch.Tensor, x: torch.Tensor, tol: float) -> None:
        super().__init__()
        self.W, self.x = nn.Parameter(W.detach().clone()), nn.Parameter(x.detach().clone())
        self.tol = tol
        self.evaluations = 0

    def jacobian(self, z: torch.Tensor) -> torch.Tensor:
        a = torch.tanh(self.W @ z + self.x)
        return torch.eye(len(z), dtype=z.dtype, device=z.device) - (1 - a ** 2)[:, None] * self.W

    def loss(self) -> torch.Tensor:
        with torch.no_grad():
            z = torch.zeros_like(self.x)
            for _ in range(100):
                phi = z - torch.tanh(self.W @ z + self.x)
                self.evaluations += 1
                if float(phi.abs().max()) <= self.tol:
                    break
                z = z - torch.linalg.solve(self.jacobian(z), phi)
        J = self.jacobian(z).detach()
        z = z - torch.linalg.solve(J, z - torch.tanh(self.W @ z + self.x))
        return ((z - 0.5) ** 2).sum()


def _rss() -> int:
    """The resident memory of this process in bytes (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_memory(contender: Contender, device: torch.device) -> int:
    """Peak bytes of one step above the memory before it: CUDA's allocator peak, or on the CPU the
    resident memory sampled every millisecond by a thread (torch releases the GIL in its kernels)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        contender.step(0.0)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    base, peak, done = _rss(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.001)

    thread = threading.Thread(target=sample)
    thread.start()
    contender.step(0.0)
    done.set()
    thread.join()
    return max(0, max(peak[0], _rss()) - base)


def contenders(kind: str, n: int, device: torch.device) -> tuple[dict, Contender, Contender]:
    start = time.perf_counter()
    problem = impsolve.load(node_spec(n) if kind == "node" else deq_spec(n))
    compile_s = time.perf_counter() - start
    model = problem.compile(str(device), "float64", 0)
    params = list(model.parameters())
    if kind == "node":
        hand = HandNode(params[0], n)
        compiled_evaluations = lambda: model.dynamics.evaluations   # noqa: E731
    else:
        tol = problem.program.problem.tensor.implicits[0].options.tol if problem.program.problem.tensor \
            else problem.program.problem.implicits[0].options.tol
        hand = HandDeq(params[0], params[1], tol)
        compiled_evaluations = lambda: 0   # noqa: E731
    hand_params = list(hand.parameters())
    compiled = Contender("compiled", model, compiled_evaluations, params, torch.optim.Adam(params, lr=0.01))
    written = Contender("hand-written", hand.loss, lambda: hand.evaluations, hand_params,
                        torch.optim.Adam(hand_params, lr=0.01))
    path = "tensor" if "(tensor path)" in problem.source() else "scalar"
    return {"compile_s": compile_s, "path": path, "source_bytes": len(problem.source()),
            "value_compiled": float(model().detach()), "value_hand": float(hand.loss().detach())}, compiled, written


def measure(kind: str, n: int, steps: int, device: torch.device) -> dict:
    """Compile, then interleave training steps of both contenders; medians after two warm-up steps."""
    row, compiled, written = contenders(kind, n, device)
    row["peak_compiled_bytes"] = peak_memory(compiled, device)
    row["peak_hand_bytes"] = peak_memory(written, device)
    for pair_step in range(steps + 2):
        for contender in interleaved(pair_step, (compiled, written)):
            contender.step(0.01)
    row["compiled"] = summarise(compiled.records[3:])
    row["hand"] = summarise(written.records[3:])
    row["ratio"] = row["compiled"]["median_s"] / row["hand"]["median_s"]
    return {"kind": kind, "n": n, **row}


def print_row(r: dict) -> None:
    print(f"{r['kind']:>4} {r['n']:>5} {r['path']:>6} {r['compile_s']:>9.2f} {r['compiled']['median_s'] * 1e3:>11.1f} "
          f"{r['hand']['median_s'] * 1e3:>11.1f} {r['ratio']:>6.2f} {r['peak_compiled_bytes'] / 2 ** 20:>11.1f} "
          f"{r['peak_hand_bytes'] / 2 ** 20:>9.1f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", choices=list(SIZES))
    parser.add_argument("--sizes", help="comma-separated sizes (default: the issue's)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print("kind     n   path compile_s compiled_ms    hand_ms  ratio peak_c_MiB peak_h_MiB")
    rows = []
    for kind in [args.only] if args.only else list(SIZES):
        sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else SIZES[kind]
        for n in sizes:
            rows.append(measure(kind, n, args.steps, device))
            print_row(rows[-1])
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"environment": environment(args.threads), "device": str(device),
                                   "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write specs/data/lotka_volterra.csv: the predator-prey model (alpha=1.5, beta=1, gamma=3,
delta=1, x0=y0=1) sampled at t = 0.25, 0.5, ..., 10 with Gaussian noise of std 0.2 (seeded).

    python tools/make_lotka_volterra_data.py [--seed 0] [--out specs/data/lotka_volterra.csv]

The truth is integrated with scipy-free RK4 on a fine grid (1e-3), far below the noise.
"""
from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

TRUTH = {"alpha": 1.5, "beta": 1.0, "gamma": 3.0, "delta": 1.0, "x0": 1.0, "y0": 1.0}
SIGMA = 0.2
TIMES = [0.25 * k for k in range(1, 41)]


def rates(x: float, y: float, p: dict[str, float]) -> tuple[float, float]:
    return p["alpha"] * x - p["beta"] * x * y, -p["gamma"] * y + p["delta"] * x * y


def trajectory(times: list[float], p: dict[str, float] = TRUTH, h: float = 1e-3) -> list[tuple[float, float]]:
    """(x, y) at each of the (increasing) times, by classical RK4 with step h."""
    x, y, t, out = p["x0"], p["y0"], 0.0, []
    for target in times:
        while t < target - 1e-12:
            step = min(h, target - t)
            k1 = rates(x, y, p)
            k2 = rates(x + step / 2 * k1[0], y + step / 2 * k1[1], p)
            k3 = rates(x + step / 2 * k2[0], y + step / 2 * k2[1], p)
            k4 = rates(x + step * k3[0], y + step * k3[1], p)
            x += step / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
            y += step / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
            t += step
        out.append((x, y))
    return out


def noisy_rows(seed: int, clean: list[tuple[float, float]] | None = None) -> list[list[float]]:
    """Rows t, prey, predator with seeded Gaussian noise of std SIGMA."""
    rng = random.Random(seed)
    clean = clean or trajectory(TIMES)
    return [[t, x + rng.gauss(0, SIGMA), y + rng.gauss(0, SIGMA)] for t, (x, y) in zip(TIMES, clean)]


def write(path: Path, rows: list[list[float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["t", "prey", "predator"])
        writer.writerows([[f"{v:.6g}" for v in row] for row in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "specs/data/lotka_volterra.csv"))
    args = parser.parse_args()
    write(Path(args.out), noisy_rows(args.seed))


if __name__ == "__main__":
    main()

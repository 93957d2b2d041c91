"""Write specs/data/spiral.csv: torchdiffeq's ode_demo spiral, dy/dt = (y^3) A with
A = [[-0.1, 2], [-2, -0.1]] (y a row vector), y0 = (2, 0), sampled at 1,000 evenly spaced times in
[0, 25], with Gaussian noise of std 0.01 (seeded).

    python tools/make_spiral_data.py [--seed 0] [--out specs/data/spiral.csv]

The truth is integrated with classical RK4 on a grid 20 times finer than the samples (step
1.25e-3), far below the noise.
"""
from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

A = ((-0.1, 2.0), (-2.0, -0.1))
Y0 = (2.0, 0.0)
POINTS, END, SIGMA, SUBSTEPS = 1000, 25.0, 0.01, 20
TIMES = [END * k / (POINTS - 1) for k in range(POINTS)]


def rates(y: tuple[float, float]) -> tuple[float, float]:
    """(y^3) A with y a row vector."""
    c0, c1 = y[0] ** 3, y[1] ** 3
    return c0 * A[0][0] + c1 * A[1][0], c0 * A[0][1] + c1 * A[1][1]


def trajectory() -> list[tuple[float, float]]:
    """y at each of TIMES by classical RK4, SUBSTEPS steps between two samples."""
    y, out = Y0, [Y0]
    h = (TIMES[1] - TIMES[0]) / SUBSTEPS
    for _ in TIMES[1:]:
        for _ in range(SUBSTEPS):
            k1 = rates(y)
            k2 = rates((y[0] + h / 2 * k1[0], y[1] + h / 2 * k1[1]))
            k3 = rates((y[0] + h / 2 * k2[0], y[1] + h / 2 * k2[1]))
            k4 = rates((y[0] + h * k3[0], y[1] + h * k3[1]))
            y = tuple(y[i] + h / 6 * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]) for i in range(2))
        out.append(y)
    return out


def noisy_rows(seed: int) -> list[list[float]]:
    """Rows t, y0, y1 with seeded Gaussian noise of std SIGMA."""
    rng = random.Random(seed)
    return [[t, y0 + rng.gauss(0, SIGMA), y1 + rng.gauss(0, SIGMA)] for t, (y0, y1) in zip(TIMES, trajectory())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "specs/data/spiral.csv"))
    args = parser.parse_args()
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["t", "y0", "y1"])
        writer.writerows([[f"{t:.10g}", f"{y0:.6g}", f"{y1:.6g}"] for t, y0, y1 in noisy_rows(args.seed)])


if __name__ == "__main__":
    main()

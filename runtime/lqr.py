"""LQR references: Riccati solutions for the linearised dynamics, and the learned controller's cost.
SciPy is imported by the functions that use it: its import (0.4 s) is paid only by specs with an
LQR reference."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RiccatiSolution:
    K: np.ndarray              # infinite-horizon gain, u = -K (x - x_eq)
    cost: float                # finite-horizon optimal cost of the linear model from x0
    times: np.ndarray          # the finite-horizon optimal trajectory of the linear model
    states: np.ndarray         # times x states (absolute, equilibrium added back)
    controls: np.ndarray       # times x controls


def solve_riccati(A, B, Q, R, x0, equilibrium, horizon: float, points: int = 401) -> RiccatiSolution:
    """Infinite-horizon gain (algebraic Riccati equation) and the finite-horizon optimum
    (Riccati differential equation -dP/dt = A'P + PA - PBR⁻¹B'P + Q, P(T) = 0)."""
    from scipy.integrate import solve_ivp
    from scipy.linalg import solve_continuous_are
    A, B, Q, R = (np.atleast_2d(np.asarray(m, dtype=float)) for m in (A, B, Q, R))
    n = A.shape[0]
    P_inf = solve_continuous_are(A, B, Q, R)
    R_inv = np.linalg.inv(R)
    K = R_inv @ B.T @ P_inf

    def riccati(t, p):
        P = p.reshape(n, n)
        return -(A.T @ P + P @ A - P @ B @ R_inv @ B.T @ P + Q).ravel()

    backward = solve_ivp(riccati, (horizon, 0.0), np.zeros(n * n), rtol=1e-11, atol=1e-13, dense_output=True)
    dx0 = np.asarray(x0, dtype=float) - np.asarray(equilibrium, dtype=float)
    P0 = backward.sol(0.0).reshape(n, n)
    cost = float(dx0 @ P0 @ dx0)

    def closed_loop(t, x):
        P = backward.sol(t).reshape(n, n)
        return (A - B @ R_inv @ B.T @ P) @ x

    times = np.linspace(0.0, horizon, points)
    forward = solve_ivp(closed_loop, (0.0, horizon), dx0, t_eval=times, rtol=1e-11, atol=1e-13)
    gains = [R_inv @ B.T @ backward.sol(t).reshape(n, n) for t in times]
    controls = np.array([-(g @ x) for g, x in zip(gains, forward.y.T)])
    return RiccatiSolution(K, cost, times, forward.y.T + np.asarray(equilibrium, dtype=float), controls)


def quadratic_cost(times, states, controls, Q, R, equilibrium) -> float:
    """∫ (x - x_eq)'Q(x - x_eq) + u'Ru dt along sampled states and controls (Simpson's rule)."""
    from scipy.integrate import simpson
    Q, R = np.atleast_2d(np.asarray(Q, dtype=float)), np.atleast_2d(np.asarray(R, dtype=float))
    dx = np.asarray(states, dtype=float) - np.asarray(equilibrium, dtype=float)
    u = np.asarray(controls, dtype=float).reshape(len(times), -1)
    running = np.einsum("ti,ij,tj->t", dx, Q, dx) + np.einsum("ti,ij,tj->t", u, R, u)
    return float(simpson(running, x=np.asarray(times, dtype=float)))

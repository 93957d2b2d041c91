"""Checks of an LQR reference before any run: weights of the right signs, a true equilibrium, and
a system the Riccati equation can stabilise. Each failure is a message for a located error.
NumPy is imported in the checks, so a spec without an LQR reference does not pay its import
(`impsolve check` start-up)."""
from __future__ import annotations

TOLERANCE = 1e-9   # relative, for eigenvalues, ranks and the equilibrium residual


def weight_problem(Q: list[list[float]], R: list[list[float]]) -> str | None:
    """R must be symmetric positive definite, Q symmetric positive semidefinite and not 0."""
    import numpy as np
    q, r = np.asarray(Q, dtype=float), np.asarray(R, dtype=float)
    for name, m in (("Q", q), ("R", r)):
        if not np.all(np.isfinite(m)):
            return f"{name} has an entry that is not a finite number"
        if not np.allclose(m, m.T, rtol=0, atol=TOLERANCE * max(1.0, np.abs(m).max())):
            return f"{name} must be symmetric"
    smallest_r = float(np.linalg.eigvalsh(r).min())
    if smallest_r <= 0:
        return f"R must be positive definite (its smallest eigenvalue is {smallest_r:g}): it weighs the controls' cost"
    eig_q = np.linalg.eigvalsh(q)
    if eig_q.min() < -TOLERANCE * max(1.0, np.abs(eig_q).max()):
        return f"Q must be positive semidefinite (its smallest eigenvalue is {eig_q.min():g})"
    if not np.any(q):
        return "Q is 0: no state is weighed, so the Riccati optimum is 0 and the cost ratio has no meaning"
    return None


def equilibrium_problem(rates: list[float], states: list[str]) -> str | None:
    """The dynamics must vanish at the linearisation point (controls 0)."""
    for name, rate in zip(states, rates):
        if abs(rate) > TOLERANCE:
            return (f"the point is not an equilibrium: der({name}) = {rate:g} there (controls 0), "
                    "so the linear model does not describe the motion near it")
    return None


def riccati_problem(A: list[list[float]], B: list[list[float]], Q: list[list[float]],
                    R: list[list[float]], states: list[str]) -> str | None:
    """(A, B) stabilisable (Hautus test on the unstable modes) and an algebraic Riccati solution."""
    import numpy as np
    a, b = np.asarray(A, dtype=float), np.asarray(B, dtype=float)
    n = a.shape[0]
    values, vectors = np.linalg.eig(a)
    for value, vector in zip(values, vectors.T):
        if value.real >= -TOLERANCE and np.linalg.matrix_rank(np.hstack([a - value * np.eye(n), b]),
                                                              tol=TOLERANCE * max(1.0, np.abs(a).max())) < n:
            mode = ", ".join(f"{s}: {abs(v):.3g}" for s, v in zip(states, vector) if abs(v) > TOLERANCE)
            return (f"the linearised system cannot be stabilised: the mode with eigenvalue {value.real:g} "
                    f"(eigenvector {mode}) is not moved by any control")
    from scipy.linalg import LinAlgError, solve_continuous_are   # only specs with an LQR reference pay its import
    try:
        solve_continuous_are(a, b, np.asarray(Q, dtype=float), np.asarray(R, dtype=float))
    except (LinAlgError, ValueError) as err:
        return f"the algebraic Riccati equation has no stabilising solution ({err}); is every unstable mode weighed by Q?"
    return None

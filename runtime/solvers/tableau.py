"""Butcher tableaux of the explicit Runge-Kutta methods, as Python floats.

Each method is one `Tableau`: nodes c, the strictly lower-triangular matrix a (row i gives stage
i + 1 from stages 0..i), the solution weights b, and for adaptive methods the error weights
(b - b_hat) and the midpoint weights of the dense output. The solvers read the numbers as plain
floats, so a step's arithmetic is scalar-times-tensor additions and nothing else."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tableau:
    """An explicit Runge-Kutta method. `order` is the exponent of the step-size rule (the order
    of the propagated solution), as in torchdiffeq."""

    name: str
    order: int
    c: tuple[float, ...]                     # nodes of stages 1.. (stage 0 is at c = 0)
    a: tuple[tuple[float, ...], ...]         # a[i]: weights of stages 0..i for stage i + 1
    b: tuple[float, ...]                     # solution weights of all stages
    error: tuple[float, ...] | None = None   # b - b_hat (adaptive methods only)
    mid: tuple[float, ...] | None = None     # y(t0 + dt/2) = y0 + dt * sum(mid_j k_j)

    @property
    def adaptive(self) -> bool:
        return self.error is not None

    @property
    def fsal(self) -> bool:
        """First same as last: the last stage is evaluated at the step's solution, so the
        solution is that stage's input and the next step's first derivative is that stage."""
        last = self.a[-1] if self.a else ()
        return bool(self.a) and self.c[-1] == 1.0 and self.b[-1] == 0.0 and tuple(self.b[:-1]) == tuple(last)

    @property
    def stages(self) -> int:
        return len(self.b)


DOPRI5 = Tableau(
    "dopri5", 5,
    c=(1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0),
    a=((1 / 5,),
       (3 / 40, 9 / 40),
       (44 / 45, -56 / 15, 32 / 9),
       (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
       (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
       (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)),
    b=(35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0),
    error=(35 / 384 - 1951 / 21600, 0.0, 500 / 1113 - 22642 / 50085, 125 / 192 - 451 / 720,
           -2187 / 6784 + 12231 / 42400, 11 / 84 - 649 / 6300, -1 / 60),
    # Shampine's continuous extension evaluated at the midpoint
    mid=(6025192743 / 30085553152 / 2, 0.0, 51252292925 / 65400821598 / 2, -2691868925 / 45128329728 / 2,
         187940372067 / 1594534317056 / 2, -1776094331 / 19743644256 / 2, 11237099 / 235043384 / 2),
)

BOSH3 = Tableau(
    "bosh3", 3,
    c=(1 / 2, 3 / 4, 1.0),
    a=((1 / 2,), (0.0, 3 / 4), (2 / 9, 1 / 3, 4 / 9)),
    b=(2 / 9, 1 / 3, 4 / 9, 0.0),
    error=(2 / 9 - 7 / 24, 1 / 3 - 1 / 4, 4 / 9 - 1 / 3, -1 / 8),
    mid=(0.0, 0.5, 0.0, 0.0),
)

FEHLBERG2 = Tableau(
    "fehlberg2", 2,
    c=(1 / 2, 1.0),
    a=((1 / 2,), (1 / 256, 255 / 256)),
    b=(1 / 512, 255 / 256, 1 / 512),
    error=(-1 / 512, 0.0, 1 / 512),
    mid=(0.0, 0.5, 0.0),
)

ADAPTIVE_HEUN = Tableau(
    "adaptive_heun", 2,
    c=(1.0,),
    a=((1.0,),),
    b=(0.5, 0.5),
    error=(0.5, -0.5),
    mid=(0.5, 0.0),
)

# Fixed-step methods (torchdiffeq's rk4 is Kutta's 3/8 rule)
RK4 = Tableau("rk4", 4, c=(1 / 3, 2 / 3, 1.0), a=((1 / 3,), (-1 / 3, 1.0), (1.0, -1.0, 1.0)),
              b=(1 / 8, 3 / 8, 3 / 8, 1 / 8))
MIDPOINT = Tableau("midpoint", 2, c=(1 / 2,), a=((1 / 2,),), b=(0.0, 1.0))
EULER = Tableau("euler", 1, c=(), a=(), b=(1.0,))

TABLEAUS: dict[str, Tableau] = {t.name: t for t in (DOPRI5, BOSH3, FEHLBERG2, ADAPTIVE_HEUN, RK4, MIDPOINT, EULER)}

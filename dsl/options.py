"""Schemas of the settings statements (`solve`, `train`, nets), validated with pydantic."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

from ..constants import BACKENDS


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, defer_build=True)   # no inf/nan setting reaches torch


ODE_METHODS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun", "rk4", "midpoint", "euler")
FIXED_STEP_METHODS = ("rk4", "midpoint", "euler")


class OdeOptions(_Options):
    """`solve ode(...)`: the ODE integrator."""

    method: Literal[ODE_METHODS] = "dopri5"
    rtol: PositiveFloat = 1e-6
    atol: PositiveFloat = 1e-8
    adjoint: bool | None = None            # None: chosen by the runtime (runtime.solvers.plan)
    step_size: PositiveFloat | None = None
    max_steps: PositiveInt = 100_000
    timeout: PositiveFloat | None = None   # wall-clock seconds per solve
    backend: Literal[BACKENDS] = "auto"     # solver tier; --backend overrides


def settings_problem(ode: OdeOptions) -> tuple[str, str] | None:
    """A combination of solver options that cannot run, as (message, hint); None when fine. One rule
    for the spec's `solve ode(...)` and for `--set solve....`."""
    if ode.method in FIXED_STEP_METHODS and ode.step_size is None:
        return f"the fixed-step method '{ode.method}' needs step_size", "add e.g. step_size=0.01"
    return None


class TrainOptions(_Options):
    """`train adam(...)`, `train sgd(...)`, `train rmsprop(...)`, `train lbfgs(...)`: the optimiser and its schedule;
    `train lm(steps=...)`: Levenberg-Marquardt iterations of a fit (dsl/fitting.py)."""

    optimizer: Literal["adam", "sgd", "rmsprop", "lbfgs", "lm"] = "adam"
    lr: PositiveFloat = 0.01
    steps: PositiveInt = 300
    schedule: Literal["constant", "cosine", "step"] = "constant"
    lr_final: PositiveFloat | None = Field(default=None, description="end learning rate of cosine")
    gamma: PositiveFloat = 0.5   # step schedule: factor
    every: PositiveInt = 100     # step schedule: period
    momentum: float = Field(default=0.0, ge=0.0, lt=1.0)
    alpha: float = Field(default=0.99, ge=0.0, lt=1.0)   # rmsprop: smoothing of the squared gradients
    betas: tuple[Annotated[float, Field(ge=0.0, lt=1.0)], Annotated[float, Field(ge=0.0, lt=1.0)]] = (0.9, 0.999)
    history_size: PositiveInt = 20   # lbfgs
    max_iter: PositiveInt = 20       # lbfgs inner iterations per step
    clip: PositiveFloat | None = None  # gradient norm clipping
    resample: bool = False   # draw new random initial states every step (else one fixed batch)
    window: Annotated[int, Field(ge=2)] | None = None   # a fit: train on windows of this many data rows
    windows: PositiveInt | None = None   # a fit with window=: windows per step (default WINDOWS)


WINDOWS = 20   # windows per training step of a windowed fit (torchdiffeq's ode_demo batch_size)


class MlpOptions(_Options):
    """`net f(x, y): mlp(...)`: a fully connected network."""

    hidden: list[Annotated[int, Field(ge=1, le=4096)]] = Field(default=[16, 16], max_length=32)
    act: Literal["tanh", "relu", "sigmoid", "softplus", "elu", "gelu", "silu"] = "tanh"
    out: PositiveInt = 1     # outputs: 1 gives a number, k > 1 a vector of k entries
    init: PositiveFloat | None = None   # weights ~ normal(0, init), biases 0; None: nn.Linear's uniform init


class NewtonOptions(_Options):
    """`solve y: ... using newton(...)` or `picard(...)`: the forward solver of an implicit
    equation. Newton uses the symbolic Jacobian; picard (fixed-point iteration) does y <- y - φ(y), which for
    `y = g(y)` is y <- g(y)."""

    method: Literal["newton", "picard"] = "newton"
    tol: PositiveFloat | None = None    # on the largest residual entry; None: the dtype's (runtime/implicit.py)
    max_iter: PositiveInt = 100
    damping: bool = True                # backtracking on the residual norm


class IdentifyOptions(_Options):
    """`identify epochs=3, first=10, growth=3`: adaptive identification (report §5.3, Algorithm 1).
    The first T = `first` steps (default: the spec's `steps`) play the baseline inputs; each epoch
    then estimates, plans for T steps, plays the plan on the truth and multiplies T by `growth`."""

    epochs: PositiveInt = 3
    first: PositiveInt | None = None
    growth: float = Field(default=3.0, ge=1.0)
    realizations: PositiveInt = 20      # independent runs averaged (the CLI's --realizations)


class PiecewiseOptions(_Options):
    """`control u piecewise(N=50, hold=linear)`: an open-loop control on N intervals of [0, T],
    constant on each (N values) or linear between the N + 1 nodes; `init` is the initial value
    (default: the middle of its range, or 0)."""

    N: Annotated[int, Field(ge=1, le=10_000)] = 50
    hold: Literal["constant", "linear"] = "constant"
    init: float | None = None


class DirectOptions(_Options):
    """`solve direct(N=50, steps=1, tol=1e-8, max_iter=200, guess=linear)`: the direct method
    (runtime/direct.py): multiple shooting on N intervals of [0, T] (default: the piecewise
    controls' N), each integrated with `steps` fixed RK4 (3/8 rule) steps, solved by an interior
    point method (runtime/ipm.py) to the optimality error `tol`. `guess`: the initial states at
    the nodes, `linear` from the initial values to the values a terminal equality fixes (else
    held), or `simulate` (integrate the initial controls)."""

    N: Annotated[int, Field(ge=1, le=2000)] | None = None
    steps: Annotated[int, Field(ge=1, le=100)] = 1
    tol: PositiveFloat = 1e-8
    max_iter: Annotated[int, Field(ge=1, le=10_000)] = 200
    guess: Literal["linear", "simulate"] = "linear"


SETTINGS = {
    ("solve", "ode"): OdeOptions,
    ("solve", "direct"): DirectOptions,
    ("train", "adam"): TrainOptions,
    ("train", "sgd"): TrainOptions,
    ("train", "rmsprop"): TrainOptions,
    ("train", "lbfgs"): TrainOptions,
    ("train", "lm"): TrainOptions,
    ("net", "mlp"): MlpOptions,
    ("implicit", "newton"): NewtonOptions,
    ("implicit", "picard"): NewtonOptions,
    ("control", "piecewise"): PiecewiseOptions,
}

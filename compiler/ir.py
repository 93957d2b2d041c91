"""The intermediate representation: a problem as SymPy expressions plus symbol tables.

Symbols: a state `x` is `Symbol("x")` (its current value), `Symbol("x(0)")` and `Symbol("x(T)")`
its initial and final values; `t` is time, `T` the final time; a param is `Symbol(name)`;
a net call is an undefined SymPy function named after the net.
"""
from __future__ import annotations

from dataclasses import field
from typing import Any

import sympy as sp

from ..dsl.ast import Span
from ..dsl.records import FrozenRecord, Record, frozen_record, record
from ..dsl.options import DirectOptions, IdentifyOptions, MlpOptions, NewtonOptions, OdeOptions, PiecewiseOptions, \
    TrainOptions

TIME = sp.Symbol("t", real=True)
FINAL_TIME = sp.Symbol("T", real=True)
TOTAL_PREFIX = "total_"      # the columns of the k-th total(...) of a discrete spec: total_k, total_k[i], ...


def state_symbol(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


def initial_symbol(name: str) -> sp.Symbol:
    return sp.Symbol(f"{name}(0)", real=True)


def final_symbol(name: str) -> sp.Symbol:
    return sp.Symbol(f"{name}(T)", real=True)


def computed(label: str) -> sp.Symbol:
    """A value that only the tensor path's generated code computes (no SymPy form): a placeholder
    in the `Problem` fields the runtime reads for names and counts only."""
    return sp.Symbol(f"<{label}>", real=True)


@frozen_record
class Distribution(FrozenRecord):
    """A random initial value: normal(mean, std) or uniform(low, high)."""

    kind: str
    a: float
    b: float


@record
class Net(Record):
    """A net: its inputs, each with its number of entries (a vector input is several), and options."""

    name: str
    inputs: tuple[str, ...]
    options: MlpOptions | OpenLoop
    sizes: tuple[int, ...] = ()     # entries per input; () = one each

    @property
    def width(self) -> int:
        """The number of input entries (the concatenation of the inputs)."""
        return sum(self.sizes) if self.sizes else len(self.inputs)


@record
class Objective(Record):
    """What is optimised. The runtime minimises `scale * expr` (`passes.to_minimize` sets the
    scale: -1 for maximize); `sense` and `expr` stay as written, for reporting."""

    sense: str             # "minimize" | "maximize"
    expr: sp.Expr          # over initial/final symbols, T and params
    text: str              # as written in the spec
    at: str | None = None  # "end" or "stop": pointwise until `passes.final_values` takes it at T
    scale: float = 1.0


@record
class StopEvent(Record):
    """Integration stops when `function` (of t and states) crosses zero from below."""

    function: sp.Expr
    max_time: float
    text: str


@record
class Expectation(Record):
    """An `expect` check. Terminal ones use initial/final symbols; `over` ones are pointwise."""

    text: str
    op: str
    left: list[sp.Expr]     # entries (one for scalars)
    right: list[sp.Expr]
    tolerance: float | None
    relative: bool
    rms: bool
    over: tuple[str, float, float] | None
    span: Span
    at: str | None = None   # "end" or "stop": pointwise until `passes.final_values` takes it at T


@record
class LqrReference(Record):
    """LQR weights, the equilibrium, and the linearisation A = ∂f/∂x, B = ∂f/∂u there."""

    Q: list[list[float]]
    R: list[list[float]]
    equilibrium: list[float]        # one value per user state
    A: list[list[float]] | None     # None: linearised at run time (the tensor path, runtime.reference)
    B: list[list[float]] | None
    max_ratio: float | None
    text: str
    line: int | None = None         # the reference's line (named by run-time errors)


@record
class Plot(Record):
    """Pointwise expressions drawn over a range of one state."""

    exprs: list[sp.Expr]
    labels: list[str]
    over: tuple[str, float, float]


@record
class Param(Record):
    """A trainable scalar, vector or matrix: its shape and initial entries (row-major), which are
    numbers or expressions in standard normal draws `randn_k` (made with the run's seed)."""

    name: str
    shape: tuple[int, ...]
    initial: list[sp.Expr]
    bounds: tuple[float | None, float | None] | None = None   # (low, high): `initial` is raw (compiler.bounds)


@record
class Implicit(Record):
    """`solve y: lhs = rhs`: the unknowns, the residual φ = lhs - rhs (one entry per unknown), its
    SymPy Jacobian ∂φ/∂y (None when a net of the unknowns makes it opaque), the solver options."""

    name: str
    unknowns: list[sp.Symbol]
    residual: list[sp.Expr]
    jacobian: list[list[sp.Expr]] | None
    options: NewtonOptions
    line: int
    text: str


@record
class DesignVariable(Record):
    """A design chosen each round: value = low + (high - low) * sigmoid(raw). The optimiser moves
    the unbounded param `raw`, so the value stays inside (low, high)."""

    name: str
    low: float
    high: float
    raw: str


@record
class DesignStudy(Record):
    """A sequential Bayesian design study (report §6, algorithm 2) with a linearised Gaussian belief.

    Params of the problem hold the uncertain params (the model's value of theta), the designs' raw
    values and the current belief (`mean(theta)`, `cov(a,b)`); the runtime sets them each round.
    With states, the ODE (and its forward sensitivities) runs in rescaled time s = t / tau on
    [0, 1], tau the observation time, so final symbols are values at the observation time. The
    observed expression and its sensitivities d observation / d theta_j are the generated function
    "observation" (`Problem.functions`)."""

    uncertain: list[str]
    prior_mean: list[float]
    prior_cov: list[list[float]]
    truth: list[float]
    designs: list[DesignVariable]
    belief_mean: list[str]            # param names holding the belief mean, one per uncertain param
    belief_cov: list[list[str]]       # param names holding the covariance (symmetric: shared names)
    sigma: float                      # noise standard deviation
    text: str                         # the observed expression as written
    rounds: int
    each_round: list[bool]            # per expectation: checked every round (else after the last)
    expected_designs: list[str | None]  # per expectation: the design that `expect <design> == ... each round` checks
    observation_time: sp.Expr | None = None   # tau, put in for T by `bayes_design.observe_at`


@record
class Experiment(Record):
    """One data set of a fit: its observation times and its own initial states (state -> value)."""

    name: str
    path: str
    times: list[float]
    initial: dict[str, sp.Expr]


@record
class FitItem(Record):
    """A fitted expression (pointwise), the experiment and column it is fitted to, the data, and
    its noise std (None: estimated, one sigma per item)."""

    text: str
    expr: sp.Expr
    experiment: int
    column: str
    data: list[float]
    sigma: float | None


@record
class FitStudy(Record):
    """A fit to measured data (compiler.fit). `params` are the fitted params (every param of the
    spec); the generated functions `fit_observed` (each item's value, then its derivative with
    respect to each fitted param entry, item-major) and `fit_initial_k` (experiment k's initial
    states, sensitivities included) serve Levenberg-Marquardt."""

    experiments: list[Experiment]
    items: list[FitItem]
    params: list[str]
    nll: str
    stderr: dict[str, str]     # fitted param -> the study param holding its standard error
    rmse: str = "rmse"         # the study param holding the root-mean-square error of the fit
    state_items: list[int] = field(default_factory=list)   # windowed fits: the item that measures each state


@record
class OpenLoop(Record):
    """The options of an open-loop control (`control u in [low, high] piecewise(...)`), bound at run
    time to its piecewise values (a Net's options in place of an MLP's)."""

    options: PiecewiseOptions
    low: float | None = None
    high: float | None = None


@record
class Constraint(Record):
    """`subject to ...`, as `expr == 0` (kind "eq") or `expr <= 0` (kind "ineq") over initial/final
    symbols, T and params. A path constraint g <= 0 `always` is the equality ∫ max(g, 0)² dt == 0
    (an extra running state, compiler.constraints); under the direct method it stays g <= 0 over the
    states, controls, t and params (`running`), enforced at the points of the trajectory
    (runtime/direct.py)."""

    name: str       # as written in the spec (with [i] per entry of a vector constraint)
    kind: str       # "eq" | "ineq"
    expr: sp.Expr
    line: int
    path: bool = False
    running: bool = False   # expr is g(t, states, controls, params) of a path constraint (the direct method)
    sampled: sp.Expr | None = None   # a trained path constraint's g (|g| for ==), reported at trajectory samples


@record
class FreeTime(Record):
    """`horizon free in [low, high]`: T = low + (high - low) * sigmoid(raw), `raw` a param (or T =
    raw under the direct method, which keeps it in the range as a bound); the dynamics run in
    rescaled time s = t / T on [0, 1] (compiler.constraints.free_final_time)."""

    low: float
    high: float
    raw: str
    value: sp.Expr      # T as an expression of the raw param
    squashed: bool = True   # T = low + (high - low) sigmoid(raw); else T = raw


@record
class Direct(Record):
    """`solve direct(...)`: its options (N resolved), the final value a terminal equality fixes for
    a state (x(T) == 0), for the initial guess of the nodes, and the integral states that are
    quadratures: summed over the intervals, not variables at the nodes (runtime/direct.py)."""

    options: DirectOptions
    targets: dict[str, float] = field(default_factory=dict)
    quadratures: list[str] = field(default_factory=list)   # integral states no dynamics reads


@record
class Problem(Record):
    name: str
    title: str
    states: list[str]                        # columns of the state vector (integral states last)
    initial: dict[str, sp.Expr | Distribution]
    params: dict[str, Param]
    nets: dict[str, Net]
    dynamics: dict[str, sp.Expr]             # d(state)/dt, lets/defs/controls substituted
    controls: dict[str, sp.Expr]             # named controls, pointwise, for outputs
    horizon: float | None
    stop: StopEvent | None
    objective: Objective
    expectations: list[Expectation]
    ode: OdeOptions
    training: list[TrainOptions]            # phases, run one after the other
    batch: int
    user_states: list[str] = field(default_factory=list)   # states declared in the spec
    references: list[LqrReference] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    implicits: list[Implicit] = field(default_factory=list)   # in dependency order
    random_symbols: list[sp.Symbol] = field(default_factory=list)
    design: DesignStudy | None = None                      # a sequential design study (report §6)
    discrete: "Discrete | None" = None       # discrete-time specs (compiler.discrete)
    fit: FitStudy | None = None              # a fit to measured data (compiler.fit)
    time_model: str = "ode"                  # "ode", "rollout", "static" or a registered one (compiler.kinds)
    study: str = "train"                     # "train", "design", "identify" or a registered one
    study_settings: dict[str, object] = field(default_factory=dict)   # the `study NAME(...)` arguments
    final_time: sp.Expr = FINAL_TIME         # T in expressions: the horizon as written, or the symbol T
    running_costs: dict[str, sp.Expr] = field(default_factory=dict)  # integral state -> integrand (passes)
    functions: dict[str, tuple[list[sp.Expr], str]] = field(default_factory=dict)   # a study's own generated
    # functions: name -> (entries, "tuple" or "stack"), e.g. a design study's "observation"
    tensor: Any = None   # the tensor path's `tensors.TensorModel` (compiler.tensor_lower), None when scalarised
    constraints: list[Constraint] = field(default_factory=list)   # `subject to` (generated as "constraints")
    free_time: FreeTime | None = None         # `horizon free in [a, b]`
    direct: Direct | None = None              # `solve direct(...)`: solved by the direct method


@record
class Noise(Record):
    """`noise w[d] ~ ...`: its entries, drawn independently at every step of every rollout."""

    name: str
    components: list[str]
    distribution: Distribution


@record
class Estimate(Record):
    """`truth A = ...` with `estimate A by ols`: the entries (row-major) and their true values."""

    name: str
    components: list[str]
    truth: list[float]
    method: str


@record
class Baseline(Record):
    """`baseline u ~ ...`: random inputs played instead of a control."""

    control: str
    components: list[str]
    distribution: Distribution


@record
class Discrete(Record):
    """A discrete-time problem. Its columns (the Problem's `states`, in this order): the states,
    the noise entries, the estimated entries, the control entries (open-loop sequences first,
    then closed-loop controls), and the entries of each total(...).

    `step` gives the states at t+1 from the columns at t (controls as inputs); `controls` gives
    the closed-loop controls from the states, noise, estimates and sequences; `totals` the
    summands of total(...). An identify study adds the least-squares model of the transitions as
    generated functions (compiler.identify)."""

    steps: int
    states: list[str]
    noises: list[Noise]
    estimates: list[Estimate]
    sequences: dict[str, list[str]]          # open-loop control -> its components
    controls: dict[str, sp.Expr]             # closed-loop control component -> value
    step: dict[str, sp.Expr]                 # state component -> value at the next step
    totals: dict[str, sp.Expr]               # total(...) component -> summand
    identify: IdentifyOptions | None = None
    baseline: Baseline | None = None
    energies: dict[str, float] = field(default_factory=dict)   # open-loop control -> mean energy (1/T) Σ |u_t|²
    tensor: Any = None   # step, controls, totals, objective as a `tensors.TensorModel` (compiler.tensor_discrete)

    @property
    def columns(self) -> list[str]:
        return [*self.states, *self.noise_columns, *self.estimate_columns, *self.control_columns, *self.totals]

    @property
    def noise_columns(self) -> list[str]:
        return [c for n in self.noises for c in n.components]

    @property
    def estimate_columns(self) -> list[str]:
        return [c for e in self.estimates for c in e.components]

    @property
    def control_columns(self) -> list[str]:
        return [*(c for cs in self.sequences.values() for c in cs), *self.controls]

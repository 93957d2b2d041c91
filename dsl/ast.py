"""The syntax tree of a `.imp` spec. Every node carries the source span it came from."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class Span:
    """1-based line/column range of a node in its source text."""

    line: int
    column: int
    end_line: int
    end_column: int


# ---------------------------------------------------------------- expressions
@dataclass(frozen=True)
class Number:
    value: float
    text: str
    span: Span


@dataclass(frozen=True)
class Name:
    id: str
    span: Span


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple["Expr", ...]
    kwargs: tuple["Keyword", ...]
    span: Span
    func_span: Span


@dataclass(frozen=True)
class Keyword:
    name: str
    value: "Expr"
    span: Span


@dataclass(frozen=True)
class BinOp:
    op: str  # one of + - * / @ ^
    left: "Expr"
    right: "Expr"
    span: Span


@dataclass(frozen=True)
class Neg:
    operand: "Expr"
    span: Span


@dataclass(frozen=True)
class Compare:
    op: str
    left: "Expr"
    right: "Expr"
    span: Span


@dataclass(frozen=True)
class Transpose:
    operand: "Expr"
    span: Span


@dataclass(frozen=True)
class Array:
    items: tuple["Expr", ...]
    span: Span


@dataclass(frozen=True)
class Slice:
    """`a:b` in an index (either bound may be missing): entries a, ..., b - 1."""
    start: "Expr | None"
    stop: "Expr | None"
    span: Span


@dataclass(frozen=True)
class Index:
    """`x[i]`, `A[i, j]`, `x[a:b]`, `A[:, j]`: entries of a vector or matrix (0-based, constant)."""
    operand: "Expr"
    items: tuple["Expr | Slice", ...]
    span: Span


Expr = Union[Number, Name, Call, BinOp, Neg, Compare, Transpose, Array, Index]


# ----------------------------------------------------------------- statements
@dataclass(frozen=True)
class Binding:
    """`name[shape] = expr` or `name[shape] ~ distribution(...)` in const/param/state."""

    name: str
    name_span: Span
    shape: tuple[Expr, ...]
    value: Expr | None
    distribution: Call | None
    span: Span
    bound: "Bound | None" = None   # `param k > 0 = 1`, `param k in [a, b] = v` (dsl/fitting.py)


@dataclass(frozen=True)
class Bound:
    """A param's constraint: `> low`, `< high` (either may be None) or `in [low, high]`."""

    low: Expr | None
    high: Expr | None
    op: str          # ">", ">=", "<", "<=" or "in"
    span: Span


@dataclass(frozen=True)
class ProblemStmt:
    name: str
    name_span: Span
    title: str
    span: Span


@dataclass(frozen=True)
class DeclStmt:
    """`const`, `param` or `state` with one or more bindings."""

    kind: str
    bindings: tuple[Binding, ...]
    span: Span


@dataclass(frozen=True)
class DefStmt:
    name: str
    name_span: Span
    params: tuple[str, ...]
    param_spans: tuple[Span, ...]
    body: Expr
    span: Span


@dataclass(frozen=True)
class LetStmt:
    """`let` or `control`: a named expression."""

    kind: str
    name: str
    name_span: Span
    shape: tuple[Expr, ...]
    value: Expr
    span: Span


@dataclass(frozen=True)
class NetStmt:
    name: str
    name_span: Span
    inputs: tuple[str, ...]
    input_spans: tuple[Span, ...]
    architecture: Call
    span: Span


@dataclass(frozen=True)
class DerStmt:
    state: str
    state_span: Span
    value: Expr
    span: Span


@dataclass(frozen=True)
class HorizonStmt:
    value: Expr
    span: Span


@dataclass(frozen=True)
class StopStmt:
    condition: Expr
    max_time: Expr
    span: Span


@dataclass(frozen=True)
class ObjectiveStmt:
    sense: str  # "minimize" | "maximize"
    expr: Expr
    at: str | None  # "stop" | "end" | None
    span: Span


@dataclass(frozen=True)
class SettingsStmt:
    """`solve ode(...)`, `train adam(...)`: a settings call."""

    kind: str
    call: Call
    span: Span


@dataclass(frozen=True)
class BatchStmt:
    size: Expr
    span: Span


@dataclass(frozen=True)
class ExpectStmt:
    left: Expr
    at: str | None
    op: str
    right: Expr
    tolerance: float | None
    relative: bool
    rms: bool
    over: tuple[str, Expr, Expr] | None
    over_span: Span | None
    span: Span
    each_round: bool = False   # design studies: checked on every round (else once, at the end)


@dataclass(frozen=True)
class ImplicitStmt:
    """`solve y[n]: lhs = rhs [using newton(...)]`: y is defined by an equation (an implicit layer)."""

    name: str
    name_span: Span
    shape: tuple[Expr, ...]
    lhs: Expr
    rhs: Expr
    options: Call | None
    span: Span


@dataclass(frozen=True)
class ReferenceStmt:
    """`reference lqr(Q=..., R=...) at x=0, ...`: a reference solution computed from the spec."""

    call: Call
    at: tuple[tuple[str, Expr, Span], ...]
    span: Span


@dataclass(frozen=True)
class PlotStmt:
    """`plot f(q), -q over q in [-2, 2]`: pointwise expressions drawn over a range of a state."""

    exprs: tuple[Expr, ...]
    var: str
    var_span: Span
    low: Expr
    high: Expr
    span: Span


@dataclass(frozen=True)
class DesignStmt:
    """`design tobs in [0, 5]`: a variable the study chooses each round, within [low, high]."""

    name: str
    name_span: Span
    low: Expr
    high: Expr
    span: Span


@dataclass(frozen=True)
class ObserveStmt:
    """`observe u(tobs) + normal(0, sigma)`: what one experiment returns (noise split by the checker)."""

    expr: Expr
    span: Span


@dataclass(frozen=True)
class TruthStmt:
    """`truth theta = 1.7` (an uncertain param) or `truth A[d, d] = [[...]]` (an unknown the planner
    estimates): values used only to simulate the real system; the planner never sees them."""

    bindings: tuple[Binding, ...]
    span: Span

    @property
    def values(self) -> tuple[tuple[str, Expr, Span], ...]:
        return tuple((b.name, b.value, b.name_span) for b in self.bindings)


@dataclass(frozen=True)
class RoundsStmt:
    """`rounds 30`: how many design-observe-update rounds the study runs."""

    count: Expr
    span: Span


# ------------------------------------------------------- discrete time, identification
@dataclass(frozen=True)
class NextStmt:
    """`next(x) = expr`: the state at the next step, x_{t+1} = expr(x_t, u_t, w_t, t)."""

    state: str
    state_span: Span
    value: Expr
    span: Span


@dataclass(frozen=True)
class StepsStmt:
    """`steps N`: the number of steps of a discrete-time rollout."""

    value: Expr
    span: Span


@dataclass(frozen=True)
class NoiseStmt:
    """`noise w[d] ~ normal(0, sigma)`: a fresh draw at every step of every rollout."""

    name: str
    name_span: Span
    shape: tuple[Expr, ...]
    distribution: Call
    span: Span


@dataclass(frozen=True)
class EstimateStmt:
    """`estimate A by ols`: the planner sees the estimate of A from the transitions observed so far."""

    names: tuple[str, ...]
    name_spans: tuple[Span, ...]
    method: str
    method_span: Span
    span: Span


@dataclass(frozen=True)
class IdentifyStmt:
    """`identify epochs=3, first=10, growth=3`: the adaptive identification study (Algorithm 1)."""

    options: tuple[tuple[str, Expr, Span], ...]
    span: Span


@dataclass(frozen=True)
class BaselineStmt:
    """`baseline u ~ normal(0, s)`: random inputs played instead of the control `u` (first epoch, baseline)."""

    control: str
    control_span: Span
    distribution: Call
    span: Span


@dataclass(frozen=True)
class SequenceStmt:
    """`control u[d] over steps [energy E]`: an open-loop control, one free value per step; with
    `energy`, scaled so that its mean energy (1/T) Σ_t |u_t|² is E."""

    name: str
    name_span: Span
    shape: tuple[Expr, ...]
    energy: Expr | None
    span: Span


@dataclass(frozen=True)
class StudyStmt:
    """`study grid(n=5, values=[1, 2])`: the registered study (dsl.kinds) run on the model, with its settings."""

    name: str
    name_span: Span
    call: Call
    span: Span


@dataclass(frozen=True)
class DataStmt:
    """`data lv = csv("file.csv", time=t) with x = 2`: a table of measurements (path relative to
    the spec), its time column and, optionally, the experiment's own initial states."""

    name: str
    name_span: Span
    reader: str
    reader_span: Span
    path: str
    path_span: Span
    options: tuple[tuple[str, Expr, Span], ...]
    initial: tuple[tuple[str, Expr, Span], ...]
    span: Span


# ------------------------------------------------------- optimal control (dsl/constraints.py)
@dataclass(frozen=True)
class ConstraintStmt:
    """`subject to lhs op rhs [always]`: a terminal constraint (of x(T), x(0), T, params) or, with
    `always`, a path constraint that holds at every time of the trajectory."""

    left: Expr
    op: str
    right: Expr
    always: bool
    span: Span


@dataclass(frozen=True)
class OpenLoopStmt:
    """`control u [in [low, high]] piecewise(N=50)`: a free function of time on [0, T], its values
    trained; with a range, kept inside it."""

    name: str
    name_span: Span
    low: Expr | None
    high: Expr | None
    call: Call
    span: Span


@dataclass(frozen=True)
class FitItem:
    """`x to lv.prey sigma 0.5`: a model expression fitted to a data column, with its noise level
    (a number, "estimated", or None: the statement's last one)."""

    model: Expr
    data: str
    data_span: Span
    column: str
    column_span: Span
    sigma: "Expr | str | None"
    span: Span


@dataclass(frozen=True)
class FitStmt:
    """`fit x to lv.prey, y to lv.predator sigma 0.5`: what the model is fitted to."""

    items: tuple[FitItem, ...]
    span: Span


@dataclass(frozen=True)
class FreeHorizonStmt:
    """`horizon free in [low, high]`: the final time T is a decision variable inside the range."""

    low: Expr
    high: Expr
    span: Span


DiscreteStatement = Union[NextStmt, StepsStmt, NoiseStmt, TruthStmt, EstimateStmt, IdentifyStmt, BaselineStmt,
                          SequenceStmt]


Statement = Union[
    ProblemStmt, DeclStmt, DefStmt, LetStmt, NetStmt, DerStmt, HorizonStmt, StopStmt,
    ObjectiveStmt, SettingsStmt, BatchStmt, ExpectStmt, ImplicitStmt, ReferenceStmt, PlotStmt,
    DesignStmt, ObserveStmt, RoundsStmt, DiscreteStatement, StudyStmt, DataStmt, FitStmt, ConstraintStmt, OpenLoopStmt,
    FreeHorizonStmt,
]


@dataclass
class Spec:
    """A parsed spec: its statements plus the text and file name for error messages."""

    statements: list[Statement]
    source: str
    filename: str

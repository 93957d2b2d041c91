"""The syntax tree of a `.imp` spec: its statements, and (from dsl.syntax_expressions) its
expression nodes. Every node carries the source span it came from."""
from __future__ import annotations

from typing import Union

from .records import FrozenRecord, Record, frozen_record, record
from .syntax_expressions import (  # noqa: F401 - the tree's expression nodes, as ast.Number etc.
    Array, BinOp, Call, Compare, Expr, Index, Keyword, Name, Neg, Number, Slice, Span, Transpose)


# ----------------------------------------------------------------- statements
@frozen_record
class Binding(FrozenRecord):
    """`name[shape] = expr` or `name[shape] ~ distribution(...)` in const/param/state."""

    name: str
    name_span: Span
    shape: tuple[Expr, ...]
    value: Expr | None
    distribution: Call | None
    span: Span
    bound: "Bound | None" = None   # `param k > 0 = 1`, `param k in [a, b] = v` (dsl/fitting.py)


@frozen_record
class Bound(FrozenRecord):
    """A param's constraint: `> low`, `< high` (either may be None) or `in [low, high]`."""

    low: Expr | None
    high: Expr | None
    op: str          # ">", ">=", "<", "<=" or "in"
    span: Span


@frozen_record
class ProblemStmt(FrozenRecord):
    name: str
    name_span: Span
    title: str
    span: Span


@frozen_record
class DeclStmt(FrozenRecord):
    """`const`, `param` or `state` with one or more bindings."""

    kind: str
    bindings: tuple[Binding, ...]
    span: Span


@frozen_record
class DefStmt(FrozenRecord):
    name: str
    name_span: Span
    params: tuple[str, ...]
    param_spans: tuple[Span, ...]
    body: Expr
    span: Span


@frozen_record
class LetStmt(FrozenRecord):
    """`let` or `control`: a named expression."""

    kind: str
    name: str
    name_span: Span
    shape: tuple[Expr, ...]
    value: Expr
    span: Span


@frozen_record
class NetStmt(FrozenRecord):
    name: str
    name_span: Span
    inputs: tuple[str, ...]
    input_spans: tuple[Span, ...]
    architecture: Call
    span: Span


@frozen_record
class DerStmt(FrozenRecord):
    state: str
    state_span: Span
    value: Expr
    span: Span


@frozen_record
class HorizonStmt(FrozenRecord):
    value: Expr
    span: Span


@frozen_record
class StopStmt(FrozenRecord):
    condition: Expr
    max_time: Expr
    span: Span


@frozen_record
class ObjectiveStmt(FrozenRecord):
    sense: str  # "minimize" | "maximize"
    expr: Expr
    at: str | None  # "stop" | "end" | None
    span: Span


@frozen_record
class SettingsStmt(FrozenRecord):
    """`solve ode(...)`, `train adam(...)`: a settings call."""

    kind: str
    call: Call
    span: Span


@frozen_record
class BatchStmt(FrozenRecord):
    size: Expr
    span: Span


@frozen_record
class ExpectStmt(FrozenRecord):
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


@frozen_record
class ImplicitStmt(FrozenRecord):
    """`solve y[n]: lhs = rhs [using newton(...)]`: y is defined by an equation (an implicit layer)."""

    name: str
    name_span: Span
    shape: tuple[Expr, ...]
    lhs: Expr
    rhs: Expr
    options: Call | None
    span: Span


@frozen_record
class ReferenceStmt(FrozenRecord):
    """`reference lqr(Q=..., R=...) at x=0, ...`: a reference solution computed from the spec."""

    call: Call
    at: tuple[tuple[str, Expr, Span], ...]
    span: Span


@frozen_record
class PlotStmt(FrozenRecord):
    """`plot f(q), -q over q in [-2, 2]`: pointwise expressions drawn over a range of a state."""

    exprs: tuple[Expr, ...]
    var: str
    var_span: Span
    low: Expr
    high: Expr
    span: Span


@frozen_record
class DesignStmt(FrozenRecord):
    """`design tobs in [0, 5]`: a variable the study chooses each round, within [low, high]."""

    name: str
    name_span: Span
    low: Expr
    high: Expr
    span: Span


@frozen_record
class ObserveStmt(FrozenRecord):
    """`observe u(tobs) + normal(0, sigma)`: what one experiment returns (noise split by the checker)."""

    expr: Expr
    span: Span


@frozen_record
class TruthStmt(FrozenRecord):
    """`truth theta = 1.7` (an uncertain param) or `truth A[d, d] = [[...]]` (an unknown the planner
    estimates): values used only to simulate the real system; the planner never sees them."""

    bindings: tuple[Binding, ...]
    span: Span

    @property
    def values(self) -> tuple[tuple[str, Expr, Span], ...]:
        return tuple((b.name, b.value, b.name_span) for b in self.bindings)


@frozen_record
class RoundsStmt(FrozenRecord):
    """`rounds 30`: how many design-observe-update rounds the study runs."""

    count: Expr
    span: Span


# ------------------------------------------------------- discrete time, identification
@frozen_record
class NextStmt(FrozenRecord):
    """`next(x) = expr`: the state at the next step, x_{t+1} = expr(x_t, u_t, w_t, t)."""

    state: str
    state_span: Span
    value: Expr
    span: Span


@frozen_record
class StepsStmt(FrozenRecord):
    """`steps N`: the number of steps of a discrete-time rollout."""

    value: Expr
    span: Span


@frozen_record
class NoiseStmt(FrozenRecord):
    """`noise w[d] ~ normal(0, sigma)`: a fresh draw at every step of every rollout."""

    name: str
    name_span: Span
    shape: tuple[Expr, ...]
    distribution: Call
    span: Span


@frozen_record
class EstimateStmt(FrozenRecord):
    """`estimate A by ols`: the planner sees the estimate of A from the transitions observed so far."""

    names: tuple[str, ...]
    name_spans: tuple[Span, ...]
    method: str
    method_span: Span
    span: Span


@frozen_record
class IdentifyStmt(FrozenRecord):
    """`identify epochs=3, first=10, growth=3`: the adaptive identification study (Algorithm 1)."""

    options: tuple[tuple[str, Expr, Span], ...]
    span: Span


@frozen_record
class BaselineStmt(FrozenRecord):
    """`baseline u ~ normal(0, s)`: random inputs played instead of the control `u` (first epoch, baseline)."""

    control: str
    control_span: Span
    distribution: Call
    span: Span


@frozen_record
class SequenceStmt(FrozenRecord):
    """`control u[d] over steps [energy E]`: an open-loop control, one free value per step; with
    `energy`, scaled so that its mean energy (1/T) Σ_t |u_t|² is E."""

    name: str
    name_span: Span
    shape: tuple[Expr, ...]
    energy: Expr | None
    span: Span


@frozen_record
class StudyStmt(FrozenRecord):
    """`study grid(n=5, values=[1, 2])`: the registered study (dsl.kinds) run on the model, with its settings."""

    name: str
    name_span: Span
    call: Call
    span: Span


@frozen_record
class DataStmt(FrozenRecord):
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
@frozen_record
class ConstraintStmt(FrozenRecord):
    """`subject to lhs op rhs [always]`: a terminal constraint (of x(T), x(0), T, params) or, with
    `always`, a path constraint that holds at every time of the trajectory."""

    left: Expr
    op: str
    right: Expr
    always: bool
    span: Span


@frozen_record
class OpenLoopStmt(FrozenRecord):
    """`control u [in [low, high]] piecewise(N=50)`: a free function of time on [0, T], its values
    trained; with a range, kept inside it."""

    name: str
    name_span: Span
    low: Expr | None
    high: Expr | None
    call: Call
    span: Span


@frozen_record
class FitItem(FrozenRecord):
    """`x to lv.prey sigma 0.5`: a model expression fitted to a data column, with its noise level
    (a number, "estimated", or None: the statement's last one)."""

    model: Expr
    data: str
    data_span: Span
    column: str
    column_span: Span
    sigma: "Expr | str | None"
    span: Span


@frozen_record
class FitStmt(FrozenRecord):
    """`fit x to lv.prey, y to lv.predator sigma 0.5`: what the model is fitted to."""

    items: tuple[FitItem, ...]
    span: Span


@frozen_record
class FreeHorizonStmt(FrozenRecord):
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


@record
class Spec(Record):
    """A parsed spec: its statements plus the text and file name for error messages."""

    statements: list[Statement]
    source: str
    filename: str

"""The checked spec: what the semantic checker (dsl/checker.py) hands the compiler.

Names, kinds and settings are resolved and declarations come in dependency order. Besides the
records of every spec it holds those of the kinds (a Bayesian design study's observation, the
discrete-time statements) and the problem's two axes: its time model and its study.
"""
from __future__ import annotations

from dataclasses import field
from typing import Callable

from . import ast
from .errors import SpecError
from .options import DirectOptions, IdentifyOptions, MlpOptions, NewtonOptions, OdeOptions, PiecewiseOptions, \
    TrainOptions, settings_problem
from .records import Record, record
from .settings import override

TIME_MODELS = ("ode", "rollout", "static")   # der, next, no states


@record
class Observation(Record):
    """`observe model + normal(0, sigma)`: the model's prediction and its additive Gaussian noise."""

    model: ast.Expr
    noise: ast.Call
    span: ast.Span
    time: str | None = None   # states are observed at: a design's name, T (the horizon), or None


@record
class DiscreteSpec(Record):
    """The discrete-time statements of a checked spec (dsl/discrete.py, dsl/identification.py)."""

    first: ast.Span                                   # the first discrete-time statement
    nexts: dict[str, ast.NextStmt] = field(default_factory=dict)
    steps: ast.StepsStmt | None = None
    noises: dict[str, ast.NoiseStmt] = field(default_factory=dict)
    truths: dict[str, ast.Binding] = field(default_factory=dict)
    estimates: dict[str, ast.EstimateStmt] = field(default_factory=dict)   # truth name -> statement
    sequences: dict[str, ast.SequenceStmt] = field(default_factory=dict)
    identify: ast.IdentifyStmt | None = None
    identify_options: IdentifyOptions | None = None
    baseline: ast.BaselineStmt | None = None


@record
class Dataset(Record):
    """A `data` statement's table, read and checked (dsl/fitting.py): observation times and columns."""

    statement: ast.DataStmt
    path: str
    time_column: str
    times: tuple[float, ...]
    columns: dict[str, tuple[float, ...]]


@record
class FitSpec(Record):
    """A fit study's data sets (by name, in statement order) and fitted items (each with its sigma:
    an expression, or "estimated")."""

    datasets: dict[str, Dataset] = field(default_factory=dict)
    items: list[ast.FitItem] = field(default_factory=list)


@record
class CheckedSpec(Record):
    """A spec whose names, kinds and settings are resolved; declarations in dependency order."""

    spec: ast.Spec
    name: str
    title: str
    consts: dict[str, ast.Binding] = field(default_factory=dict)
    params: dict[str, ast.Binding] = field(default_factory=dict)
    states: dict[str, ast.Binding] = field(default_factory=dict)
    defs: dict[str, ast.DefStmt] = field(default_factory=dict)
    lets: dict[str, ast.LetStmt] = field(default_factory=dict)   # lets and controls, sorted
    implicits: dict[str, ast.ImplicitStmt] = field(default_factory=dict)
    solvers: dict[str, NewtonOptions] = field(default_factory=dict)     # per implicit unknown
    order: list[str] = field(default_factory=list)   # lets, controls and implicits in dependency order
    nets: dict[str, tuple[ast.NetStmt, MlpOptions]] = field(default_factory=dict)
    ders: dict[str, ast.DerStmt] = field(default_factory=dict)
    horizon: ast.HorizonStmt | None = None
    stop: ast.StopStmt | None = None
    objective: ast.ObjectiveStmt | None = None
    ode: OdeOptions = field(default_factory=OdeOptions)
    training: list[TrainOptions] = field(default_factory=list)   # one phase per `train` statement
    batch: int = 1
    expects: list[ast.ExpectStmt] = field(default_factory=list)
    references: list[ast.ReferenceStmt] = field(default_factory=list)
    plots: list[ast.PlotStmt] = field(default_factory=list)
    # a sequential Bayesian design study (report §6; dsl/bayes_design.py)
    designs: dict[str, ast.DesignStmt] = field(default_factory=dict)
    observation: Observation | None = None
    truth: dict[str, tuple[ast.Expr, ast.Span]] = field(default_factory=dict)
    rounds: int | None = None
    discrete: DiscreteSpec | None = None     # discrete-time statements (dsl.discrete), None in ODE specs
    fit: FitSpec | None = None               # a fit to measured data (dsl.fitting)
    # the problem's kind on its two axes (docs/design.md): how time passes and what is done with the model
    time_model: str = "ode"                  # "ode" (der), "rollout" (next), "static" (no states)
    study: str = "train"                     # "train", "design", "identify" or a registered study (dsl.kinds)
    study_settings: dict[str, object] = field(default_factory=dict)   # the `study NAME(key=value)` arguments
    study_statement: ast.StudyStmt | None = None
    study_span: ast.Span | None = None       # the statement that selects the study (None: training)
    # optimal control (dsl/constraints.py)
    constraints: list[ast.ConstraintStmt] = field(default_factory=list)
    open_loops: dict[str, tuple[ast.OpenLoopStmt, PiecewiseOptions]] = field(default_factory=dict)
    free_horizon: ast.FreeHorizonStmt | None = None
    direct: DirectOptions | None = None      # `solve direct(...)`: the direct method (dsl.constraints)
    direct_span: ast.Span | None = None
    train_spans: list[ast.Span] = field(default_factory=list)   # the `train` statements as written

    @property
    def controls(self) -> list[str]:
        return [n for n, s in self.lets.items() if s.kind == "control"]

    @property
    def uncertain(self) -> list[str]:
        """Params with a Gaussian prior (`param theta ~ normal(mean, std)`)."""
        return [n for n, b in self.params.items() if b.distribution is not None]

    def with_overrides(self, overrides: dict[str, str]) -> "CheckedSpec":
        """Apply `section.key=value` overrides (from `--set`), validated: `solve.<option>`,
        `direct.<option>` (`solve direct(...)`), `train.<option>` (every training phase) or
        `trainN.<option>` (phase N only)."""
        for key, raw in overrides.items():
            section, _, option = key.partition(".")
            if section in ("solve", "ode") and option:
                self.ode = override(self.ode, key, option, raw)
            elif section == "direct" and option and self.direct is not None:
                self.direct = override(self.direct, key, option, raw)
                if any(self.direct.N not in (None, o.N) for _, o in self.open_loops.values()):
                    raise SpecError(f"cannot set '{key}': the piecewise controls have another N", None,
                                    filename="--set")
            elif section == "train" and option:
                self.training = [override(t, key, option, raw) for t in self.training]
            elif section.startswith("train") and section[5:].isdigit() and option:
                phase = int(section[5:])
                if not 1 <= phase <= len(self.training):
                    raise SpecError(f"cannot set '{key}': the spec has {len(self.training)} training phase(s)",
                                    None, filename="--set")
                self.training[phase - 1] = override(self.training[phase - 1], key, option, raw)
            elif section in OVERRIDE_SECTIONS and option:
                OVERRIDE_SECTIONS[section](self, option, raw)
            else:
                raise SpecError(f"cannot set '{key}'", None, filename="--set",
                                hint="use train.<option>, train2.<option> or solve.<option>, e.g. train.lr=0.01")
        if problem := settings_problem(self.ode):   # the same rule as the spec's `solve ode(...)`
            raise SpecError(problem[0], None, filename="--set", hint=problem[1])
        for rule in OVERRIDE_CHECKS:
            rule(self)
        return self


OVERRIDE_CHECKS: list[Callable[[CheckedSpec], None]] = []
OVERRIDE_SECTIONS: dict[str, Callable[[CheckedSpec, str, str], None]] = {}   # a kind's own `--set section.key=`


def register_override_section(section: str, apply: Callable[[CheckedSpec, str, str], None]) -> None:
    """Let `--set section.key=value` call `apply(checked, key, value)` (e.g. `data.lv=other.csv`)."""
    OVERRIDE_SECTIONS[section] = apply   # a kind's rules for settings changed by --set


def register_override_check(rule: Callable[[CheckedSpec], None]) -> None:
    """Run `rule(checked)` after `--set` overrides; it raises a SpecError for settings its kind cannot use."""
    OVERRIDE_CHECKS.append(rule)

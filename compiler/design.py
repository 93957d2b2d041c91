"""Lowering of a sequential design study (report §6): uncertain params, designs, the observation,
its sensitivities and the information-gain criterion.

- An uncertain param `theta` stays a param symbol: the model's value of theta, which the runtime
  sets to the belief mean (to plan and update) or to the truth (to simulate an experiment).
- The belief is held by params too: `mean(theta)` and `cov(a,b)` (`var(theta)` is `cov(theta,theta)`).
- A design `tobs in [a, b]` is the expression a + (b - a) * sigmoid(raw(tobs)), `raw(tobs)` a param.
- `sens(expr, theta)` is the total derivative of expr with respect to theta at the observation
  time: the symbolic partial derivative plus, for a state x observed in expr, ∂expr/∂x · ∂x/∂theta,
  where ∂x/∂theta is a forward-sensitivity state (report eq. 2.43: dS/dt = ∂f/∂x S + ∂f/∂theta,
  S(0) = ∂x0/∂theta) integrated with the model.
- The ODE ends at the observation time tau (a design or the horizon). It is integrated in rescaled
  time s = t / tau on [0, 1] (dx/ds = tau f(x, s tau)), so tau is an ordinary differentiable param
  and sens(...) is differentiable with respect to the observation time (report eq. 6.24).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import sympy as sp

from ..dsl import ast
from ..dsl.bayes_design import BELIEF_MEAN, SENSITIVITY
from ..dsl.functions import CRITERIA, DESIGN_FUNCTIONS, FINAL_TIME
from . import ir
from . import lower as _lower  # circular on purpose: used at call time only
from .derivative import total_derivative
from .functions import sigmoid

if TYPE_CHECKING:
    from .lower import _Lowering

CRITERION = next(iter(CRITERIA))   # information_gain
NOT_GENERATED = (sp.Derivative, sp.Subs, sp.Heaviside, sp.DiracDelta)   # derivatives the codegen cannot print


def raw_name(design: str) -> str:
    return f"raw({design})"


def mean_name(param: str) -> str:
    return f"mean({param})"


def sensitivity_state(state: str, param: str) -> str:
    """The forward-sensitivity state ∂state/∂param (not a valid spec name, so no clash)."""
    return f"d{state}/d{param}"


class DesignLowering:
    """The design-study part of `compiler.lower._Lowering`, which calls it at its hooks."""

    def __init__(self, lowering: "_Lowering") -> None:
        self.lowering = lowering
        self.checked = lowering.checked
        self.uncertain = self.checked.uncertain
        self.designs: list[ir.DesignVariable] = []
        self.prior_mean: list[float] = []
        self.prior_std: list[float] = []
        self.observed: sp.Expr = sp.Integer(0)
        self.sensitivities: list[sp.Expr] = []
        self.sigma = 1.0
        self.tau: sp.Expr | None = None

    def error(self, message: str, span: ast.Span, hint: str | None = None):
        return self.lowering.error(message, span, hint)

    def cov_name(self, a: str, b: str) -> str:
        i, j = sorted((self.uncertain.index(a), self.uncertain.index(b)))
        return f"cov({self.uncertain[i]},{self.uncertain[j]})"

    # -- declarations
    def declare(self) -> dict[str, float]:
        """The study's params with their initial values: each uncertain param at its prior mean,
        each design's raw value (0: the middle of its range), the belief (the prior).
        Designs enter the environment as their bounded expressions."""
        low = self.lowering
        params: dict[str, float] = {}
        for name in self.uncertain:
            mean_node, std_node = self.checked.params[name].distribution.args
            mean, std = float(low.constant(mean_node, "a prior mean")), float(low.constant(std_node, "a prior std"))
            if std <= 0:
                raise self.error("normal(mean, std) needs std > 0", std_node.span)
            self.prior_mean.append(mean)
            self.prior_std.append(std)
            params[name] = mean
        for name, stmt in self.checked.designs.items():
            lo, hi = low.range(stmt.low, stmt.high, stmt.span)
            self.designs.append(ir.DesignVariable(name, lo, hi, raw_name(name)))
            params[raw_name(name)] = 0.0
            low.env[name] = sp.Float(lo) + sp.Float(hi - lo) * sigmoid(sp.Symbol(raw_name(name), real=True))
        for i, a in enumerate(self.uncertain):
            params[mean_name(a)] = self.prior_mean[i]
            for j, b in enumerate(self.uncertain[i:], start=i):
                params[self.cov_name(a, b)] = self.prior_std[i] ** 2 if i == j else 0.0
        return params

    # -- expressions
    def handles(self, call: ast.Call) -> bool:
        """Whether a call in an objective or expect belongs to the study (see dsl.design.is_design_call)."""
        if call.func in DESIGN_FUNCTIONS:
            return True
        return call.func == BELIEF_MEAN and isinstance(call.args[0], ast.Name) and call.args[0].id in self.uncertain

    def call(self, call: ast.Call, at_time) -> sp.Expr:
        """mean(theta), var(theta), cov(a, b), sens(expr, theta)."""
        if call.func == SENSITIVITY:
            value = self.lowering.expr(call.args[0], at_time=at_time)
            return self.sensitivity(value, call.args[1].id, call.span)
        names = [a.id for a in call.args]
        if call.func == BELIEF_MEAN:
            return sp.Symbol(mean_name(names[0]), real=True)
        return sp.Symbol(self.cov_name(names[0], names[-1]), real=True)

    def sensitivity(self, value: sp.Expr, param: str, span: ast.Span) -> sp.Expr:
        """d value / d param: the partial derivative plus the chain through observed states."""
        states = [*self.lowering.state_components, *self.lowering.integrals]   # entries of vector states too
        implicits = self.lowering.implicits
        try:
            total = total_derivative(value, sp.Symbol(param, real=True), implicits)
            for state in states:
                for at in (ir.final_symbol, ir.initial_symbol):
                    if value.has(at(state)):
                        total += total_derivative(value, at(state), implicits) * at(sensitivity_state(state, param))
        except ValueError as err:
            raise self.error(f"cannot differentiate with respect to '{param}': {err}", span) from None
        self.differentiable(total, param, span)
        return total

    def differentiable(self, derivative: sp.Expr, param: str, span: ast.Span) -> None:
        found = [type(a).__name__ for a in derivative.atoms(*NOT_GENERATED)]
        if found:
            raise self.error(f"cannot differentiate with respect to '{param}': the derivative needs {found[0]}, "
                             "which the generated code cannot evaluate", span,
                             "min, max and sign of quantities that depend on states or uncertain params have no "
                             "usable derivative")

    def lower_observation(self) -> None:
        """The observed expression, its sensitivities, the noise, the observation time and the
        criterion information_gain = 1/2 log(1 + g'Cg / sigma^2) (report eq. 6.13)."""
        obs, low = self.checked.observation, self.lowering
        self.observed = low.terminal(obs.model, None)
        mean_node, std_node = obs.noise.args
        if low.constant(mean_node, "the noise mean") != 0:
            raise self.error("the noise has mean 0: normal(0, sigma)", mean_node.span)
        sigma = low.constant(std_node, "the noise std")
        self.sigma = float(sigma)
        if self.sigma <= 0:
            raise self.error("the noise needs sigma > 0", std_node.span)
        self.sensitivities = [self.sensitivity(self.observed, p, obs.span) for p in self.uncertain]
        g = sp.Matrix(self.sensitivities)
        cov = sp.Matrix([[sp.Symbol(self.cov_name(a, b), real=True) for b in self.uncertain] for a in self.uncertain])
        low.env[CRITERION] = sp.log(1 + (g.T * cov * g)[0, 0] / sigma ** 2) / 2
        if obs.time == FINAL_TIME:
            self.tau = low.final_time()
        elif obs.time is not None:
            self.tau = low.env[obs.time]

    # -- the problem
    def finish(self, dynamics: dict[str, sp.Expr], initial: dict[str, sp.Expr], objective: ir.Objective,
               expectations: list[ir.Expectation]) -> ir.DesignStudy:
        """Add the forward-sensitivity states, rescale time to end at the observation time, and
        put the observation time in for T. `dynamics`, `initial`, the objective and the
        expectations are updated in place."""
        if dynamics:
            self.add_sensitivity_states(dynamics, initial)
            for name, f in list(dynamics.items()):
                dynamics[name] = self.tau * f.xreplace({ir.TIME: ir.TIME * self.tau})
        at_tau = {ir.FINAL_TIME: self.tau if self.tau is not None else sp.Integer(0)}
        objective.expr = objective.expr.xreplace(at_tau)
        self.depends_on_designs(objective.expr, dynamics, initial)
        for e in expectations:
            e.left, e.right = [v.xreplace(at_tau) for v in e.left], [v.xreplace(at_tau) for v in e.right]
        c = self.checked
        cov = [[self.cov_name(a, b) for b in self.uncertain] for a in self.uncertain]
        return ir.DesignStudy(
            uncertain=list(self.uncertain), prior_mean=self.prior_mean,
            prior_cov=[[s * s if i == j else 0.0 for j in range(len(self.prior_std))] for i, s in
                       enumerate(self.prior_std)],
            truth=[float(self.lowering.constant(c.truth[p][0], f"the truth of '{p}'")) for p in self.uncertain],
            designs=self.designs, belief_mean=[mean_name(p) for p in self.uncertain], belief_cov=cov,
            observation=self.observed.xreplace(at_tau), sensitivities=[g.xreplace(at_tau) for g in self.sensitivities],
            sigma=self.sigma, text=_lower._text(c, c.observation.model), rounds=c.rounds or 1,
            each_round=[e.each_round for e in c.expects],
            expected_designs=[e.left.id if e.each_round and e.op == "==" and isinstance(e.left, ast.Name)
                              and e.left.id in c.designs else None for e in c.expects],
        )

    def depends_on_designs(self, expr: sp.Expr, dynamics: dict[str, sp.Expr], initial: dict[str, sp.Expr]) -> None:
        """The objective must change with a design (directly or through the states), or there is nothing to plan."""
        raws = {sp.Symbol(d.raw, real=True) for d in self.designs}
        through_states = any(e.free_symbols & raws for e in [*dynamics.values(), *initial.values()])
        states = {at(s) for s in dynamics for at in (ir.final_symbol, ir.initial_symbol)}
        if not expr.free_symbols & raws and not (through_states and expr.free_symbols & states):
            raise self.error("the objective does not depend on any design, so there is nothing to choose",
                             self.checked.objective.span, "e.g. maximize information_gain")

    def add_sensitivity_states(self, dynamics: dict[str, sp.Expr], initial: dict[str, sp.Expr]) -> None:
        """dS/dt = ∂f/∂x S + ∂f/∂theta, S(0) = ∂x0/∂theta for every state and uncertain param."""
        states, implicits = list(dynamics), self.lowering.implicits
        for param in self.uncertain:
            p = sp.Symbol(param, real=True)
            for state in states:
                f = dynamics[state]
                span = self.checked.ders[state].span if state in self.checked.ders else self.checked.observation.span
                try:   # implicit unknowns of the dynamics move with the states and theta (IFT)
                    rhs = total_derivative(f, p, implicits) + sum(
                        (total_derivative(f, ir.state_symbol(k), implicits) *
                         ir.state_symbol(sensitivity_state(k, param)) for k in states), sp.Integer(0))
                except ValueError as err:
                    raise self.error(f"cannot differentiate the dynamics with respect to '{param}': {err}",
                                     span) from None
                self.differentiable(rhs, param, span)
                dynamics[sensitivity_state(state, param)] = rhs
                initial[sensitivity_state(state, param)] = total_derivative(initial[state], p, implicits)


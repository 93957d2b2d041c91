"""The Bayesian experimental design study (report §6; registered as the study "design"): its
part of the lowering (uncertain params, designs, the observation, its sensitivities and the
information-gain criterion) and its step, the pass `passes.sensitivity_states`.

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

from dataclasses import replace

import sympy as sp

from ..dsl import ast
from ..dsl.bayes_design import BELIEF_MEAN, SENSITIVITY
from ..dsl.functions import CRITERIA, DESIGN_FUNCTIONS, FINAL_TIME
from . import ir, kinds
from .derivative import total_derivative
from .expressions import AtTime, source_text
from .functions import sigmoid
from .lower import Lowering
from .passes import check_differentiable, sensitivity_state, sensitivity_states

CRITERION = next(iter(CRITERIA))   # information_gain


def raw_name(design: str) -> str:
    return f"raw({design})"


def mean_name(param: str) -> str:
    return f"mean({param})"


def cov_name(uncertain: list[str], a: str, b: str) -> str:
    """The param holding cov(a, b) of the belief: named by the two in the order of `uncertain`."""
    i, j = sorted((uncertain.index(a), uncertain.index(b)))
    return f"cov({uncertain[i]},{uncertain[j]})"


def prior(lowering: Lowering, param: str) -> tuple[float, float]:
    """The mean and std of an uncertain param's normal(mean, std) prior (constants; std > 0)."""
    mean_node, std_node = lowering.checked.params[param].distribution.args
    mean, std = float(lowering.constant(mean_node, "a prior mean")), float(lowering.constant(std_node, "a prior std"))
    if std <= 0:
        raise lowering.error("normal(mean, std) needs std > 0", std_node.span)
    return mean, std


def noise_sigma(lowering: Lowering, noise: ast.Call) -> sp.Expr:
    """The sigma of the observation's normal(0, sigma) noise, exact (constants; mean 0, sigma > 0)."""
    mean_node, std_node = noise.args
    if lowering.constant(mean_node, "the noise mean") != 0:
        raise lowering.error("the noise has mean 0: normal(0, sigma)", mean_node.span)
    sigma = lowering.constant(std_node, "the noise std")
    if float(sigma) <= 0:
        raise lowering.error("the noise needs sigma > 0", std_node.span)
    return sigma


def design_study(lowering: Lowering, designs: list[ir.DesignVariable], prior_mean: list[float],
                 prior_std: list[float], sigma: float, observation_time=None) -> ir.DesignStudy:
    """The `ir.DesignStudy` of a design study (both lowerings): the prior, the truths, the designs,
    the belief's params, the noise, the rounds and the expects that check a design each round."""
    c, uncertain = lowering.checked, list(lowering.checked.uncertain)
    return ir.DesignStudy(
        uncertain=uncertain, prior_mean=prior_mean,
        prior_cov=[[s * s if i == j else 0.0 for j in range(len(prior_std))] for i, s in enumerate(prior_std)],
        truth=[float(lowering.constant(c.truth[p][0], f"the truth of '{p}'")) for p in uncertain],
        designs=designs, belief_mean=[mean_name(p) for p in uncertain],
        belief_cov=[[cov_name(uncertain, a, b) for b in uncertain] for a in uncertain], sigma=sigma,
        text=source_text(c, c.observation.model), rounds=c.rounds or 1, each_round=[e.each_round for e in c.expects],
        expected_designs=[e.left.id if e.each_round and e.op == "==" and isinstance(e.left, ast.Name)
                          and e.left.id in c.designs else None for e in c.expects],
        observation_time=observation_time)


class DesignLowering:
    """The design study's part of the lowering (an `expressions.StudyLowering`)."""

    def __init__(self, lowering: Lowering) -> None:
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
        return cov_name(self.uncertain, a, b)

    # -- declarations
    def declare(self) -> dict[str, ir.Param]:
        """The study's params with their initial values: each uncertain param at its prior mean,
        each design's raw value (0: the middle of its range), the belief (the prior).
        Designs enter the environment as their bounded expressions."""
        low = self.lowering
        params: dict[str, float] = {}
        for name in self.uncertain:
            mean, std = prior(low, name)
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
        return {name: ir.Param(name, (), [sp.Float(value)]) for name, value in params.items()}

    # -- expressions
    def handles(self, call: ast.Call) -> bool:
        """Whether a call in an objective or expect belongs to the study (see dsl.design.is_design_call)."""
        if call.func in DESIGN_FUNCTIONS:
            return True
        return call.func == BELIEF_MEAN and isinstance(call.args[0], ast.Name) and call.args[0].id in self.uncertain

    def call(self, call: ast.Call, at_time: AtTime) -> sp.Expr:
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
        check_differentiable(total, param, lambda message, hint: self.error(message, span, hint))
        return total

    def lower_statements(self) -> None:
        """The observed expression, its sensitivities, the noise, the observation time and the
        criterion information_gain = 1/2 log(1 + g'Cg / sigma^2) (report eq. 6.13)."""
        obs, low = self.checked.observation, self.lowering
        self.observed = low.terminal(obs.model)
        sigma = noise_sigma(low, obs.noise)
        self.sigma = float(sigma)
        self.sensitivities = [self.sensitivity(self.observed, p, obs.span) for p in self.uncertain]
        g = sp.Matrix(self.sensitivities)
        cov = sp.Matrix([[sp.Symbol(self.cov_name(a, b), real=True) for b in self.uncertain] for a in self.uncertain])
        low.env[CRITERION] = sp.log(1 + (g.T * cov * g)[0, 0] / sigma ** 2) / 2
        if obs.time == FINAL_TIME:
            self.tau = low.final_time()
        elif obs.time is not None:
            self.tau = low.env[obs.time]

    # -- the problem
    def finish(self, problem: ir.Problem) -> ir.Problem:
        """The problem with its `DesignStudy`; `passes.sensitivity_states` adds the sensitivity
        states and puts the observation time in for T."""
        study = design_study(self.lowering, self.designs, self.prior_mean, self.prior_std, self.sigma, self.tau)
        observation = ([self.observed, *self.sensitivities], "tuple")
        return replace(problem, design=study, functions={**problem.functions, "observation": observation})


kinds.register_study_lowering("design", DesignLowering)
kinds.register_study_step("design", sensitivity_states)

"""The fit study (issue 13; registered as the study "fit"): its part of the lowering (the fitted
expressions, the data, each experiment's initial states, `nll` and `stderr(k)`) and its step,
which adds forward-sensitivity states for Levenberg-Marquardt.

- Every param of the spec is fitted; a bounded one through its raw value (compiler.bounds), so
  the Jacobian is with respect to what the optimiser moves.
- `nll`, `rmse` and `stderr(k)` are params of the generated code that the runtime sets after the fit, so
  expects read them like any other value.
- With a `train lm(...)` phase the step adds ∂x/∂p for every state x and fitted param entry p
  (dS/dt = ∂f/∂x S + ∂f/∂p, S(0) = ∂x0/∂p per experiment) and the generated function
  `fit_observed` gives each fitted expression and its total derivative d e/d p = ∂e/∂p + ∂e/∂x S;
  one ODE solve through an experiment's times gives residuals and Jacobian together.
"""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from ..dsl import ast
from ..dsl.check import CheckedSpec
from ..dsl.fitting import NLL, RMSE, calls_stderr, fixed_sigma, stderr_name, stderr_param
from . import ir, kinds
from .derivative import total_derivative
from .expressions import AtTime, source_text, spec_error
from .fit_windows import check_windows
from .lower import Lowering
from .passes import check_differentiable, sensitivity_state
from .tensor_fit import tensor_fit_step
from .values import component_names, entries, is_matrix


class FitLowering:
    """The fit study's part of the lowering (an `expressions.StudyLowering`)."""

    def __init__(self, lowering: Lowering) -> None:
        self.lowering = lowering
        self.checked = lowering.checked
        self.fitted = [n for n, b in self.checked.params.items() if b.distribution is None]
        self.items: list[ir.FitItem] = []
        self.experiments: list[ir.Experiment] = []

    def declare(self) -> dict[str, ir.Param]:
        """`nll`, `rmse` and `stderr(k)` of each fitted param, set by the runtime after the fit."""
        names = [NLL, RMSE, *(stderr_name(p) for p in self.fitted)]
        return {n: ir.Param(n, (), [sp.Float(0.0)]) for n in names}

    def handles(self, call: ast.Call) -> bool:
        return calls_stderr(self.checked, call)

    def call(self, call: ast.Call, at_time: AtTime) -> sp.Expr:
        """stderr(k) of a scalar fitted param."""
        return sp.Symbol(stderr_name(stderr_param(self.checked, call, self.lowering.error)), real=True)

    def lower_statements(self) -> None:
        """nll, the experiments (times and initial states) and the fitted items."""
        low, fit = self.lowering, self.checked.fit
        low.env[NLL] = sp.Symbol(NLL, real=True)
        low.env[RMSE] = sp.Symbol(RMSE, real=True)
        names = list(fit.datasets)
        for name, dataset in fit.datasets.items():
            initial: dict[str, sp.Expr] = {}
            for state, value, span in dataset.statement.initial:
                binding = self.checked.states[state]
                dims = low.dims(binding.shape, binding.span)
                entries_ = entries(low.declared(state, dims, low.expr(value), value.span))
                initial.update(zip(component_names(state, dims), entries_))
            self.experiments.append(ir.Experiment(name, dataset.path, list(dataset.times), initial))
        for item in fit.items:
            value = low.expr(item.model)
            if is_matrix(value):
                raise low.error("a fitted expression is a number (fit one entry per column)", item.model.span)
            sigma = fixed_sigma(item, low.constant, low.error)
            data = list(fit.datasets[item.data].columns[item.column])
            self.items.append(ir.FitItem(source_text(self.checked, item.model), value, names.index(item.data),
                                         item.column, data, sigma))

    def finish(self, problem: ir.Problem) -> ir.Problem:
        """The problem with its FitStudy; it ends at the first experiment's last time."""
        study = ir.FitStudy(self.experiments, self.items, self.fitted, NLL,
                            {p: stderr_name(p) for p in self.fitted}, RMSE)
        return replace(problem, fit=study, horizon=self.experiments[0].times[-1])


class _Sensitivities:
    """∂/∂p of the dynamics, initial states and fitted expressions, errors located in the spec."""

    def __init__(self, problem: ir.Problem, checked: CheckedSpec) -> None:
        self.problem, self.checked = problem, checked
        self.states = [ir.state_symbol(s) for s in problem.user_states]
        self.params = [sp.Symbol(c, real=True) for name in problem.fit.params
                       for c in component_names(name, problem.params[name].shape)]

    def derivative(self, expr: sp.Expr, p: sp.Symbol, span: ast.Span, chain: bool = True) -> sp.Expr:
        """d expr/d p, through the states' sensitivities when `chain`."""
        implicits = self.problem.implicits
        try:
            total = total_derivative(expr, p, implicits)
            if chain:
                total += sum((total_derivative(expr, x, implicits) * ir.state_symbol(sensitivity_state(x.name, p.name))
                              for x in self.states), sp.Integer(0))
        except ValueError as err:
            raise spec_error(self.checked, f"Levenberg-Marquardt needs the derivative with respect to '{p}': {err}",
                             span, "fit nets with train adam(...) instead of lm") from None
        check_differentiable(total, p.name, lambda message, hint: spec_error(self.checked, message, span, hint))
        return total

    def dynamics(self) -> dict[str, sp.Expr]:
        dynamics = dict(self.problem.dynamics)
        for p in self.params:
            for x in self.states:
                span = self.checked.ders[x.name.split("[")[0]].span
                dynamics[sensitivity_state(x.name, p.name)] = self.derivative(self.problem.dynamics[x.name], p, span)
        return dynamics

    def initial(self, experiment: ir.Experiment, states: list[str]) -> dict[str, sp.Expr]:
        values = {s: experiment.initial.get(s, self.problem.initial[s]) for s in self.problem.states}
        span = self.checked.fit.datasets[experiment.name].statement.span
        for p in self.params:
            for x in self.states:
                values[sensitivity_state(x.name, p.name)] = self.derivative(values[x.name], p, span, chain=False)
        return {s: values[s] for s in states}

    def observed(self) -> list[sp.Expr]:
        span = next(s for s in self.checked.spec.statements if isinstance(s, ast.FitStmt)).span
        return [self.derivative(item.expr, p, span) for item in self.problem.fit.items for p in self.params]


def lm_can_fit(problem: ir.Problem, checked: CheckedSpec) -> None:
    """Levenberg-Marquardt moves params by symbolic sensitivities: no nets, at least one param."""
    lm = next((s.call.func_span for s in checked.spec.statements if isinstance(s, ast.SettingsStmt)
               and s.call.func == "lm"), None)   # None: lm is the default, located at the fit
    span = lm or next(s for s in checked.spec.statements if isinstance(s, ast.FitStmt)).span
    if problem.nets:
        net = next(iter(problem.nets))
        raise spec_error(checked, f"Levenberg-Marquardt fits params by their symbolic derivatives; the net '{net}' "
                         "has none", span, "fit nets with train adam(...) instead of lm")
    if not problem.fit.params:
        raise spec_error(checked, "Levenberg-Marquardt has no param to fit", span,
                         "declare what is unknown as a param, e.g. param k > 0 = 1")


def fit_step(problem: ir.Problem, checked: CheckedSpec) -> ir.Problem:
    """The fit's step: sensitivity states when a phase is Levenberg-Marquardt, and the generated
    functions `fit_observed` and `fit_initial_k` of each experiment (on the tensor path the
    lowering made those; the runtime adds the sensitivities: compiler.tensor_fit)."""
    lm = any(phase.optimizer == "lm" for phase in problem.training)
    if problem.tensor is not None:
        return tensor_fit_step(problem, checked, lm_can_fit)
    problem = check_windows(problem, checked)
    fit = problem.fit
    values = [item.expr for item in fit.items]
    if lm:
        lm_can_fit(problem, checked)
    sensitivities = _Sensitivities(problem, checked)
    dynamics = sensitivities.dynamics() if lm else dict(problem.dynamics)
    states = list(dynamics)
    if lm:
        initials = [sensitivities.initial(e, states) for e in fit.experiments]
        observed = values + sensitivities.observed()
    else:
        initials = [{s: e.initial.get(s, problem.initial[s]) for s in states} for e in fit.experiments]
        observed = values
    functions = {"fit_observed": (observed, "stack")}
    functions.update({f"fit_initial_{k}": (list(initial.values()), "tuple") for k, initial in enumerate(initials)})
    return replace(problem, states=states, dynamics=dynamics, initial=dict(initials[0]),
                   functions={**problem.functions, **functions})


kinds.register_study_lowering("fit", FitLowering)
kinds.register_study_step("fit", fit_step)

"""The fit study on the tensor path (issue 11): the fitted expressions, experiments and the study
params of `compiler.fit`, as tensor nodes.

What the fit runner reads is the same as on the scalar path: the params `nll`, `rmse` and
`stderr(k)` (set after the fit), the generated functions `fit_observed` (each fitted expression,
pointwise) and `fit_initial_k` (experiment k's initial states), and `ir.FitStudy`. With a
Levenberg-Marquardt phase, `tensor_fit_step` asks for forward sensitivities of every state
column with respect to every fitted param entry (`tensors.Sensitivities`): the runtime adds them
as state columns computed by forward-mode automatic differentiation (runtime.tensor_sensitivity),
where the scalar path writes SymPy derivatives (docs/design.md, "Tensor values").
"""
from __future__ import annotations

from dataclasses import replace

from ..dsl import ast
from ..dsl.check import CheckedSpec
from ..dsl.fitting import NLL, RMSE, calls_stderr, fixed_sigma, stderr_name, stderr_param
from . import ir
from . import tensors as tn
from .expressions import source_text
from .fit_windows import refuse_windows
from .passes import sensitivity_state
from .values import component_names, show


class TensorFit:
    """The fit study's part of a `tensor_lower.TensorLowering` (the tensor twin of `fit.FitLowering`)."""

    def __init__(self, lowering) -> None:
        self.lowering = lowering
        self.checked: CheckedSpec = lowering.checked
        self.fitted = [n for n, b in self.checked.params.items() if b.distribution is None]
        self.items: list[ir.FitItem] = []
        self.observed: list[tn.Node] = []
        self.experiments: list[ir.Experiment] = []
        self.initials: list[list[tn.Node]] = []      # per experiment: each state's initial node

    def declare(self) -> None:
        """`nll`, `rmse` and `stderr(k)` of each fitted param: scalar params after the spec's own."""
        low = self.lowering
        for name in [NLL, RMSE, *(stderr_name(p) for p in self.fitted)]:
            low.env[name] = tn.leaf("param", (), len(low.params))
            low.params.append((name, (), tn.number(0.0)))

    def handles(self, call: ast.Call) -> bool:
        return calls_stderr(self.checked, call)

    def call(self, call: ast.Call, go=None) -> tn.Node:
        """stderr(k) of a scalar fitted param."""
        return self.lowering.env[stderr_name(stderr_param(self.checked, call, self.lowering.error))]

    def lower_statements(self) -> None:
        """The experiments (times and initial states) and the fitted items."""
        low, fit = self.lowering, self.checked.fit      # (the checker refuses random initial states in a fit)
        names = list(fit.datasets)
        for name, dataset in fit.datasets.items():
            given = {state: (value, span) for state, value, span in dataset.statement.initial}
            nodes = []
            for state, b in self.checked.states.items():
                node = low.fixed[list(self.checked.states).index(state)]
                if state in given:
                    value, _ = given[state]
                    node = low.declared(state, low.dims(b), low.expr(value), value.span)
                nodes.append(node)
            self.initials.append(nodes)
            initial = {c: ir.computed(f"{c}(0) of {name}") for c in low.columns[:low.user_columns]}
            self.experiments.append(ir.Experiment(name, dataset.path, list(dataset.times), initial))
        for item in fit.items:
            value = low.expr(item.model)
            if value.shape:
                raise low.error(f"a fitted expression is a number (fit one entry per column), got {show(value.shape)}",
                                item.model.span)
            sigma = fixed_sigma(item, low.scalar.constant, low.error)
            text = source_text(self.checked, item.model)
            self.observed.append(value)
            self.items.append(ir.FitItem(text, ir.computed(text), names.index(item.data), item.column,
                                         list(fit.datasets[item.data].columns[item.column]), sigma))

    def functions(self) -> dict[str, tuple[list[tn.Node], str]]:
        """`fit_observed`, `fit_initial_k` per experiment, and `initial` as the first experiment's."""
        integrals = [tn.number(0.0)] * len(self.lowering.integrands)
        functions = {"fit_observed": (self.observed, "stack")}
        for k, nodes in enumerate(self.initials):
            functions[f"fit_initial_{k}"] = ([*nodes, *integrals], "entries")
        functions["initial"] = functions["fit_initial_0"]
        return functions

    def finish(self, problem: ir.Problem) -> ir.Problem:
        """The problem with its FitStudy; it ends at the first experiment's last time."""
        study = ir.FitStudy(self.experiments, self.items, self.fitted, NLL, {p: stderr_name(p) for p in self.fitted},
                            RMSE)
        return replace(problem, fit=study, horizon=self.experiments[0].times[-1])


def tensor_fit_step(problem: ir.Problem, checked: CheckedSpec, lm_can_fit) -> ir.Problem:
    """The fit's step on the tensor path: no time windows yet; with an LM phase, the sensitivity
    columns ∂x/∂θ (named as on the scalar path, parameter-major) that the runtime computes."""
    refuse_windows(problem, checked, "a fit on time windows is not supported on the tensor path yet")
    if not any(phase.optimizer == "lm" for phase in problem.training):
        return problem
    lm_can_fit(problem, checked)
    model = problem.tensor
    indices = [list(problem.params).index(p) for p in problem.fit.params]
    states = problem.user_states
    names = [sensitivity_state(x, entry) for p in problem.fit.params
             for entry in component_names(p, problem.params[p].shape) for x in states]
    initial = dict(problem.initial) | {name: ir.computed(f"{name}(0)") for name in names}
    sensitivities = tn.Sensitivities(tuple(indices), len(states), len(problem.states))
    return replace(problem, states=[*problem.states, *names], initial=initial,
                   tensor=replace(model, sensitivities=sensitivities))


"""The design study on the tensor path (issue 11): `compiler.bayes_design` with tensor nodes.

The runtime (`runtime.bayesian_design`) reads the same as on the scalar path: the params of the
uncertain params (at the prior mean), of the designs' raw values and of the belief (`mean(theta)`,
`cov(a,b)`), the objective (`information_gain` = 1/2 log(1 + g'Cg/sigma^2)) and the generated
function `observation` (the observed value, then g_j = sens(observed, theta_j)). What SymPy does
on the scalar path is automatic differentiation here:

- the forward sensitivities S_j = ∂x/∂theta_j are state columns that the runtime adds
  (`tensors.Sensitivities`, runtime.tensor_sensitivity, Jacobian-vector products of the dynamics);
- `sens(e, theta)` = ∂e/∂theta + ∂e/∂x(T) S(T) + ∂e/∂x(0) S(0) is a node printed as a nested
  function of theta and the states at 0 and T, differentiated by `_sensitivity` along
  (1, S(0), S(T)) (runtime.tensor_library);
- the ODE runs in rescaled time s = t / tau on [0, 1] (the dynamics times tau, t read as s tau, T
  as tau), tau the observation time, so the criterion is differentiable in a design time.
"""
from __future__ import annotations

from dataclasses import replace

from ..dsl import ast
from ..dsl.bayes_design import BELIEF_MEAN, SENSITIVITY
from ..dsl.check import CheckedSpec
from ..dsl.functions import CRITERIA, DESIGN_FUNCTIONS, FINAL_TIME
from . import ir
from . import tensors as tn
from .bayes_design import cov_name, design_study, mean_name, noise_sigma, prior, raw_name
from .passes import sensitivity_state

CRITERION = next(iter(CRITERIA))   # information_gain


class TensorDesign:
    """The design study's part of a `tensor_lower.TensorLowering` (the tensor twin of
    `bayes_design.DesignLowering`)."""

    def __init__(self, lowering) -> None:
        self.lowering = lowering
        self.checked: CheckedSpec = lowering.checked
        self.uncertain = list(self.checked.uncertain)
        self.designs: list[ir.DesignVariable] = []
        self.prior_mean: list[float] = []
        self.prior_std: list[float] = []
        self.observed: tn.Node | None = None
        self.sensitivities: list[tn.Node] = []
        self.sigma = 1.0
        self.tau: tn.Node | None = None
        self.sens_nodes: list[tn.Node] = []     # every sens() node, given its columns in `finish`

    def param(self, name: str, value: float) -> tn.Node:
        """A scalar param of the study with its initial value."""
        low = self.lowering
        node = tn.leaf("param", (), len(low.params))
        low.params.append((name, (), tn.number(value)))
        return node

    def declare(self) -> None:
        """Each uncertain param at its prior mean, each design's raw value (0: the middle of its
        range; the spec sees low + (high - low) sigmoid(raw)) and the belief (the prior)."""
        low = self.lowering
        for name in self.uncertain:
            mean, std = prior(low.scalar, name)
            self.prior_mean.append(mean)
            self.prior_std.append(std)
            low.env[name] = self.param(name, mean)
        for name, stmt in self.checked.designs.items():
            lo, hi = low.scalar.range(stmt.low, stmt.high, stmt.span)
            self.designs.append(ir.DesignVariable(name, lo, hi, raw_name(name)))
            low.env[name] = tn.bounded(self.param(raw_name(name), 0.0), lo, hi)
        for i, a in enumerate(self.uncertain):
            low.env[mean_name(a)] = self.param(mean_name(a), self.prior_mean[i])
            for j, b in enumerate(self.uncertain[i:], start=i):
                low.env[self.cov(a, b)] = self.param(self.cov(a, b), self.prior_std[i] ** 2 if i == j else 0.0)

    def cov(self, a: str, b: str) -> str:
        """The param holding cov(a, b) (`bayes_design.cov_name`)."""
        return cov_name(self.uncertain, a, b)

    def handles(self, call: ast.Call) -> bool:
        if call.func in DESIGN_FUNCTIONS:
            return True
        return call.func == BELIEF_MEAN and isinstance(call.args[0], ast.Name) and call.args[0].id in self.uncertain

    def call(self, call: ast.Call, go) -> tn.Node:
        """mean(theta), var(theta), cov(a, b), sens(expr, theta) (`go` lowers an argument in place)."""
        env = self.lowering.env
        if call.func == SENSITIVITY:
            return self.sensitivity(go(call.args[0]), call.args[1].id, call.span)
        names = [a.id for a in call.args]
        if call.func == BELIEF_MEAN:
            return env[mean_name(names[0])]
        return env[self.cov(names[0], names[-1])]

    def sensitivity(self, value: tn.Node, param: str, span: ast.Span) -> tn.Node:
        """sens(value, param): a scalar value's total derivative through the states at 0 and T."""
        if value.shape:
            raise self.lowering.error("sens() differentiates a number", span, "e.g. sens(u(tobs), theta)")
        node = tn.Node("sens", (), (self.lowering.env[param], value), None, value.batched)
        self.sens_nodes.append(node)
        return node

    def lower_statements(self) -> None:
        """The observed value, its sensitivities, the noise, the observation time and the criterion."""
        obs, low = self.checked.observation, self.lowering
        if low.implicits:
            name = low.implicits[0].name
            raise low.unsupported("an implicit equation in a design study", self.checked.implicits[name].span)
        self.observed = low.terminal(obs.model, None)
        if self.observed.shape:
            raise low.error("the observed value is a number", obs.model.span, "observe one entry, e.g. u(tobs)[0]")
        self.sigma = float(noise_sigma(low.scalar, obs.noise))
        self.sensitivities = [self.sensitivity(self.observed, p, obs.span) for p in self.uncertain]
        quadratic = None
        for i, a in enumerate(self.uncertain):
            for j, b in enumerate(self.uncertain):
                term = tn.elementwise("*", tn.elementwise("*", self.sensitivities[i], low.env[self.cov(a, b)]),
                                      self.sensitivities[j])
                quadratic = term if quadratic is None else tn.elementwise("+", quadratic, term)
        ratio = tn.elementwise("/", quadratic, tn.number(self.sigma ** 2))
        gain = tn.elementwise("log", tn.elementwise("+", tn.number(1.0), ratio))
        low.env[CRITERION] = tn.elementwise("*", tn.number(0.5), gain)
        if obs.time == FINAL_TIME:
            self.tau = low.final_time()
        elif obs.time is not None:
            self.tau = low.env[obs.time]

    def functions(self) -> dict[str, tuple[list[tn.Node], str]]:
        return {"observation": ([self.observed, *self.sensitivities], "tuple")}

    def finish(self, problem: ir.Problem) -> ir.Problem:
        """The problem in rescaled time with its sensitivity columns (see the module docstring)."""
        model, states = problem.tensor, len(problem.user_states)
        indices = [next(k for k, (name, _, _) in enumerate(self.lowering.params) if name == p) for p in self.uncertain]
        columns = len(model.columns)
        dynamic = "dynamics" in model.functions
        for node in self.sens_nodes:
            node.attr = (columns + indices.index(node.args[0].attr) * states, states) if dynamic else None
        tau = self.tau if self.tau is not None else tn.number(0.0)
        functions = {}
        for name, (outputs, mode) in model.functions.items():
            outputs = tn.replace_leaves(outputs, lambda n: tau if n.op == "final_time" else None)
            if name == "dynamics":
                scaled = tn.replace_leaves(outputs, lambda n: tn.elementwise("*", n, tau) if n.op == "time" else None)
                outputs = [tn.elementwise("*", tau, f) for f in scaled]
            functions[name] = (outputs, mode)
        self.depends_on_designs(functions)
        sensitivities = tn.Sensitivities(tuple(indices), states, columns) if dynamic else None
        names = [sensitivity_state(x, p) for p in self.uncertain for x in problem.user_states] if dynamic else []
        initial = dict(problem.initial) | {name: ir.computed(f"{name}(0)") for name in names}
        study = design_study(self.lowering.scalar, self.designs, self.prior_mean, self.prior_std, self.sigma)
        return replace(problem, design=study, states=[*problem.states, *names], initial=initial,
                       horizon=1.0 if dynamic else None,
                       tensor=replace(model, functions=functions, sensitivities=sensitivities))

    def depends_on_designs(self, functions: dict[str, tuple[list[tn.Node], str]]) -> None:
        """The objective must change with a design (directly, or through the states: the rescaled
        dynamics read the observation time)."""
        raws = {k for k, (name, _, _) in enumerate(self.lowering.params) if name in {d.raw for d in self.designs}}
        design = lambda n: n.op == "param" and n.attr in raws   # noqa: E731
        objective = functions["objective"][0]
        dynamic = [o for name in ("dynamics", "initial") for o in functions.get(name, ([], ""))[0]]
        if tn.reads(objective, design) or tn.reads(dynamic, design) and tn.reads(objective, lambda n: n.op == "state"):
            return
        raise self.lowering.error("the objective does not depend on any design, so there is nothing to choose",
                                  self.checked.objective.span, "e.g. maximize information_gain")

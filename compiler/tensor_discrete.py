"""The tensor path of a discrete-time spec (`over steps`): the step map, the closed-loop controls,
the summands of total(...) and the objective as whole-tensor code (`A @ x` is one matmul).

The scalar lowering (compiler.discrete) always runs first: it checks the spec, fixes the column
layout (`ir.Discrete.columns`) and gives what needs SymPy (the least-squares regressors of
`identify`, expects, plots, the initial values). `lower_tensor_discrete` then lowers the four
functions again over the same columns, where each declared name is one slice of columns; the
generated module takes these four from the tensor code and the rest from the scalar code.

The rule (`discrete_rule`): a spec that declares a matrix (a const, a truth, a state, a let, ...)
takes the tensor path where it supports every construct the spec uses; other specs, and those
using an unsupported construct (located `SpecError`s from `refuse_unsupported`), stay scalarised.
A spec with a declaration above the scalar path's entry limit (`TENSOR_ONLY_ABOVE`) skips the
scalar lowering: `LargeDiscreteLowering` builds the whole `Problem` from tensor nodes.
"""
from __future__ import annotations

import math

from ..dsl import ast
from ..dsl.check import CheckedSpec
from . import ir
from . import tensors as tn
from .expressions import MAX_ENTRIES, source_text
from .tensor_lower import TensorLowering, declared_shapes
from .values import Value, component_names, shape, show

TENSOR_FUNCTIONS = ("step", "controls", "totals", "objective")   # the functions the tensor code gives
DISCRETE_AS_TENSORS = True      # discrete specs with a matrix take the tensor path where it supports them
TENSOR_ONLY_ABOVE = MAX_ENTRIES  # entries of a declaration above which a discrete spec is lowered as tensors only


def discrete_rule(lowered: dict[str, Value]) -> bool:
    """Whether a discrete spec declares a matrix (`lowered`: its scalar lowering's environment):
    then it goes on the tensor path where that supports the spec."""
    return DISCRETE_AS_TENSORS and any(len(shape(value)) == 2 and min(shape(value)) > 1 for value in lowered.values())


class DiscreteTensorLowering(TensorLowering):
    """Lowers step, controls, totals, objective and expects of a checked discrete spec to tensor
    nodes over its columns, laid out as `ir.Discrete.columns`."""

    def __init__(self, checked: CheckedSpec) -> None:
        super().__init__(checked)
        self.rule = ("a discrete-time spec that declares a matrix is compiled as tensors "
                     "(docs/design.md, 'Tensor values')")
        self.controls: dict[str, tn.Node] = {}      # closed-loop control -> its value (earlier controls put in)
        self.summands: list[tn.Node] = []
        self.expectations: list[ir.Expectation] = []

    def refuse_unsupported(self) -> None:
        """Located errors for what the discrete tensor path does not do (the spec is then scalarised)."""
        c = self.checked
        if c.study not in ("train", "identify"):
            raise self.unsupported(f"the '{c.study}' study", c.study_span)
        for what, span in [("an implicit equation", next((s.span for s in c.implicits.values()), None)),
                           ("an uncertain param", next((b.span for b in c.params.values() if b.distribution), None)),
                           ("a bounded param", next((b.span for b in c.params.values() if b.bound), None)),
                           ("a 'subject to' constraint", c.constraints and c.constraints[0].span)]:
            if span:
                raise self.unsupported(what, span)

    def lower_functions(self) -> dict[str, tuple[list[tn.Node], str]]:
        """step, controls, totals and objective as nodes over the columns (`self.columns`, laid out
        as `ir.Discrete.columns`); consts and params must be declared first."""
        d = self.checked.discrete
        for name, b in [*self.checked.states.items(), *d.noises.items(), *d.truths.items(), *d.sequences.items()]:
            self.env[name] = self.new_columns(name, self.dims(b))
        self.declare_lets_and_controls()
        step = [self.declared(f"next({name})", self.dims(b), self.expr(d.nexts[name].value), d.nexts[name].value.span)
                for name, b in self.checked.states.items()]
        objective = self.discrete_objective()
        expects = [self.expectation(e) for e in self.checked.expects]   # their totals are columns too
        self.expectations = [e for *_, e in expects]
        functions: dict[str, tuple[list[tn.Node], str]] = {"step": (step, "stack")}
        if self.controls:
            functions["controls"] = (list(self.controls.values()), "stack")
        if self.summands:
            functions["totals"] = (self.summands, "stack")
        functions["objective"] = ([objective], "tuple")
        for i, (left, right, _) in enumerate(expects):
            functions[f"expect_{i}"] = ([left, right], "pair")
        return functions

    def new_columns(self, name: str, dims: tuple[int, ...]) -> tn.Node:
        """Columns for the entries of `name`, after the ones so far; their leaf."""
        self.slices[name] = (len(self.columns), len(self.columns) + max(math.prod(dims), 1))
        self.columns += component_names(name, dims)
        return self.column_leaf(name, dims, "s")

    def column_leaf(self, name: str, dims: tuple[int, ...], which: str) -> tn.Node:
        """The columns of a declared name as one leaf (`which`: s, s0 or sT)."""
        return tn.leaf("state", dims, (*self.slices[name], which), batched=True)

    def dims(self, b) -> tuple[int, ...]:
        return self.scalar.dims(b.shape, b.span) if b.shape else ()

    def declare_lets_and_controls(self) -> None:
        """Lets are shared nodes; a closed-loop control is its columns in the step map and the
        totals, and its value (earlier controls put in) in the controls function."""
        c = self.checked
        for name in c.order:
            s = c.lets[name]
            dims = self.dims(s) if s.shape else None
            value = self.declared(name, dims, self.expr(s.value), s.value.span)
            if s.kind == "let":
                self.env[name] = value
                continue
            self.controls[name] = self.closed(value)
            self.env[name] = self.new_columns(name, value.shape)

    def closed(self, value: tn.Node) -> tn.Node:
        """A value with the columns of the closed-loop controls replaced by their values."""
        values = {self.env[name].attr: v for name, v in self.controls.items()}
        return tn.replace_leaves([value], lambda n: values.get(n.attr) if n.op == "state" else None)[0]

    # -- totals, objective
    def terminal(self, node: ast.Expr, at: str | None) -> tn.Node:
        """An expression over the rollout: total(...) (columns of its sums), x(0), x(T), batch means;
        estimates are read at the end; `at end` takes a pointwise value at the final states."""
        def at_time(func: str, call: ast.Call) -> tn.Node:
            if func == "total":
                return self.total(call)
            if func in self.checked.states:
                which = "s0" if isinstance(call.args[0], ast.Number) else "sT"
                return self.column_leaf(func, self.dims(self.checked.states[func]), which)
            if func == "integral":
                raise self.unsupported("integral()", call.span)
            inner = self.expr(call.args[0], at_time=at_time)
            mean = tn.Node("mean", (), (inner,), None, inner.batched) if inner.shape else inner
            return tn.Node("batch_mean", (), (mean,), None, False)

        value = self.closed(self.expr(node, at_time=at_time))
        estimates = {self.env[name].attr for name in self.checked.discrete.truths}
        if at is not None:
            value = self.at_end(value)
        value = tn.replace_leaves([value], lambda n: self.column_leaf_at_end(n) if n.op == "state"
                                  and n.attr in estimates else None)[0]
        if tn.reads([value], lambda n: n.op == "state" and n.attr[2] == "s"):
            raise self.unsupported("a value of one step outside total(...)", node.span)
        return value

    def column_leaf_at_end(self, n: tn.Node) -> tn.Node:
        return tn.leaf("state", n.shape, (*n.attr[:2], "sT"), batched=True)

    def total(self, call: ast.Call) -> tn.Node:
        """total(expr): its summand is a function of the columns; its sum is read from sT."""
        inner = self.expr(call.args[0])
        name = f"{ir.TOTAL_PREFIX}{len(self.summands)}"
        self.summands.append(inner)
        self.new_columns(name, inner.shape)
        return self.column_leaf(name, inner.shape, "sT")

    def discrete_objective(self) -> tn.Node:
        obj = self.checked.objective
        value = self.terminal(obj.expr, obj.at)
        if value.shape:
            raise self.error(f"the objective must be a number, got {show(value.shape)}", obj.expr.span)
        return value


def lower_tensor_discrete(checked: CheckedSpec, problem: ir.Problem) -> tn.TensorModel:
    """The tensor model of a discrete spec's step, controls, totals and objective, over the columns
    of its scalar lowering `problem` (a located SpecError for a construct the tensor path lacks)."""
    lowering = DiscreteTensorLowering(checked)
    lowering.refuse_unsupported()
    lowering.declare_consts()
    lowering.env.update({name: tn.leaf("param", lowering.dims(b), j)
                         for j, (name, b) in enumerate(checked.params.items())})
    functions = lowering.lower_functions()
    if lowering.columns != problem.discrete.columns:
        raise lowering.unsupported("total(...) outside the objective and expects", checked.objective.span)
    return tn.TensorModel(lowering.columns, {k: functions[k] for k in TENSOR_FUNCTIONS if k in functions}, [], [], 0)


class LargeDiscreteLowering(DiscreteTensorLowering):
    """A discrete spec with a declaration above the scalar path's entry limit: lowered on the tensor
    path only (no SymPy of its entries), for train studies."""

    def refuse_unsupported(self) -> None:
        c, d = self.checked, self.checked.discrete
        self.rule = (f"a declaration has more than {TENSOR_ONLY_ABOVE} entries, the limit of scalarised discrete "
                     "specs, so the spec is compiled as tensors only (docs/design.md, 'Tensor values')")
        super().refuse_unsupported()
        if c.study != "train":
            raise self.unsupported(f"the '{c.study}' study", c.study_span)
        for what, span in [("plot", c.plots and c.plots[0].span),
                           ("expect ... over a range", next((e.span for e in c.expects if e.over), None)),
                           ("a truth (estimate ... by ols)", next((s.span for s in d.truths.values()), None))]:
            if span:
                raise self.unsupported(what, span)

    def run(self) -> ir.Problem:
        c, d = self.checked, self.checked.discrete
        self.refuse_unsupported()
        self.declare_consts()
        self.declare_params()
        functions = self.lower_functions()
        initial, fixed = self.initial_values()
        functions["initial"] = (fixed, "entries")          # the runtime reads it (empty: every state random)
        states = [comp for name, b in c.states.items() for comp in component_names(name, self.dims(b))]
        discrete = ir.Discrete(
            steps=self.positive_integer(d.steps.value, "steps"), states=states,
            noises=[ir.Noise(name, component_names(name, self.dims(s)), self.scalar.distribution(s.distribution))
                    for name, s in d.noises.items()],
            estimates=[], sequences={name: component_names(name, self.dims(s)) for name, s in d.sequences.items()},
            controls={comp: ir.computed(comp) for name, node in self.controls.items()
                      for comp in component_names(name, node.shape)},
            step={comp: ir.computed(f"next({comp})") for comp in states},
            totals={comp: ir.computed(comp) for k, node in enumerate(self.summands)
                    for comp in component_names(f"{ir.TOTAL_PREFIX}{k}", node.shape)},
            energies={name: float(self.scalar.constant(s.energy, "an energy")) for name, s in d.sequences.items()
                      if s.energy is not None})
        objective = ir.Objective(c.objective.sense, ir.computed("objective"), source_text(c, c.objective.expr), None)
        return ir.Problem(
            name=c.name, title=c.title, states=discrete.columns, initial=initial,
            params={name: ir.Param(name, dims, []) for name, dims, _ in self.params},
            nets={n: ir.Net(n, stmt.inputs, opts, self.input_sizes(n)) for n, (stmt, opts) in c.nets.items()},
            dynamics=dict(discrete.step), controls={col: ir.state_symbol(col) for col in discrete.control_columns},
            horizon=float(discrete.steps), stop=None, objective=objective, expectations=self.expectations, ode=c.ode,
            training=c.training, batch=c.batch, user_states=states, discrete=discrete,
            tensor=tn.TensorModel(self.columns, functions, self.params, [], self.draws))

    def initial_values(self) -> tuple[dict[str, object], list[tn.Node]]:
        """Each state entry's initial value (a Distribution or a placeholder), and the fixed values' nodes."""
        initial: dict[str, object] = {}
        fixed = []
        for name, b in self.checked.states.items():
            dims, names = self.dims(b), component_names(name, self.dims(b))
            if b.distribution is not None:
                initial.update(dict.fromkeys(names, self.scalar.distribution(b.distribution)))
                continue
            fixed.append(self.declared(name, dims, self.expr(b.value), b.value.span))
            initial.update({n: ir.computed(f"{n}(0)") for n in names})
        return initial, fixed

    def positive_integer(self, node: ast.Expr, what: str) -> int:
        value = self.scalar.constant(node, what)
        if not value.is_Integer or value < 1:
            raise self.error(f"{what} must be a positive integer", node.span)
        return int(value)


def declares_large(checked: CheckedSpec) -> bool:
    """Whether a declaration has more entries than a scalarised discrete spec may (`TENSOR_ONLY_ABOVE`)."""
    return any(math.prod(dims) > TENSOR_ONLY_ABOVE for _, dims in declared_shapes(checked) if dims)


def lower_large_discrete(checked: CheckedSpec) -> ir.Problem:
    """Lower a discrete spec above the scalar entry limit on the tensor path only."""
    return LargeDiscreteLowering(checked).run()

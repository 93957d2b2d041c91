"""The tensor path of the continuous-time lowering: a spec whose shaped values are large becomes one
`tensors.TensorModel` (whole-tensor nodes), not one SymPy expression per entry.

The size rule (`size_rule`): a spec takes the tensor path when a declared shape has more than
`SCALARISE_LIMIT` entries; a spec that declares a matrix takes it when it supports every construct
the spec uses (one matmul beats n^2 scalar products); every other spec is scalarised. The `Problem` it returns keeps the
columns, params, nets, options and texts the runtime reads; its SymPy fields hold `ir.computed`
placeholders (the values exist only as tensor code, `Problem.tensor`).
"""
from __future__ import annotations

import math
from typing import Callable

import sympy as sp

from ..dsl import ast
from ..dsl.check import CheckedSpec
from ..dsl.walk import walk
from . import ir
from . import tensors as tn
from .expressions import ExpressionLowering, source_text
from .lower import Lowering
from .tensor_expressions import TensorExpressions
from .tensor_design import TensorDesign
from .tensor_fit import TensorFit
from .tensor_jacobian import jacobian
from .tensor_lqr import OPEN_LOOP, tensor_references
from .values import Value, component_names, entries, is_matrix, shaped, show

SCALARISE_LIMIT = 64     # entries of the largest declared shape that is still scalarised
MATRICES_AS_TENSORS = True   # small matrices go on the tensor path where it supports the spec


def _exact(b: ast.Binding, dims: tuple[int, ...], env: dict, checked: CheckedSpec) -> bool:
    """Whether a const is held exactly (as on the scalar path): at most SCALARISE_LIMIT entries, and
    its value reads only consts held exactly (in `env`), none kept as a tensor."""
    return (not dims or math.prod(dims) <= SCALARISE_LIMIT) and \
        all(n.id in env for n in walk(b.value) if isinstance(n, ast.Name) and n.id in checked.consts)


def declared_shapes(checked: CheckedSpec) -> list[tuple[str, tuple[int, ...]]]:
    """(name, dims) of every declaration with a shape; scalar consts are evaluated for the dims."""
    scalar = ExpressionLowering(checked)
    scalar.entry_limit = None
    found = []
    for name, b in checked.consts.items():
        dims = scalar.dims(b.shape, b.span) if b.shape else ()
        found.append((name, dims))
        if _exact(b, dims, scalar.env, checked):
            scalar.env[name] = scalar.expr(b.value)
    c = checked
    shaped = [*c.params.values(), *c.states.values(), *c.lets.values(), *c.implicits.values()]
    if c.discrete is not None:
        shaped += [*c.discrete.noises.values(), *c.discrete.truths.values(), *c.discrete.sequences.values()]
    found += [(b.name, scalar.dims(b.shape, b.span)) for b in shaped if b.shape]
    return found


def size_rule(checked: CheckedSpec) -> str:
    """"tensor" (a shape above SCALARISE_LIMIT: the tensor path, or a located error), "matrix" (a
    declared matrix: the tensor path where it supports the spec, else scalarised) or "scalar"."""
    if checked.time_model not in ("ode", "static"):
        return "scalar"
    shapes = [dims for _, dims in declared_shapes(checked) if dims]
    if any(math.prod(dims) > SCALARISE_LIMIT for dims in shapes):
        return "tensor"
    if MATRICES_AS_TENSORS and any(len(dims) == 2 and min(dims) > 1 for dims in shapes):
        return "matrix"
    return "scalar"


class TensorLowering(TensorExpressions):
    """Lowers a continuous-time (or static) train spec to a `Problem` with a `TensorModel`."""

    def __init__(self, checked: CheckedSpec) -> None:
        self.scalar = Lowering(checked)     # exact constants, dims and distributions
        self.scalar.entry_limit = None
        super().__init__(checked, None)   # the horizon, once the consts it may read are declared (run)
        self.shapes = dict(declared_shapes(checked))
        name, dims = max(self.shapes.items(), key=lambda item: math.prod(item[1]))
        self.rule = (f"'{name}' has {math.prod(dims)} entries, more than the scalarisation limit of {SCALARISE_LIMIT}: "
                     "shaped values are compiled as tensors (docs/design.md, 'Tensor values')")
        self.above_limit = math.prod(dims) > SCALARISE_LIMIT
        if not self.above_limit:
            self.rule = f"'{name}' is a matrix: matrices are compiled as tensors (docs/design.md, 'Tensor values')"
        self.columns: list[str] = []
        self.slices: dict[str, tuple[int, int]] = {}
        self.initial: dict[str, object] = {}          # column -> Distribution or its node's entries
        self.fixed: list[tn.Node] = []                # fixed initial values, in column order
        self.params: list[tuple[str, tuple[int, ...], tn.Node]] = []
        self.bounds: dict[str, tuple[float | None, float | None]] = {}   # bounded params (raw on the path)
        self.integrands: list[tn.Node] = []
        self.user_columns = 0                          # the states' columns (integrals come after)
        self.study = {"fit": TensorFit, "design": TensorDesign}.get(checked.study, lambda _: None)(self)

    def run(self) -> ir.Problem:
        """The problem (the passes of the scalar path are done here, on nodes)."""
        self.refuse_unsupported()
        self.declare_consts()
        if self.checked.horizon:
            self.horizon = float(self.scalar.constant(self.checked.horizon.value, "horizon"))
        self.declare_params()
        if self.study:
            self.study.declare()
        self.declare_states()
        self.user_columns = len(self.columns)
        self.declare_named()
        if self.study:
            self.study.lower_statements()
        stop, event = self.stop_event()
        dynamics = [self.dynamics(name) for name in self.checked.states]
        objective, value = self.objective()
        expects = [self.expectation(e) for e in self.checked.expects]
        functions: dict[str, tuple[list[tn.Node], str]] = {}
        if self.columns:
            functions["dynamics"] = ([*dynamics, *self.integrands], "stack")
            functions["initial"] = (self.fixed, "entries")
        if event is not None:
            functions["event"] = ([event], "tuple")
        functions["objective"] = ([value], "tuple")
        if self.checked.controls:
            functions["controls"] = ([self.env[u] for u in self.checked.controls], "entries")
        for i, (left, right, _) in enumerate(expects):
            functions[f"expect_{i}"] = ([left, right], "pair")
        if self.study:
            functions.update(self.study.functions())
        references, open_loop = tensor_references(
            self.scalar, self.checked.references, self.columns[:self.user_columns],
            {u: self.env[u] for u in self.checked.controls}, dynamics, len(self.columns), self.implicits)
        if open_loop:
            functions[OPEN_LOOP] = (open_loop, "stack")
        return self.problem(objective, [e for _, _, e in expects], functions, stop, references)

    def problem(self, objective: ir.Objective, expectations: list[ir.Expectation],
                functions: dict[str, tuple[list[tn.Node], str]], stop: ir.StopEvent | None,
                references: list[ir.LqrReference]) -> ir.Problem:
        c = self.checked
        model = tn.TensorModel(self.columns, functions, self.params, self.implicits, self.draws)
        controls = {comp: ir.computed(comp) for u in c.controls
                    for comp in component_names(u, self.env[u].shape)}
        user = self.columns[:self.user_columns]
        problem = ir.Problem(
            name=c.name, title=c.title, states=list(self.columns), initial=self.initial,
            params={name: ir.Param(name, dims, [], self.bounds.get(name)) for name, dims, _ in self.params},
            nets={n: ir.Net(n, stmt.inputs, opts, self.input_sizes(n)) for n, (stmt, opts) in c.nets.items()},
            dynamics={}, controls=controls, horizon=self.horizon, stop=stop, objective=objective,
            expectations=expectations, ode=c.ode, training=c.training, batch=c.batch, user_states=user,
            final_time=sp.Float(self.horizon) if self.horizon is not None else ir.FINAL_TIME, tensor=model,
            references=references)
        return self.study.finish(problem) if self.study else problem

    def refuse_unsupported(self) -> None:
        """Located errors for what the tensor path does not do yet (never a wrong number)."""
        c = self.checked
        if c.study not in ("train", "fit", "design"):
            raise self.unsupported(f"the '{c.study}' study", c.study_span)
        uncertain = c.study != "design" and next((b.span for b in c.params.values() if b.distribution), None)
        below = not self.above_limit and c.references and c.references[0].span   # exact SymPy linearisation
        for what, span in [("an LQR reference below the scalarisation limit", below),
                           ("plot", c.plots and c.plots[0].span),
                           ("an uncertain param", uncertain),
                           ("a 'subject to' constraint", c.constraints and c.constraints[0].span),
                           ("an open-loop control", next((s.span for s, _ in c.open_loops.values()), None)),
                           ("a free final time", c.free_horizon and c.free_horizon.span),
                           ("the direct method", c.direct_span)]:
            if span:
                raise self.unsupported(what, span)
        for e in c.expects:
            if e.over:
                raise self.unsupported("expect ... over a range", e.span)

    # -- declarations
    def dims(self, b) -> tuple[int, ...]:
        return self.scalar.dims(b.shape, b.span) if b.shape else ()

    def declare_consts(self) -> None:
        """Small consts exactly (as the scalar path), large ones as tensor nodes of numbers."""
        for name, b in self.checked.consts.items():
            dims = self.dims(b)
            if _exact(b, dims, self.scalar.env, self.checked):
                value = self.scalar.declared(name, dims or None, self.scalar.expr(b.value), b.value.span)
                if any(e.free_symbols for e in entries(value)):
                    raise self.error(f"const '{name}' must be constant", b.value.span)
                self.scalar.env[name] = value
                self.env[name] = _const_node(value)
            else:
                node = self.declared(name, dims, self.expr(b.value), b.value.span)
                if tn.reads([node], lambda n: n.op != "number"):
                    raise self.error(f"const '{name}' must be constant", b.value.span)
                self.env[name] = node
                self.scalar.deferred[name] = self._deferred_value(name, dims, b)

    def _deferred_value(self, name: str, dims: tuple[int, ...], b: ast.Binding) -> Callable[[], Value]:
        """The exact value of a const above the limit, for the places the scalar lowering reads (an LQR
        reference's weights and point), lowered only when one of them reads it."""
        return lambda: self.scalar.declared(name, dims, self.scalar.expr(b.value), b.value.span)

    def declare_params(self) -> None:
        for name, b in self.checked.params.items():
            dims = self.dims(b)
            if b.distribution is not None:     # an uncertain param: declared by the design study
                continue
            if b.bound is not None:
                self.declare_bounded_param(b, dims)
                continue
            value = self.declared(name, dims, self.expr(b.value, shape_of=dims), b.value.span)
            if tn.reads([value], lambda n: n.op not in ("number", "randn", "const")):
                raise self.error(f"the initial value of '{name}' must be constant (or use randn())", b.value.span)
            self.env[name] = tn.leaf("param", dims, len(self.params))
            self.params.append((name, dims, value))

    def declare_bounded_param(self, b: ast.Binding, dims: tuple[int, ...]) -> None:
        """A bounded param (compiler.bounds): its raw initial values and checks come from the scalar
        lowering (exact numbers, entry by entry); the spec sees low + exp(r), high - exp(r) or
        low + (high - low) sigmoid(r) of the raw tensor r."""
        value = self.scalar.declared(b.name, dims or None, self.scalar.expr(b.value), b.value.span)
        symbols = [sp.Symbol(c, real=True) for c in component_names(b.name, dims)]
        raw = self.scalar.bounded_param(ir.Param(b.name, dims, entries(value)), b, symbols)
        leaf = tn.leaf("param", dims, len(self.params))
        self.bounds[b.name] = raw.bounds
        self.params.append((b.name, dims, _const_node(shaped(dims, raw.initial) if dims else raw.initial[0])))
        self.env[b.name] = tn.bounded(leaf, *raw.bounds)

    def declare_states(self) -> None:
        for name, b in self.checked.states.items():
            dims = self.dims(b)
            start = len(self.columns)
            names = component_names(name, dims)
            self.columns += names
            self.slices[name] = (start, len(self.columns))
            self.env[name] = self.state(name, dims, "s")
            if b.distribution is not None:
                distribution = self.scalar.distribution(b.distribution)
                self.initial.update({n: distribution for n in names})
            else:
                self.fixed.append(self.declared(name, dims, self.expr(b.value), b.value.span))
                self.initial.update({n: ir.computed(f"{n}(0)") for n in names})

    def state(self, name: str, dims: tuple[int, ...], which: str) -> tn.Node:
        return tn.leaf("state", dims, (*self.slices[name], which), batched=True)

    def declare_named(self) -> None:
        c = self.checked
        for name in c.order:
            if name in c.lets:
                s = c.lets[name]
                self.env[name] = self.declared(name, self.dims(s) if s.shape else None, self.expr(s.value),
                                               s.value.span)
            else:
                self.declare_implicit(c.implicits[name])

    def declare_implicit(self, s: ast.ImplicitStmt) -> None:
        dims = self.dims(s)
        if len(dims) > 1:
            raise self.error("an implicit unknown is a scalar or a vector", s.span)
        unknown = tn.leaf("unknown", dims, len(self.implicits), batched=True)
        self.env[s.name] = unknown
        lhs, rhs = self.expr(s.lhs), self.expr(s.rhs)
        residual = tn.elementwise("-", lhs, rhs) if lhs.shape == rhs.shape else None
        if residual is None or residual.shape != dims:
            raise self.error(f"the equation has {show(lhs.shape)} = {show(rhs.shape)} for {show(dims)} unknowns",
                             s.span)
        if not tn.reads([residual], lambda n: n is unknown):
            raise self.error(f"the equation does not depend on '{s.name}'", s.span)
        self.implicits.append(tn.TensorImplicit(s.name, unknown, residual, self.checked.solvers[s.name],
                                                s.span.line, source_text(self.checked, s), jacobian(residual, unknown)))

    def dynamics(self, name: str) -> tn.Node:
        b, der = self.checked.states[name], self.checked.ders[name]
        return self.declared(f"der({name})", self.dims(b), self.expr(der.value), der.value.span)

    # -- objective and expects
    def terminal(self, node: ast.Expr, at: str | None) -> tn.Node:
        """An expression over the trajectory: states at 0/T, integrals, batch means; `at end`
        takes a pointwise one at T."""
        states = self.checked.states

        def at_time(func: str, call: ast.Call) -> tn.Node:
            if func in states:
                which = "s0" if isinstance(call.args[0], ast.Number) else "sT"
                return self.state(func, self.dims(states[func]), which)
            if func == "integral":
                return self.integral(call)
            if func == "total":
                raise self.error("total() sums over the steps of a discrete-time spec", call.span)
            inner = self.expr(call.args[0], at_time=at_time)
            mean = tn.Node("mean", (), (inner,), None, inner.batched) if inner.shape else inner
            return tn.Node("batch_mean", (), (mean,), None, False)

        value = self.expr(node, at_time=at_time)
        return value if at is None else self.at_end(value)

    def at_end(self, value: tn.Node) -> tn.Node:
        """A pointwise value at the final time: states read from sT, t is T."""
        def change(n: tn.Node) -> tn.Node | None:
            if n.op == "state" and n.attr[2] == "s":
                return tn.leaf("state", n.shape, (*n.attr[:2], "sT"), batched=True)
            return self.final_time() if n.op == "time" else None
        return tn.replace_leaves([value], change)[0]

    def stop_event(self) -> tuple[ir.StopEvent | None, tn.Node | None]:
        """`stop when a > b within T`: the event function a - b (a zero crossing from below), as a
        node of t and the states, and its `StopEvent` (the function itself only in the node)."""
        c = self.checked
        if not c.stop:
            return None, None
        cond = c.stop.condition
        left, right = self.expr(cond.left), self.expr(cond.right)
        if left.shape or right.shape:
            raise self.error("a stop condition compares numbers", cond.span)
        event = tn.elementwise("-", *((left, right) if cond.op in (">", ">=") else (right, left)))
        return ir.StopEvent(ir.computed("event"), self.scalar.stop_time_limit(), source_text(c, cond)), event

    def integral(self, call: ast.Call) -> tn.Node:
        """integral(expr): an extra state column whose rate is the integrand; its value at T."""
        inner = self.expr(call.args[0])
        if inner.shape:
            raise self.error("integral() needs a scalar integrand", call.span, "wrap it in sum(...)")
        name = f"integral_{len(self.integrands)}"
        self.integrands.append(inner)
        self.slices[name] = (len(self.columns), len(self.columns) + 1)
        self.columns.append(name)
        self.initial[name] = sp.Integer(0)
        self.fixed.append(tn.number(0))
        return self.state(name, (), "sT")

    def objective(self) -> tuple[ir.Objective, tn.Node]:
        obj = self.checked.objective
        value = self.terminal(obj.expr, obj.at)
        if value.shape:
            raise self.error(f"the objective must be a number, got {show(value.shape)}", obj.expr.span,
                             "reduce it, e.g. with sum(...), norm(...) or smin(...)")
        per_trajectory = tn.reads([value], lambda n: n.op == "state" or n.op == "unknown" and n.batched,
                                  stop=lambda n: n.op == "batch_mean")
        if self.checked.batch > 1 and per_trajectory:
            raise self.error("with a batch, the objective must be reduced: wrap it in mean(...)", obj.span)
        return ir.Objective(obj.sense, ir.computed("objective"), source_text(self.checked, obj.expr), None), value

    def expectation(self, e: ast.ExpectStmt) -> tuple[tn.Node, tn.Node, ir.Expectation]:
        left, right = self.terminal(e.left, e.at), self.terminal(e.right, e.at)
        if left.shape and right.shape and left.shape != right.shape:
            raise self.error(f"the two sides differ: {show(left.shape)} and {show(right.shape)}", e.span)
        count = max(left.size, right.size)
        text = source_text(self.checked, e).removeprefix("expect").strip()
        placeholders = [ir.computed(f"{text}[{i}]") for i in range(count)]
        return left, right, ir.Expectation(text, e.op, placeholders, placeholders, e.tolerance, e.relative, e.rms,
                                           None, e.span, None)


def _const_node(value) -> tn.Node:
    """A node of an exact const value: a number, or a tensor of numbers."""
    if not is_matrix(value):
        return tn.number(float(value))
    rows = [[float(value[i, j]) for j in range(value.cols)] for i in range(value.rows)]
    data = [r[0] for r in rows] if value.cols == 1 else rows
    return tn.leaf("const", (value.rows,) if value.cols == 1 else (value.rows, value.cols), data)


def lower_tensor(checked: CheckedSpec) -> ir.Problem:
    """Lower a checked continuous-time spec on the tensor path (before `to_minimize`)."""
    return TensorLowering(checked).run()

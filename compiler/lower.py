"""Lower a checked spec to the SymPy IR.

Expressions are built from the syntax tree with SymPy constructors and the fixed function table
only — spec text never reaches sympify/parse_expr/eval. Consts become exact numbers, defs and
lets are substituted inline, vectors and matrices are scalarised (see `values`), `integral(...)`
becomes an extra state of the ODE, and `solve y: ...` becomes an implicit layer.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable

import sympy as sp
from sympy.core.function import AppliedUndef

from ..dsl import ast
from ..dsl.check import CheckedSpec
from ..dsl.errors import SpecError
from ..dsl.functions import DESIGN_FUNCTIONS
from . import ir
from .derivative import residual_jacobian, solution_symbols, total_derivative
from .design import DesignLowering
from .functions import COMPARISONS, CONSTANTS, ELEMENTWISE, batch_mean, net_output
from .linearize import linearize
from .lqr_check import equilibrium_problem, riccati_problem, weight_problem
from .values import ShapeError, Value, array, elementwise, entries, filled, is_matrix, matmul, reduce, shape, \
    show, transpose

INTEGRAL_PREFIX = "integral_"
MAX_ENTRIES = 4096          # entries of one declared vector or matrix (everything is scalarised)
LINEAR_ALGEBRA = {"sum", "norm", "normalize", "trace", "det", "logdet", "inv", "svdvals", "smin", "smax",
                  "eig", "outer", "diag"}


class _Lowering:
    def __init__(self, checked: CheckedSpec) -> None:
        self.checked = checked
        self.env: dict[str, Value] = dict(CONSTANTS)
        self.nets = {name: sp.Function(name) for name in checked.nets}
        self.integrals: dict[str, sp.Expr] = {}   # integral state name -> integrand
        self.totals: dict[str, sp.Expr] = {}      # total(...) component -> summand (discrete specs)
        self.implicits: list[ir.Implicit] = []
        self.random: list[sp.Symbol] = []         # randn() draws of param initial values
        self.design: DesignLowering | None = None   # a sequential design study (compiler/design.py)
        self.net_sizes: dict[str, tuple[int, ...]] = {}   # net -> entries of each input

    def error(self, message: str, span: ast.Span, hint: str | None = None) -> SpecError:
        spec = self.checked.spec
        return SpecError(message, span, spec.source, spec.filename, hint)

    # -- expressions
    def expr(self, node: ast.Expr, local: dict[str, Value] | None = None,
             at_time: Callable[[str, ast.Call], Value] | None = None, shape_of: tuple[int, ...] = ()) -> Value:
        """SymPy value of an AST expression. `at_time` lowers `x(T)`, `integral(.)`, `mean(.)`;
        `shape_of` is the declared shape (for randn())."""
        local = local or {}

        def go(n: ast.Expr) -> Value:
            try:
                value = step(n)
            except ShapeError as err:
                raise self.error(str(err), n.span) from None
            except ValueError as err:   # e.g. SymPy's NonInvertibleMatrixError
                raise self.error(str(err).split("\n")[0] or "invalid operation", n.span) from None
            for entry in entries(value):
                if entry.is_number and (entry.has(sp.zoo, sp.oo, -sp.oo, sp.nan) or entry.is_real is False
                                        or not math.isfinite(float(entry))):
                    raise self.error(f"this is not a finite real number ({entry})", n.span)
            return value

        def step(n: ast.Expr) -> Value:
            if isinstance(n, ast.Number):
                return sp.Integer(int(n.value)) if n.value.is_integer() and abs(n.value) < 2**53 \
                    else sp.Float(n.text if "." in n.text or "e" in n.text.lower() else n.value, 17)
            if isinstance(n, ast.Name):
                if n.id in local:
                    return local[n.id]
                if n.id == "t":
                    return ir.TIME
                if n.id == "T":
                    return self.final_time()
                return self.env[n.id]
            if isinstance(n, ast.Neg):
                return elementwise(lambda v: -v, go(n.operand))
            if isinstance(n, ast.Transpose):
                return transpose(go(n.operand))
            if isinstance(n, ast.Array):
                return array([go(i) for i in n.items])
            if isinstance(n, ast.BinOp):
                return self.binary(n, go(n.left), go(n.right))
            if isinstance(n, ast.Compare):
                return elementwise(COMPARISONS[n.op], go(n.left), go(n.right))
            if isinstance(n, ast.Call):
                return self.call(n, go, at_time, shape_of)
            raise self.error("this expression is not supported here", n.span)

        return go(node)

    def binary(self, n: ast.BinOp, a: Value, b: Value) -> Value:
        if n.op == "@":
            return matmul(a, b)
        if n.op == "/" and any(v == 0 for v in entries(b)):
            raise self.error("division by zero", n.span)
        if n.op == "^":
            return elementwise(lambda x, y: self.power(x, y, n.span), a, b)
        operation = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y,
                     "/": lambda x, y: x / y}[n.op]
        return elementwise(operation, a, b)

    def power(self, base: sp.Expr, exponent: sp.Expr, span: ast.Span) -> sp.Expr:
        """base^exponent; numeric powers are kept exact only while small, else folded to a float."""
        if base.is_Number and exponent.is_Number and not (exponent.is_Integer and abs(exponent) <= 64
                                                          and abs(base) < 2**64):
            try:
                value = float(base) ** float(exponent)
            except (OverflowError, ZeroDivisionError):
                value = math.inf
            if not isinstance(value, float) or not math.isfinite(value):
                raise self.error("this power is not a finite real number", span)
            return sp.Float(value, 17)
        return base ** exponent

    def call(self, n: ast.Call, go, at_time, shape_of: tuple[int, ...]) -> Value:
        if n.func in self.checked.defs:
            d = self.checked.defs[n.func]
            return self.expr(d.body, dict(zip(d.params, [go(a) for a in n.args])))
        if n.func in self.nets:
            return self.net_call(n, [go(a) for a in n.args])
        if n.func in ("integral", "mean", "total", *DESIGN_FUNCTIONS) or n.func in self.checked.states:
            if at_time is None:  # the checker allows these only where at_time is given
                raise self.error(f"{n.func}(...) is not allowed here", n.span)
            return at_time(n.func, n)
        if n.func == "randn":
            draws = [sp.Symbol(f"randn_{len(self.random) + i}", real=True)
                     for i in range(math.prod(shape_of) if shape_of else 1)]
            self.random.extend(draws)
            return sp.ImmutableMatrix(*_rows_cols(shape_of), draws) if shape_of else draws[0]
        if n.func == "d":
            return self.derivative(go(n.args[0]), n.args[1], n.span)
        args = [go(a) for a in n.args]
        if n.func in LINEAR_ALGEBRA:
            return reduce(n.func, args)
        return elementwise(ELEMENTWISE[n.func], *args)

    def net_call(self, n: ast.Call, args: list[Value]) -> Value:
        """A net on its arguments. When each argument has as many entries as its input, the net runs
        once on their concatenation (with `out=k > 1` it gives a vector of k entries); a net of
        scalar inputs with one output maps over vector arguments entry by entry."""
        function, sizes, out = self.nets[n.func], self.input_sizes(n.func), self.checked.nets[n.func][1].out
        counts = [len(entries(a)) for a in args]
        if counts == list(sizes):
            call = function(*[e for a in args for e in entries(a)])
            outputs = [net_output(call, i) for i in range(out)]
            return outputs[0] if out == 1 else sp.ImmutableMatrix(outputs)
        if all(size == 1 for size in sizes) and out == 1:
            return elementwise(lambda *xs: net_output(function(*xs), 0), *args)
        inputs = self.checked.nets[n.func][0].inputs
        want = ", ".join(f"{name}: {size}" for name, size in zip(inputs, sizes))
        total = sum(sizes)
        raise self.error(f"net '{n.func}' takes {total} input entr{'y' if total == 1 else 'ies'} ({want}), got "
                         f"{', '.join(map(str, counts))}", n.span,
                         "an input named after a value declared with a shape (e.g. state x[3]) takes its entries; "
                         "a net of scalar inputs with out=1 also maps over vectors entry by entry")

    def input_sizes(self, net: str) -> tuple[int, ...]:
        """The entries of each input of a net: an input named after a value declared with a shape
        (state x[3], const c[2, 2], ...) takes its entries, any other input one number."""
        if net not in self.net_sizes:
            declared = self.shape_declarations()
            sizes = []
            for name in self.checked.nets[net][0].inputs:
                if declared.get(name, ((), None))[0]:
                    sizes.append(math.prod(self.dims(*declared[name])))
                elif name in self.checked.consts:       # const c = [1, 2, 3]: the value's shape
                    sizes.append(len(entries(self.env[name])))
                else:
                    sizes.append(1)
            self.net_sizes[net] = tuple(sizes)
        return self.net_sizes[net]

    def shape_declarations(self) -> dict[str, tuple[tuple[ast.Expr, ...], ast.Span]]:
        """Declared shapes (the shape's nodes and the declaration's span) by name."""
        c = self.checked
        found = {name: (b.shape, b.span) for table in (c.consts, c.params, c.states) for name, b in table.items()}
        found.update({name: (s.shape, s.span) for name, s in [*c.lets.items(), *c.implicits.items()]})
        return found

    def derivative(self, value: Value, target: ast.Name, span: ast.Span) -> Value:
        """d(value, target): symbolic, through implicit layers by the implicit function theorem."""
        symbols = self.env[target.id]
        accumulated = [*self.integrals, *self.totals]
        try:
            result = [[total_derivative(e, s, self.implicits, solution_symbols(self.state_components, accumulated, s))
                       for s in entries(symbols)] for e in entries(value)]
        except ValueError as err:
            raise self.error(f"cannot differentiate: {err}", span) from None
        flat = [d for row in result for d in row]
        if len(flat) == 1:
            return flat[0]
        if not is_matrix(value):
            return sp.ImmutableMatrix(symbols.rows, symbols.cols, flat)
        if not is_matrix(symbols):
            return sp.ImmutableMatrix(value.rows, value.cols, flat)
        return sp.ImmutableMatrix(result)   # Jacobian: one row per entry of value

    def final_time(self) -> sp.Expr:
        horizon = self.checked.horizon
        return self.constant(horizon.value, "horizon") if horizon else ir.FINAL_TIME

    def constant(self, node: ast.Expr, what: str) -> sp.Expr:
        value = self.expr(node)
        if is_matrix(value):
            raise self.error(f"{what} must be a number, got {show(shape(value))}", node.span)
        if value.free_symbols:
            raise self.error(f"{what} must be a constant", node.span)
        if not value.is_real or not value.is_finite:
            raise self.error(f"{what} is not a finite real number ({value})", node.span)
        return value

    def dims(self, shape_nodes: tuple[ast.Expr, ...], span: ast.Span) -> tuple[int, ...]:
        """A declared shape: one or two positive integer constants."""
        if len(shape_nodes) > 2:
            raise self.error("shapes have one or two dimensions: x[n] or A[n, m]", span)
        dims = []
        for node in shape_nodes:
            value = self.constant(node, "a dimension")
            if not value.is_Integer or value < 1:
                raise self.error("a dimension must be a positive integer", node.span)
            dims.append(int(value))
        if math.prod(dims) > MAX_ENTRIES:
            raise self.error(f"too many entries ({math.prod(dims)}; the limit is {MAX_ENTRIES})", span)
        return tuple(dims)

    def declared(self, name: str, dims: tuple[int, ...] | None, value: Value, span: ast.Span,
                 declaration: str | None = None) -> Value:
        """A value checked against (or broadcast to) its declared shape; `None`: the value's own.
        `declaration`: the statement that declares the shape, when `name` is not it (der(x): state x)."""
        if dims is None:
            return value
        if not dims:
            if is_matrix(value):
                raise self.error(f"'{name}' is declared a scalar but its value is {show(shape(value))}", span,
                                 f"declare its shape, e.g. {declaration or name}[{', '.join(map(str, value.shape))}]")
            return value
        try:
            return filled(dims, value)
        except ShapeError as err:
            raise self.error(f"'{name}': {err}", span) from None

    # -- terminal expressions (objective, expects)
    def terminal(self, node: ast.Expr, at: str | None) -> Value:
        """An expression over the whole trajectory: states at 0/T, integrals, batch means."""
        states = self.checked.states

        def at_time(func: str, call: ast.Call) -> Value:
            if func in states:
                arg = call.args[0]
                pick = ir.initial_symbol if isinstance(arg, ast.Number) else ir.final_symbol
                return self.env[func].applyfunc(lambda s: pick(s.name)) if is_matrix(self.env[func]) \
                    else pick(func)
            if func == "total":
                return self.total(call)
            if func == "integral":
                inner = self.expr(call.args[0])
                if is_matrix(inner):
                    raise self.error("integral() needs a scalar integrand", call.span, "wrap it in sum(...)")
                name = f"{INTEGRAL_PREFIX}{len(self.integrals)}"
                self.integrals[name] = inner
                return ir.final_symbol(name)
            if self.design and self.design.handles(call):
                return self.design.call(call, at_time)
            inner = self.expr(call.args[0], at_time=at_time)  # mean: entries, then the batch
            inner = sp.Add(*entries(inner)) / len(entries(inner))
            return batch_mean(self.pointwise_to_final(inner) if at else inner)

        value = self.expr(node, at_time=at_time)
        return self.pointwise_to_final(value) if at is not None else value

    def total(self, call: ast.Call) -> Value:
        """total(expr): a sum over the steps, for discrete-time specs (see compiler.discrete)."""
        raise self.error("total() sums over the steps of a discrete-time spec", call.span,
                         "use integral(...) with der(...) dynamics, or write next(x) = ... and steps N")

    def pointwise_to_final(self, value: Value) -> Value:
        subs = {ir.state_symbol(s): ir.final_symbol(s) for s in self.state_components}
        subs[ir.TIME] = self.final_time()
        return value.xreplace(subs)

    # -- declarations
    def declare_states(self) -> dict[str, sp.Expr | ir.Distribution]:
        """State components (x or x[i]) with their initial values."""
        initial: dict[str, sp.Expr | ir.Distribution] = {}
        for name, b in self.checked.states.items():
            dims = self.dims(b.shape, b.span)
            components = _component_names(name, dims)
            symbols = [ir.state_symbol(c) for c in components]
            self.env[name] = sp.ImmutableMatrix(*_rows_cols(dims), symbols) if dims else symbols[0]
            if b.distribution is not None:
                a, bb = (float(self.constant(x, "distribution parameter")) for x in b.distribution.args)
                if b.distribution.func == "normal" and bb < 0:
                    raise self.error("normal(mean, std) needs std >= 0", b.distribution.args[1].span)
                if b.distribution.func == "uniform" and bb <= a:
                    raise self.error("uniform(low, high) needs low < high", b.distribution.span)
                initial.update({c: ir.Distribution(b.distribution.func, a, bb) for c in components})
            else:
                value = self.declared(name, dims, self.expr(b.value), b.value.span)
                initial.update(zip(components, entries(value)))
        self.state_components = list(initial)
        return initial

    def declare_params(self) -> dict[str, ir.Param]:
        params = {}
        for name, b in self.checked.params.items():
            dims = self.dims(b.shape, b.span)
            if b.distribution is not None:   # an uncertain param: declared by the design study
                if dims:
                    raise self.error("uncertain params are scalars", b.span)
                self.env[name] = sp.Symbol(name, real=True)
                continue
            value = self.declared(name, dims, self.expr(b.value, shape_of=dims), b.value.span)
            if any(s not in self.random for e in entries(value) for s in e.free_symbols):
                raise self.error(f"the initial value of '{name}' must be constant (or use randn())", b.value.span)
            params[name] = ir.Param(name, dims, entries(value))
            symbols = [sp.Symbol(c, real=True) for c in _component_names(name, dims)]
            self.env[name] = sp.ImmutableMatrix(*_rows_cols(dims), symbols) if dims else symbols[0]
        return params

    def declare_named(self) -> None:
        """Lets, controls and implicit unknowns, in dependency order."""
        c = self.checked
        for name in c.order:
            if name in c.lets:
                s = c.lets[name]
                dims = self.dims(s.shape, s.span) if s.shape else None
                self.env[name] = self.declared(name, dims, self.expr(s.value), s.value.span)
            else:
                self.declare_implicit(c.implicits[name])

    def declare_implicit(self, s: ast.ImplicitStmt) -> None:
        dims = self.dims(s.shape, s.span)
        if len(dims) > 1:
            raise self.error("an implicit unknown is a scalar or a vector", s.span)
        unknowns = [sp.Symbol(c, real=True) for c in _component_names(s.name, dims)]
        self.env[s.name] = sp.ImmutableMatrix(unknowns) if dims else unknowns[0]
        lhs, rhs = self.expr(s.lhs), self.expr(s.rhs)
        try:
            residual = entries(elementwise(lambda a, b: a - b, lhs, rhs))
        except ShapeError as err:
            raise self.error(f"the two sides of the equation differ: {err}", s.span) from None
        if len(residual) != len(unknowns):
            raise self.error(f"the equation has {len(residual)} entries for {len(unknowns)} unknowns", s.span)
        matrix = sp.Matrix(residual)
        opaque = any(a.free_symbols & set(unknowns) for a in matrix.atoms(AppliedUndef))
        jacobian = None if opaque else residual_jacobian(residual, unknowns)
        if jacobian is not None and all(j == 0 for row in jacobian for j in row):
            raise self.error(f"the equation does not depend on '{s.name}'", s.span)
        self.implicits.append(ir.Implicit(s.name, unknowns, residual, jacobian, self.checked.solvers[s.name],
                                          s.span.line, _text(self.checked, s)))

    # -- the whole problem
    def declare_consts(self) -> None:
        for name, b in self.checked.consts.items():
            dims = self.dims(b.shape, b.span) if b.shape else None
            value = self.declared(name, dims, self.expr(b.value), b.value.span)
            if any(e.free_symbols for e in entries(value)):
                raise self.error(f"const '{name}' must be constant", b.value.span)
            self.env[name] = value

    def run(self) -> ir.Problem:
        c = self.checked
        self.declare_consts()
        params = self.declare_params()
        if c.observation:
            self.design = DesignLowering(self)
            params.update({name: ir.Param(name, (), [sp.Float(value)]) for name, value in self.design.declare().items()})
        initial = self.declare_states()
        self.declare_named()
        dynamics = {}
        for name, b in c.states.items():
            der = c.ders[name]
            value = self.declared(f"der({name})", self.dims(b.shape, b.span), self.expr(der.value), der.value.span,
                                  f"state {name}")
            dynamics.update(zip(_component_names(name, self.dims(b.shape, b.span)), entries(value)))
        controls = {}
        for name in c.controls:
            value = self.env[name]
            controls.update(zip(_component_names(name, shape(value)), entries(value)))
        if self.design:
            self.design.lower_observation()   # defines information_gain for the objective and expects

        objective, expectations = self.objective_and_expectations()

        stop = None
        if c.stop:
            cond = c.stop.condition
            lhs, rhs = self.expr(cond.left), self.expr(cond.right)
            if is_matrix(lhs) or is_matrix(rhs):
                raise self.error("a stop condition compares numbers", cond.span)
            function = lhs - rhs if cond.op in (">", ">=") else rhs - lhs
            max_time = float(self.constant(c.stop.max_time, "the stop time limit"))
            if max_time <= 0:
                raise self.error("the stop time limit must be positive", c.stop.max_time.span)
            stop = ir.StopEvent(function, max_time, _text(c, cond))
        horizon = None
        if c.horizon:
            horizon = float(self.constant(c.horizon.value, "horizon"))
            if horizon <= 0:
                raise self.error("the horizon must be positive", c.horizon.value.span)

        self.check_batch_reduction(objective, c.objective.span)
        references = [self.lqr(r) for r in c.references]
        plots = [self.plot(p) for p in c.plots]
        user_states = list(dynamics)
        dynamics.update(self.integrals)
        for name in self.integrals:
            initial[name] = sp.Integer(0)
        study = None
        if self.design:   # sensitivity states; time rescaled to end at the observation time (s in [0, 1])
            study = self.design.finish(dynamics, initial, objective, expectations)
            horizon = 1.0 if dynamics else None
        return ir.Problem(
            name=c.name, title=c.title, states=list(dynamics), initial=initial, params=params,
            nets={n: ir.Net(n, stmt.inputs, opts, self.input_sizes(n)) for n, (stmt, opts) in c.nets.items()},
            dynamics=dynamics, controls=controls, horizon=horizon, stop=stop, objective=objective,
            expectations=expectations, ode=c.ode, training=c.training, batch=c.batch, user_states=user_states,
            references=references, plots=plots, implicits=self.implicits, random_symbols=self.random, design=study,
        )

    def objective_and_expectations(self) -> tuple[ir.Objective, list[ir.Expectation]]:
        obj = self.checked.objective
        value = self.terminal(obj.expr, obj.at)
        if is_matrix(value):
            raise self.error(f"the objective must be a number, got {show(shape(value))}", obj.expr.span,
                             "reduce it, e.g. with sum(...), norm(...) or smin(...)")
        objective = ir.Objective(obj.sense, value, _text(self.checked, obj.expr))
        return objective, [self.expectation(e) for e in self.checked.expects]

    def range(self, low: ast.Expr, high: ast.Expr, span: ast.Span) -> tuple[float, float]:
        bounds = float(self.constant(low, "range")), float(self.constant(high, "range"))
        if bounds[1] <= bounds[0]:
            raise self.error("a range must be increasing: [low, high] with low < high", span)
        return bounds

    def range_variable(self, name: str, span: ast.Span) -> str:
        if is_matrix(self.env[name]):
            raise self.error(f"a range runs over a scalar state; '{name}' is {show(shape(self.env[name]))}", span)
        return name

    def plot(self, p: ast.PlotStmt) -> ir.Plot:
        low, high = self.range(p.low, p.high, p.span)
        exprs = [self.expr(e) for e in p.exprs]
        for e, node in zip(exprs, p.exprs):
            if is_matrix(e):
                raise self.error("a plot draws numbers", node.span)
        return ir.Plot(exprs, [_text(self.checked, e) for e in p.exprs],
                       (self.range_variable(p.var, p.var_span), low, high))

    def open_loop_dynamics(self) -> tuple[dict[str, sp.Expr], list[ir.Implicit]]:
        """The dynamics and the implicit equations with each control kept as a free symbol (for
        linearisation)."""
        c = self.checked
        closed_env = self.env
        self.env = dict(closed_env)
        try:
            for name in c.order:
                if name in c.lets:
                    s = c.lets[name]
                    self.env[name] = sp.Symbol(name, real=True) if s.kind == "control" else self.expr(s.value)
            implicits = []
            for i in self.implicits:
                stmt = c.implicits[i.name]
                residual = entries(elementwise(lambda a, b: a - b, self.expr(stmt.lhs), self.expr(stmt.rhs)))
                jacobian = None if i.jacobian is None else residual_jacobian(residual, i.unknowns)
                implicits.append(replace(i, residual=residual, jacobian=jacobian))
            return {name: self.expr(c.ders[name].value) for name in c.states}, implicits
        finally:
            self.env = closed_env

    def lqr(self, r: ast.ReferenceStmt) -> ir.LqrReference:
        c = self.checked
        if any(is_matrix(self.env[s]) for s in c.states) or any(is_matrix(self.env[u]) for u in c.controls):
            raise self.error("an LQR reference needs scalar states and controls", r.span)
        options = {k.name: k.value for k in r.call.kwargs}
        Q, R = self.matrix(options["Q"]), self.matrix(options["R"])
        if problem := weight_problem(Q, R):
            raise self.error(problem, r.call.span)
        equilibrium = {name: 0.0 for name in c.states}
        for name, value, _ in r.at:
            equilibrium[name] = float(self.constant(value, "equilibrium value"))
        try:
            lin = linearize(*self.open_loop_dynamics(), list(c.states), c.controls, equilibrium)
        except ValueError as err:
            raise self.error(f"cannot linearise the dynamics: {err}", r.span,
                             "the dynamics must be differentiable at the point, and call nets only through controls") from None
        if problem := equilibrium_problem(lin.rates, list(c.states)) or \
                riccati_problem(lin.A, lin.B, Q, R, list(c.states)):
            raise self.error(problem, r.span, "LQR linearises at the `at` point with every control 0")
        max_ratio = float(self.constant(options["max_ratio"], "max_ratio")) if "max_ratio" in options else None
        return ir.LqrReference(Q, R, [equilibrium[s] for s in c.states], lin.A, lin.B, max_ratio, _text(c, r.call))

    def matrix(self, node: ast.Expr) -> list[list[float]]:
        """A constant matrix from diag(...), [[...]] or a single value (shapes checked already)."""
        if isinstance(node, ast.Call):
            values = [float(self.constant(a, "matrix entry")) for a in node.args]
            return [[values[i] if i == j else 0.0 for j in range(len(values))] for i in range(len(values))]
        if isinstance(node, ast.Array):
            return [[float(self.constant(e, "matrix entry")) for e in row.items] for row in node.items]
        return [[float(self.constant(node, "matrix entry"))]]

    def expectation(self, e: ast.ExpectStmt) -> ir.Expectation:
        c = self.checked
        if e.over:
            var, low, high = e.over
            left, right = self.expr(e.left), self.expr(e.right)
            over = (self.range_variable(var, e.over_span), *self.range(low, high, e.over_span))
        else:
            left, right = self.terminal(e.left, e.at), self.terminal(e.right, e.at)
            over = None
        if is_matrix(left) or is_matrix(right):
            try:
                left, right = (entries(v) for v in _same_shape(left, right))
            except ShapeError as err:
                raise self.error(f"the two sides differ: {err}", e.span) from None
        else:
            left, right = [left], [right]
        return ir.Expectation(_text(c, e).removeprefix("expect").strip(), e.op, left, right, e.tolerance,
                              e.relative, e.rms, over, e.span)

    def check_batch_reduction(self, objective: ir.Objective, span: ast.Span) -> None:
        if self.checked.batch == 1:
            return
        outside = objective.expr.replace(lambda x: isinstance(x, batch_mean), lambda x: sp.Integer(0))
        per_trajectory = {ir.initial_symbol(s) for s in self.state_components} | \
                         {ir.final_symbol(s) for s in self.state_components}
        if outside.free_symbols & per_trajectory:
            raise self.error("with a batch, the objective must be reduced: wrap it in mean(...)", span)


def _same_shape(a: Value, b: Value) -> tuple[Value, Value]:
    if is_matrix(a) and is_matrix(b):
        if a.shape != b.shape:
            raise ShapeError(f"{show(shape(a))} and {show(shape(b))}")
        return a, b
    if is_matrix(a):
        return a, filled(shape(a), b)
    return filled(shape(b), a), b


def _rows_cols(dims: tuple[int, ...]) -> tuple[int, int]:
    return (dims[0], 1) if len(dims) == 1 else dims


def _component_names(name: str, dims: tuple[int, ...]) -> list[str]:
    """x -> [x]; x[3] -> [x[0], x[1], x[2]]; A[2,2] -> [A[0,0], A[0,1], A[1,0], A[1,1]] (row-major)."""
    if not dims:
        return [name]
    if len(dims) == 1:
        return [f"{name}[{i}]" for i in range(dims[0])]
    return [f"{name}[{i},{j}]" for i in range(dims[0]) for j in range(dims[1])]


def _text(checked: CheckedSpec, node) -> str:
    """The source text of a node (single line)."""
    span = node.span
    lines = checked.spec.source.splitlines()
    if span.line == span.end_line:
        return lines[span.line - 1][span.column - 1: span.end_column - 1].strip()
    return lines[span.line - 1][span.column - 1:].strip() + " ..."


def lower(checked: CheckedSpec) -> ir.Problem:
    """Lower a checked spec to a `Problem` of SymPy expressions."""
    if checked.discrete is not None:
        from .discrete import lower_discrete
        return lower_discrete(checked)
    return _Lowering(checked).run()

"""The compiler's side of optimal control (dsl/constraints.py checks the statements): open-loop
controls as opaque functions of the time, `subject to` constraints as generated terminal
expressions, and the free final time as a param with time rescaled to [0, 1] (a pass)."""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from . import ir
from .expressions import INTEGRAL_PREFIX, ExpressionLowering, source_text
from .functions import net_output, sigmoid
from .values import ShapeError, entries, is_matrix, same_shape

RAW_FINAL_TIME = "_T"   # the free final time's raw param (a spec name never starts with '_')


def declare_optimal_control(lowering: ExpressionLowering, params: dict[str, ir.Param]
                            ) -> tuple[dict[str, ir.Net], ir.FreeTime | None]:
    """The open-loop controls (as nets of the time) and the free final time's raw param (added to
    `params`; under the direct method the raw param is T itself). Each control u becomes
    net_output(u(t / T), 0): a function on [0, 1] that the runtime binds to its piecewise values
    (runtime/open_loop.py)."""
    checked = lowering.checked
    free_time = None
    if checked.free_horizon is not None:
        low, high = lowering.range(checked.free_horizon.low, checked.free_horizon.high, checked.free_horizon.span)
        if low <= 0:
            raise lowering.error("the range of a free final time must be positive", checked.free_horizon.span)
        raw = sp.Symbol(RAW_FINAL_TIME, real=True)
        if checked.direct is not None:   # T itself: the method bounds it (no sigmoid in every dynamics call)
            params[RAW_FINAL_TIME] = ir.Param(RAW_FINAL_TIME, (), [sp.Float((low + high) / 2)])
            free_time = ir.FreeTime(low, high, RAW_FINAL_TIME, raw, squashed=False)
        else:
            params[RAW_FINAL_TIME] = ir.Param(RAW_FINAL_TIME, (), [sp.Integer(0)])
            free_time = ir.FreeTime(low, high, RAW_FINAL_TIME, low + (high - low) * sigmoid(raw))
    nets = {}
    for name, (s, options) in checked.open_loops.items():
        low, high = lowering.range(s.low, s.high, s.span) if s.low is not None else (None, None)
        if options.init is not None and low is not None and not low <= options.init <= high:
            raise lowering.error(f"init={options.init:g} is outside the control's range [{low:g}, {high:g}]",
                                 s.call.span)
        nets[name] = ir.Net(name, ("t",), ir.OpenLoop(options, low, high))
        lowering.env[name] = net_output(sp.Function(name)(ir.TIME / lowering.final_time()), 0)
    return nets, free_time


def lower_constraints(lowering: ExpressionLowering) -> list[ir.Constraint]:
    """`subject to` statements, entry by entry, as g == 0 or g <= 0; a path constraint adds the
    running state ∫ max(g, 0)² dt (∫ g² dt for an equality) and constrains its final value to 0,
    except under the direct method, which enforces g <= 0 itself at the points of the trajectory."""
    constraints = []
    for s in lowering.checked.constraints:
        text = source_text(lowering.checked, s).removeprefix("subject").strip().removeprefix("to").strip()
        value = lowering.expr if s.always else lowering.terminal
        left, right = value(s.left), value(s.right)
        try:
            pairs = list(zip(*(entries(v) for v in same_shape(left, right)))) \
                if is_matrix(left) or is_matrix(right) else [(left, right)]
        except ShapeError as err:
            raise lowering.error(f"the two sides of the constraint differ: {err}", s.span) from None
        kind = "eq" if s.op == "==" else "ineq"
        for i, (a, b) in enumerate(pairs):
            g = b - a if s.op == ">=" else a - b
            name = text if len(pairs) == 1 else f"{text} [{i}]"
            if s.always and lowering.checked.direct is not None:
                constraints.append(ir.Constraint(name, kind, g, s.span.line, path=True, running=True))
            elif s.always:
                state = f"{INTEGRAL_PREFIX}{len(lowering.integrals)}"
                lowering.integrals[state] = (sp.Max(g, 0) if kind == "ineq" else g) ** 2
                constraints.append(ir.Constraint(name, "eq", ir.final_symbol(state), s.span.line, path=True,
                                                 sampled=g if kind == "ineq" else sp.Abs(g)))
            else:
                constraints.append(ir.Constraint(name, kind, g, s.span.line))
    return constraints


def direct_method(lowering: ExpressionLowering, constraints: list[ir.Constraint],
                  dynamics: dict[str, sp.Expr]) -> ir.Direct | None:
    """`solve direct(...)` with N resolved (the piecewise controls' N, else 50), the states a
    terminal equality fixes (a constraint a·x(T) + b == 0 of one final value: x(T) == 0) and the
    integral states that neither the dynamics nor another integrand read (quadratures)."""
    checked = lowering.checked
    if checked.direct is None:
        return None
    counts = [options.N for _, options in checked.open_loops.values()]
    options = checked.direct.model_copy(update={"N": checked.direct.N or (counts[0] if counts else 50)})
    targets = {}
    for c in constraints:
        symbols = c.expr.free_symbols
        if c.kind != "eq" or len(symbols) != 1:
            continue
        symbol = next(iter(symbols))
        slope = c.expr.diff(symbol)
        rest = sp.expand(c.expr - slope * symbol)
        if symbol.name.endswith("(T)") and slope.is_number and slope != 0 and rest.is_number:
            targets[symbol.name.removesuffix("(T)")] = float(-rest / slope)
    integrands = lowering.integrals
    running = [c.expr for c in constraints if c.running]
    read = {symbol.name for e in [*dynamics.values(), *integrands.values(), *running] for symbol in e.free_symbols}
    return ir.Direct(options, targets, [name for name in integrands if name not in read])


def constraint_functions(problem: ir.Problem) -> ir.Problem:
    """The generated functions "constraints": the terminal constraints' values (terminal
    signature), "path": the direct method's path constraints g at the points (t, s) of the
    trajectory (stacked, as the dynamics), and "path_samples": the trained path constraints' g
    (|g| for ==) at the same kind of points, which result.json reports as `worst`."""
    terminal = [c.expr for c in problem.constraints if not c.running]
    running = [c.expr for c in problem.constraints if c.running]
    sampled = [c.sampled for c in problem.constraints if c.sampled is not None]
    functions = dict(problem.functions)
    if terminal:
        functions["constraints"] = (terminal, "tuple")
    if running:
        functions["path"] = (running, "stack")
    if sampled:
        functions["path_samples"] = (sampled, "stack")
    return replace(problem, functions=functions)


def free_final_time(problem: ir.Problem) -> ir.Problem:
    """With a free final time T: time rescaled to s = t / T on [0, 1] (dx/ds = T f(sT, x)), and T
    put in everywhere for its expression in the raw param; the horizon becomes 1."""
    free = problem.free_time
    if free is None:
        return problem
    final = {ir.FINAL_TIME: free.value}

    def at(e: sp.Expr) -> sp.Expr:
        return e.xreplace(final)

    def rescaled(e: sp.Expr) -> sp.Expr:
        return at(e.xreplace({ir.TIME: ir.TIME * ir.FINAL_TIME}))

    dynamics = {name: free.value * rescaled(f) for name, f in problem.dynamics.items()}
    expectations = [replace(e, left=[(rescaled if e.over else at)(v) for v in e.left],
                            right=[(rescaled if e.over else at)(v) for v in e.right]) for e in problem.expectations]
    return replace(
        problem, dynamics=dynamics, horizon=1.0, objective=replace(problem.objective, expr=at(problem.objective.expr)),
        controls={n: rescaled(v) for n, v in problem.controls.items()}, expectations=expectations,
        constraints=[replace(c, expr=(rescaled if c.running else at)(c.expr),
                             sampled=None if c.sampled is None else rescaled(c.sampled)) for c in problem.constraints],
        functions={n: ([at(v) for v in values], how) for n, (values, how) in problem.functions.items()},
        plots=[replace(p, exprs=[rescaled(v) for v in p.exprs]) for p in problem.plots])

"""Generate the plain-torch tier's Python-float kernel for a spec with one trajectory: its dynamics'
expressions, and the inputs of the nets they call, as Python functions of plain floats, each with
its vector-Jacobian product by SymPy derivatives (runtime.solvers.scalar_kernel wraps them in
autograd functions; the nets stay torch modules).

With one trajectory every torch operation of the expressions works on one number and costs its
dispatch and graph recording (~1.5 us forward, ~3 us backward); the same arithmetic on Python
floats costs ~50 ns. The kernel's inputs are one flat list `_v`: t, the states, the entries of the
params the expressions read (in the spec's order, row-major), then (for the right-hand side) the
nets' outputs, call by call. Only numbers and mangled names (`_v3`, `_x7`, `_g0`) reach the source
(compiler.py_print)."""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from . import ir
from .py_print import function_source
from .split_dynamics import NetCall, Unsupported, derivative, net_calls, output_symbol, torch_min_max
from .values import component_names


@dataclass(frozen=True)
class KernelCall:
    """One distinct net call: the net's index in the problem, its input and output widths, and the
    run of states it reads when its inputs are exactly that (start, stop), else None (the kernel's
    `inputs` function computes them)."""

    net: int
    inputs: int
    outputs: int
    states: tuple[int, int] | None


@dataclass(frozen=True)
class ScalarKernel:
    """The generated source (functions `_rhs`, `_rhs_vjp` and, when some call's inputs are
    expressions, `_inputs`, `_inputs_vjp`) and the layout of its flat input list."""

    source: str
    states: int
    params: tuple[int, ...]          # the params read, by index in the problem's order
    calls: tuple[KernelCall, ...]

    @property
    def computes_inputs(self) -> bool:
        return any(c.states is None for c in self.calls)


def _state_run(args: tuple[sp.Expr, ...], states: list[sp.Symbol]) -> tuple[int, int] | None:
    """(start, stop) when `args` are the states start..stop-1 in order, else None."""
    if not args or any(a not in states for a in args):
        return None
    start = states.index(args[0])
    run = tuple(states[start:start + len(args)])
    return (start, start + len(args)) if run == args else None


def _head(problem: ir.Problem, states: list[sp.Symbol],
          used: set[sp.Symbol]) -> tuple[list[sp.Symbol], tuple[int, ...]]:
    """t, the states and the entries of the params `used` reads: the symbols of the inputs' head."""
    head, indices = [ir.TIME, *states], []
    for j, param in enumerate(problem.params.values()):
        entries = [sp.Symbol(name, real=True) for name in component_names(param.name, param.shape)]
        if not used.isdisjoint(entries):
            indices.append(j)
            head += entries
    return head, tuple(indices)


def _block(name: str, outputs: list[sp.Expr], inputs: list[sp.Symbol]) -> str:
    """`name(_v)` giving `outputs`, and `name_vjp(_v, _g)` giving sum_i _g_i d outputs_i / d _v."""
    names = {s: f"_v{k}" for k, s in enumerate(inputs)}
    adjoints = [sp.Symbol(f"_g{i}", real=True) for i in range(len(outputs))]
    scalar = sum((a * torch_min_max(e) for a, e in zip(adjoints, outputs)), sp.Integer(0))
    grads = [derivative(scalar, v) for v in inputs]
    adjoint_names = {a: f"_g{i}" for i, a in enumerate(adjoints)}
    values = list(names.values())
    return "\n\n".join([function_source(name, {"_v": values}, outputs, names),
                        function_source(f"{name}_vjp", {"_v": values, "_g": list(adjoint_names.values())}, grads,
                                        {**names, **adjoint_names})])


def generate(problem: ir.Problem) -> ScalarKernel:
    """The kernel of `problem`'s dynamics; `Unsupported` where they are not plain expressions of one
    trajectory (tensor path, implicit layers, a batch, nested nets, a function without a float form)."""
    if problem.tensor is not None or problem.implicits:
        raise Unsupported("the tensor path or an implicit layer")
    if problem.batch != 1:
        raise Unsupported("a batch of trajectories")
    states = [ir.state_symbol(n) for n in problem.states]
    dynamics = [problem.dynamics[n] for n in problem.states]
    calls, subs = net_calls(dynamics, list(problem.nets))
    dynamics = [e.xreplace(subs) for e in dynamics]
    if any(e.atoms(sp.core.function.AppliedUndef) for e in dynamics):
        raise Unsupported("a net call used other than through its outputs")
    used = set().union(*(e.free_symbols for e in dynamics), *(a.free_symbols for c in calls for a in c.args))
    head, params = _head(problem, states, used)
    nets = list(problem.nets.values())
    layout = tuple(KernelCall(c.net, len(c.args), getattr(nets[c.net].options, "out", 1), _state_run(c.args, states))
                   for c in calls)
    outputs = [output_symbol(c, i) for c, call in enumerate(layout) for i in range(call.outputs)]
    parts = [_block("_rhs", dynamics, head + outputs)]
    computed: list[NetCall] = [c for c, k in zip(calls, layout) if k.states is None]
    if computed:
        parts.append(_block("_inputs", [a for c in computed for a in c.args], head))
    return ScalarKernel("\n\n".join(parts) + "\n", len(states), params, layout)

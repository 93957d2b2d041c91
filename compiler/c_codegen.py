"""Generate the native tier's C99 source for one spec: the right-hand side, its vector-Jacobian
product, the MLPs and their reverse pass, the stop event (the kernel, around compiler.c_kernel's
fixed parts), and (from compiler.c_solver or compiler.c_fixed) the whole Runge-Kutta solve with
its discrete reverse pass (the solver).

The solver sees one flat parameter vector `th`: the entries of the params the dynamics (or the
stop event) use, in the spec's order, row-major, then the weights and biases of the nets they call,
layer by layer (nn.Linear's order). A net call's output
entries become plain symbols, so the dynamics' derivatives are SymPy derivatives of plain
expressions; the nets' own reverse pass is a generated loop nest. The kernel works on blocks of
CHUNK rows (trajectories), each array of a block stored entry-major (entry k of row r at k * n + r):
the expressions run row by row, the nets' loops along the rows, so that they vectorise and each
weight is loaded once per block. Only numbers and mangled names reach the source (compiler.c_print).
Constructs the generator does not cover raise `Unsupported`."""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from . import functions as fn
from . import ir
from .c_print import block
from .c_fixed import FIXED_SOLVER, fixed_solver_header
from .c_open_loop import PiecewiseLayout, piecewise_source
from .c_kernel import FROM_OUTPUT, KERNEL_ENTRIES, activation_helpers, kernel_header
from .c_solver import SOLVER, solver_header
from .split_dynamics import NetCall, Unsupported, gradient, net_calls, output_symbol, torch_min_max
from .values import component_names

MAX_WIDTH = 256             # widest MLP layer the native tier generates
MAX_ENTRIES = 1 << 16       # batch x states


@dataclass(frozen=True)
class CSource:
    """A generated native solver: its two C translation units and the sizes its caller packs."""

    kernel: str                 # the right-hand side, its VJP, the nets, the event (built with -ffast-math)
    solver: str                 # the adaptive solve and its reverse pass (IEEE arithmetic)
    states: int
    theta: int
    params: tuple[int, ...]     # the params packed into th, by index in the problem's order
    nets: tuple[int, ...]       # the nets packed after them


@dataclass(frozen=True)
class MlpLayout:
    """Where one MLP's weights sit in `th` and its activations in its work buffer `za`: the input
    a0 first, then per hidden layer its pre-activations z (unless the activation's derivative
    needs only a: compiler.c_kernel.FROM_OUTPUT) and its activations a, the output z last."""

    sizes: tuple[int, ...]
    act: str
    weights: tuple[int, ...]         # offset of W (out x in, row-major) per layer; b follows W
    inputs: tuple[int, ...]          # offset of the layer's input activations in za
    outputs: tuple[int | None, ...]  # offset of the layer's pre-activations z in za (None: not kept)
    activations: tuple[int, ...]     # offset of each hidden layer's activations a in za
    buffer: int                      # entries of za

    @classmethod
    def of(cls, sizes: tuple[int, ...], act: str, offset: int) -> "MlpLayout":
        weights, inputs, outputs, activations = [], [], [], []
        position, previous, layers = sizes[0], 0, len(sizes) - 1
        for l, (nin, nout) in enumerate(zip(sizes, sizes[1:])):
            weights.append(offset)
            offset += nout * nin + nout
            inputs.append(previous)
            kept = l == layers - 1 or act not in FROM_OUTPUT
            outputs.append(position if kept else None)
            position += nout if kept else 0
            if l < layers - 1:
                activations.append(position)
                previous = position
                position += nout
        return cls(sizes, act, tuple(weights), tuple(inputs), tuple(outputs), tuple(activations), position)

    @property
    def size(self) -> int:
        return sum(nout * nin + nout for nin, nout in zip(self.sizes, self.sizes[1:]))

    @property
    def deltas(self) -> tuple[int, ...]:
        """Offset of each layer's output gradient (its delta) in a row's delta area `gd`."""
        return tuple(sum(self.sizes[1:l + 1]) for l in range(len(self.sizes) - 1))

    @property
    def delta_size(self) -> int:
        """Entries of a row's delta area: one per output of every layer."""
        return sum(self.sizes[1:])


def _entries(param: ir.Param) -> list[sp.Symbol]:
    """The symbols of a param's entries, row-major."""
    return [sp.Symbol(name, real=True) for name in component_names(param.name, param.shape)]


def _parameter_names(problem: ir.Problem, used: set[sp.Symbol]) -> tuple[dict[sp.Symbol, str], tuple[int, ...]]:
    """`th[k]` for each entry of the params the dynamics use, and those params' indices."""
    names, indices = {}, []
    for j, param in enumerate(problem.params.values()):
        entries = _entries(param)
        if used.isdisjoint(entries):
            continue
        indices.append(j)
        start = len(names)
        names.update({e: f"th[{start + i}]" for i, e in enumerate(entries)})
    return names, tuple(indices)


def _mlps(problem: ir.Problem, used: list[int], offset: int) -> tuple[list[MlpLayout | PiecewiseLayout], int]:
    """The layouts of the nets (MLPs or open-loop controls) with indices `used`, packed from
    `offset` on, and the end of `th`."""
    layouts = []
    nets = list(problem.nets.values())
    for net in (nets[k] for k in used):
        if isinstance(net.options, ir.OpenLoop):
            layouts.append(PiecewiseLayout.of(net.options, offset))
            offset += layouts[-1].size
            continue
        sizes = (net.width, *net.options.hidden, net.options.out)
        if max(sizes) > MAX_WIDTH:
            raise Unsupported(f"a net wider than {MAX_WIDTH}")
        layout = MlpLayout.of(sizes, net.options.act, offset)
        offset += layout.size
        layouts.append(layout)
    return layouts, offset


def _offsets(calls: list[NetCall], mlps: list[MlpLayout]) -> tuple[list[int], int]:
    """Where each call's work buffer starts in a row's work area `zw`, and the area's size."""
    offsets, size = [], 0
    for call in calls:
        offsets.append(size)
        size += mlps[call.net].buffer
    return offsets, size


def _delta_offsets(calls: list[NetCall], mlps: list) -> tuple[list[int | None], int]:
    """Where each MLP call's layer deltas start in a row's delta area `gd` (None for a net that
    adds its parameter gradients itself), and the area's size."""
    offsets, size = [], 0
    for call in calls:
        m = mlps[call.net]
        offsets.append(size if isinstance(m, MlpLayout) else None)
        size += m.delta_size if isinstance(m, MlpLayout) else 0
    return offsets, size


def _views(calls: list[NetCall], mlps: list[MlpLayout], qualifier: str) -> list[str]:
    """`za<c>`: each call's work buffer inside a block's work area `zw` (its entry k of row r at
    za<c>[k * n + r])."""
    offsets, _ = _offsets(calls, mlps)
    return [f"    {qualifier}double *za{c} = zw + {offsets[c]} * n;" for c in range(len(calls))]


def _rows(rows: dict[str, str], lines: list[str]) -> list[str]:
    """`lines` (a function body's statements) once per row r of the block, with each name of `rows`
    pointing at row r's entries (NS apart) of the batch array it names."""
    pointers = [f"        {decl} = {batch} + (long)r * NS;" for decl, batch in rows.items()]
    names = ", ".join(f"(void){decl.split('*')[-1]}" for decl in rows)
    return ["    for (int r = 0; r < n; ++r) {", *pointers, f"        {names};",
            *("    " + line for line in lines), "    }"]


def _forward_nets(calls: list[NetCall], mlps: list[MlpLayout], names: dict) -> str:
    """forward_nets(th, t, y, zw, n): fill each call's inputs of the block's n rows and run its net
    (activations into zw)."""
    inputs = [(f"za{c}[{j} * n + r]", a) for c, call in enumerate(calls) for j, a in enumerate(call.args)]
    lines = [*_views(calls, mlps, ""), *_rows({"const double *s": "y"}, block(inputs, names, "q"))]
    lines += [f"    net{call.net}_forward(th, za{c}, n);" for c, call in enumerate(calls)]
    return "\n".join(["BLOCK void forward_nets(const double *th, double t, const double *y, double *zw, int n) {",
                      "    (void)t; (void)th; (void)y; (void)zw;", *lines, "}"])


def _output_names(calls: list[NetCall], mlps: list[MlpLayout]) -> dict[sp.Symbol, str]:
    return {output_symbol(c, i): f"za{c}[{mlps[call.net].outputs[-1] + i} * n + r]"
            for c, call in enumerate(calls) for i in range(mlps[call.net].sizes[-1])}


def _rhs(dynamics: list[sp.Expr], calls: list[NetCall], mlps: list[MlpLayout], names: dict) -> str:
    """rhs(th, t, y, f, zw, n): the derivatives of a block's n rows, the nets' activations left in zw."""
    lines = ["    forward_nets(th, t, y, zw, n);", *_views(calls, mlps, "const ")]
    body = block([(f"ds[{i}]", e) for i, e in enumerate(dynamics)], {**names, **_output_names(calls, mlps)}, "c")
    lines += _rows({"const double *s": "y", "double *ds": "f"}, body)
    return "\n".join(["BLOCK void rhs(const double *th, double t, const double *y, double *f, double *zw, int n) {",
                      "    (void)t; (void)th;", *lines, "}"])


def _vjp(dynamics: list[sp.Expr], calls: list[NetCall], mlps: list[MlpLayout], names: dict,
         states: list[sp.Symbol], params: dict) -> str:
    """a . df/d(s, th) of a block's n rows: SymPy derivatives through the expressions row by row,
    generated loops through the nets along the rows, whose activations come from `zw` (the forward
    evaluation's, kept or computed again); the nets' output and input gradients in gn<c>, gi<c>."""
    outputs = _output_names(calls, mlps)
    adjoint = sum((sp.Symbol(f"_a{i}", real=True) * torch_min_max(e) for i, e in enumerate(dynamics)), sp.Integer(0))
    local = {**names, **outputs, **{sp.Symbol(f"_a{i}", real=True): f"a[{i}]" for i in range(len(dynamics))}}
    targets = {s: f"gs[{i}]+" for i, s in enumerate(states)}
    targets.update({p: f"g{code}+" for p, code in params.items()})
    net_targets = {output_symbol(c, i): f"gn{c}[{i} * n + r]"
                   for c, call in enumerate(calls) for i in range(mlps[call.net].sizes[-1])}
    lines = ["    (void)zw; (void)gd;", *_views(calls, mlps, "const ")]
    lines += [f"    double gn{c}[{mlps[call.net].sizes[-1]} * CHUNK], gi{c}[{mlps[call.net].sizes[0]} * CHUNK];"
              for c, call in enumerate(calls)]
    rows = {"const double *s": "y", "const double *a": "adj", "double *gs": "gy"}
    lines += _rows(rows, block(gradient(adjoint, targets) + gradient(adjoint, net_targets), local, "c"))
    deltas, _ = _delta_offsets(calls, mlps)
    lines += [f"    net{call.net}_backward(th, za{c}, gn{c}, gi{c}, "
              + ("gth, n);" if deltas[c] is None else f"gd + {deltas[c]} * n, n);") for c, call in enumerate(calls)]
    chain = sum((sp.Symbol(f"_g{c}_{j}", real=True) * torch_min_max(a) for c, call in enumerate(calls)
                 for j, a in enumerate(call.args)), sp.Integer(0))
    local.update({sp.Symbol(f"_g{c}_{j}", real=True): f"gi{c}[{j} * n + r]"
                  for c, call in enumerate(calls) for j in range(len(call.args))})
    lines += _rows({"const double *s": "y", "double *gs": "gy"}, block(gradient(chain, targets), local, "e"))
    return "\n".join(["BLOCK void rhs_vjp(const double *th, double t, const double *y, const double *adj, "
                      "double *gy, double *gth, const double *zw, double *gd, int n) {",
                      "    (void)t; (void)th; (void)adj;", *lines, "}", "", _weight_gradients(calls, mlps)])


def _sizes(calls: list[NetCall], mlps: list, batch: int) -> str:
    """ND, the layer deltas per row; CHUNK, the rows of a block (compiler.c_kernel.KERNEL_ENTRIES):
    the batch when smaller, else at most 64, a multiple of 8 (the nets' loops run along a block's
    rows) where the block's work areas (on the stack) fit in 128 KiB, else fewer; and TAIL, the rows
    of the spec's batch's last block when shorter (both get code for their constant)."""
    deltas = _delta_offsets(calls, mlps)[1]
    rows = min(64, 16384 // max(1, _offsets(calls, mlps)[1] + deltas))
    chunk = min(batch, rows // 8 * 8 or max(1, rows))
    return "\n".join([f"#define ND {deltas}", f"#define CHUNK {chunk}",
                      f"#define TAIL {batch % chunk}"])


def _weight_gradients(calls: list[NetCall], mlps: list) -> str:
    """weight_gradients(zw, gd, n, gth): the MLPs' weight and bias gradients of a block's n rows
    from their activations (zw) and layer deltas (gd)."""
    deltas, _ = _delta_offsets(calls, mlps)
    work = _offsets(calls, mlps)
    body = [f"    net{call.net}_weights(zw + {work[0][c]} * n, gd + {deltas[c]} * n, n, gth);"
            for c, call in enumerate(calls) if deltas[c] is not None]
    return "\n".join(["BLOCK void weight_gradients(const double *zw, const double *gd, int n, double *gth) {",
                      "    (void)zw; (void)gd; (void)n; (void)gth;", *body, "}"])


def _event(problem: ir.Problem, names: dict) -> str:
    """event(th, t, s): max(g, t - tmax) for `stop when`, else a constant -1 (never called)."""
    if problem.stop is None:
        body = ["    (void)th; (void)t; (void)s;", "    return -1.0;"]
    else:
        g = problem.stop.function
        if g.atoms(fn.net_output) or g.atoms(sp.core.function.AppliedUndef):
            raise Unsupported("a stop condition that calls a net")
        limit = ir.TIME - problem.stop.max_time
        bounded = sp.Piecewise((g, g >= limit), (limit, True))   # max(g, limit), the limit where g is nan
        body = ["    (void)th; (void)t; (void)s;", "    double g;", *block([("g", bounded)], names, "c"),
                "    return g;"]
    return "\n".join(["static double event(const double *th, double t, const double *s) {", *body, "}"])


GROUP = 2   # outputs (forward) or inputs (input gradient) of a layer per pass over a block's rows


def _groups(count: int) -> list[tuple[int, int, int]]:
    """(size, start, stop): `count` entries in groups of GROUP, then one at a time."""
    paired = count - count % GROUP
    return [g for g in [(GROUP, 0, paired), (1, paired, count)] if g[1] < g[2]]


def _along(statements: list[str]) -> str:
    """A loop over a block's rows r doing `statements`."""
    return "for (int r = 0; r < n; ++r) { " + " ".join(statements) + " }"


def _accumulate(start: list[str], index: str, count: int, vector: str, weights: list[str]) -> list[str]:
    """acc<q>[r] for each group member q: start[q] plus the sum over `index` < count of w<q> v[r],
    with `vector` ("v = <pointer>") the index's row-major entries and w<q> = weights[q] loaded once
    per index (a layer's forward pass and its input gradient)."""
    g, name = range(len(start)), vector.split(" = ")[0]
    return ["        double " + ", ".join(f"acc{q}[CHUNK]" for q in g) + ";",
            "        " + _along([f"acc{q}[r] = {start[q]};" for q in g]),
            f"        for (int {index} = 0; {index} < {count}; ++{index}) {{",
            f"            const double *{vector}, " + ", ".join(f"w{q} = {weights[q]}" for q in g) + ";",
            "            " + _along([f"acc{q}[r] += w{q} * {name}[r];" for q in g]), "        }"]


def _forward_layer(m: MlpLayout, l: int) -> list[str]:
    """Layer l's outputs: per group of outputs, their accumulators along the rows, each input
    loaded once for the group, then z (when kept) and the activations."""
    nin, nout = m.sizes[l], m.sizes[l + 1]
    w, b, src, z = m.weights[l], m.weights[l] + nout * nin, m.inputs[l], m.outputs[l]
    loops = []
    for size, start, stop in _groups(nout):
        g = range(size)
        body = [f"        const double *w = th + {w} + i * {nin};",
                *_accumulate([f"th[{b} + i + {q}]" for q in g], "j", nin, f"x = za + ({src} + j) * n",
                             [f"w[{q * nin} + j]" for q in g])]
        if z is not None:
            body.append("        " + _along([f"za[({z} + i + {q}) * n + r] = acc{q}[r];" for q in g]))
        if l < len(m.sizes) - 2:
            body.append("        " + _along([f"za[({m.activations[l]} + i + {q}) * n + r] = act_{m.act}(acc{q}[r]);"
                                            for q in g]))
        loops += [f"    for (int i = {start}; i < {stop}; i += {size}) {{", *body, "    }"]
    return loops


def _mlp_source(k: int, m: MlpLayout) -> str:
    """net<k>_forward(th, za, n), net<k>_backward(th, za, gout, gx, gd, n) (the input gradient, and
    each layer's delta into gd) and net<k>_weights (the weight gradients) of a block's n rows, entry
    k of row r at [k * n + r] in every array, so that the innermost loops run along the rows."""
    fwd = [line for l in range(len(m.sizes) - 1) for line in _forward_layer(m, l)]
    return "\n".join([f"BLOCK void net{k}_forward(const double *th, double *za, int n) {{", *fwd, "}", "",
                      _mlp_backward(k, m), "", _mlp_weights(k, m)])


def _backward_layer(m: MlpLayout, l: int) -> list[str]:
    """Layer l's input gradient from its deltas (per group of inputs, each delta loaded once for the
    group): the previous layer's deltas (times the activation's derivative), or gx for layer 0."""
    nin, nout, w = m.sizes[l], m.sizes[l + 1], m.weights[l]
    loops = []
    for size, start, stop in _groups(nin):
        g = range(size)
        if l == 0:
            store = [f"gx[(j + {q}) * n + r] = acc{q}[r];" for q in g]
        else:
            y, z = m.activations[l - 1], m.outputs[l - 1]
            args = [f"za[({y} + j + {q}) * n + r]" if z is None
                    else f"za[({z} + j + {q}) * n + r], za[({y} + j + {q}) * n + r]" for q in g]
            store = [f"gd[({m.deltas[l - 1]} + j + {q}) * n + r] = acc{q}[r] * dact_{m.act}({args[q]});" for q in g]
        loops += [f"    for (int j = {start}; j < {stop}; j += {size}) {{",
                  *_accumulate(["0.0"] * size, "i", nout, f"d = gd + ({m.deltas[l]} + i) * n",
                               [f"th[{w} + i * {nin} + j + {q}]" for q in g]),
                  "        " + _along(store), "    }"]
    return loops


def _mlp_backward(k: int, m: MlpLayout) -> str:
    """net<k>_backward: the deltas layer by layer (gd), the input gradient gx; no weight gradient."""
    bwd = [f"    for (int i = 0; i < {m.sizes[-1]}; ++i)\n"
           f"        for (int r = 0; r < n; ++r) gd[({m.deltas[-1]} + i) * n + r] = gout[i * n + r];"]
    bwd += [line for l in reversed(range(len(m.sizes) - 1)) for line in _backward_layer(m, l)]
    return "\n".join([f"BLOCK void net{k}_backward(const double *th, const double *za, const double *gout, "
                      "double *gx, double *gd, int n) {", *bwd, "}"])


def _weights_layer(m: MlpLayout, l: int) -> list[str]:
    """Layer l's weight and bias gradients: per group of outputs, the sums along the rows of their
    deltas and of their deltas times each input (loaded once for the group)."""
    nin, nout = m.sizes[l], m.sizes[l + 1]
    w, b, src = m.weights[l], m.weights[l] + nout * nin, m.inputs[l]
    loops = []
    for size, start, stop in _groups(nout):
        g = range(size)
        loops += [f"    for (int i = {start}; i < {stop}; i += {size}) {{",
                  "        const double " + ", ".join(f"*d{q} = gd + ({m.deltas[l]} + i + {q}) * n" for q in g) + ";",
                  "        double " + ", ".join(f"bias{q} = 0.0" for q in g) + ";",
                  "        " + _along([f"bias{q} += d{q}[r];" for q in g]),
                  "        " + " ".join(f"gth[{b} + i + {q}] += bias{q};" for q in g),
                  f"        for (int j = 0; j < {nin}; ++j) {{",
                  f"            const double *x = za + ({src} + j) * n;",
                  "            double " + ", ".join(f"acc{q} = 0.0" for q in g) + ";",
                  "            " + _along([f"acc{q} += d{q}[r] * x[r];" for q in g]),
                  "            " + " ".join(f"gth[{w} + (i + {q}) * {nin} + j] += acc{q};" for q in g),
                  "        }", "    }"]
    return loops


def _mlp_weights(k: int, m: MlpLayout) -> str:
    """net<k>_weights(za, gd, n, gth): adds the sum over a block's n rows of delta x input (and the
    deltas, for the biases) to each layer's gradient (gth, the caller's, aliases neither)."""
    loops = [line for l in range(len(m.sizes) - 1) for line in _weights_layer(m, l)]
    return "\n".join([f"BLOCK void net{k}_weights(const double *za, const double *gd, int n, double *restrict gth) {{",
                      *loops, "}"])


def generate(problem: ir.Problem, tableau) -> CSource:
    """The native solver's source for `problem` with `tableau` (an explicit, FSAL, adaptive one, or
    a fixed-step one with the spec's step_size)."""
    if problem.tensor is not None or problem.implicits:
        raise Unsupported("the tensor path or an implicit layer")
    if problem.batch * len(problem.states) > MAX_ENTRIES:
        raise Unsupported(f"more than {MAX_ENTRIES} state entries")
    if problem.stop is not None and problem.batch != 1:
        raise Unsupported("a stop event with a batch")
    states = [ir.state_symbol(n) for n in problem.states]
    dynamics = [problem.dynamics[n] for n in problem.states]
    calls, subs = net_calls(dynamics, list(problem.nets))
    used_nets = sorted({c.net for c in calls})
    calls = [NetCall(used_nets.index(c.net), c.args) for c in calls]
    dynamics = [e.xreplace(subs) for e in dynamics]    # min/max print as imp_min/imp_max, which pass a nan on
    if any(e.atoms(sp.core.function.AppliedUndef) for e in dynamics):
        raise Unsupported("a net call used other than through its outputs")
    used = set().union(*(e.free_symbols for e in dynamics), *(a.free_symbols for c in calls for a in c.args),
                       problem.stop.function.free_symbols if problem.stop else set())
    names, used_params = _parameter_names(problem, used)
    params = dict(names)
    mlps, theta = _mlps(problem, used_nets, len(names))
    names.update({s: f"s[{i}]" for i, s in enumerate(states)})
    names[ir.TIME] = "t"
    work = _offsets(calls, mlps)[1]
    kernel = [kernel_header(len(states), theta, work), activation_helpers(), _sizes(calls, mlps, problem.batch)]
    kernel += [piecewise_source(k, m) if isinstance(m, PiecewiseLayout) else _mlp_source(k, m)
               for k, m in enumerate(mlps)]
    kernel += [_forward_nets(calls, mlps, names), _rhs(dynamics, calls, mlps, names),
               _vjp(dynamics, calls, mlps, names, states, params),
               _event(problem, names), KERNEL_ENTRIES]
    if tableau.adaptive:
        solver = [solver_header(tableau, len(states), theta, work), SOLVER]
    else:
        solver = [fixed_solver_header(tableau, len(states), theta, work, problem.ode.step_size), FIXED_SOLVER]
    return CSource("\n\n".join(kernel) + "\n", "\n\n".join(solver) + "\n", len(states), theta, used_params,
                   tuple(used_nets))

"""The direct method (`solve direct(N=50)`): multiple shooting, solved by the interior point method
of runtime/ipm.py.

The variables are the states at the N + 1 interval boundaries X_0..X_N, the open-loop controls'
values (per interval, or per node with a linear hold; their bounds are box constraints) and the
params (a free final time as T itself, bounded by its range). The constraints are X_0 = the initial
state, the continuity defects X_{k+1} - F(X_k, u_k, p) = 0, where F integrates interval k with
`steps` fixed RK4 (3/8 rule) steps of the generated dynamics, the spec's terminal constraints, and
its path constraints g <= 0 (`always`) at every point where a step starts and at the final node:
each interval's points are functions of its own variables (x_k, its controls, the params), like F.

Integral states that nothing else reads (∫ f² dt) are quadratures: each interval integrates its
increment from 0 and their sum is the value at T, so they are not variables at the nodes.

Derivatives come from plain autograd. The intervals are independent given their own variables
(the params are copied per interval and their blocks summed), so one batched solve of m + d
copies of the N intervals (one copy per output for the Jacobian rows, one per local variable for
the Hessian rows of λ·F), a gradient with its graph and one backward pass give every interval's
blocks at once (`row_derivatives`; the terminal and initial functions likewise, as one row).
(torch.func would do the same with vmap, but its first call imports torch._dynamo and scripts
forward-mode rules: seconds per process.)
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from functools import partial

import torch

from . import library
from .errors import RunError
from .ipm import IpmResult, Nlp, solve
from .model import Solution
from .row_derivatives import row_derivatives

FEASIBLE = 1e-6   # largest violation a solve may end with


@dataclass
class DirectResult:
    """The solution at the optimum, its objective (the spec's sense), the IPM's objective history
    (one entry per iteration), and each `subject to` constraint's (value, violation, multiplier)."""

    solution: Solution
    objective: float
    history: list[float]
    constraints: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    defect: float = 0.0                 # the largest continuity defect (and initial-state violation)
    note: str = ""                      # how the IPM ended
    converged: bool = True
    trajectory: tuple[torch.Tensor, torch.Tensor] | None = None   # node times (the dynamics' time) and states

    def describe(self, options) -> dict[str, str]:
        """result.json `solver` for the direct method."""
        return {"backend": "direct", "requested": "direct", "gradient": "exact Hessians (autograd)",
                "note": f"direct method: multiple shooting on {options.N} intervals, {options.steps} RK4 (3/8) "
                        f"step(s) each; interior point: {self.note}; largest continuity defect {self.defect:.1e}"}


class MultipleShooting:
    """The NLP of a compiled problem solved by the direct method (see the module docstring)."""

    def __init__(self, model) -> None:
        self.model = model
        problem = self.problem = model.problem
        self.options = problem.direct.options
        self.dtype, self.device = model.dtype, model.device
        self.build = library.module(model.program.source, self.dtype, self.device, problem.implicits)["build"]
        quadratures = problem.direct.quadratures
        self.columns = len(problem.states)
        self.differential = torch.tensor([i for i, s in enumerate(problem.states) if s not in quadratures],
                                         dtype=torch.long)
        self.quadrature = torch.tensor([problem.states.index(q) for q in quadratures], dtype=torch.long)
        self.n, self.N = len(self.differential), self.options.N
        self.controls = list(model.nets)          # the checker allows open-loop controls only
        self.linear = [c.spec.options.hold == "linear" for c in self.controls]
        self.params = list(problem.params)
        self.free = problem.free_time
        self.horizon = float(problem.horizon)
        self.terminal_constraints = [c for c in problem.constraints if not c.running]
        self.path_constraints = [c for c in problem.constraints if c.running]
        self._layout()

    # -- the variables
    def _layout(self) -> None:
        """Offsets of X, of each control's values and of the params in the variable vector, and
        every interval's local variables (x_k, its controls' values, the params) as indices."""
        n, N = self.n, self.N
        self.control_offsets, offset = [], (N + 1) * n
        for linear in self.linear:
            self.control_offsets.append(offset)
            offset += N + linear
        self.param_offset, self.size = offset, offset + len(self.params)
        k = torch.arange(N)
        columns = [k[:, None] * n + torch.arange(n)]
        for start, linear in zip(self.control_offsets, self.linear):
            columns.append(start + k[:, None] + (torch.arange(2) if linear else torch.arange(1)))
        columns.append(self.param_offset + torch.arange(len(self.params)).expand(N, -1))
        self.local = torch.cat(columns, 1)                                   # N x d
        self.terminal = torch.cat([torch.arange(n), N * n + torch.arange(n),
                                   self.param_offset + torch.arange(len(self.params))])
        self._path_layout()

    def _path_layout(self) -> None:
        """Which constraint row each column of an interval's outputs (shoot) is: -1 for the end
        state; the path values at the start of each step are rows, at the interval's end only the
        last interval's (the final node; the others are the next interval's start)."""
        N, steps, P = self.N, self.options.steps, len(self.path_constraints)
        equalities, inequalities = self.counts()
        first = equalities + inequalities - (N * steps + 1) * P
        target = torch.full((N, self.columns + (steps + 1) * P), -1, dtype=torch.long)
        inner = first + torch.arange(N * steps * P).reshape(N, steps * P)
        target[:, self.columns:self.columns + steps * P] = inner
        target[-1, self.columns + steps * P:] = first + N * steps * P + torch.arange(P)
        self.path_target = target
        self.path_first = first

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Lower and upper bounds of the variables (±inf where free): control ranges and a free T's range."""
        lower = torch.full((self.size,), -math.inf, dtype=self.dtype)
        upper = torch.full((self.size,), math.inf, dtype=self.dtype)
        for start, linear, control in zip(self.control_offsets, self.linear, self.controls):
            if control.spec.low is not None:
                lower[start:start + self.N + linear] = control.spec.low
                upper[start:start + self.N + linear] = control.spec.high
        if self.free is not None:
            i = self.param_offset + self.params.index(self.free.raw)
            lower[i], upper[i] = self.free.low, self.free.high
        return lower, upper

    def initial_guess(self) -> torch.Tensor:
        """The controls' and params' current values; states by `guess` (linear or simulate)."""
        z = torch.zeros(self.size, dtype=self.dtype)
        for start, control in zip(self.control_offsets, self.controls):
            values = control.values().detach().cpu()
            z[start:start + values.numel()] = values
        for j, value in enumerate(self.model.params):
            z[self.param_offset + j] = float(value.detach())
        g = z[self.param_offset:]
        x0 = self.initial_state(g)[..., self.differential]
        fraction = torch.linspace(0, 1, self.N + 1, dtype=self.dtype)[:, None]
        targets = self.problem.direct.targets
        names = [self.problem.states[i] for i in self.differential.tolist()]
        end = torch.tensor([targets.get(s, float(x0[i])) for i, s in enumerate(names)], dtype=self.dtype)
        nodes = x0 + fraction * (end - x0)
        if self.options.guess == "simulate":
            nodes = self._simulate(z, x0)
        z[:(self.N + 1) * self.n] = nodes.reshape(-1)
        return z

    def _simulate(self, z: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """The nodes of one forward integration with the initial controls (interval after interval)."""
        V = z[self.local]
        nodes = [x0]
        with torch.no_grad():
            for k in range(self.N):
                row = V.clone()
                row[k, :self.n] = nodes[-1]
                nodes.append(self.shoot(row)[k, self.differential])
        return torch.stack(nodes)

    # -- the generated functions with the variables in place of params and nets
    def _param_values(self, g: torch.Tensor) -> list[torch.Tensor]:
        """The generated code's params from the variables g (..., p) (a free T is its own param)."""
        return [g[..., j] for j in range(len(self.params))]

    def initial_state(self, g: torch.Tensor) -> torch.Tensor:
        """All states' initial values (..., columns) at the params' variables g (..., p)."""
        functions = self.build(self._param_values(g), [_no_control] * len(self.controls))
        return torch.stack([_batched(v, g) for v in functions["initial"](None, None)], -1)

    def _full(self, x: torch.Tensor, q: torch.Tensor | None = None) -> torch.Tensor:
        """States (..., columns) from the differential ones x and the quadratures q (else 0)."""
        full = x.new_zeros(*x.shape[:-1], self.columns).index_copy(-1, self.differential, x)
        return full if q is None else full.index_copy(-1, self.quadrature, q)

    def terminal_values(self, w: torch.Tensor) -> torch.Tensor:
        """[objective (minimised), constraints...] (..., 1 + c) at w = (X_0, X_N, the quadratures
        at T, params) (..., size)."""
        n, split = self.n, 2 * self.n + len(self.quadrature)
        functions = self.build(self._param_values(w[..., split:]), [_no_control] * len(self.controls))
        T = torch.tensor(self.horizon, dtype=self.dtype)
        args = (None, None, self._full(w[..., :n]), self._full(w[..., n:2 * n], w[..., 2 * n:split]), T)
        values = [self.problem.objective.scale * _batched(functions["objective"](*args)[0], w)]
        if "constraints" in functions:
            values += [_batched(v, w) for v in functions["constraints"](*args)]
        return torch.stack(values, -1)

    def shoot(self, V: torch.Tensor) -> torch.Tensor:
        """Each interval's outputs from its local variables V (..., N x d), by `steps` RK4 (3/8)
        steps: the end state (N x columns: the differential states, and the quadratures' increments
        from 0), then the path constraints' values (P each) at the start of each step and at the
        end. Leading dimensions are copies of the N intervals (`row_derivatives`)."""
        n, N = self.n, self.N
        x, column = self._full(V[..., :n]), n
        nets = []
        for linear in self.linear:
            width = 2 if linear else 1
            nets.append(_interval_control(V[..., column:column + width], N))
            column += width
        functions = self.build(self._param_values(V[..., column:]), nets)
        dynamics, path = functions["dynamics"], functions.get("path")
        H = self.horizon / N
        h = H / self.options.steps
        start = torch.arange(N, dtype=self.dtype) * H
        points = []
        for j in range(self.options.steps):
            t = start + j * h
            if path is not None:
                points.append(path(t, x))
            k1 = dynamics(t, x)
            k2 = dynamics(t + h / 3, x + h / 3 * k1)
            k3 = dynamics(t + 2 * h / 3, x + h * (k2 - k1 / 3))
            k4 = dynamics(t + h, x + h * (k1 - k2 + k3))
            x = x + h / 8 * (k1 + 3 * (k2 + k3) + k4)
        if path is None:
            return x
        return torch.cat([x, *points, path(start + H, x)], -1)

    # -- the NLP
    def counts(self) -> tuple[int, int]:
        """(equalities, inequalities): initial state, defects and terminal equalities; terminal
        inequalities and the path constraints at N * steps + 1 points each."""
        kinds = [c.kind for c in self.terminal_constraints]
        points = (self.N * self.options.steps + 1) * len(self.path_constraints)
        return (self.N + 1) * self.n + kinds.count("eq"), kinds.count("ineq") + points

    def order(self) -> torch.Tensor:
        """The terminal constraints' rows in [equalities; inequalities] order (after the defects)."""
        kinds = [c.kind for c in self.terminal_constraints]
        eq = [i for i, k in enumerate(kinds) if k == "eq"]
        return torch.tensor(eq + [i for i, k in enumerate(kinds) if k == "ineq"], dtype=torch.long)

    def _terminal_input(self, z: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
        """w = (X_0, X_N, the quadratures at T, params) from z and the intervals' end states."""
        n = self.n
        return torch.cat([z[self.terminal[:2 * n]], ends[:, self.quadrature].sum(0), z[self.terminal[2 * n:]]])

    def evaluate(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f, c): the objective (minimised) and the constraints [initial state; defects; terminal
        equalities; terminal inequalities; path constraints]."""
        X = z[:(self.N + 1) * self.n].reshape(self.N + 1, self.n)
        g = z[self.param_offset:]
        outputs = self.shoot(z[self.local])
        defects = X[1:] - outputs[:, self.differential]
        terminal = self.terminal_values(self._terminal_input(z, outputs))
        path = outputs[self.path_target >= 0]            # row-major: in the order of their rows
        c = torch.cat([X[0] - self.initial_state(g)[..., self.differential], defects.reshape(-1),
                       terminal[1:][self.order()], path])
        return terminal[0], c

    def values(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """evaluate() without a graph (the line search's)."""
        with torch.no_grad():
            return self.evaluate(z)

    def derivatives(self, z: torch.Tensor, y: torch.Tensor, curvature: bool = True
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """∇f, the Jacobian J of the constraints and the Hessian of f + yᵀc (dense; zero without `curvature`)."""
        n, N, size = self.n, self.N, self.size
        J = torch.zeros(y.numel(), size, dtype=self.dtype)
        W = torch.zeros(size, size, dtype=self.dtype)
        self._initial_derivatives(z, y[:n], J, W, curvature)
        order = self.order()
        weights = torch.cat([torch.ones(1, dtype=self.dtype), torch.zeros(len(order), dtype=self.dtype)])
        weights[1 + order] = y[n + N * n:self.path_first]
        terminal = []

        def interval_weights(ends: torch.Tensor) -> torch.Tensor:
            """λ of the intervals' outputs, from their values: the defects X_{k+1} - F(V_k), the
            quadratures (weighted by ∂(f + yᵀc)/∂Q(T), from the terminal functions' derivatives,
            kept in `terminal`) and the path constraints at the points of each interval."""
            jac, weighted = row_derivatives(self.terminal_values, self._terminal_input(z, ends)[None], weights[None],
                                            curvature=curvature)
            terminal.extend([jac[0], weighted[0]])
            lam = torch.zeros_like(ends)
            lam[:, self.differential] = -y[n:n + N * n].reshape(N, n)
            lam[:, self.quadrature] = weights @ jac[0, :, 2 * n:2 * n + len(self.quadrature)]
            lam[path] = y[self.path_target[path]]
            return lam

        path = self.path_target >= 0
        rows, hessians = row_derivatives(self.shoot, z[self.local], interval_weights, self.path_target.shape[1],
                                         curvature)
        # objective and terminal constraints of w = (X_0, X_N, quadratures, params): through M = ∂w/∂z
        jac, weighted = terminal
        M = self._terminal_map(rows)
        J[n + N * n:self.path_first] = jac[1:][order] @ M
        W += M.T @ weighted @ M
        defect_rows = (n + torch.arange(N * n)).reshape(N, n)
        J[defect_rows.reshape(-1), (n + torch.arange(N * n))] = 1.0
        jacobians = rows[:, self.differential]
        J.index_put_((defect_rows[:, :, None].expand_as(jacobians), self.local[:, None, :].expand_as(jacobians)),
                     -jacobians, accumulate=True)
        W.index_put_((self.local[:, :, None].expand_as(hessians), self.local[:, None, :].expand_as(hessians)),
                     hessians, accumulate=True)
        if bool(path.any()):
            interval, column = path.nonzero(as_tuple=True)
            block = rows[interval, column]                             # path rows x d
            J.index_put_((self.path_target[path][:, None].expand_as(block), self.local[interval]), block,
                         accumulate=True)
        return jac[0] @ M, J, W

    def _initial_derivatives(self, z: torch.Tensor, y0: torch.Tensor, J: torch.Tensor, W: torch.Tensor,
                             curvature: bool) -> None:
        """Rows and curvature of X_0 - x0(params)."""
        n = self.n
        J[torch.arange(n), torch.arange(n)] = 1.0
        params = torch.arange(self.param_offset, self.size)
        if len(params):
            def initial(g):
                return self.initial_state(g)[..., self.differential]
            jacobian, weighted = row_derivatives(initial, z[self.param_offset:][None], y0[None], curvature=curvature)
            J[:n, params] -= jacobian[0]
            W[params[:, None], params] -= weighted[0]

    def _terminal_map(self, rows: torch.Tensor) -> torch.Tensor:
        """M = ∂w/∂z: unit rows for X_0, X_N and the params, the summed interval Jacobians of the
        quadratures' increments for their values at T."""
        n, q = self.n, len(self.quadrature)
        M = torch.zeros(2 * n + q + len(self.params), self.size, dtype=self.dtype)
        plain = torch.cat([torch.arange(2 * n), 2 * n + q + torch.arange(len(self.params))])
        M[plain, self.terminal] = 1.0
        if q:
            block = rows[:, self.quadrature]                            # N x q x d
            index = (2 * n + torch.arange(q))[None, :, None].expand_as(block)
            M.index_put_((index, self.local[:, None, :].expand_as(block)), block, accumulate=True)
        return M

    def nlp(self) -> Nlp:
        """The problem for runtime/ipm.py."""
        lower, upper = self.bounds()
        equalities, inequalities = self.counts()
        return Nlp(lower, upper, equalities, inequalities, self.values, self.derivatives,
                   partial(self.derivatives, curvature=False))

    # -- the answer
    def store(self, z: torch.Tensor) -> None:
        """Put the solution into the model: params (a free T is its own) and the controls' values."""
        with torch.no_grad():
            g = z[self.param_offset:]
            for value, param in zip(self._param_values(g), self.model.params):
                param.copy_(value.reshape(param.shape))
            for start, control in zip(self.control_offsets, self.controls):
                control.set_values(z[start:start + control.raw.numel()])

    def nodes(self, z: torch.Tensor) -> torch.Tensor:
        """All states at the N + 1 nodes (N + 1 x columns): the quadratures summed interval by interval."""
        with torch.no_grad():
            X = z[:(self.N + 1) * self.n].reshape(self.N + 1, self.n)
            increments = self.shoot(z[self.local])[:, self.quadrature]
            sums = torch.cat([increments.new_zeros(1, len(self.quadrature)), increments.cumsum(0)])
            return self._full(X, sums).to(self.device)

    def trajectory(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The nodes: times (N + 1) in the dynamics' time and states (N + 1 x 1 x columns), as model.trajectory."""
        times = torch.linspace(0, self.horizon, self.N + 1, dtype=self.dtype, device=self.device)
        return times, self.nodes(z)[:, None]

    def solution(self, z: torch.Tensor) -> Solution:
        """The first and last node (all states) as a Solution, at the (rescaled) horizon."""
        X = self.nodes(z)
        return Solution(X[:1], X[-1:], torch.tensor(self.horizon, dtype=self.dtype, device=self.device))


def _no_control(x):
    raise RunError("a terminal expression reads an open-loop control", "constrain states at T instead")


def _batched(value, like: torch.Tensor) -> torch.Tensor:
    """A generated function's value (a tensor, or a number) broadcast to like's leading dimensions."""
    value = value if isinstance(value, torch.Tensor) else torch.tensor(float(value), dtype=like.dtype)
    return value.expand(like.shape[:-1])


def _interval_control(q: torch.Tensor, N: int):
    """The control of the N intervals at once: u(s) for the rescaled times s (N x 1) of the
    intervals, from their values q (..., N x 1) or their two nodes' values (..., N x 2, linear
    between them)."""
    if q.shape[-1] == 1:
        return lambda s: q
    k = torch.arange(N, dtype=q.dtype)
    start, end = q[..., :1], q[..., 1:]

    def control(s: torch.Tensor) -> torch.Tensor:
        return torch.lerp(start, end, (s * N - k[:, None]).clamp(0.0, 1.0))

    return control


def solve_direct(model, quiet: bool = True) -> DirectResult:
    """Solve the compiled problem by the direct method and store the optimum in the model; a solve
    that does not reach a feasible point ends with a RunError naming the violated constraints."""
    if model.device.type != "cpu":
        raise RunError("the direct method runs on the CPU (its KKT systems are small and dense)",
                       "run with --device cpu", exit_code=2)
    shooting = MultipleShooting(model)

    def report(iteration, objective, violation, mu):
        print(f"direct: iteration {iteration}, objective {objective:.10g}, violation {violation:.3g}, mu {mu:.2g}",
              file=sys.stderr)

    result = solve(shooting.nlp(), shooting.initial_guess(), shooting.options.tol, shooting.options.max_iter,
                   None if quiet else report)
    return _outcome(shooting, result)


def _constraint_report(shooting: MultipleShooting, result: IpmResult) -> dict[str, tuple[float, float, float]]:
    """Each constraint's (value, violation, multiplier), in the spec's order: a terminal one's value
    and multiplier; a path constraint's worst value over its points (its largest g) and the sum of
    its multipliers over the points (≥ 0; the discretised measure of its multiplier function)."""
    first = (shooting.N + 1) * shooting.n
    c, y = result.constraints, result.y
    values = {}
    for row, index in enumerate(shooting.order().tolist()):
        values[id(shooting.terminal_constraints[index])] = (float(c[first + row]), float(y[first + row]))
    P = len(shooting.path_constraints)
    for i, constraint in enumerate(shooting.path_constraints):
        rows = slice(shooting.path_first + i, None, P)          # its rows: point after point
        values[id(constraint)] = (float(c[rows].max()), float(y[rows].sum()))
    report = {}
    for constraint in shooting.problem.constraints:
        value, multiplier = values[id(constraint)]
        violation = abs(value) if constraint.kind == "eq" else max(value, 0.0)
        report[constraint.name] = (value, violation, multiplier)
    return report


def _outcome(shooting: MultipleShooting, result: IpmResult) -> DirectResult:
    problem = shooting.problem
    n, N = shooting.n, shooting.N
    defect = float(result.constraints[:(N + 1) * n].abs().max())
    report = _constraint_report(shooting, result)
    worst = max([defect, *(v for _, v, _ in report.values())])
    if not worst <= FEASIBLE:
        shown = "; ".join(f"'{name}': violation {v:.3g}" for name, (_, v, _) in report.items() if v > FEASIBLE)
        shown = shown or f"the continuity of the trajectory: violation {defect:.3g}"
        raise RunError(f"the direct method did not find a feasible point ({result.message}): {shown}",
                       "the constraints may be inconsistent (e.g. x(T) == 1 and x(T) == 2) or infeasible "
                       "(out of reach of the controls); else try guess=simulate, a larger max_iter or N")
    shooting.store(result.x)
    objective = problem.objective.scale * result.objective
    history = [problem.objective.scale * v for v in result.history]
    return DirectResult(shooting.solution(result.x), objective, history, report, defect,
                        result.message, result.converged, shooting.trajectory(result.x))

"""Which solver tier integrates a spec, and how its gradient is computed.

Tiers, fastest first: `native` (the whole solve and its reverse pass generated as C, built with
the system's C compiler: compiler.c_codegen, runtime.solvers.native), `torch` (the plain-torch
Runge-Kutta loops of this package) and `torchdiffeq`. `backend=auto` (the default)
takes the fastest tier that supports the problem; a forced tier that cannot run falls back in
the same order, and the plan's note says which tier ran and why.

Gradient mode: `adjoint=true|false` in the spec decides. Without it, direct backpropagation
through the steps is used while the stored trajectory stays small, the adjoint otherwise (see
`gradient_mode`)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from ...compiler import ir
from ...compiler import py_kernel
from ...compiler.c_codegen import CSource, generate
from ...compiler.py_kernel import ScalarKernel
from ...compiler.split_dynamics import Unsupported
from ...constants import BACKENDS
from .native_build import find_compiler
from .tableau import TABLEAUS

NOMINAL_EVALUATIONS = 2000          # right-hand side evaluations assumed per solve
BACKPROP_BUDGET_BYTES = 256 * 2 ** 20   # stored-trajectory memory allowed for direct backprop


@dataclass(frozen=True)
class SolverPlan:
    """The tier that runs, the one asked for, the gradient mode and a one-line reason."""

    backend: str        # "native", "torch" or "torchdiffeq"
    requested: str      # "auto", "native", "torch" or "torchdiffeq"
    gradient: str       # "backprop" or "adjoint"
    note: str
    native: CSource | None = field(default=None, repr=False, compare=False)   # the generated C, when native
    kernel: ScalarKernel | None = field(default=None, repr=False, compare=False)   # torch tier's float kernel

    @property
    def adjoint(self) -> bool:
        return self.gradient == "adjoint"

    def describe(self) -> dict[str, str]:
        """The `solver` entry of result.json."""
        return {"backend": self.backend, "requested": self.requested, "gradient": self.gradient, "note": self.note}


def stored_bytes(problem: ir.Problem, itemsize: int = 8) -> int:
    """Estimated graph memory of direct backprop: per evaluation, batch x (4 per state + the
    nets' inputs, twice their hidden widths and outputs), over NOMINAL_EVALUATIONS evaluations."""
    per_net = sum(net.width + 2 * sum(getattr(net.options, "hidden", ())) + getattr(net.options, "out", 1)
                  for net in problem.nets.values())
    per_evaluation = problem.batch * (4 * len(problem.states) + per_net)
    return per_evaluation * NOMINAL_EVALUATIONS * itemsize


def gradient_mode(problem: ir.Problem, itemsize: int = 8) -> tuple[str, str]:
    """("backprop" | "adjoint", why): the spec's `adjoint=` wins, else the memory estimate decides."""
    if problem.ode.adjoint is not None:
        return ("adjoint" if problem.ode.adjoint else "backprop"), "set by adjoint= (the spec or --set solve.adjoint)"
    size = stored_bytes(problem, itemsize)
    mib = size / 2 ** 20
    if size <= BACKPROP_BUDGET_BYTES:
        return "backprop", f"stored trajectory ~{mib:.0f} MiB <= {BACKPROP_BUDGET_BYTES // 2 ** 20} MiB"
    return "adjoint", f"stored trajectory ~{mib:.0f} MiB > {BACKPROP_BUDGET_BYTES // 2 ** 20} MiB"


def _torch_tier_refusal(problem: ir.Problem, gradient: str) -> str | None:
    """Why the plain-torch tier cannot run this problem, or None."""
    if problem.ode.method not in TABLEAUS:
        return f"method {problem.ode.method} has no plain-torch tableau"
    if gradient == "adjoint":
        return "the adjoint runs on torchdiffeq"
    return None


def _native_tier(problem: ir.Problem, gradient: str, itemsize: int, device: str) -> CSource | str:
    """The generated C source for the native tier, or why that tier cannot run this problem."""
    if problem.time_model != "ode" or not problem.states:
        return "only continuous-time dynamics are generated natively"
    if gradient == "adjoint":
        return "the adjoint runs on torchdiffeq"
    tableau = TABLEAUS.get(problem.ode.method)
    fixed = tableau is not None and not tableau.adaptive and problem.ode.step_size is not None
    if tableau is None or not (fixed or (tableau.fsal and tableau.mid is not None)):
        return f"method {problem.ode.method} is not generated natively (dopri5, bosh3 and the fixed-step ones are)"
    if itemsize != 8 or device != "cpu":
        return "the native tier runs float64 on the CPU"
    if find_compiler() is None:
        return "no C compiler found (IMPSOLVE_CC, CC or cc)"
    try:
        return generate(problem, tableau)
    except Unsupported as err:
        return f"{err} is not generated natively"


def scalar_kernel(problem: ir.Problem, itemsize: int, device: str) -> ScalarKernel | None:
    """The torch tier's Python-float kernel (compiler.py_kernel) for one float64 trajectory on the
    CPU, or None (the generated torch dynamics run alone)."""
    if itemsize != 8 or device != "cpu" or problem.time_model != "ode" or not problem.states:
        return None
    try:
        return py_kernel.generate(problem)
    except Unsupported:
        return None


def torch_tier(plan: SolverPlan, problem: ir.Problem, itemsize: int, device: str, before: str, how: str,
               mode: str) -> SolverPlan:
    """`plan` on the torch tier, with the float kernel where one applies; its note is `before` (what
    was given up), the tier and `how` it was chosen, whether the kernel runs, and the gradient `mode`."""
    kernel = scalar_kernel(problem, itemsize, device)
    floats = " (expressions on Python floats)" if kernel is not None else ""
    return replace(plan, backend="torch", native=None, kernel=kernel,
                   note=f"{before}torch tier{floats}{how}; gradient by {mode}")


def choose(problem: ir.Problem, requested: str | None = None, itemsize: int = 8, device: str = "cpu") -> SolverPlan:
    """The plan for `problem`; `requested` (e.g. from --backend) overrides the spec's `backend=`."""
    requested = requested or problem.ode.backend
    if requested not in BACKENDS:
        raise ValueError(f"unknown solver backend '{requested}' (one of {', '.join(BACKENDS)})")
    gradient, why = gradient_mode(problem, itemsize)
    mode = f"{gradient} ({why})"
    if requested == "torchdiffeq":
        return SolverPlan("torchdiffeq", requested, gradient, f"torchdiffeq tier, as asked; gradient by {mode}")
    notes = []
    if requested in ("auto", "native"):
        native = _native_tier(problem, gradient, itemsize, device)
        if isinstance(native, CSource):
            how = " (fastest available)" if requested == "auto" else ", as asked"
            return SolverPlan("native", requested, gradient, f"native tier{how}; gradient by {mode}", native)
        notes.append(f"native tier unavailable: {native}")
    refusal = _torch_tier_refusal(problem, gradient)
    if refusal is None:
        how = {"torch": ", as asked", "auto": "" if notes else " (fastest available)"}.get(requested, "")
        before = "".join(f"{n}; " for n in notes)
        return torch_tier(SolverPlan("torch", requested, gradient, ""), problem, itemsize, device, before, how, mode)
    notes.append(f"torchdiffeq tier: {refusal}; gradient by {mode}")
    return SolverPlan("torchdiffeq", requested, gradient, "; ".join(notes))

"""The native tier (generated C solver) against torchdiffeq as the oracle at fixed weights
(float64, dopri5, rtol 1e-8): objective, gradient, event time and its gradient; gradcheck of its
autograd function; the fallback without a compiler; the build cache; forced backends."""
import ctypes
import json

import pytest
import torch

import impsolve
from conftest import spec_path
from impsolve.cli import main
from impsolve.compiler import tensor_lower
from impsolve.runtime.errors import RunError
from impsolve.runtime.solvers import native_build
from impsolve.runtime.solvers.native import NativeSolve
from impsolve.runtime.solvers.plan import choose

needs_cc = pytest.mark.skipif(native_build.find_compiler() is None, reason="no C compiler on this machine")

SPEC = """
param k = 0.7
state y = 0, x = 0.3
net g(x, y): mlp(hidden=[8, 5], act={act})
der(y) = 1 + 0.5*sin(x) + k*g(x, y)^2
der(x) = -k*x + y*exp(-t)
{end}
minimize x(T) + T + integral(x^2 + k*g(x, y))
solve ode(method=dopri5, rtol=1e-8, atol=1e-10{extra})
"""
EVENT, HORIZON = "stop when y >= 1.5 within 10", "horizon 1.2"
BATCH = """
state q ~ normal(0, 1), p ~ normal(0, 1)
batch 7
net force(q, p): mlp(hidden=[6], act=softplus)
der(q) = p
der(p) = force(q, p) - 0.1*q^3
horizon 1.5
minimize mean((q(T) - q(0))^2 + p(T)^2)
solve ode(method=dopri5, rtol=1e-8, atol=1e-10)
"""

PIECEWISE = (SPEC.format(act="tanh", end=HORIZON, extra="")
             .replace("0.5*sin(x)", "0.5*max(sin(x), 0.2) - min(y, 0.3*x)")
             .replace("y*exp(-t)", "where(y > 0.5, y, 0.5*y) + 0.1*abs(x - 0.4)"))


def _spec(act: str = "tanh", end: str = EVENT, extra: str = "") -> str:
    return SPEC.format(act=act, end=end, extra=extra)


def _run(text: str, backend: str, overrides: dict | None = None):
    model = impsolve.load(text, {"solve.backend": backend, **(overrides or {})}).compile(
        device="cpu", dtype="float64", seed=3)
    solution = model.solve()
    value = model.objective(solution)
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(value, params, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]
    return model, solution, float(value.detach()), torch.cat([g.reshape(-1) for g in grads])


def _close(a: torch.Tensor, b: torch.Tensor, tol: float) -> bool:
    return float((a - b).abs().max()) <= tol * float(b.abs().max())


@needs_cc
@pytest.mark.parametrize("text", [_spec(), _spec("relu"), _spec("silu", HORIZON), _spec("gelu", HORIZON),
                                  _spec("elu", HORIZON), _spec("sigmoid", HORIZON), BATCH,
                                  _spec().replace("dopri5", "bosh3")],
                         ids=["event-tanh", "event-relu", "silu", "gelu", "elu", "sigmoid", "batch", "bosh3"])
def test_native_tier_matches_torchdiffeq(text):
    native, solution, value, grad = _run(text, "native")
    oracle, reference, oracle_value, oracle_grad = _run(text, "torchdiffeq")
    assert native.solver_plan.backend == "native", native.solver_plan.note
    assert abs(value - oracle_value) <= 1e-6 * abs(oracle_value)
    assert _close(grad, oracle_grad, 1e-5)
    assert abs(float(solution.T.detach()) - float(reference.T.detach())) <= 1e-6 * float(reference.T.detach())
    assert _close(solution.sT.detach(), reference.sT.detach(), 1e-6)


@needs_cc
def test_event_time_gradient_matches_torchdiffeq():
    native, oracle = (impsolve.load(_spec(), {"solve.backend": b}).compile(device="cpu", dtype="float64", seed=3)
                      for b in ("native", "torchdiffeq"))
    ours = torch.autograd.grad(native.solve().T, list(native.parameters()))
    theirs = torch.autograd.grad(oracle.solve().T, list(oracle.parameters()))
    assert _close(torch.cat([g.reshape(-1) for g in ours]), torch.cat([g.reshape(-1) for g in theirs]), 1e-5)


@needs_cc
def test_dense_outputs_match_the_torch_tier():
    native = impsolve.load(BATCH, {"solve.backend": "native"}).compile(device="cpu", dtype="float64", seed=1)
    torch_tier = impsolve.load(BATCH, {"solve.backend": "torch"}).compile(device="cpu", dtype="float64", seed=1)
    times, states = native.trajectory(native.solve(), points=17)
    _, reference = torch_tier.trajectory(torch_tier.solve(), points=17)
    assert states.shape == reference.shape == (17, 7, 2)
    assert _close(states, reference, 1e-12)


@needs_cc
def test_batches_over_several_chunks_and_repeated_solves_agree():
    """150 trajectories: the weight gradients summed over chunks of rows (2 full, 1 partial) agree
    with the torch tier; solving again (the freed tape's activation arena reused, with a forward-only
    solve in between) gives the same gradient bit for bit."""
    text = BATCH.replace("batch 7", "batch 150")
    native, _, value, grad = _run(text, "native")
    _, _, reference, expected = _run(text, "torch")
    assert native.solver_plan.backend == "native"
    assert abs(value - reference) <= 1e-12 * abs(reference) and _close(grad, expected, 1e-10)
    with torch.no_grad():
        native.solve()
    params = [p for p in native.parameters() if p.requires_grad]
    for _ in range(2):
        again = torch.autograd.grad(native.objective(native.solve()), params)
        assert torch.equal(torch.cat([g.reshape(-1) for g in again]), grad)


@needs_cc
def test_gradcheck_of_the_native_autograd_function():
    model = impsolve.load(_spec(end=HORIZON)).compile(device="cpu", dtype="float64", seed=0)
    solver = model.dynamics.native
    options = model.problem.ode
    theta = solver.theta().detach().requires_grad_(True)
    y0 = model.initial_state().detach().requires_grad_(True)

    def solve(y0, theta):
        settings = (solver.library, [0.0, 0.4, 1.2], 1e-10, 1e-12, options.max_steps, False, [], None, 1)
        return NativeSolve.apply(settings, y0, theta)

    assert torch.autograd.gradcheck(solve, (y0, theta), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_without_a_compiler_every_spec_falls_back_with_a_note(monkeypatch):
    monkeypatch.setenv("IMPSOLVE_CC", "/nonexistent/impsolve-cc")
    assert native_build.find_compiler() is None
    for text in (_spec(), BATCH, spec_path("zermelo").read_text()):
        plan = choose(impsolve.load(text).program.problem)
        assert plan.backend == "torch" and "no C compiler" in plan.note
    model, _, value, _ = _run(_spec(), "native")
    assert model.solver_plan.backend == "torch" and model.dynamics.native is None and value == value


@needs_cc
def test_the_build_is_cached_by_source_hash(monkeypatch, tmp_path):
    monkeypatch.setenv("IMPSOLVE_CACHE", str(tmp_path))
    monkeypatch.setattr(native_build, "_loaded", {})
    model = impsolve.load(_spec("relu")).compile(device="cpu", dtype="float64")
    built = list(tmp_path.glob("native-*.so")) + list(tmp_path.glob("native-*.dylib"))
    assert len(built) == 1 and model.solver_plan.backend == "native"
    monkeypatch.setattr(native_build, "_loaded", {})
    monkeypatch.setattr(native_build, "_compile", lambda *a: pytest.fail("rebuilt a cached solver"))
    again = impsolve.load(_spec("relu")).compile(device="cpu", dtype="float64")
    assert again.solver_plan.backend == "native" and float(again().detach()) == float(model().detach())


@needs_cc
def test_no_spec_text_reaches_the_c_source():
    text = _spec().replace("net g(", "net system(").replace("g(x, y)", "system(x, y)").replace("param k", "param main")
    text = text.replace("k*", "main*")
    native = choose(impsolve.load(text).program.problem).native
    source = native.kernel + native.solver
    assert "system" not in source.replace("/* Generated", "") and "main" not in source


@needs_cc
def test_forced_and_refused_backends_say_which_tier_ran(tmp_path):
    problem = impsolve.load(_spec()).program.problem
    assert choose(problem).backend == "native" and choose(problem, "torch").backend == "torch"
    adjoint = choose(impsolve.load(_spec(extra=", adjoint=true")).program.problem, "native")
    assert adjoint.backend == "torchdiffeq" and "adjoint" in adjoint.note
    rk4 = choose(impsolve.load(_fixed("rk4")).program.problem)
    assert rk4.backend == "native", rk4.note
    heun = choose(impsolve.load(_spec().replace("dopri5", "adaptive_heun")).program.problem, "native")
    assert heun.backend == "torch" and "adaptive_heun" in heun.note
    nested = choose(impsolve.load(_spec().replace("k*g(x, y)^2", "k*g(x, g(x, y))^2")).program.problem, "native")
    assert nested.backend == "torch" and "not generated natively" in nested.note
    float32 = choose(problem, "native", itemsize=4)
    assert float32.backend == "torch" and "float64" in float32.note
    spec = tmp_path / "small.imp"
    spec.write_text(_spec() + "train adam(lr=0.01, steps=2)\n")
    assert main([str(spec), "--out", str(tmp_path / "out"), "--quiet", "--device", "cpu", "--backend", "native"]) == 0
    solver = json.loads((tmp_path / "out" / "result.json").read_text())["solver"]
    assert solver["backend"] == "native" and solver["requested"] == "native"


@needs_cc
def test_solver_failures_on_the_native_tier_are_run_errors():
    model = impsolve.load(_spec(extra=", max_steps=3"), {"solve.backend": "native"}).compile(
        device="cpu", dtype="float64")
    assert model.solver_plan.backend == "native"
    with pytest.raises(RunError, match="more than 3 steps"):
        model()


@needs_cc
def test_a_watch_sees_the_solve_and_can_stop_it():
    model = impsolve.load(_spec(end=HORIZON)).compile(device="cpu", dtype="float64")
    solver, y0 = model.dynamics.native, model.initial_state().detach()
    theta, seen = solver.theta().detach(), []

    def watch(t, y):
        seen.append((t, y.shape))
        if len(seen) == 3:
            raise KeyError("stop here")

    out, _, info = solver.library.solve(theta, y0, [0.0, 1.2], rtol=1e-8, atol=1e-10, max_steps=10 ** 6,
                                        until=False, watch=lambda t, y: seen.append((t, y.shape)), every=5)
    assert len(seen) == info.evaluations // 5 and seen[0][1] == y0.shape and 0 <= seen[-1][0] <= 1.2 + 1
    seen.clear()
    with pytest.raises(KeyError, match="stop here"):
        solver.library.solve(theta, y0, [0.0, 1.2], rtol=1e-8, atol=1e-10, max_steps=10 ** 6, until=False,
                             watch=watch, every=5)
    assert len(seen) == 3


@needs_cc
def test_reverse_pass_with_and_without_kept_activations_agree():
    model = impsolve.load(BATCH).compile(device="cpu", dtype="float64", seed=2)
    library, y0 = model.dynamics.native.library, model.initial_state().detach().contiguous()
    theta = model.dynamics.native.theta().detach().contiguous()
    grads = []
    for keep in (True, False):
        out, tape, _ = library.solve(theta, y0, [0.0, 0.5, 1.5], rtol=1e-8, atol=1e-10, max_steps=10 ** 6,
                                     until=False, keep=keep)
        gy0, gth = library.reverse(tape, theta, torch.cos(out), y0)
        grads.append(torch.cat([gy0.reshape(-1), gth]))
    assert grads[0].abs().max() > 0 and _close(grads[0], grads[1], 1e-13)


@needs_cc
@pytest.mark.parametrize("text", [PIECEWISE, BATCH, _spec("gelu")], ids=["min-max-where-abs", "batch", "event"])
def test_generated_rhs_and_its_vjp_equal_torch_autograd(text):
    """At random states: the C right-hand side equals the generated torch one, and its vector-Jacobian
    product equals autograd's (min, max, where and abs included, away from their kinks)."""
    model = impsolve.load(text).compile(device="cpu", dtype="float64", seed=4)
    solver, lib = model.dynamics.native, model.dynamics.native.library.lib
    pointer = ctypes.POINTER(ctypes.c_double)
    lib.imp_vjp_batch.argtypes = [pointer, ctypes.c_double, pointer, pointer, pointer, pointer, ctypes.c_int, pointer]
    lib.imp_rhs_batch.argtypes = [pointer, ctypes.c_double, pointer, pointer, ctypes.c_int, pointer]
    generator = torch.Generator().manual_seed(0)
    shape = model.initial_state().shape
    theta = solver.theta().detach().contiguous()
    ptr = (lambda x: ctypes.cast(x.data_ptr(), pointer))
    for t in (0.3, 1.1):
        s = torch.randn(shape, generator=generator, dtype=torch.float64).requires_grad_(True)
        a = torch.randn(shape, generator=generator, dtype=torch.float64)
        f, gs, gth = torch.empty_like(a), torch.zeros_like(a), torch.zeros_like(theta)
        lib.imp_rhs_batch(ptr(theta), t, ptr(s.detach()), ptr(f), shape[0], None)
        lib.imp_vjp_batch(ptr(theta), t, ptr(s.detach()), ptr(a), ptr(gs), ptr(gth), shape[0], None)
        reference = model.dynamics.function(torch.tensor(t, dtype=torch.float64), s)
        leaves = [s, *solver.params, *(w for net in solver.nets for w in net.parameters())]
        grads = torch.autograd.grad((reference * a).sum(), leaves, allow_unused=True)
        expected = torch.cat([(g if g is not None else torch.zeros_like(x)).reshape(-1)
                              for g, x in zip(grads[1:], leaves[1:])])
        assert _close(f, reference.detach(), 1e-13)
        assert _close(gs, grads[0], 1e-12) and _close(gth, expected, 1e-12)


@needs_cc
def test_kernel_entries_on_fewer_rows_than_the_batch_equal_torch_autograd():
    """The entries' blocks of CHUNK rows and of the batch's TAIL have code for their constant row
    count; other counts (here 5 and 137 of a batch of 150: 2 full blocks and 9 rows) take the
    general one, which must give the same right-hand side and VJP as autograd."""
    model = impsolve.load(BATCH.replace("batch 7", "batch 150")).compile(device="cpu", dtype="float64", seed=4)
    solver, lib = model.dynamics.native, model.dynamics.native.library.lib
    pointer = ctypes.POINTER(ctypes.c_double)
    lib.imp_vjp_batch.argtypes = [pointer, ctypes.c_double, pointer, pointer, pointer, pointer, ctypes.c_int, pointer]
    lib.imp_rhs_batch.argtypes = [pointer, ctypes.c_double, pointer, pointer, ctypes.c_int, pointer]
    generator = torch.Generator().manual_seed(1)
    theta = solver.theta().detach().contiguous()
    ptr = (lambda x: ctypes.cast(x.data_ptr(), pointer))
    for rows in (5, 137):
        s = torch.randn((rows, 2), generator=generator, dtype=torch.float64).requires_grad_(True)
        a = torch.randn((rows, 2), generator=generator, dtype=torch.float64)
        f, gs, gth = torch.empty_like(a), torch.zeros_like(a), torch.zeros_like(theta)
        lib.imp_rhs_batch(ptr(theta), 0.4, ptr(s.detach()), ptr(f), rows, None)
        lib.imp_vjp_batch(ptr(theta), 0.4, ptr(s.detach()), ptr(a), ptr(gs), ptr(gth), rows, None)
        reference = model.dynamics.function(torch.tensor(0.4, dtype=torch.float64), s)
        weights = list(solver.nets[0].parameters())
        grads = torch.autograd.grad((reference * a).sum(), [s, *weights])
        assert _close(f, reference.detach(), 1e-13) and _close(gs, grads[0], 1e-12)
        assert _close(gth, torch.cat([g.reshape(-1) for g in grads[1:]]), 1e-12)


def _assert_native_equals_torch_tier(text: str) -> None:
    """Value (1e-9 relative) and gradient (1e-7 of its largest entry) of the native and torch tiers."""
    native, _, value, grad = _run(text, "native")
    torch_tier, _, reference, reference_grad = _run(text, "torch")
    assert native.solver_plan.backend == "native" and torch_tier.solver_plan.backend == "torch"
    assert abs(value - reference) <= 1e-9 * abs(reference)
    assert _close(grad, reference_grad, 1e-7)


SHAPED = """const n = 3
state x[n] ~ normal(0, 1)
param W[n, n] = 0.3 * randn()
param b[n] = [0.1, -0.2, 0.3]
param a = 0.5
der(x) = tanh(W @ x + b) - a * x
horizon 1
batch 4
minimize mean(sum(x(T)^2))
"""


@needs_cc
def test_vector_and_matrix_params_agree_with_the_torch_tier(monkeypatch):
    """Every entry of a shaped param has its own slot in theta (each was read from the param's
    first entry: a silently wrong solve, found by the tensor-path agreement tests). Scalarised, as
    the native tier generates the scalar path."""
    monkeypatch.setattr(tensor_lower, "MATRICES_AS_TENSORS", False)
    _assert_native_equals_torch_tier(SHAPED)


@needs_cc
@pytest.mark.parametrize("name", ["zermelo", "cartpole", "cartpole_lqr", "isochronism", "decay_design",
                                  "zermelo_open_loop", "min_time_double_integrator"])
def test_shipped_specs_agree_with_the_torch_tier(name):
    """The same steps as the plain-torch tier (its own settings, seed 0): value and gradient to round-off."""
    _assert_native_equals_torch_tier(spec_path(name).read_text())


@needs_cc
def test_a_failed_build_falls_back_to_the_torch_tier_with_a_note(monkeypatch, tmp_path):
    monkeypatch.setenv("IMPSOLVE_CACHE", str(tmp_path))
    monkeypatch.setattr(native_build, "_loaded", {})

    def broken(*args):
        raise native_build.BuildError("the C compiler failed on a generated solver:\nsolver.c:1: error")

    monkeypatch.setattr(native_build, "_compile", broken)
    model = impsolve.load(_spec()).compile(device="cpu", dtype="float64")
    assert model.solver_plan.backend == "torch" and model.dynamics.native is None
    assert model.solver_plan.note.startswith("native tier unavailable: the C compiler failed")
    assert float(model().detach()) == float(model().detach())


def _fixed(method: str, end: str = EVENT, step: float = 0.07) -> str:
    """SPEC with a fixed-step method (a step that does not divide the horizon: the last is shortened)."""
    return _spec(end=end, extra=f", step_size={step}").replace("method=dopri5", f"method={method}")


@needs_cc
@pytest.mark.parametrize("method", ["rk4", "midpoint", "euler"])
@pytest.mark.parametrize("end", [HORIZON, EVENT], ids=["horizon", "event"])
def test_fixed_step_methods_agree_with_the_torch_tier(method, end):
    """The fixed grid, its shortened last step, outputs and event on the straight line between grid
    points, and the discrete reverse pass: the plain-torch tier's steps to round-off."""
    _assert_native_equals_torch_tier(_fixed(method, end))


@needs_cc
def test_fixed_step_dense_outputs_match_the_torch_tier():
    text = BATCH.replace("method=dopri5", "method=rk4, step_size=0.04")
    native = impsolve.load(text, {"solve.backend": "native"}).compile(device="cpu", dtype="float64", seed=1)
    torch_tier = impsolve.load(text, {"solve.backend": "torch"}).compile(device="cpu", dtype="float64", seed=1)
    assert native.solver_plan.backend == "native"
    times, states = native.trajectory(native.solve(), points=17)
    _, reference = torch_tier.trajectory(torch_tier.solve(), points=17)
    assert _close(states, reference, 1e-12)


OPEN_LOOP = """state x = 0.2, v = 0
control u in [-1, 2] piecewise(N=7, hold={hold})
control w piecewise(N=5, hold={hold}, init=0.3)
der(x) = v + 0.1*w*x
der(v) = u - 0.2*v^2
horizon free in [0.5, 3]
minimize x(T)^2 + v(T)^2 + T + integral(u^2)
solve ode(method={method}{extra})
"""


def _perturbed(text: str, backend: str):
    """Value and gradient at control values and final time moved off their (equal) initial values."""
    model = impsolve.load(text, {"solve.backend": backend}).compile(device="cpu", dtype="float64", seed=0)
    generator = torch.Generator().manual_seed(5)
    params = [p for p in model.parameters() if p.requires_grad]
    with torch.no_grad():
        for p in params:
            p.add_(torch.randn(p.shape, generator=generator, dtype=torch.float64))
    value = model.objective(model.solve())
    grads = torch.autograd.grad(value, params)
    return model, float(value.detach()), torch.cat([g.reshape(-1) for g in grads])


@needs_cc
@pytest.mark.parametrize("hold", ["constant", "linear"])
@pytest.mark.parametrize("method, extra", [("rk4", ", step_size=0.03"), ("dopri5", ", rtol=1e-11, atol=1e-12")],
                         ids=["rk4", "dopri5"])
def test_open_loop_controls_agree_with_the_torch_tier(hold, method, extra):
    """Bounded and unbounded piecewise controls, constant and linear hold, free final time: value
    (1e-9 relative) and gradient to the control values and T (1e-7) as on the plain-torch tier.
    The controls' kinks make dopri5's accept/reject decisions follow round-off (the two tiers take
    different steps at rtol 1e-8, 2e-7 apart), hence its tight tolerance here."""
    text = OPEN_LOOP.format(hold=hold, method=method, extra=extra)
    native, value, grad = _perturbed(text, "native")
    torch_tier, reference, reference_grad = _perturbed(text, "torch")
    assert native.solver_plan.backend == "native", native.solver_plan.note
    assert torch_tier.solver_plan.backend == "torch"
    assert abs(value - reference) <= 1e-9 * abs(reference)
    assert float(grad.abs().min()) > 0.0 and _close(grad, reference_grad, 1e-7)


@needs_cc
@pytest.mark.parametrize("text", [_fixed("rk4", HORIZON), _fixed("midpoint", HORIZON),
                                  OPEN_LOOP.format(hold="linear", method="rk4", extra=", step_size=0.03")],
                         ids=["rk4", "midpoint", "open-loop"])
def test_gradcheck_of_the_fixed_step_native_function(text):
    model = impsolve.load(text).compile(device="cpu", dtype="float64", seed=0)
    solver = model.dynamics.native
    theta = solver.theta().detach().requires_grad_(True)
    y0 = model.initial_state().detach().requires_grad_(True)

    def solve(y0, theta):
        settings = (solver.library, [0.0, 0.4, 0.45, 1.2], 0.0, 0.0, 10 ** 6, False, [], None, 1)
        return NativeSolve.apply(settings, y0, theta)

    assert torch.autograd.gradcheck(solve, (y0, theta), eps=1e-6, atol=1e-6, rtol=1e-5)


@needs_cc
def test_a_non_finite_net_weight_fails_the_solve_instead_of_being_absorbed():
    # the kernel's tanh clamps |z| (fmin drops a NaN): a NaN weight must not give a finite objective
    model = impsolve.load(spec_path("isochronism"), {"solve.backend": "native"}).compile(device="cpu", seed=0)
    assert model.solver_plan.backend == "native"
    with torch.no_grad():
        model.nets[0][0].weight[3, 0] = float("nan")
    with pytest.raises(RunError, match="non-finite values in the params or net weights"):
        model()


NAN_BORN_INSIDE = {   # sqrt(x) at x = -1 is nan, which each construct used to drop on the native tier
    "max": "der(y) = max(sqrt(x), 0.5)",
    "min": "der(y) = min(0.5, sqrt(x))",
    "relu": "net n(a): mlp(hidden=[3], act=relu)\nder(y) = n(sqrt(x))",
    "tanh": "net n(a): mlp(hidden=[3], act=tanh)\nder(y) = n(sqrt(x))",
}


@needs_cc
@pytest.mark.parametrize("construct", sorted(NAN_BORN_INSIDE))
def test_a_nan_born_in_the_dynamics_stops_the_native_solve_as_on_the_torch_tier(construct: str) -> None:
    """The kernel is built with -ffast-math: max/min, relu and tanh's clamp test for nan on the bits,
    so a nan reaches the solver's error norm (before: max(nan, 0.5) gave 0.5 and a finite objective)."""
    text = (f'problem nan "nan"\nstate x = -1, y = 0\n{NAN_BORN_INSIDE[construct]}\nder(x) = 1\n'
            'horizon 0.5\nminimize y(T)^2\n')
    for backend in ("native", "torch"):
        model = impsolve.load(text, {"solve.backend": backend}).compile(device="cpu")
        assert model.solver_plan.backend == backend
        with pytest.raises(RunError, match="der\\(y\\) is nan"):
            model()

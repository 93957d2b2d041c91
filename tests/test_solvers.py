"""The plain-torch solver tier against torchdiffeq as the oracle, at fixed weights (float64),
and the choice of tier and gradient mode."""
import json

import pytest
import torch
import torchdiffeq

import impsolve
from impsolve.cli import main
from impsolve.runtime.errors import RunError
from impsolve.runtime.solvers.integrator import odeint, odeint_until
from impsolve.runtime.solvers.plan import choose, gradient_mode
from impsolve.runtime.solvers.tableau import TABLEAUS

DTYPE = torch.float64
ADAPTIVE = ["dopri5", "bosh3", "fehlberg2", "adaptive_heun"]
FIXED = ["rk4", "midpoint", "euler"]


def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2)).to(DTYPE)


def _close(a: torch.Tensor, b: torch.Tensor, tol: float) -> bool:
    """Largest difference within tol times the oracle's largest entry (exact when that is 0)."""
    return float((a - b).detach().abs().max()) <= tol * float(b.detach().abs().max())


def _grads(value: torch.Tensor, net: torch.nn.Module) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(value, list(net.parameters()), retain_graph=True)])


@pytest.mark.parametrize("method", ADAPTIVE + FIXED)
def test_outputs_and_gradients_match_torchdiffeq(method):
    net = _net()

    def f(t, y):
        return net(y) * torch.cos(t) - 0.1 * y

    y0 = torch.tensor([[1.0, 0.5], [0.2, -0.3]], dtype=DTYPE)
    times = torch.tensor([0.0, 0.7, 1.5], dtype=DTYPE)
    step = {"step_size": 0.1} if method in FIXED else {}
    oracle = torchdiffeq.odeint(f, y0, times, method=method, rtol=1e-8, atol=1e-10, options=step)
    ours = odeint(f, y0, times, method, rtol=1e-8, atol=1e-10, **step)
    assert ours.shape == oracle.shape
    assert _close(ours, oracle, 1e-6)
    loss = (lambda ys: ys[-1].sum() + ys[1].pow(2).sum())
    assert _close(_grads(loss(ours), net), _grads(loss(oracle), net), 1e-5)


def test_every_tableau_is_consistent():
    for tableau in TABLEAUS.values():
        assert abs(sum(tableau.b) - 1) < 1e-14, tableau.name
        for c, row in zip(tableau.c, tableau.a):
            assert abs(sum(row) - c) < 1e-14, tableau.name
        if tableau.adaptive:
            assert abs(sum(tableau.error)) < 1e-14, tableau.name


def _event_problem(max_time: float):
    net = _net(1)

    def f(t, y):
        return net(y) + torch.tensor([1.0, 0.0], dtype=DTYPE)

    def event(t, y):
        return torch.maximum(y[..., 0].sum() - 2.0, t - max_time)

    return net, f, event, torch.tensor([0.1, 0.2], dtype=DTYPE)


@pytest.mark.parametrize("max_time", [10.0, 1.0])   # the condition, then the time limit, stops the run
def test_event_time_state_and_gradient_match_torchdiffeq(max_time):
    net, f, event, y0 = _event_problem(max_time)
    t_oracle, states = torchdiffeq.odeint_event(f, y0, torch.tensor(0.0, dtype=DTYPE), event_fn=event,
                                                method="dopri5", rtol=1e-8, atol=1e-10)
    t_ours, y_ours = odeint_until(f, y0, 0.0, event, rtol=1e-8, atol=1e-10)
    assert abs(float(t_ours.detach()) - float(t_oracle.detach())) <= 1e-6 * abs(float(t_oracle.detach()))
    assert _close(y_ours.detach(), states[-1].detach(), 1e-6)
    for loss in (lambda t, y: t, lambda t, y: t + y.pow(2).sum()):
        reference = _grads(loss(t_oracle, states[-1]), net)
        assert _close(_grads(loss(t_ours, y_ours), net), reference, 1e-5)


def test_event_time_gradient_equals_finite_differences():
    scale = torch.tensor(1.3, dtype=DTYPE, requires_grad=True)

    def f(t, y):
        return torch.stack((scale * torch.cos(y[1]) + 1.0, torch.ones_like(y[1])))

    def event(t, y):
        return y[0] - 2.0

    def t_event(value: float) -> float:
        with torch.no_grad():
            scale.fill_(value)
            return float(odeint_until(f, torch.zeros(2, dtype=DTYPE), 0.0, event, rtol=1e-11, atol=1e-12)[0])

    t, _ = odeint_until(f, torch.zeros(2, dtype=DTYPE), 0.0, event, rtol=1e-11, atol=1e-12)
    (grad,) = torch.autograd.grad(t, scale)
    fd = (t_event(1.3 + 1e-6) - t_event(1.3 - 1e-6)) / 2e-6
    scale.data.fill_(1.3)
    assert abs(float(grad) - fd) < 1e-6 * abs(fd)


SPEC = """
param k = 0.7
state y = 0, x = 0.3
net g(x): mlp(hidden=[8], act=tanh)
der(y) = 1 + 0.5*sin(x) + k*g(x)^2
der(x) = -k*x + y
stop when y >= 1.5 within 10
minimize x(T) + T + integral(x^2)
solve ode(method=dopri5, rtol=1e-8, atol=1e-10{extra})
"""


def _objective_and_gradient(text: str, backend: str):
    model = impsolve.load(text, {"solve.backend": backend}).compile(device="cpu", dtype="float64", seed=3)
    value = model()
    grads = torch.autograd.grad(value, [p for p in model.parameters() if p.requires_grad])
    return model, float(value.detach()), torch.cat([g.reshape(-1) for g in grads])


@pytest.mark.parametrize("extra", ["", ", adjoint=false"])
def test_compiled_spec_gives_the_same_objective_and_gradient_on_both_tiers(extra):
    fast, value, grad = _objective_and_gradient(SPEC.format(extra=extra), "torch")
    slow, oracle, oracle_grad = _objective_and_gradient(SPEC.format(extra=extra), "torchdiffeq")
    assert fast.solver_plan.backend == "torch" and slow.solver_plan.backend == "torchdiffeq"
    assert abs(value - oracle) <= 1e-6 * abs(oracle)
    assert _close(grad, oracle_grad, 1e-5)


def test_plan_falls_back_and_says_why():
    problem = impsolve.load(SPEC.format(extra="")).program.problem
    assert choose(problem, "torch").backend == "torch"
    float32 = choose(problem, "native", itemsize=4)
    assert float32.backend == "torch" and "native tier unavailable" in float32.note
    adjoint = choose(impsolve.load(SPEC.format(extra=", adjoint=true")).program.problem, "torch")
    assert adjoint.backend == "torchdiffeq" and adjoint.gradient == "adjoint" and "adjoint" in adjoint.note
    dopri8 = choose(impsolve.load(SPEC.format(extra=", method=dopri8").replace("method=dopri5, ", ""))
                    .program.problem)
    assert dopri8.backend == "torchdiffeq" and "dopri8" in dopri8.note
    with pytest.raises(ValueError):
        choose(problem, "fortran")


def test_gradient_mode_follows_the_stored_trajectory_size():
    small = impsolve.load(SPEC.format(extra="")).program.problem
    assert gradient_mode(small)[0] == "backprop"
    big = SPEC.format(extra="").replace("state y = 0, x = 0.3", "state y = 0, x ~ normal(0.3, 0.1)\nbatch 100000")
    big = big.replace("minimize x(T) + T + integral(x^2)", "minimize mean(x(T)^2)")
    big = big.replace("stop when y >= 1.5 within 10", "horizon 1")
    assert gradient_mode(impsolve.load(big).program.problem)[0] == "adjoint"
    forced = impsolve.load(big.replace("atol=1e-10", "atol=1e-10, adjoint=false")).program.problem
    assert gradient_mode(forced) == ("backprop", "set by adjoint= (the spec or --set solve.adjoint)")


def test_solver_failures_on_the_torch_tier_are_run_errors():
    text = SPEC.format(extra=", max_steps=3")
    model = impsolve.load(text, {"solve.backend": "torch"}).compile(device="cpu", dtype="float64")
    with pytest.raises(RunError, match="more than 3 steps"):
        model()


def test_cli_backend_flag_is_reported_in_result_json(tmp_path):
    spec = tmp_path / "small.imp"
    spec.write_text(SPEC.format(extra="") + "train adam(lr=0.01, steps=2)\n")
    code = main([str(spec), "--out", str(tmp_path / "out"), "--quiet", "--device", "cpu", "--backend", "torch"])
    assert code == 0
    solver = json.loads((tmp_path / "out" / "result.json").read_text())["solver"]
    assert solver["backend"] == "torch" and solver["requested"] == "torch" and solver["gradient"] == "backprop"


@pytest.mark.parametrize("act", ["tanh", "softplus", "relu"])   # folded to a sigmoid, a module's forward, a torch function
def test_a_bound_mlp_gives_the_same_values_and_gradients_and_unbinds(act):
    from impsolve.dsl.options import MlpOptions
    from impsolve.runtime.nets import bound, build_mlp
    torch.manual_seed(0)
    net = build_mlp(3, MlpOptions(hidden=[8, 8], act=act)).to(DTYPE)
    x = 3 * torch.randn(5, 3, dtype=DTYPE)

    def loss() -> torch.Tensor:   # two 2-d calls (bound: one transpose each layer) and a 1-d one (unbound)
        return net(x).square().sum() + net(x[:2]).sin().sum() + net(x[0]).sum()

    plain = loss()
    with bound([net]):
        assert net.plan is not None
        assert (torch.sigmoid in [call[0] for call in net.plan]) == (act == "tanh")
        value = loss()
    assert net.plan is None
    if act == "tanh":   # 2 sigmoid(2 z) - 1 with the affine parts in the neighbouring layers: round-off apart
        assert torch.allclose(value, plain, rtol=1e-14, atol=0)
    else:
        assert torch.equal(value, plain)   # addmm(b, x, W^T) is what F.linear computes
    for g, e in zip(torch.autograd.grad(value, list(net.parameters())),
                    torch.autograd.grad(plain, list(net.parameters()))):   # summed in another order
        assert torch.allclose(g, e, rtol=1e-13, atol=1e-16) and not torch.equal(g, torch.zeros_like(g))


def test_a_bound_mlp_reads_columns_through_padded_weights():
    """Mlp.of_columns(x, a, b) is net(x[..., a:b]): bound, the first layer reads all of x through
    zero rows (the same values and gradients to round-off, no slice); past PAD_LIMIT other columns,
    unbound, or on a 3-d x it slices."""
    from impsolve.dsl.options import MlpOptions
    from impsolve.runtime.nets import PAD_LIMIT, bound, build_mlp
    torch.manual_seed(0)
    net = build_mlp(2, MlpOptions(hidden=[8], act="tanh")).to(DTYPE)
    for width in (3, 2 + PAD_LIMIT, 3 + PAD_LIMIT):
        x = torch.randn(5, width, dtype=DTYPE, requires_grad=True)
        plain = net(x[..., 1:3])
        with bound([net]):
            with torch.no_grad():   # a padded weight made without a graph is not reused with one
                assert torch.allclose(net.of_columns(x, 1, 3), plain, rtol=1e-13, atol=1e-15)
            value = net.of_columns(x, 1, 3)
            assert net.of_columns(x[None], 1, 3).shape == (1, 5, 1)
            assert bool(net.padded) == (width - 2 <= PAD_LIMIT)
        assert not net.padded
        assert torch.allclose(value, plain, rtol=1e-13, atol=1e-15)
        assert torch.equal(net.of_columns(x, 1, 3), plain)
        for g, e in zip(torch.autograd.grad(value.sin().sum(), [x, *net.parameters()]),
                        torch.autograd.grad(plain.sin().sum(), [x, *net.parameters()])):
            assert torch.allclose(g, e, rtol=1e-13, atol=1e-15)

"""Discrete-time specs (report §5): rollouts against hand-written loops, gradients against finite
differences, total(), noise, vector-valued nets, open-loop controls and least squares."""
import io
import math
import tokenize

import pytest
import torch
from torch.func import functional_call

import impsolve
from impsolve.dsl import SpecError
from impsolve.runtime.identify import Transitions, least_squares_rows

from conftest import SPECS

F64 = torch.float64

LINEAR = """
param k = 0.5, c = 0.1
const A[2, 2] = [[0.9, 0.2], [-0.1, 0.8]]
const e1[2] = [1, 0], e2[2] = [0, 1]
noise w[2] ~ normal(0, 0.1)
state x[2] = [1, -1]
control u = -k * (e1' @ x) + c * t / T
next(x) = A @ x + e1 * u + w
steps 15
batch 3
minimize mean(norm(x(T))^2 + total(u^2 + 0.1 * (e2' @ x)^2) + x(0)' @ e1)
"""

GRAM = """
const d = 3, sigma = 0.1
const A[d, d] = [[0.9, 0.5, 0], [0, 0.9, 0.5], [0, 0, 0.9]]
noise w[d] ~ normal(0, sigma)
state x[d] = 0
net policy(x, t): mlp(hidden=[8], act=tanh, out=3)
control u[d] = normalize(policy(x, t/T))
next(x) = A @ x + u + w
steps 12
maximize smin(total(outer(x, x)))
"""


def _hand_written(model, k, c):
    """LINEAR's rollout and objective, written directly in torch."""
    A = torch.tensor([[0.9, 0.2], [-0.1, 0.8]], dtype=F64)
    x = torch.tensor([1.0, -1.0], dtype=F64).expand(3, 2)
    total = torch.zeros(3, dtype=F64)
    for t in range(15):
        u = -k * x[:, 0] + c * t / 15
        total = total + u ** 2 + 0.1 * x[:, 1] ** 2
        x = x @ A.T + torch.stack([u, torch.zeros_like(u)], -1) + model.noise[t]
    return (x.square().sum(-1) + total + 1.0).mean()


def test_rollout_equals_a_hand_written_loop_with_its_gradient():
    model = impsolve.load(LINEAR).compile(device="cpu", seed=3)
    assert model.noise.shape == (15, 3, 2)
    value = model()
    value.backward()
    k, c = (p.detach().clone().requires_grad_() for p in model.params)
    expected = _hand_written(model, k, c)
    expected.backward()
    torch.testing.assert_close(value.detach(), expected.detach(), rtol=1e-13, atol=0)
    torch.testing.assert_close(torch.stack([p.grad for p in model.params]), torch.stack([k.grad, c.grad]),
                               rtol=1e-12, atol=0)


def test_rollout_gradients_equal_finite_differences():
    model = impsolve.load(LINEAR).compile(device="cpu", seed=1)
    model.zero_grad()
    model().backward()
    h = 1e-6
    for p in model.params:
        with torch.no_grad():
            p += h
            up = float(model())
            p -= 2 * h
            down = float(model())
            p += h
        assert float(p.grad) == pytest.approx((up - down) / (2 * h), rel=1e-7)


def test_gradcheck_through_rollout_svd_and_net():
    model = impsolve.load(GRAM).compile(device="cpu", seed=0)
    names = [n for n, _ in model.named_parameters()][:2]
    weights = [dict(model.named_parameters())[n].detach().clone().requires_grad_() for n in names]

    def objective(*tensors):
        return functional_call(model, dict(zip(names, tensors)), ())

    assert torch.autograd.gradcheck(objective, tuple(weights))


def test_total_keeps_its_shape_and_sums_over_the_steps():
    model = impsolve.load(GRAM).compile(device="cpu", seed=0)
    solution = model.solve()
    states = solution.rollout.states[:-1, 0]                    # x_0 ... x_{T-1}
    gram = states.T @ states
    assert float(model().detach()) == pytest.approx(float(torch.linalg.svdvals(gram.detach())[-1]), rel=1e-12)
    times, rows = model.trajectory(solution)
    assert times.tolist() == list(range(13))
    torch.testing.assert_close(rows[-1, 0, -9:].reshape(3, 3), gram.detach())   # the running total at T


def test_matrix_state_with_x_at_0_and_T():
    spec = """
const A[2, 2] = [[0.9, 0.1], [0, 0.8]]
param k = 0.5
state X[2, 2] = diag(1, 1)
next(X) = k * A @ X
steps 4
minimize sum(X(T)) + trace(X(0))
"""
    model = impsolve.load(spec).compile(device="cpu")
    value = model()
    value.backward()
    A4 = torch.linalg.matrix_power(torch.tensor([[0.9, 0.1], [0, 0.8]], dtype=F64), 4)
    assert float(value.detach()) == pytest.approx(float(0.5 ** 4 * A4.sum() + 2), rel=1e-14)
    assert float(model.params[0].grad) == pytest.approx(float(4 * 0.5 ** 3 * A4.sum()), rel=1e-14)


def test_noise_is_seeded_held_fixed_and_resampled():
    problem = impsolve.load(LINEAR)
    a, b = problem.compile(device="cpu", seed=7), problem.compile(device="cpu", seed=7)
    torch.testing.assert_close(a.noise, b.noise)
    assert float(a().detach()) == float(a().detach())           # held fixed between evaluations
    assert not torch.equal(a.noise, problem.compile(device="cpu", seed=8).noise)
    before = a.noise.clone()
    a.resample()
    assert not torch.equal(before, a.noise)
    many = a.draw_noise(4000)
    assert float(many.std()) == pytest.approx(0.1, rel=0.03) and abs(float(many.mean())) < 0.005


def test_vector_net_runs_once_on_the_concatenated_inputs():
    problem = impsolve.load(GRAM)
    net = problem.program.problem.nets["policy"]
    assert (net.sizes, net.width) == ((3, 1), 4)
    source = problem.source()
    controls = source[source.index("def controls"):source.index("def totals")]
    assert controls.count("net_0(") == 1 and "net_0(_cat(s[..., 0:3], _tensor((t / T))[..., None]))" in controls
    model = problem.compile(device="cpu")
    assert model.nets[0][0].in_features == 4 and model.nets[0][-1].out_features == 3
    identifiers = {tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                   if tok.type == tokenize.NAME}
    assert not identifiers & {"policy", "x", "u", "w", "A", "sigma"}


def test_vector_net_in_an_ode_spec_and_scalar_nets_entry_by_entry():
    spec = """
state x[2] = [1, 0]
net f(x): mlp(hidden=[8], out=2)
net g(q): mlp(hidden=[4])
const qs[3] = [0.1, 0.2, 0.3]
der(x) = f(x) - x
horizon 1
minimize sum(x(T)^2) + sum(g(qs))
"""
    model = impsolve.load(spec).compile(device="cpu")
    assert (model.nets[0][0].in_features, model.nets[0][-1].out_features) == (2, 2)
    assert (model.nets[1][0].in_features, model.nets[1][-1].out_features) == (1, 1)
    objective = model.functions["objective"]
    with torch.no_grad():
        g = model.nets[1](torch.tensor([[0.1], [0.2], [0.3]], dtype=F64)).sum()
        solution = model.solve()
        value = objective(None, None, solution.s0, solution.sT, solution.T)[0]
    assert float(value) == pytest.approx(float(solution.sT.square().sum() + g), rel=1e-12)


@pytest.mark.parametrize("text, line, col, message", [
    ("state x[3] = 0\nstate y[2] = 0\nnet f(x): mlp(out=2)\nnext(x) = x\nnext(y) = f(y)\nsteps 2\n"
     "minimize sum(x(T))\n", 5, 11, "net 'f' takes 3 input entries (x: 3), got 2"),
    ("state x = 0\nnet f(x): mlp(out=2)\nconst qs[3] = [1, 2, 3]\nnext(x) = x + sum(f(qs))\nsteps 2\n"
     "minimize x(T)\n", 4, 19, "net 'f' takes 1 input entry (x: 1), got 3"),
])
def test_net_size_mismatch_is_located(text, line, col, message):
    with pytest.raises(SpecError) as err:
        impsolve.load(text)
    assert (err.value.line, err.value.column) == (line, col), err.value.render()
    assert message in err.value.message


def test_open_loop_sequence_with_an_energy():
    spec = """
const A[2, 2] = [[0.9, 0.2], [0, 0.8]]
state x[2] = 0
control u[2] over steps energy 4
next(x) = A @ x + u
steps 20
maximize smin(total(outer(x, x)))
train adam(lr=0.05, steps=40)
"""
    model = impsolve.load(spec).compile(device="cpu", seed=0)
    u = model.played_sequences().detach()
    assert u.shape == (20, 2) and float(u.square().sum() / 20) == pytest.approx(4.0, rel=1e-12)
    result = impsolve.solve(spec, device="cpu", write=False)
    assert result.objective.final > 2 * result.objective.history[0]


def _truth_rollout(text: str, realizations: int, steps: int, seed: int = 0):
    """Play random inputs on the truth; return the model, the rollout and the true entries."""
    model = impsolve.load(text).compile(device="cpu", seed=seed, realizations=realizations)
    truth = torch.tensor([v for e in model.discrete.estimates for v in e.truth], dtype=F64)
    generator = torch.Generator().manual_seed(seed)
    played = torch.randn(steps, realizations, 1, len(model.discrete.control_columns), generator=generator, dtype=F64)
    noise = model.draw_noise(steps, (realizations, 1))
    x0 = model.initial_state((realizations, 1))
    return model, model.rollout(x0, noise, truth, played), truth, played


SYSTEM = """
const sigma = {sigma}
truth A[2, 2] = [[0.8, 0.3], [-0.2, 0.7]]
estimate A by ols
{b}
noise w[2] ~ normal(0, sigma)
state x[2] = 0
control u[2] over steps
next(x) = A @ x + B @ u + w
steps 5
maximize smin(total(outer(x, x)))
identify epochs=1
baseline u ~ normal(0, 1)
"""


def test_least_squares_recovers_a_noiseless_system_exactly():
    text = SYSTEM.format(sigma=0, b="truth B[2, 2] = [[1, 0.5], [0, 1]]\nestimate B by ols")
    model, rollout, truth, _ = _truth_rollout(text, realizations=2, steps=6)
    data = Transitions()
    data.append(least_squares_rows(model, rollout))
    torch.testing.assert_close(data.estimate(), truth.expand(2, 8), rtol=0, atol=1e-10)


def test_least_squares_equals_the_closed_form_with_noise():
    """Â = Σ (x_{t+1} − B u_t) x_tᵀ (Σ x_t x_tᵀ)⁻¹ (report eq. 5.17), B known."""
    text = SYSTEM.format(sigma=0.3, b="const B[2, 2] = [[1, 0.5], [0, 1]]")
    model, rollout, truth, played = _truth_rollout(text, realizations=3, steps=40)
    data = Transitions()
    data.append(least_squares_rows(model, rollout))
    B = torch.tensor([[1, 0.5], [0, 1]], dtype=F64)
    x, x_next, u = rollout.states[:-1, :, 0], rollout.states[1:, :, 0], played[:, :, 0]
    y = x_next - u @ B.T
    closed = torch.einsum("tri,trj->rij", y, x) @ torch.linalg.inv(torch.einsum("tri,trj->rij", x, x))
    torch.testing.assert_close(data.estimate(), closed.reshape(3, 4), rtol=1e-10, atol=1e-12)
    assert float((data.estimate() - truth).norm(dim=-1).max()) < 0.5


def test_planned_control_beats_the_baseline_under_the_same_estimate():
    realizations, steps = 4, 30
    model = impsolve.load(SPECS / "sysid.imp").compile(device="cpu", seed=0, realizations=realizations)
    estimate = torch.tensor([[0.85, 0.4, 0.1], [0.05, 0.95, 0.45], [0.0, -0.05, 0.9]], dtype=F64).reshape(1, 1, 9)
    model.estimate = estimate.expand(realizations, 1, 9).clone()
    model.set_steps(steps)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):
        optimizer.zero_grad()
        (-model.objectives(model.solve()).sum()).backward()
        optimizer.step()
    x0 = model.initial_state()
    with torch.no_grad():
        planned = model.objectives(model.solve())
        gaussian = torch.randn(steps, realizations, 1, 3, generator=torch.Generator().manual_seed(5), dtype=F64)
        baseline = model.objectives(model.finish(x0, model.estimate, model.rollout(
            x0, model.noise, model.estimate, gaussian / math.sqrt(3))))
    assert bool((planned > 3 * baseline).all()), (planned, baseline)     # measured: 9.5x to 37x


def test_realizations_train_independently():
    """Adam on the sum of the copies' objectives: each copy follows its own trajectory, the same as
    training it alone."""
    problem = impsolve.load(GRAM)
    together = problem.compile(device="cpu", seed=0, realizations=3)
    alone = problem.compile(device="cpu", seed=0, realizations=3)
    for model, copies in ((together, [0, 1, 2]), (alone, [1])):
        optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
        for _ in range(5):
            optimizer.zero_grad()
            (-model.objectives(model.solve())[copies].sum()).backward()
            optimizer.step()
    for a, b in zip(together.parameters(), alone.parameters()):
        torch.testing.assert_close(a[1], b[1], rtol=1e-12, atol=1e-14)


POLICY = """
problem discrete_policy
state x ~ normal(0, 1), v = 0
batch 4
net f(x): mlp(hidden=[8])
control u = f(x)
next(x) = x + 0.1*v
next(v) = 0.9*v + 0.1*u
steps 20
minimize mean(x(T)^2 + total(0.01*u^2))
train adam(lr=0.02, steps=30)
expect u == f(x) over x in [-1, 1] tol 1e-12
expect mean(x(T)^2) < 10
plot u, -x over x in [-2, 2]
"""


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_discrete_spec_runs_end_to_end(tmp_path, dtype):
    result = impsolve.solve(POLICY, out=tmp_path, device="cpu", dtype=dtype)
    assert result.passed and result.objective.final < result.objective.history[0]
    assert result.values["T"] == 20 and set(result.values) == {"x", "v", "T"}
    assert impsolve.load(POLICY).program.ranges["plot_0"].on_grid      # u = f(x): drawn on a grid of x
    rows = (tmp_path / "trajectory.csv").read_text().splitlines()
    assert rows[0] == "t,trajectory,x,v,u" and len(rows) == 1 + 4 * 21
    for name in ("plot_1.png", "expect_1.png", "trajectory.png", "objective.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_a_rollout_reports_no_ode_solver(tmp_path):
    """A discrete-time spec has no ODE solver: result.json's `solver` is empty, not a tier."""
    result = impsolve.solve(LINEAR + "train adam(lr=0.01, steps=2)\n", out=str(tmp_path / "out"), device="cpu")
    assert result.solver == {}

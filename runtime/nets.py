"""Neural networks declared with `net name(inputs): mlp(...)`."""
from __future__ import annotations

import math
from contextlib import ExitStack, contextmanager
from typing import Iterable, Iterator

import torch
from torch import nn

from ..dsl.options import MlpOptions

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "softplus": nn.Softplus,
               "elu": nn.ELU, "gelu": nn.GELU, "silu": nn.SiLU}
# the torch functions of the activations without parameters to pass (the others keep their forward)
FUNCTIONS = {nn.Tanh: torch.tanh, nn.ReLU: torch.relu, nn.Sigmoid: torch.sigmoid}
PAD_LIMIT = 8   # columns a bound net's first layer may read as zero rows instead of a slice (Mlp.of_columns)


class Mlp(nn.Sequential):
    """nn.Sequential (same layers, same state_dict keys) whose forward calls each layer's forward
    directly: the per-module call overhead dominates a small net's evaluation on the CPU. Inside
    `bound()` (one solve) each layer is made once into one call: a linear layer into addmm with its
    transposed weight (one graph node instead of two: transpose, addmm), an activation into its
    torch function, and a tanh between two linear layers into a sigmoid (`fold_tanh`)."""

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__(*layers)
        self.plan: list[tuple] | None = None   # per layer, while bound: (bias, transposed weight) or (function,)
        self.padded: dict[tuple[int, int, int, bool], list[tuple]] = {}   # while bound: plans of `of_columns`

    @contextmanager
    def bound(self) -> Iterator[None]:
        """Make the layers' calls once for the calls inside (under the grad mode in force)."""
        self.plan = fold_tanh(list(self), [(layer.bias, layer.weight.t()) if _affine(layer)
                                           else (FUNCTIONS.get(type(layer), layer.forward),) for layer in self])
        try:
            yield
        finally:
            self.plan = None
            self.padded = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.plan is not None and x.dim() == 2:
            return _run(self.plan, x)
        for layer in self:
            x = layer.forward(x)
        return x

    def of_columns(self, x: torch.Tensor, first: int, stop: int) -> torch.Tensor:
        """self(x[..., first:stop]). While bound, on a 2-d x with at most PAD_LIMIT other columns,
        the first layer reads all of x through its weight padded with zero rows (made once per
        solve, once per grad mode: one made under no_grad has no graph to the weights): the same
        values to round-off, and no slice in the graph (whose reverse pass is zeros + copy per call)."""
        if self.plan is None or x.dim() != 2 or len(self.plan[0]) != 2 or x.shape[-1] - (stop - first) > PAD_LIMIT:
            return self.forward(x[..., first:stop])
        key = (first, stop, x.shape[-1], torch.is_grad_enabled())
        if key not in self.padded:
            bias, weight = self.plan[0]
            rows = weight.new_zeros(first, weight.shape[1]), weight, weight.new_zeros(key[2] - stop, weight.shape[1])
            self.padded[key] = [(bias, torch.cat(rows)), *self.plan[1:]]
        return _run(self.padded[key], x)


def _run(plan: list[tuple], x: torch.Tensor) -> torch.Tensor:
    """A bound plan's calls on a 2-d x."""
    for call in plan:
        x = torch.addmm(call[0], x, call[1]) if len(call) == 2 else call[0](x)   # addmm: F.linear in 2-d
    return x


def _affine(layer: nn.Module) -> bool:
    """A linear layer with a bias: called as one addmm in a bound plan."""
    return isinstance(layer, nn.Linear) and layer.bias is not None


def fold_tanh(layers: list[nn.Module], plan: list[tuple]) -> list[tuple]:
    """The plan with each tanh between two linear layers (with biases) made a sigmoid, by
    tanh(z) = 2 sigmoid(2 z) - 1: the layer before it gets twice its weight and bias, the layer
    after it reads h = 2 sigmoid - 1 as b - sum_i W_i + sigmoid @ (2 W). Same values to round-off,
    same number of graph nodes per call, and on the CPU a float64 sigmoid takes about a quarter of
    a tanh's time (1.7 against 6.8 us on 100 x 16); the weights are made once per bound solve."""
    plan = list(plan)
    for i in range(1, len(layers) - 1):
        if isinstance(layers[i], nn.Tanh) and _affine(layers[i - 1]) and _affine(layers[i + 1]):
            bias, weight = plan[i - 1]
            plan[i - 1] = (2 * bias, 2 * weight)
            plan[i] = (torch.sigmoid,)
            bias, weight = plan[i + 1]
            plan[i + 1] = (bias - weight.sum(0), 2 * weight)
    return plan


@contextmanager
def bound(nets: Iterable[nn.Module]) -> Iterator[None]:
    """All Mlp nets of `nets` bound (Mlp.bound) for the calls inside."""
    with ExitStack() as stack:
        for net in nets:
            if isinstance(net, Mlp):
                stack.enter_context(net.bound())
        yield


def build_mlp(n_inputs: int, options: MlpOptions) -> nn.Sequential:
    """A fully connected net n_inputs -> hidden... -> out with the chosen activation."""
    layers: list[nn.Module] = []
    width = n_inputs
    for h in options.hidden:
        layers += [nn.Linear(width, h), ACTIVATIONS[options.act]()]
        width = h
    layers.append(nn.Linear(width, options.out))
    if options.init is not None:   # torchdiffeq's ode_demo: normal(0, 0.1) weights, zero biases
        for layer in layers:
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, 0.0, options.init)
                nn.init.zeros_(layer.bias)
    return Mlp(*layers)


class BatchedMlp(nn.Module):
    """`copies` independent MLPs with the architecture of `build_mlp`, evaluated together by batched
    matrix products: input (copies or 1, rollouts..., n_inputs) -> (copies, rollouts..., out). Each copy is
    initialised like nn.Linear (uniform in ±1/sqrt(fan_in)), and since the copies share no weight,
    per-coordinate optimisers (Adam, SGD) train them independently."""

    def __init__(self, n_inputs: int, options: MlpOptions, copies: int, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> None:
        super().__init__()
        widths = [n_inputs, *options.hidden, options.out]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            bound = 1 / math.sqrt(fan_in)
            for target, shape in ((self.weights, (copies, fan_in, fan_out)), (self.biases, (copies, 1, fan_out))):
                draw = torch.rand(shape, generator=generator, dtype=torch.float64) * (2 * bound) - bound
                if options.init is not None:   # normal(0, init) weights, zero biases
                    draw = torch.randn(shape, generator=generator, dtype=torch.float64) * options.init \
                        if target is self.weights else torch.zeros(shape, dtype=torch.float64)
                target.append(nn.Parameter(draw.to(device=device, dtype=dtype)))
        self.activation = ACTIVATIONS[options.act]()
        self.copies = copies
        # the (weight, bias) of each layer, read once: iterating a ParameterList costs ~40 µs a forward
        self.layers = tuple(zip(self.weights, self.biases))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 3:       # (copies, rollouts, inputs), broadcast as usual (e.g. a net of t only)
            x = x.reshape(*(1,) * (3 - x.dim()), *x.shape)
        batch = x.shape[1:-1]
        h = x
        if len(batch) != 1 or x.shape[0] != self.copies:
            h = x.expand(self.copies, *batch, x.shape[-1]).reshape(self.copies, -1, x.shape[-1])
        last = len(self.layers) - 1
        for i, (w, b) in enumerate(self.layers):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = self.activation.forward(h)
        return h if len(batch) == 1 else h.reshape(self.copies, *batch, h.shape[-1])

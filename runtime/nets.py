"""Neural networks declared with `net name(inputs): mlp(...)`."""
from __future__ import annotations

from torch import nn

from ..dsl.options import MlpOptions

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "softplus": nn.Softplus,
               "elu": nn.ELU, "gelu": nn.GELU, "silu": nn.SiLU}


def build_mlp(n_inputs: int, options: MlpOptions) -> nn.Sequential:
    """A fully connected net n_inputs -> hidden... -> 1 with the chosen activation."""
    layers: list[nn.Module] = []
    width = n_inputs
    for h in options.hidden:
        layers += [nn.Linear(width, h), ACTIVATIONS[options.act]()]
        width = h
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)

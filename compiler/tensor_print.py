"""Torch source of single tensor nodes (`tensors.Node`), given the source of their operands.

Values carry batch dimensions in front of their logical shape: a vector is [..., n], a matrix
[..., n, m]. Only numbers, indices and the fixed names of the generated module reach the source.
"""
from __future__ import annotations

import re

from . import tensors as tn
from .indexing import show_position

TORCH = {"sin": "torch.sin", "cos": "torch.cos", "tan": "torch.tan", "asin": "torch.asin", "acos": "torch.acos",
         "atan": "torch.atan", "sinh": "torch.sinh", "cosh": "torch.cosh", "tanh": "torch.tanh", "exp": "torch.exp",
         "log": "torch.log", "sqrt": "torch.sqrt", "abs": "torch.abs", "sign": "torch.sign",
         "sigmoid": "torch.sigmoid", "softplus": "torch.nn.functional.softplus", "atan2": "torch.atan2",
         "min": "torch.minimum", "max": "torch.maximum"}
OPERATORS = {"+": "+", "-": "-", "*": "*", "/": "/", "^": "**", "<": "<", "<=": "<=", ">": ">", ">=": ">=",
             "==": "==", "!=": "!="}
DIMS = {1: "-1", 2: "(-2, -1)"}
REPEATS_OPERAND = {"normalize"}    # printed with its operand twice (the emitter names that operand)


def raised(node: tn.Node, code: str, rank: int) -> str:
    """An operand lifted to `rank` logical dimensions: a batched scalar gains trailing axes."""
    extra = rank - len(node.shape)
    if extra <= 0 or not node.batched:
        return code
    return f"{code}[..., {', '.join(['None'] * extra)}]"


def tensor(node: tn.Node, code: str) -> str:
    """A Python number wrapped as a tensor where torch needs one."""
    return f"_tensor({code})" if node.literal else code


def state(node: tn.Node) -> str:
    start, stop, which = node.attr
    if not node.shape:
        return f"{which}[..., {start}]"
    if len(node.shape) == 1:
        return f"{which}[..., {start}:{stop}]"
    return f"{which}[..., {start}:{stop}].unflatten(-1, {node.shape})"


def leaf(node: tn.Node) -> str:
    """Source of a leaf other than an implicit unknown."""
    if node.op == "number":
        return repr(node.attr)
    if node.op == "const":
        return f"_tensor({node.attr!r})"
    if node.op == "param":
        return f"p_{node.attr}"
    if node.op == "state":
        return state(node)
    if node.op == "randn":
        offset = node.attr
        return f"draws[{offset}]" if not node.shape else \
            f"draws[{offset}:{offset + node.size}].reshape{node.shape if len(node.shape) > 1 else (node.size,)}"
    if node.op == "eye":
        return f"_eye({node.attr})"
    return {"time": "t", "final_time": "T"}[node.op]


def matmul(a: tn.Node, b: tn.Node, x: str, y: str, shape: tuple[int, ...]) -> str:
    """`a @ b` with a vector as a column; the readable forms `x @ A.mT` and `(u * x).sum(-1)` first."""
    if len(a.shape) == 2 and len(b.shape) == 1 and not a.batched and len(shape) == 1:
        return f"({y} @ {x}.mT)"
    if a.op == "'" and len(a.args[0].shape) == 1 and len(b.shape) == 1:
        return f"({x}[..., 0, :] * {y}).sum(-1)"
    if len(a.shape) == 2 and len(b.shape) == 1 and a.batched:     # a matrix of each batch entry (fewer autograd nodes)
        return f"({x} * {y}[..., None, :]).sum(-1)"
    left = x if len(a.shape) == 2 else f"{x}[..., None]"
    right = y if len(b.shape) == 2 else f"{y}[..., None]"
    tail = {0: "[..., 0, 0]", 1: "[..., 0]", 2: ""}[len(shape)]
    return f"({left} @ {right}){tail}"


def elementwise(node: tn.Node, codes: list[str]) -> str:
    rank = len(node.shape)
    args = [raised(a, c, rank) for a, c in zip(node.args, codes)]
    op = node.op
    if op == "neg":
        return f"(-{args[0]})"
    if op == "^" and node.args[1].op == "number" and node.args[1].attr == 2.0 and not node.args[0].literal:
        return f"torch.square({args[0]})"
    if op in OPERATORS:
        return f"({args[0]} {OPERATORS[op]} {args[1]})"
    wrapped = [tensor(a, c) for a, c in zip(node.args, args)]
    if op == "sech":
        return f"(1 / torch.cosh({wrapped[0]}))"
    if op == "where":   # a condition of numbers only is a Python bool: as a tensor on the model's device
        condition = f"({wrapped[0]} != 0)" if node.args[0].literal else args[0]
        return f"torch.where({condition}, {wrapped[1]}, {wrapped[2]})"
    if op in ("min", "max"):
        out = wrapped[0]
        for w in wrapped[1:]:
            out = f"{TORCH[op]}({out}, {w})"
        return out
    return f"{TORCH[op]}({', '.join(wrapped)})"


def flat(node: tn.Node, code: str) -> str:
    """The entries of a value in its last dimension."""
    return {0: f"_tensor({code})[..., None]", 1: code, 2: f"{code}.flatten(-2)"}[len(node.shape)]


ENTRY = re.compile(r"^(.+)\[\.\.\., (\d+)\]$")   # `v[..., i]`: one entry of a vector's source


def net_inputs(args: list[tn.Node], codes: list[str]) -> str:
    """A net's input row: a vector as it is, consecutive entries of one vector as its slice
    `v[..., a:b]`, scalars stacked, else the flattened arguments concatenated."""
    if len(codes) == 1 and len(args[0].shape) == 1:
        return codes[0]
    if any(a.shape for a in args):
        return f"_cat({', '.join(flat(a, c) for a, c in zip(args, codes))})"
    entries = [ENTRY.match(c) for c in codes]
    if all(entries) and len({m.group(1) for m in entries}) == 1:
        first = int(entries[0].group(2))
        if [int(m.group(2)) for m in entries] == list(range(first, first + len(codes))):
            whole = args[0].op == "index" and args[0].args[0].shape == (len(codes),)
            return entries[0].group(1) if whole else f"{entries[0].group(1)}[..., {first}:{first + len(codes)}]"
    return f"_stack({', '.join(codes)})"


def reduction(node: tn.Node, x: str) -> str:
    a = node.args[0]
    dims = DIMS.get(len(a.shape))
    matrix = x if len(a.shape) == 2 else f"{x}[..., None]"
    return {
        "sum": f"{x}.sum({dims})", "mean": f"{x}.mean({dims})", "batch_mean": f"_batch_mean({x})",
        "norm": f"torch.linalg.vector_norm({x}, dim={dims})",
        "normalize": f"({x} / torch.linalg.vector_norm({x}, dim={dims}, keepdim=True))",
        "trace": f"torch.diagonal({x}, dim1=-2, dim2=-1).sum(-1)", "det": f"torch.linalg.det({x})",
        "logdet": f"torch.linalg.slogdet({x})[1]", "inv": f"torch.linalg.inv({x})",
        "diag": f"torch.diag_embed({x})", "svdvals": f"_svdvals({matrix})", "smin": f"_smin({matrix})",
        "smax": f"_smax({matrix})", "'": f"{x}[..., None, :]" if len(a.shape) == 1 else f"{x}.mT",
        "fill": f"_fill({x}, {node.shape})", "repeat_rows": f"_repeat_rows({x}, {node.attr})",
        "sum_rows": f"{x}.sum(-2)",
    }[node.op]


def operation(node: tn.Node, codes: list[str], nets: dict[str, int]) -> str:
    """Source of an operation node from the source of its operands."""
    op = node.op
    if op == "@":
        return matmul(*node.args, *codes, node.shape)
    if op in tn.ARITHMETIC or op in tn.COMPARE or op in tn.ELEMENTWISE or op == "neg":
        return elementwise(node, codes)
    if op == "scale_rows":
        return f"({codes[0]}[..., :, None] * {codes[1]})"
    if op == "outer":
        return f"({codes[0]}[..., :, None] * {codes[1]}[..., None, :])"
    if op == "index":
        where = ", ".join(show_position(p, size) for p, size in zip(node.attr, node.args[0].shape))
        return f"{codes[0]}[..., {where}]"
    if op == "array":
        helper = "_stack" if len(node.shape) == 1 else "_rows"
        return f"{helper}({', '.join(codes)})"
    if op == "net":
        call = f"net_{nets[node.attr]}({net_inputs(node.args, codes)})"
        return f"{call}[..., 0]" if not node.shape else call
    if op == "netmap":
        return f"net_{nets[node.attr]}(_stack({', '.join(codes)}))[..., 0]"
    return reduction(node, codes[0])

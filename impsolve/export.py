"""`impsolve export RESULTS --format torchscript|onnx`: the trained control law as a standalone file.

The exported module maps `(t, state)` to the controls: `t` a scalar tensor, `state` a
`[batch, n]` tensor of the spec's states in declaration order, the result `[batch, m]` with the
controls in declaration order. Nets, params and consts are baked in; loading it needs torch
(`torch.jit.load`) or onnxruntime, not impsolve.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from .api import load
from .runtime.errors import RunError

FORMATS = {"torchscript": "controller.pt", "onnx": "controller.onnx"}


class ControlLaw(nn.Module):
    """The controls of a compiled problem as a function of time and the user's states."""

    def __init__(self, model: nn.Module, width: int, outputs: list[int]) -> None:
        super().__init__()
        self.model = model
        self.width, self.outputs = width, outputs

    def forward(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        full = torch.cat([state, state.new_zeros(*state.shape[:-1], self.width - state.shape[-1])], -1)
        values = self.model.functions["controls"](t, full)
        return torch.stack([torch.as_tensor(values[i]).expand(state.shape[:-1]) for i in self.outputs], -1)


def control_law(results: Path, spec: Path | None = None) -> tuple[ControlLaw, list[str], list[str], torch.dtype]:
    """The trained control law of a results folder (with the spec it was trained from), its state
    and control names, and its dtype."""
    result = json.loads(_read(results / "result.json"))
    spec = spec or results / "spec.imp"
    if not spec.exists():
        raise RunError(f"{results} holds no copy of its spec", "name it with --spec SPEC", exit_code=2)
    if result.get("identify") or result.get("rounds"):
        raise RunError("only a trained spec's control law can be exported; a design or identification study "
                       "trains one per round or realisation", exit_code=2)
    problem = load(spec)
    if problem.program.problem.discrete is not None:
        raise RunError("export supports continuous-time specs (der(...)) so far; discrete-time control laws "
                       "are not exported yet", exit_code=2)
    if result.get("spec_sha256") and result["spec_sha256"] != hashlib.sha256(problem.checked.spec.source.encode()).hexdigest():
        raise RunError(f"{spec} is not the spec that {results} was trained from (spec_sha256 differs)", exit_code=2)
    model = problem.compile(device="cpu", dtype=result["dtype"], seed=result["seed"])
    model.load_state_dict(torch.load(results / "model.pt", weights_only=True))
    model.eval()
    ir = model.problem
    outputs, names = _outputs(ir)
    states = list(ir.user_states)
    _check_reads(ir, outputs, states)
    if ir.states[:len(states)] != states:
        raise RunError("the spec's states are not the leading columns of its model; cannot export", exit_code=3)
    law = ControlLaw(model, len(ir.states), outputs)
    return law, states, names, model.dtype


def _outputs(problem) -> tuple[list[int], list[str]]:
    """Which entries of the generated `controls` function are exported, and their names."""
    if not problem.controls:
        raise RunError("the spec has no control to export", "declare one with 'control u = ...'", exit_code=2)
    return list(range(len(problem.controls))), list(problem.controls)


def _check_reads(problem, outputs: list[int], states: list[str]) -> None:
    """The control law may read the states and time only (not noise, estimates or other columns)."""
    exprs = list(problem.controls.values())
    columns = set(problem.states)
    read = {s.name for e in exprs for s in getattr(e, "free_symbols", ()) if s.name in columns}
    extra = sorted(read - set(states))
    if extra:
        raise RunError(f"the control law reads {', '.join(extra)}, which is not a state", exit_code=2)


def export(results: Path, fmt: str, spec: Path | None = None, out: Path | None = None) -> Path:
    """Write the control law of `results` as TorchScript or ONNX; returns the file written."""
    law, states, controls, dtype = control_law(results, spec)
    path = out or results / FORMATS[fmt]
    example = (torch.tensor(0.0, dtype=dtype), torch.zeros(2, len(states), dtype=dtype))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the tracer's notes on constants and the exporter's deprecations
        if fmt == "torchscript":
            traced = torch.jit.trace(law, example, check_trace=False)
            traced.save(str(path))
        else:
            law32 = law.float()
            example32 = tuple(x.float() for x in example)
            torch.onnx.export(law32, example32, str(path), dynamo=False, input_names=["t", "state"],
                              output_names=["controls"], dynamic_axes={"state": {0: "batch"}, "controls": {0: "batch"}})
    (path.parent / f"{path.name}.json").write_text(json.dumps({"inputs": {"t": [], "state": states},
                                                               "outputs": controls}, indent=2) + "\n")
    return path


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as err:
        raise RunError(f"cannot read {path}: {err.strerror}", "give a results folder of 'impsolve SPEC'",
                       exit_code=2) from None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="impsolve export", description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a results folder written by 'impsolve SPEC'")
    parser.add_argument("--format", choices=sorted(FORMATS), default="torchscript")
    parser.add_argument("--spec", type=Path, help="the spec it was trained from (default: RESULTS/spec.imp)")
    parser.add_argument("--out", type=Path, help=f"the file to write (default: RESULTS/{FORMATS['torchscript']} "
                                                 f"or RESULTS/{FORMATS['onnx']})")
    args = parser.parse_args(argv)
    path = export(args.results, args.format, args.spec, args.out)
    print(f"exported the control law to {path} (inputs and outputs in {path.name}.json)")
    return 0

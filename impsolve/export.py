"""`impsolve export RESULTS --format torchscript|onnx`: the trained control law as a standalone file.

The exported module maps `(t, state)` to the controls: `t` a scalar tensor, `state` a
`[batch, n]` tensor of the spec's states in declaration order, the result `[batch, m]` with the
controls in declaration order (for a discrete-time spec `t` is the step index). Nets, params,
consts and an identification planner's estimate are baked in; loading it needs torch
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
from .compiler import tensors as tn
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


class RolloutControlLaw(nn.Module):
    """The closed-loop controls of a discrete-time model at step `t` (noise columns 0, the model's
    estimate in the estimated entries). An identification study's planner holds one copy of its nets
    per realisation and strategy; `copy` picks one (None: a model with one copy)."""

    def __init__(self, model: nn.Module, copy: int | None) -> None:
        super().__init__()
        self.model, self.copy = model, copy
        self.steps, self.noise_width = float(model.steps), model.sizes["noise"]

    def forward(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        model = self.model
        x = state if self.copy is None else state.expand(model.realizations, *state.shape)
        estimate = model.estimate.expand(*x.shape[:-1], model.estimate.shape[-1])
        row = torch.cat([x, x.new_zeros(*x.shape[:-1], self.noise_width), estimate], -1)
        values = model.functions["controls"](t, row, None, None, torch.tensor(self.steps, dtype=state.dtype))
        return values if self.copy is None else values[self.copy]


def control_law(results: Path, spec: Path | None = None,
                realization: int = 0) -> tuple[nn.Module, list[str], list[str], torch.dtype]:
    """The trained control law of a results folder (with the spec it was trained from), its state
    and control names, and its dtype. For an identification study: the adaptive planner of the last
    epoch of realisation `realization`."""
    result = json.loads(_read(results / "result.json"))
    spec = spec or results / "spec.imp"
    if not spec.exists():
        raise RunError(f"{results} holds no copy of its spec", "name it with --spec SPEC", exit_code=2)
    if result.get("rounds"):
        raise RunError("a design study's result has no control law to export: it chooses one design per round",
                       exit_code=2)
    problem = load(spec)
    if result.get("spec_sha256") and result["spec_sha256"] != hashlib.sha256(problem.checked.spec.source.encode()).hexdigest():
        raise RunError(f"{spec} is not the spec that {results} was trained from (spec_sha256 differs)", exit_code=2)
    if problem.program.problem.time_model == "rollout":
        return _rollout_law(problem, result, results, realization)
    model = _trained(problem, result, results)
    ir = model.problem
    outputs, names = _outputs(ir)
    _refuse_implicit(ir, list(ir.controls.values()))
    states = list(ir.user_states)
    _check_reads(list(ir.controls.values()), set(ir.states), states)
    if ir.states[:len(states)] != states:
        raise RunError("the spec's states are not the leading columns of its model; cannot export", exit_code=3)
    return ControlLaw(model, len(ir.states), outputs), states, names, model.dtype


def _rollout_law(problem, result: dict, results: Path, realization: int) -> tuple[nn.Module, list[str], list[str], torch.dtype]:
    """The control law of a discrete-time result: a trained rollout, or an identification study's planner."""
    discrete = problem.program.problem.discrete
    if discrete.sequences:
        raise RunError(f"{', '.join(discrete.sequences)}: an open-loop control sequence is not a function of the "
                       "state, so there is no control law to export", exit_code=2)
    if not discrete.controls:
        raise RunError("the spec has no control to export", "declare one with 'control u = ...'", exit_code=2)
    _check_reads(list(discrete.controls.values()), set(discrete.columns), discrete.states + discrete.estimate_columns)
    _refuse_implicit(problem.program.problem, list(discrete.controls.values()))
    identify = result.get("identify")
    if not identify:
        model = _trained(problem, result, results)
        return RolloutControlLaw(model, None), discrete.states, list(discrete.controls), model.dtype
    realizations = identify["realizations"]
    if not 0 <= realization < realizations:
        raise RunError(f"--realization {realization} is not one of the study's realisations 0..{realizations - 1}",
                       exit_code=2)
    model = _trained(problem, result, results, copies=2 * realizations, steps=int(result["values"]["T"]))
    return RolloutControlLaw(model, realization), discrete.states, list(discrete.controls), model.dtype


def _trained(problem, result: dict, results: Path, copies: int | None = None, steps: int | None = None) -> nn.Module:
    """The compiled model of `problem` with the weights of `results/model.pt` (an identification
    planner: `copies` nets per net, rolled out for `steps` steps)."""
    model = problem.compile(device="cpu", dtype=result["dtype"], seed=result["seed"], realizations=copies)
    if steps is not None:
        model.set_steps(steps)
    model.load_state_dict(torch.load(results / "model.pt", weights_only=True))
    return model.eval()


def _outputs(problem) -> tuple[list[int], list[str]]:
    """Which entries of the generated `controls` function are exported, and their names."""
    if not problem.controls:
        raise RunError("the spec has no control to export", "declare one with 'control u = ...'", exit_code=2)
    return list(range(len(problem.controls))), list(problem.controls)


def _check_reads(exprs: list, columns: set[str], allowed: list[str]) -> None:
    """The control law may read `allowed` columns and time only (not noise or other columns)."""
    read = {s.name for e in exprs for s in getattr(e, "free_symbols", ()) if s.name in columns}
    extra = sorted(read - set(allowed))
    if extra:
        raise RunError(f"the control law reads {', '.join(extra)}, which is not a state", exit_code=2)


def _refuse_implicit(ir, controls: list) -> None:
    """A control that reads an implicit unknown cannot be exported: the law is recorded by tracing,
    which would keep the Newton iterations of the example state (zero of them at the state 0) and
    return that state's solution for every state."""
    unknowns = {u for i in ir.implicits for u in i.unknowns}
    read = [u for e in controls for u in getattr(e, "free_symbols", ()) if u in unknowns]
    tensor = ir.tensor is not None and "controls" in ir.tensor.functions and \
        tn.reads(ir.tensor.functions["controls"][0], lambda n: n.op == "unknown")
    if read or tensor:
        what = f"'{read[0].name}'" if read else "an implicit unknown"
        raise RunError(f"the control law reads {what}, the solution of an implicit equation (solve ...): its "
                       "Newton iterations depend on the state, which an exported (traced) law cannot repeat",
                       "export a control law without an implicit layer", exit_code=2)


def export(results: Path, fmt: str, spec: Path | None = None, out: Path | None = None, realization: int = 0) -> Path:
    """Write the control law of `results` as TorchScript or ONNX; returns the file written."""
    law, states, controls, dtype = control_law(results, spec, realization)
    law.requires_grad_(False)   # a deployed law: its outputs carry no autograd graph
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
            _keep_time_input(path)
    time = "the step index 0, 1, ..., T-1" if isinstance(law, RolloutControlLaw) else "time"
    sidecar = {"inputs": {"t": [], "state": states}, "outputs": controls, "t": time}
    if getattr(law, "copy", None) is not None:
        sidecar["realization"] = realization
    (path.parent / f"{path.name}.json").write_text(json.dumps(sidecar, indent=2) + "\n")
    return path


def _keep_time_input(path: Path) -> None:
    """Give the ONNX graph its `t` input back where the exporter dropped it (a law that does not read
    the time), so that every exported law takes the inputs its sidecar names: (t, state)."""
    import onnx   # torch.onnx.export needs it, so it is there
    graph = onnx.load(str(path))
    if all(i.name != "t" for i in graph.graph.input):
        graph.graph.input.insert(0, onnx.helper.make_tensor_value_info("t", onnx.TensorProto.FLOAT, []))
        onnx.save(graph, str(path))


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
    parser.add_argument("--realization", type=int, default=0,
                        help="identification study: whose adaptive planner (last epoch) to export (default 0)")
    args = parser.parse_args(argv)
    path = export(args.results, args.format, args.spec, args.out, args.realization)
    print(f"exported the control law to {path} (inputs and outputs in {path.name}.json)")
    return 0

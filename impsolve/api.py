"""The Python API: load a spec, compile it to an nn.Module, or solve it end to end."""
from __future__ import annotations

import functools
import inspect
import types
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, Optional, Union

from pydantic import Field, Strict, ValidationError, validate_call

from .compiler import compile_spec
from .dsl import CheckedSpec, SpecError, read_spec
from .constants import MAX_SEED

if TYPE_CHECKING:  # torch is imported only when compiling
    from .runtime.model import CompiledProblem
    from .runtime.results import Result

# Argument types of the API, validated by pydantic (strict: no silent 2.5 -> 2 or b'...' -> str).
SpecSource = Union[Annotated[str, Strict()], Path]
Seed = Annotated[int, Strict(), Field(ge=0, le=MAX_SEED)]
Count = Annotated[int, Strict(), Field(ge=1)]
Setting = Union[Annotated[str, Strict()], Annotated[bool, Strict()], Annotated[int, Strict()],
                Annotated[float, Strict(), Field(allow_inf_nan=False)]]
Overrides = Optional[dict[Annotated[str, Strict()], Setting]]
Flag = Annotated[bool, Strict()]
DType = Literal["float64", "float32"]


class ArgumentError(ValueError):
    """An API call with an argument of the wrong type or out of range."""


def _validated(function):
    """pydantic's validate_call, with its errors reported as one ArgumentError naming each argument.
    The validator is built on the first call (building one takes milliseconds: `impsolve check`
    calls only `load`). The return annotation (a torch type, imported lazily) is left out of what
    pydantic resolves."""
    names = list(inspect.signature(function).parameters)

    @functools.wraps(function)
    def call(*args, **kwargs):
        try:
            return _validator(function)(*args, **kwargs)
        except ValidationError as err:
            raise ArgumentError(f"{function.__name__}(): {_describe(err, names)}") from None
    return call


@functools.cache
def _validator(function):
    """pydantic's validate_call of `function`, without its return annotation."""
    clone = types.FunctionType(function.__code__, function.__globals__, function.__name__, function.__defaults__,
                               function.__closure__)
    clone.__kwdefaults__ = function.__kwdefaults__
    clone.__annotations__ = {k: v for k, v in function.__annotations__.items() if k != "return"}
    return validate_call(clone)


def _describe(err: ValidationError, names: list[str]) -> str:
    """One clause per argument: its name, what was expected (alternatives joined by 'or'), what came."""
    grouped: dict[str, tuple[list[str], object]] = {}
    for e in err.errors():
        first = e["loc"][0] if e["loc"] else "arguments"
        name = names[first] if isinstance(first, int) else str(first)
        messages, _ = grouped.setdefault(name, ([], e["input"]))
        if e["msg"] not in messages:
            messages.append(e["msg"])
    return "; ".join(f"{name}: {' or '.join(m)} (got {value!r})" for name, (m, value) in grouped.items())


class Problem:
    """A checked and compiled spec: lowered to SymPy and generated as torch source, so every spec
    mistake (shapes included) surfaces here. No torch import until `compile`."""

    def __init__(self, checked: CheckedSpec) -> None:
        self.checked = checked
        self.program = compile_spec(checked)

    @property
    def name(self) -> str:
        return self.checked.name

    def source(self) -> str:
        """The generated torch source of this problem (what `impsolve compile --emit` prints)."""
        return self.program.source

    @_validated
    def compile(self, device: Annotated[str, Strict()] = "auto", dtype: DType = "float64", seed: Seed = 0,
                realizations: Optional[Count] = None) -> "CompiledProblem":
        """An nn.Module whose `forward()` returns the objective (as written: minimised or maximised):
        an `OdeProblem`, or for discrete-time specs a `DiscreteProblem` (`realizations=R` copies its nets
        R times)."""
        from .runtime.device import resolve_device, resolve_dtype
        from .runtime.kinds import compile_model
        if realizations is not None and self.program.problem.time_model != "rollout":
            raise ArgumentError("compile(): realizations= copies a discrete-time spec's nets; this spec is not "
                                "a discrete-time rollout")
        if device == "auto" and self.program.problem.direct is not None:
            device = "cpu"   # the direct method's KKT systems are small and dense: a CPU job
        return compile_model(self.program, resolve_device(device), resolve_dtype(dtype), seed, realizations)


@_validated
def load(path_or_text: SpecSource, overrides: Overrides = None) -> Problem:
    """Parse, check and compile a spec (file path or text). Raises SpecError on any mistake."""
    if isinstance(path_or_text, str) and "\n" not in path_or_text and Path(path_or_text).is_dir():
        raise SpecError(f"{path_or_text} is a folder, not a spec", None, filename=path_or_text,
                        hint="pass the path of a .imp file or the spec text")
    checked = read_spec(path_or_text)
    if overrides:
        checked.with_overrides({k: str(v) for k, v in overrides.items()})
    return Problem(checked)


@_validated
def solve(path_or_text: SpecSource, *, out: Optional[Union[Annotated[str, Strict(), Field(min_length=1)], Path]] = None,
          device: Annotated[str, Strict()] = "auto", dtype: DType = "float64", seed: Seed = 0,
          steps: Optional[Count] = None, overrides: Overrides = None, quiet: Flag = True, write: Flag = True,
          resume: Flag = False, checkpoint_every: Count = 10, realizations: Optional[Count] = None) -> "Result":
    """Train the spec's objective, evaluate its expects, write the results folder; return the Result.
    For a spec with `identify`, run the identification study with `realizations` runs (default: the spec's)."""
    from .runtime import studies  # noqa: F401 - registers the built-in runners
    from .runtime.kinds import run_study
    from .runtime.run_options import RunOptions
    settings = {k: str(v) for k, v in (overrides or {}).items()}
    if steps is not None:
        settings["train.steps"] = str(steps)
    problem = load(path_or_text, settings)
    options = RunOptions(seed=seed, out=out, quiet=quiet, write=write, spec_source=problem.checked.spec.source,
                         resume=resume, checkpoint_every=checkpoint_every, realizations=realizations)
    return run_study(problem.compile(device, dtype, seed), options)

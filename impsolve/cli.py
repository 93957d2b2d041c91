"""The `impsolve` command line: run, check and compile specs."""
from __future__ import annotations

import argparse
import atexit
import contextlib
import functools
import gc
import os
import sys
import traceback
from typing import Iterator

from .commands import EXTRA_COMMANDS, dispatch
from .constants import BACKENDS, MAX_SEED
from .version import __version__

EXIT_OK, EXIT_EXPECT_FAILED, EXIT_SPEC_ERROR, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_BROKEN_PIPE = 141   # 128 + SIGPIPE, as a shell reports a writer whose reader closed the pipe
COMMANDS = ("run", "check", "compile")


def _bounded_int(low: int, high: int | None = None):
    """An argparse type: an integer in [low, high], with a message naming the range."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value} is out of range: use an integer from {low}"
                                             + (f" to {high}" if high is not None else " up"))
        return value
    return parse


def _folder(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("the results folder must not be empty (it would write into the "
                                         "current folder); name a folder, e.g. --out results/run1")
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="impsolve",
        description="Solve a .imp spec: train its objective, check its expects, write results.",
        epilog="commands: impsolve [run] SPEC | impsolve check SPEC | impsolve compile SPEC --emit | "
               "impsolve sweep SPEC --seeds 0-9 | impsolve export RESULTS --format torchscript|onnx | "
               "impsolve schema")
    parser.add_argument("--version", action="version", version=f"impsolve {__version__}")
    parser.add_argument("command", nargs="?", choices=COMMANDS, default="run", help=argparse.SUPPRESS)
    parser.add_argument("spec", help="path to a .imp file")
    parser.add_argument("--out", type=_folder, help="results folder (default results/<problem>/)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--seed", type=_bounded_int(0, MAX_SEED), default=0, help="random seed (default 0)")
    parser.add_argument("--steps", type=_bounded_int(1), help="override train steps")
    parser.add_argument("--realizations", type=_bounded_int(1), metavar="R",
                        help="identify: independent runs to average (default: the spec's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. --set train.lr=0.01 (repeatable)")
    parser.add_argument("--backend", choices=BACKENDS,
                        help="ODE solver tier (default: the spec's, else auto: the fastest that supports it)")
    parser.add_argument("--emit", action="store_true", help="compile: print the generated torch code")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in the results folder")
    parser.add_argument("--checkpoint-every", type=_bounded_int(1), default=10, metavar="N",
                        help="save a checkpoint every N training steps (default 10)")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    return parser


def _arguments(argv: list[str]) -> argparse.Namespace:
    # `impsolve SPEC` is `impsolve run SPEC`: insert the command when the first word is not one.
    words = [a for a in argv if not a.startswith("-")]
    if words and words[0] not in COMMANDS:
        argv = ["run", *argv]
    parser = _parser()
    args = parser.parse_args(argv)
    if args.emit and args.command != "compile":   # not a run that trains for minutes instead of printing
        parser.error(f"--emit prints the generated code of `impsolve compile SPEC --emit`, not of `{args.command}`")
    return args


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    from .dsl import SpecError   # here, not at the top: `impsolve --help` imports no dsl
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise SpecError(f"--set needs KEY=VALUE, got '{item}'", None, filename="--set")
        overrides[key.strip()] = value.strip()
    if args.steps is not None:
        overrides["train.steps"] = str(args.steps)
    if args.backend is not None:
        overrides["solve.backend"] = args.backend
    return overrides


@contextlib.contextmanager
def _without_cycle_collection() -> Iterator[None]:
    """Python's cycle collector off inside the block, as it was after it. Start-up (importing SymPy,
    pydantic, torch; parsing, checking, compiling) makes ~10^5 long-lived objects and almost no cyclic
    garbage (~1,500 objects for specs/zermelo.imp), and the collector traverses those objects again and
    again (216 young, 19 middle and 1 full collection for zermelo; issue 16). Training runs with the
    collector on."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@functools.cache   # registered once, however often main() runs in one process
def _no_collection_at_exit() -> None:
    """Skip the cycle collections of interpreter shutdown, which traverse every object again (~5 % of
    the instructions of `impsolve check`): `gc.freeze` from an exit handler. For `check` and `compile`, whose cyclic garbage
    (a few parse and lowering structures) has no finalizer that matters; callers in-process are
    unaffected until their own exit."""
    atexit.register(gc.freeze)


def _run(args: argparse.Namespace) -> int:
    if args.command in ("check", "compile"):
        _no_collection_at_exit()
    with _without_cycle_collection():
        from .api import load
        problem = load(args.spec, _overrides(args))
        if args.command == "check":
            c = problem.checked
            print(f"{args.spec}: ok — problem '{c.name}': {len(c.states)} states, {len(c.params)} params, "
                  f"{len(c.nets)} nets, {len(c.expects)} expects")
            return EXIT_OK
        if args.command == "compile":
            source = problem.source()
            print(source if args.emit
                  else f"{args.spec}: compiled ({len(source.splitlines())} lines; --emit prints them)")
            return EXIT_OK
        from .runtime import studies  # noqa: F401 - registers the built-in runners
        from .runtime.kinds import run_study
        from .runtime.run_options import RunOptions
        model = problem.compile(args.device, args.dtype, args.seed)
    result = run_study(model, RunOptions(seed=args.seed, out=args.out, quiet=args.quiet, write=True,
                                         spec_source=problem.checked.spec.source, resume=args.resume,
                                         checkpoint_every=args.checkpoint_every, realizations=args.realizations))
    _summary(result)
    return EXIT_OK if result.passed else EXIT_EXPECT_FAILED


def _summary(result) -> None:
    final = "null" if result.objective.final is None else f"{result.objective.final:.8g}"
    print(f"{result.problem}: {result.objective.sense} {result.objective.expr} = {final} "
          f"({result.steps} steps, {result.wall_time_s:.1f} s, {result.device}, {result.dtype})")
    if result.rounds:
        last = result.rounds[-1]
        print(f"  {len(result.rounds)} rounds: " + ", ".join(
            f"{name} = {mean:.6g} ± {last.var[name] ** 0.5:.3g}" for name, mean in last.mean.items()))
    if result.solver:
        print(f"  solver: {result.solver['note']}")
    for w in result.warnings:
        print(f"  warning: {w}")
    for c in result.checks:
        mark = "PASS" if c.passed else "FAIL"
        tol = "" if c.tolerance is None else f" (tol {c.tolerance:g}{' relative' if c.relative else ''})"
        if c.reason is not None or c.value is None or c.reference is None or c.error is None:
            print(f"  {mark}  expect {c.name}: {c.reason or 'no value'}")
        else:
            print(f"  {mark}  expect {c.name}: value {c.value:.8g}, reference {c.reference:.8g}, "
                  f"error {c.error:.3g}{tol}")
    if result.identify:
        report = result.identify
        print(f"  estimation error after {report['steps'][-1]} steps, mean over {report['realizations']} "
              "realisations (± standard error):")
        for name in ("adaptive", "baseline", "oracle"):
            print(f"    {name:9} {report[name]['error'][-1]:.4g} ± {report[name]['stderr'][-1]:.2g}")
    print(f"  results in {result.out_dir}/")


def _extra(command: str, argv: list[str]) -> int:
    """The subcommands of impsolve.commands (sweep, export, schema): argparse errors exit 2."""
    try:
        return dispatch(command)(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0) if exit_.code in (0, None) else EXIT_SPEC_ERROR
    except Exception as err:  # noqa: BLE001 - reported like the main command's failures
        return _failure(err, "--debug" in argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in EXTRA_COMMANDS:
        return _extra(argv[0], argv[1:])
    try:
        args = _arguments(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0) if exit_.code in (0, None) else EXIT_SPEC_ERROR
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:   # the reader stopped (`impsolve compile SPEC --emit | head`): not a bug of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no second error at exit's flush
        return EXIT_BROKEN_PIPE
    except Exception as err:  # noqa: BLE001 - the CLI's last line of defence
        return _failure(err, args.debug)


def _failure(err: Exception, debug: bool) -> int:
    """Report a failure: spec errors located (exit 2), run errors with their hint, anything else
    as an internal error (exit 3; traceback with --debug)."""
    from .dsl import SpecError
    if isinstance(err, SpecError):
        print(err.render(), file=sys.stderr)
        return EXIT_SPEC_ERROR
    from .runtime.errors import RunError  # only here: `check` must not import torch
    if isinstance(err, RunError):
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    if debug:
        traceback.print_exc()
    print(f"internal error: {type(err).__name__}: {err}\n  this is a bug in impsolve; rerun with --debug "
          "for the traceback", file=sys.stderr)
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())

"""Subcommands beyond run/check/compile: `schema`, `sweep`, `export`. Each parses its own
arguments and returns an exit status; `impsolve.cli.main` dispatches to them by name."""
from __future__ import annotations

import argparse
import json
from typing import Callable

EXTRA_COMMANDS = ("schema", "sweep", "export")


def schema_command(argv: list[str]) -> int:
    """Print the JSON Schema of result.json (generated from the pydantic model)."""
    argparse.ArgumentParser(prog="impsolve schema",
                            description="Print the JSON Schema of result.json.").parse_args(argv)
    from .runtime.results import result_schema
    print(json.dumps(result_schema(), indent=2))
    return 0


def sweep_command(argv: list[str]) -> int:
    """`impsolve sweep SPEC --seeds ... --set KEY=V1,V2 --jobs N --backend process|ray --out DIR`."""
    from .sweep import main
    return main(argv)


def export_command(argv: list[str]) -> int:
    """`impsolve export RESULTS --format torchscript|onnx [--spec SPEC] [--out FILE]`."""
    from .export import main
    return main(argv)


def dispatch(command: str) -> Callable[[list[str]], int]:
    """The function that runs `command` (one of EXTRA_COMMANDS)."""
    return {"schema": schema_command, "sweep": sweep_command, "export": export_command}[command]

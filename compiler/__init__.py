"""impsolve.compiler: checked spec -> SymPy IR -> generated torch source."""
from __future__ import annotations

from ..dsl.check import CheckedSpec
from . import ir
from .lower import lower
from .program import Program, generate

__all__ = ["Program", "compile_spec", "generate", "ir", "lower"]


def compile_spec(checked: CheckedSpec) -> Program:
    """Lower a checked spec and generate its torch program."""
    return generate(lower(checked))

"""impsolve.compiler: checked spec -> SymPy IR -> generated torch source.

The built-in kinds (compiler.kinds) are imported, and so registered, on first use: the time
models "ode", "static" (compiler.ode) and "rollout" (compiler.discrete), the studies "design"
(compiler.bayes_design), "identify" (compiler.identify) and "fit" (compiler.fit)."""
from __future__ import annotations

import sys

from ..dsl.check import CheckedSpec
from ..dsl.errors import SpecError
from . import ir, kinds
from .lower import lower
from .program import Program, generate

__all__ = ["Program", "compile_spec", "generate", "ir", "kinds", "lower"]


RECURSION_LIMIT = 6000


def compile_spec(checked: CheckedSpec) -> Program:
    """Lower a checked spec and generate its torch program."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, RECURSION_LIMIT))   # SymPy recurses once per nesting level
    try:
        return generate(lower(checked))
    except RecursionError:
        raise SpecError("the expressions are nested too deeply to compile once lets and defs are substituted",
                        None, checked.spec.source, checked.spec.filename,
                        hint="shorten chains of nested lets/defs") from None
    finally:
        sys.setrecursionlimit(limit)

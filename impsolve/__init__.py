"""impsolve: a declarative spec-to-solve language for deep implicit layers.

    import impsolve
    problem = impsolve.load("specs/zermelo.imp")     # parse + check (no torch import)
    module = problem.compile(device="cpu")           # an nn.Module; module() is the objective
    result = impsolve.solve("specs/zermelo.imp", steps=50)   # train, check, write results
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .api import Problem, load, solve

__all__ = ["Problem", "__version__", "load", "solve"]


def __getattr__(name: str) -> Any:
    """`Problem`, `load` and `solve` import the compiler (SymPy) on first use, so `impsolve --help`
    and the commands that need no compiler start without it."""
    if name in {"Problem", "load", "solve"}:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'impsolve' has no attribute '{name}'")

"""impsolve: a declarative spec-to-solve language for deep implicit layers.

    import impsolve
    problem = impsolve.load("specs/zermelo.imp")     # parse + check (no torch import)
    module = problem.compile(device="cpu")           # an nn.Module; module() is the objective
    result = impsolve.solve("specs/zermelo.imp", steps=50)   # train, check, write results
"""
from __future__ import annotations

from .api import Problem, load, solve
from .version import __version__

__all__ = ["Problem", "__version__", "load", "solve"]

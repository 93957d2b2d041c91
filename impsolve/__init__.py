"""impsolve: a declarative spec-to-solve language for deep implicit layers.

    import impsolve
    problem = impsolve.load("specs/zermelo.imp")     # parse + check (no torch import)
    module = problem.compile(device="cpu")           # an nn.Module; module() is the objective
    result = impsolve.solve("specs/zermelo.imp", steps=50)   # train, check, write results
"""
from __future__ import annotations

from .api import Problem, load, solve

__version__ = "0.1.0"
__all__ = ["Problem", "__version__", "load", "solve"]

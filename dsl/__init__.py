"""impsolve.dsl: the `.imp` language — grammar, parser, syntax tree and semantic checker.

Knows nothing of torch: `impsolve check` imports only this package. Importing it registers the
statements and checks of every built-in kind with the checker (dsl/checker.py), in this order.
"""
from __future__ import annotations

from pathlib import Path

from . import statements, continuous, discrete, identification, bayes_design, study, fitting, constraints  # noqa: F401,E501
from .check import CheckedSpec
from .checker import check
from .errors import SpecError
from .kinds import register_study
from .parser import parse

__all__ = ["CheckedSpec", "SpecError", "check", "parse", "read_spec", "register_study"]


def read_spec(path_or_text: str | Path) -> CheckedSpec:
    """Parse and check a spec given as a file path or as spec text."""
    text, filename = _source(path_or_text)
    return check(parse(text, filename))


def _source(path_or_text: str | Path) -> tuple[str, str]:
    if isinstance(path_or_text, Path) or ("\n" not in str(path_or_text) and str(path_or_text).endswith(".imp")):
        path = Path(path_or_text)
        try:
            return path.read_text(encoding="utf-8-sig"), str(path)   # -sig: a byte order mark is dropped
        except FileNotFoundError:
            raise SpecError(f"no such spec file: {path}", None, filename=str(path)) from None
        except UnicodeDecodeError as err:
            raise SpecError(f"the spec is not valid UTF-8 text ({err.reason} at byte {err.start})", None,
                            filename=str(path)) from None
        except OSError as err:
            raise SpecError(f"cannot read the spec: {err.strerror}", None, filename=str(path)) from None
    return str(path_or_text), "<spec>"

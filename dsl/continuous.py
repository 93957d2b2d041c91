"""The structure of continuous-time (`der`) and static specs; discrete-time specs have their own
(dsl/discrete.py). Registered as a structure check of dsl.checker."""
from __future__ import annotations

from . import ast
from .check import CheckedSpec
from .checker import Checker, register_check
from .kinds import STUDIES


def check_structure(checker: Checker, out: CheckedSpec) -> None:
    """Dynamics for every state, an objective, one way to end the trajectory, and their rules."""
    if out.discrete is not None:
        return
    for name, b in out.states.items():
        if name not in out.ders:
            raise checker.error(f"state '{name}' has no dynamics", b.span, f"add 'der({name}) = ...'")
    if out.objective is None:
        raise checker.error("the spec has no objective", ast.Span(1, 1, 1, 2),
                            "add 'minimize <expr>' or 'maximize <expr>'")
    if out.states:
        if out.horizon and out.stop:
            raise checker.error("give either 'horizon' or 'stop when', not both", out.stop.span)
        ends = out.observation or out.free_horizon or not STUDIES[out.study].needs_horizon   # a design study ends at its observation
        if not out.horizon and not out.stop and not ends:
            raise checker.error("a spec with states needs 'horizon <T>' or 'stop when <condition> within <T>'",
                                next(iter(out.states.values())).span)
    if out.stop:
        if not isinstance(out.stop.condition, ast.Compare) or out.stop.condition.op in ("==", "!="):
            raise checker.error("'stop when' needs a condition like 'y >= l'", out.stop.condition.span,
                                "use <, <=, > or >=")
    if out.stop and out.batch > 1:
        raise checker.error("'stop when' needs a single trajectory (batch 1)", out.stop.span)
    has_distribution = any(b.distribution for b in out.states.values())
    if has_distribution and out.stop:
        raise checker.error("random initial states need a fixed 'horizon'", out.stop.span)
    for at_holder in [out.objective, *out.expects]:
        if at_holder.at == "stop" and not out.stop:
            raise checker.error("'at stop' needs a 'stop when' statement", at_holder.span,
                                "use 'at end' (or x(T)) for a fixed horizon")


register_check("structure", check_structure)

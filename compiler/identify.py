"""The identification study (registered as the study "identify"): its step adds the
least-squares model of the transitions, next = offset + jacobian @ θ + noise (θ the estimated
entries), to a rollout problem, for the runtime's estimator: the generated functions "offset" and
"jacobian" (flattened row-major).
"""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from ..dsl.check import CheckedSpec
from ..dsl.errors import SpecError
from . import ir, kinds
from .derivative import total_derivative
from .expressions import spec_error


class _LeastSquares:
    """∂next/∂θ of one rollout problem, with errors located at the estimates."""

    def __init__(self, problem: ir.Problem, checked: CheckedSpec) -> None:
        self.discrete, self.implicits, self.checked = problem.discrete, problem.implicits, checked

    def error(self, message: str, estimate: str, hint: str | None = None) -> SpecError:
        return spec_error(self.checked, message, self.checked.discrete.estimates[estimate].span, hint)

    def model(self) -> tuple[list[sp.Expr], list[list[sp.Expr]]]:
        """offset and jacobian: SymPy's ∂next/∂θ, which must be free of θ (affine dynamics) and of
        the noise (which is not observed)."""
        d = self.discrete
        owners = [(ir.state_symbol(c), e.name) for e in d.estimates for c in e.components]
        theta = {symbol for symbol, _ in owners}
        noise = {ir.state_symbol(c) for n in d.noises for c in n.components}
        zero = {symbol: sp.Integer(0) for symbol in [*theta, *noise]}
        offset, jacobian = [], []
        for name, value in d.step.items():
            row = [self.partial(value, symbol, owner) for symbol, owner in owners]
            for derivative, (_, owner) in zip(row, owners):
                if derivative.has(sp.Derivative, sp.Subs) or derivative.free_symbols & theta:
                    raise self.error(f"least squares needs next(...) affine in the estimated entries; next({name}) "
                                     f"is not affine in '{owner}'", owner,
                                     "e.g. next(x) = A @ x + B @ u + w with A estimated")
                if derivative.free_symbols & noise:
                    raise self.error(f"in next({name}) the noise multiplies '{owner}'; least squares needs additive "
                                     "noise", owner)
            self.additive_noise(name, value, d.estimates[0].name)
            offset.append(value.xreplace(zero))
            jacobian.append(row)
        return offset, jacobian

    def partial(self, value: sp.Expr, symbol: sp.Symbol, estimate: str) -> sp.Expr:
        """∂value/∂symbol through implicit unknowns (derivative.total_derivative), located at `estimate`."""
        try:
            return total_derivative(value, symbol, self.implicits)
        except ValueError as err:
            raise self.error(f"least squares needs ∂next/∂{symbol}: {err}", estimate) from None

    def additive_noise(self, name: str, value: sp.Expr, estimate: str) -> None:
        """Least squares models next = offset + Jθ + w: each noise entry enters with a constant factor."""
        for n in self.discrete.noises:
            for c in n.components:
                factor = self.partial(value, ir.state_symbol(c), estimate)
                if factor.free_symbols or factor.has(sp.Derivative, sp.Subs):
                    raise self.error(f"in next({name}) the noise '{c}' is multiplied by {factor}; least squares "
                                     "needs additive noise", estimate, "e.g. next(x) = A @ x + B @ u + w")


def least_squares(problem: ir.Problem, checked: CheckedSpec) -> ir.Problem:
    """The identify study's step: the problem with the least-squares model of its transitions."""
    offset, jacobian = _LeastSquares(problem, checked).model()
    functions = {"offset": (offset, "stack"), "jacobian": ([j for row in jacobian for j in row], "stack")}
    return replace(problem, functions={**problem.functions, **functions})


kinds.register_study_step("identify", least_squares)

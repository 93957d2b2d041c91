"""The native tier's open-loop controls (`control u in [a, b] piecewise(N=.., hold=..)`): the C
twin of runtime.open_loop.PiecewiseControl, as a net of the (rescaled) time with one input and one
output, whose parameters are the N (constant hold) or N + 1 (linear hold) trained raw values.

Bounded controls use the same map as the torch tier, u = low + (high - low)/2 (1 + sin r), and
the interval index is the floor of clamp(s, 0, 1) N (at most N - 1), taken as a constant of the
reverse pass as torch takes it (detached)."""
from __future__ import annotations

from dataclasses import dataclass

from . import ir


@dataclass(frozen=True)
class PiecewiseLayout:
    """Where one open-loop control's raw values sit in `th` and its work buffer: the input
    (the time) at za[0], the output at za[1]. The same fields as compiler.c_codegen.MlpLayout."""

    intervals: int
    linear: bool
    low: float | None
    high: float | None
    weights: tuple[int, ...]      # (offset of the raw values in th,)
    sizes: tuple[int, ...] = (1, 1)
    inputs: tuple[int, ...] = (0,)
    outputs: tuple[int, ...] = (1,)
    buffer: int = 2

    @classmethod
    def of(cls, control: ir.OpenLoop, offset: int) -> "PiecewiseLayout":
        return cls(control.options.N, control.options.hold == "linear", control.low, control.high, (offset,))

    @property
    def size(self) -> int:
        return self.intervals + self.linear


def _value_functions(k: int, m: PiecewiseLayout) -> list[str]:
    """net<k>_value(r) and net<k>_dvalue(r): the control's value of a raw value and its derivative."""
    if m.low is None:
        return [f"static inline double net{k}_value(double r) {{ return r; }}",
                f"static inline double net{k}_dvalue(double r) {{ (void)r; return 1.0; }}"]
    half = (m.high - m.low) * 0.5
    return [f"static inline double net{k}_value(double r) {{ return {float(m.low)!r} + {half!r} * (1.0 + sin(r)); }}",
            f"static inline double net{k}_dvalue(double r) {{ return {half!r} * cos(r); }}"]


def piecewise_source(k: int, m: PiecewiseLayout) -> str:
    """net<k>_forward(th, za, n) and net<k>_backward(th, za, gout, gx, gth, n) of one open-loop
    control, for a block's n rows (entry k of row r at [k * n + r], as compiler.c_codegen's nets)."""
    n, w = m.intervals, m.weights[0]
    locate = [f"        const double x = za[r], s = fmin(fmax(x, 0.0), 1.0) * {n}.0;",
              f"        const double f = fmin(floor(s), {n - 1}.0);", "        const int i = (int)f;",
              f"        const double *v = th + {w};"]
    if m.linear:
        forward = [f"        za[n + r] = net{k}_value(v[i]) * (1.0 - (s - f)) + net{k}_value(v[i + 1]) * (s - f);"]
        backward = [f"        gth[{w} + i] += gout[r] * (1.0 - (s - f)) * net{k}_dvalue(v[i]);",
                    f"        gth[{w} + i + 1] += gout[r] * (s - f) * net{k}_dvalue(v[i + 1]);",
                    f"        gx[r] = x >= 0.0 && x <= 1.0 ? gout[r] * (net{k}_value(v[i + 1]) - net{k}_value(v[i])) "
                    f"* {n}.0 : 0.0;"]
    else:
        forward = [f"        za[n + r] = net{k}_value(v[i]);"]
        backward = [f"        gth[{w} + i] += gout[r] * net{k}_dvalue(v[i]);", "        gx[r] = 0.0;"]
    rows = "    for (int r = 0; r < n; ++r) {"
    return "\n".join([*_value_functions(k, m), "",
                      f"BLOCK void net{k}_forward(const double *th, double *za, int n) {{", rows, *locate, *forward,
                      "    }", "}", "",
                      f"BLOCK void net{k}_backward(const double *th, const double *za, const double *gout, double *gx, "
                      "double *gth, int n) {", rows, *locate, *backward, "    }", "}"])

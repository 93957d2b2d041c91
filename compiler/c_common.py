"""C pieces both native solver units use (compiler.c_solver, adaptive; compiler.c_fixed, fixed
step): the kernel's declarations, the stage tables, and the step helpers stage_time, combine and
the Illinois root finder of the event, the tape's growth, combine's reverse and imp_sizes."""
from __future__ import annotations


def c_array(values) -> str:
    """A C initialiser list of doubles."""
    return "{" + ", ".join(repr(float(v)) for v in values) + "}"


KERNEL_DECLARATIONS = [
    "void imp_rhs_batch(const double *th, double t, const double *y, double *f, int batch, double *save);",
    "void imp_vjp_batch(const double *th, double t, const double *y, const double *a, double *gy, double *gth, "
    "int batch, const double *saved);",
    "double imp_event(const double *th, double t, const double *y);"]


def stage_tables(tableau) -> list[str]:
    """TC (stage times, stage 0 at c = 0) and TA (TA[i] gives stage i from k_0..k_{i-1})."""
    stages = tableau.stages
    rows = [[0.0] * stages] + [list(row) + [0.0] * (stages - len(row)) for row in tableau.a]
    return [f"static const double TC[NST] = {c_array((0.0, *tableau.c))};",
            "static const double TA[NST][NST] = {" + ", ".join(c_array(r) for r in rows) + "};"]


STEP_HELPERS = r"""static double stage_time(double t0, double dt, int i) { return TC[i] == 1.0 ? t0 + dt : t0 + TC[i] * dt; }

/* z = y0 + sum_j (dt w_j) k_j over nonzero weights, in the plain-torch tier's order */
static void combine(long N, const double *y0, const double *w, const double *k, double dt, int upto, double *z) {
    memcpy(z, y0, sizeof(double) * N);
    for (int j = 0; j < upto; ++j) {
        if (w[j] == 0.0) continue;
        const double c = dt * w[j];
        const double *kj = k + (long)j * N;
        for (long n = 0; n < N; ++n) z[n] += c * kj[n];
    }
}

/* the reverse of combine: kbar_j += (dt w_j) zbar over nonzero weights */
static void combine_reverse(long N, const double *w, const double *zbar, double dt, int upto, double *kbar) {
    for (int j = 0; j < upto; ++j) {
        if (w[j] == 0.0) continue;
        const double c = dt * w[j];
        double *kb = kbar + (long)j * N;
        for (long n = 0; n < N; ++n) kb[n] += c * zbar[n];
    }
}

/* p (one of the tape's per-step arrays) resized to `bytes`; when out of memory, p itself and *failed = 1 */
static void *resized(void *p, size_t bytes, int *failed) {
    void *q = realloc(p, bytes);
    if (!q) { *failed = 1; return p; }
    return q;
}

/* gy0 += the adjoints of the outputs read off the initial state (ostep -1) */
static void initial_adjoints(int nout, const long *ostep, long N, const double *gout, double *gy0) {
    for (int o = 0; o < nout; ++o)
        if (ostep[o] < 0) for (long n = 0; n < N; ++n) gy0[n] += gout[(long)o * N + n];
}

int imp_sizes(int *out) { out[0] = NS; out[1] = NTH; return NST; }

/* Illinois regula falsi for a root of g(c, context) on [a, b], given ga = g(a) < 0 <= gb = g(b);
   g was last evaluated at the returned root (unless it is b with gb == 0) */
static double illinois(double a, double b, double ga, double gb, double (*g)(double, void *), void *context) {
    double c = b;
    int side = 0;
    if (gb == 0.0) return b;
    for (int it = 0; it < 100; ++it) {
        double previous = c;
        c = b - gb * (b - a) / (gb - ga);
        if (!(a < c && c < b)) c = 0.5 * (a + b);
        double gc = g(c, context), scale = fmax(1.0, fabs(c));
        if (gc == 0.0 || fabs(c - previous) <= 4e-16 * scale || b - a <= 4e-16 * scale) return c;
        if (gc < 0) { a = c; ga = gc; if (side == -1) gb *= 0.5; side = -1; }
        else { b = c; gb = gc; if (side == 1) ga *= 0.5; side = 1; }
    }
    return c;
}
"""

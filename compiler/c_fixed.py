"""The native tier's solver translation unit for the fixed-step explicit Runge-Kutta methods (rk4,
midpoint, euler): the same exported functions as compiler.c_solver's adaptive solver, with the
plain-torch tier's fixed-step semantics (runtime.solvers.fixed): the grid t_i = t0 + i h with its
last point moved onto the last output time, outputs on the straight line between grid points,
and, with `until`, steps of h without bound until the event, located on that straight line.
The step size h is a constant of the generated source. `keep` is accepted and ignored: the
reverse pass computes the nets' activations again. Status 3 (non-finite state) is checked
after every step."""
from __future__ import annotations

from .c_common import STEP_HELPERS, c_array, unit_header


def fixed_solver_header(tableau, states: int, theta: int, work: int, step: float) -> str:
    """Sizes, the kernel's entry points, the tableau (TA[i] gives stage i from k_0..k_{i-1}; TB
    the solution weights) and the step size."""
    return unit_header("the fixed-step solver", tableau, states, theta, work, [f"#define STEP {float(step)!r}"],
                         [f"static const double TB[NST] = {c_array(tableau.b)};"])


FIXED_SOLVER = r"""typedef struct {
    long N, n, cap, nfe;
    double *t0, *dt, *y, *y1, *k;   /* per step: t0, dt, y0 (N), y1 (N), stages (NST x N) */
    int batch, nout, stop;
    int (*watch)(double, const double *);
    long every;
    double *tout;                   /* output times (the located event time with `until`) */
    long *ostep;                    /* the step each output was read from; -1: the initial state */
} Tape;

static void eval_rhs(Tape *tp, const double *th, double t, const double *y, double *f) {
    imp_rhs_batch(th, t, y, f, tp->batch, 0);
    tp->nfe++;
    if (tp->watch && !tp->stop && tp->nfe % tp->every == 0 && tp->watch(t, y)) tp->stop = 1;
}

""" + STEP_HELPERS + r"""
/* all stages of one step from (t0, y) and its end point y1 (z: N of work) */
static void take_step(Tape *tp, const double *th, double t0, double dt, const double *y, double *k, double *z,
                      double *y1) {
    long N = tp->N;
    eval_rhs(tp, th, t0, y, k);
    for (int i = 1; i < NST; ++i) {
        combine(N, y, TA[i], k, dt, i, z);
        eval_rhs(tp, th, stage_time(t0, dt, i), z, k + (long)i * N);
    }
    combine(N, y, TB, k, dt, NST, y1);
}

static int store(Tape *tp, double t0, double dt, const double *y, const double *y1, const double *k) {
    long N = tp->N;
    if (tp->n == tp->cap) {
        long cap = tp->cap ? 2 * tp->cap : 64;
        int failed = 0;
        tp->t0 = resized(tp->t0, sizeof(double) * cap, &failed);
        tp->dt = resized(tp->dt, sizeof(double) * cap, &failed);
        tp->y = resized(tp->y, sizeof(double) * cap * N, &failed);
        tp->y1 = resized(tp->y1, sizeof(double) * cap * N, &failed);
        tp->k = resized(tp->k, sizeof(double) * cap * N * NST, &failed);
        if (failed) return 0;
        tp->cap = cap;
    }
    tp->t0[tp->n] = t0; tp->dt[tp->n] = dt;
    memcpy(tp->y + tp->n * N, y, sizeof(double) * N);
    memcpy(tp->y1 + tp->n * N, y1, sizeof(double) * N);
    memcpy(tp->k + tp->n * N * NST, k, sizeof(double) * N * NST);
    tp->n++;
    return 1;
}

/* the state at time t on stored step s: the straight line y0 + x (y1 - y0) */
static void interpolate(Tape *tp, long s, double t, double *out) {
    long N = tp->N;
    const double *y0 = tp->y + s * N, *y1 = tp->y1 + s * N;
    double x = (t - tp->t0[s]) / tp->dt[s];
    if (x == 1.0) { memcpy(out, y1, sizeof(double) * N); return; }
    if (x == 0.0) { memcpy(out, y0, sizeof(double) * N); return; }
    for (long n = 0; n < N; ++n) out[n] = y0[n] + x * (y1[n] - y0[n]);
}

typedef struct { Tape *tp; const double *th; long s; double *y; } EventAt;

static double event_at(double c, void *context) {
    EventAt *e = context;
    interpolate(e->tp, e->s, c, e->y);
    return imp_event(e->th, c, e->y);
}

/* the root of the event on step s (y: the state there, on the step's straight line), given g0 < 0 <= g1 at its ends */
static double locate(Tape *tp, const double *th, long s, double g0, double g1, double *y) {
    EventAt e = {tp, th, s, y};
    return illinois(tp->t0[s], tp->t0[s] + tp->dt[s], g0, g1, event_at, &e);
}

void imp_free(void *handle) {
    Tape *tp = handle;
    if (!tp) return;
    free(tp->t0); free(tp->dt); free(tp->y); free(tp->y1); free(tp->k); free(tp->tout); free(tp->ostep);
    free(tp);
}

static int finite(long N, const double *y) {
    for (long n = 0; n < N; ++n) if (!isfinite(y[n])) return 0;
    return 1;
}

void *imp_solve(const double *th, const double *y0, int batch, int nout, const double *tout, double *yout,
                double rtol, double atol, long max_steps, int until, double *info,
                int (*watch)(double, const double *), long every, int keep) {
    (void)rtol; (void)atol; (void)keep;
    Tape *tp = calloc(1, sizeof(Tape));
    tp->watch = watch; tp->every = every > 0 ? every : 1;
    long N = (long)batch * NS;
    tp->N = N; tp->batch = batch; tp->nout = nout;
    tp->tout = malloc(sizeof(double) * nout);
    tp->ostep = malloc(sizeof(long) * nout);
    double *y = malloc(sizeof(double) * N), *y1 = malloc(sizeof(double) * N);
    double *k = malloc(sizeof(double) * N * NST), *z = malloc(sizeof(double) * N);
    memcpy(y, y0, sizeof(double) * N);
    memcpy(tp->tout, tout, sizeof(double) * nout);
    memcpy(yout, y0, sizeof(double) * N);
    tp->ostep[0] = -1;
    double t = tout[0], start = tout[0], end = tout[nout - 1], status = 0.0, g0 = 0.0;
    long last = until ? -1 : (long)ceil((end - start) / STEP + 1) - 1, index = 0;
    if (until) g0 = imp_event(th, t, y);
    int o = 1;
    while (until || o < nout) {
        if (!until && tout[o] <= t) {   /* read off the last step */
            tp->ostep[o] = tp->n - 1;
            if (tp->n > 0) interpolate(tp, tp->n - 1, tout[o], yout + (long)o * N);
            else memcpy(yout + (long)o * N, y0, sizeof(double) * N);
            ++o;
            continue;
        }
        if (index >= max_steps || (last >= 0 && index >= last)) { status = 1; goto done; }
        double t1 = until ? t + STEP : (index + 1 >= last ? end : (double)(index + 1) * STEP + start);
        double dt = t1 - t;
        take_step(tp, th, t, dt, y, k, z, y1);
        if (tp->stop) { status = 5; goto done; }
        if (!finite(N, y1)) { status = 3; goto done; }
        if (!store(tp, t, dt, y, y1, k)) { status = 4; goto done; }
        t = t1; index++;
        memcpy(y, y1, sizeof(double) * N);
        if (until) {
            double g1 = imp_event(th, t, y);
            if (g1 >= 0) {
                double root = locate(tp, th, tp->n - 1, g0, g1, z);
                tp->tout[0] = root; tp->ostep[0] = tp->n - 1;
                interpolate(tp, tp->n - 1, root, yout);
                info[2] = root;
                break;
            }
            g0 = g1;
        }
    }
done:
    info[0] = status; info[1] = (double)tp->nfe; info[3] = t;
    free(y); free(y1); free(k); free(z);
    return tp;
}

/* the adjoint g of an output read off step s at time t, into y0bar and y1bar */
static void interpolate_reverse(Tape *tp, long s, double t, const double *g, double *y0bar, double *y1bar) {
    long N = tp->N;
    double x = (t - tp->t0[s]) / tp->dt[s];
    if (x == 1.0) { for (long n = 0; n < N; ++n) y1bar[n] += g[n]; return; }
    if (x == 0.0) { for (long n = 0; n < N; ++n) y0bar[n] += g[n]; return; }
    for (long n = 0; n < N; ++n) { y0bar[n] += g[n] - x * g[n]; y1bar[n] += x * g[n]; }
}

void imp_reverse(void *handle, const double *th, const double *gout, double *gy0, double *gth) {
    Tape *tp = handle;
    long N = tp->N;
    double *ybar = calloc(N, sizeof(double)), *y0bar = calloc(N, sizeof(double));
    double *kbar = calloc(N * NST, sizeof(double)), *zbar = calloc(N, sizeof(double));
    double *z = malloc(sizeof(double) * N);
    initial_adjoints(tp->nout, tp->ostep, N, gout, gy0);
    for (long s = tp->n - 1; s >= 0; --s) {
        const double *y0 = tp->y + s * N, *k = tp->k + s * N * NST;
        double t0 = tp->t0[s], dt = tp->dt[s];
        memset(y0bar, 0, sizeof(double) * N);
        for (int o = 0; o < tp->nout; ++o)
            if (tp->ostep[o] == s) interpolate_reverse(tp, s, tp->tout[o], gout + (long)o * N, y0bar, ybar);
        for (int j = 0; j < NST; ++j)
            for (long n = 0; n < N; ++n) kbar[(long)j * N + n] = TB[j] == 0.0 ? 0.0 : dt * TB[j] * ybar[n];
        for (long n = 0; n < N; ++n) y0bar[n] += ybar[n];
        for (int i = NST - 1; i >= 0; --i) {
            combine(N, y0, TA[i], k, dt, i, z);
            memset(zbar, 0, sizeof(double) * N);
            imp_vjp_batch(th, stage_time(t0, dt, i), z, kbar + (long)i * N, zbar, gth, tp->batch, 0);
            for (long n = 0; n < N; ++n) y0bar[n] += zbar[n];
            combine_reverse(N, TA[i], zbar, dt, i, kbar);
        }
        memcpy(ybar, y0bar, sizeof(double) * N);
    }
    for (long n = 0; n < N; ++n) gy0[n] += ybar[n];
    free(ybar); free(y0bar); free(kbar); free(zbar); free(z);
}
"""

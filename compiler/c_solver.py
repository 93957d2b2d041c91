"""The native tier's adaptive solver translation unit (IEEE arithmetic, so step control and the
non-finite check behave exactly as on the plain-torch tier; the kernel it calls is
compiler.c_kernel's): the adaptive explicit Runge-Kutta solve with torchdiffeq's step-size rules
(the same as runtime.solvers.adaptive), event location on the step's quartic interpolant, and the
discrete reverse pass over the stored accepted steps.

Exported symbols (ctypes, runtime.solvers.native_c):

    void *imp_solve(th, y0, batch, nout, tout, yout, rtol, atol, max_steps, until, info, watch, every, keep)
        outputs at the times tout (tout[0] the initial time) into yout (nout x batch x NS), or,
        with `until`, integrate until event(t, y) >= 0 and write y at the located root into yout
        (nout = 1); info = {status, evaluations, event time, time reached}; status 0 ok,
        1 step count exceeded, 2 step size underflow, 3 non-finite state, 4 out of memory, 5 stopped
        by `watch(t, y)` (called every `every` evaluations when not NULL; nonzero stops the solve:
        the caller's stiffness, progress and time-limit checks). With `keep`, the nets' activations
        of each accepted step are kept (up to SAVE_BUDGET bytes) so that the reverse pass does not
        compute them again. Returns the tape.
    void imp_reverse(tape, th, gout, gy0, gth)   adds the reverse pass of the outputs' adjoints
    void imp_free(tape)
    int imp_sizes(int *out)                       {NS, NTH}: checked by the loader
"""
from __future__ import annotations

from .c_common import STEP_HELPERS, c_array, unit_header


def solver_header(tableau, states: int, theta: int, work: int) -> str:
    """The solver's header: sizes, the kernel's entry points and the tableau (stage 0 at c = 0;
    TA[i] gives stage i from k_0..k_{i-1}; TE the error weights, TM the midpoint's)."""
    defines = [f"#define ORDER {tableau.order}",
               "#define SAVE_BUDGET (256L << 20)   /* bytes of activations kept for the reverse pass */",
               "#define SPARE_BUDGET (64L << 20)   /* the largest arena a freed tape leaves to the next solve */"]
    return unit_header("the solver", tableau, states, theta, work, defines,
                         [f"static const double TE[NST] = {c_array(tableau.error)};",
                          f"static const double TM[NST] = {c_array(tableau.mid)};"])


SOLVER = r"""/* The nets' activations kept for the reverse pass live in one arena that grows by doubling (offsets,
   not pointers, into it). A freed tape leaves its arena to the next solve (one spare per library,
   exchanged atomically), so that a training loop's solves write to memory already mapped: fresh
   pages cost a page fault each, more than the arithmetic they hold. */
typedef struct { double *data; long capacity; } Arena;   /* capacity in doubles */
static Arena *spare_arena;

static Arena *take_arena(void) {
    Arena *a = __atomic_exchange_n(&spare_arena, (Arena *)0, __ATOMIC_ACQ_REL);
    return a ? a : calloc(1, sizeof(Arena));
}

static void drop_arena(Arena *a) { if (a) { free(a->data); free(a); } }

static void give_arena(Arena *a) {
    if (a && (long)sizeof(double) * a->capacity > SPARE_BUDGET) { drop_arena(a); return; }
    drop_arena(__atomic_exchange_n(&spare_arena, a, __ATOMIC_ACQ_REL));
}

/* room for `need` doubles in the arena, its contents kept; 0 when out of memory */
static int reserve(Arena *a, long need) {
    if (need <= a->capacity) return 1;
    long capacity = a->capacity > 0 ? a->capacity : 1;
    while (capacity < need) capacity *= 2;
    double *p = realloc(a->data, sizeof(double) * capacity);
    if (!p) return 0;
    a->data = p; a->capacity = capacity;
    return 1;
}

typedef struct {
    long N, n, cap, nfe;
    double *t0, *dt, *y, *k;     /* per accepted step: t0, dt, y0 (N), stages (NST x N) */
    double *yinit;               /* the initial state (N) */
    Arena *arena;                /* kept activations: f(t0, y0)'s (batch x ZA), then the kept steps'; or NULL */
    long *saved;                 /* per accepted step: the offset of its stages 1.. activations in the arena, or -1 */
    long used;                   /* doubles of the arena kept so far */
    int keeping;                 /* the step being tried keeps its activations at arena + used */
    int batch, nout, stop;
    int (*watch)(double, const double *);   /* the caller's look at the solve, every `every` evaluations */
    long every;
    double *tout;                /* output times (the located event time with `until`) */
    long *ostep;                 /* the step each output was read from; -1: the initial state */
} Tape;

static long saved_size(const Tape *tp) { return (long)(NST - 1) * tp->batch * ZA; }

/* whether the step about to be tried can keep its activations (at arena + used, within SAVE_BUDGET) */
static void make_room(Tape *tp) {
    long need = tp->used + saved_size(tp);
    tp->keeping = tp->arena && (long)sizeof(double) * need <= SAVE_BUDGET && reserve(tp->arena, need);
}

static void eval_rhs(Tape *tp, const double *th, double t, const double *y, double *f, double *save) {
    imp_rhs_batch(th, t, y, f, tp->batch, save);
    tp->nfe++;
    if (tp->watch && !tp->stop && tp->nfe % tp->every == 0 && tp->watch(t, y)) tp->stop = 1;
}

""" + STEP_HELPERS + r"""
static double rms(long N, const double *x) {
    double s = 0.0;
    for (long n = 0; n < N; ++n) s += x[n] * x[n];
    return sqrt(s) / sqrt((double)(N > 1 ? N : 1));
}

static double initial_step(Tape *tp, const double *th, double t0, const double *y0, const double *f0,
                           double rtol, double atol, double *work) {
    long N = tp->N;
    double *a = work, *b = work + N, *probe = work + 2 * N, *f1 = work + 3 * N;
    for (long n = 0; n < N; ++n) {
        double scale = fabs(y0[n]) * rtol + atol;
        a[n] = y0[n] / scale; b[n] = f0[n] / scale;
    }
    double d0 = rms(N, a), d1 = rms(N, b);
    double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
    for (long n = 0; n < N; ++n) probe[n] = y0[n] + h0 * f0[n];
    eval_rhs(tp, th, t0 + h0, probe, f1, 0);
    for (long n = 0; n < N; ++n) a[n] = (f1[n] - f0[n]) / (fabs(y0[n]) * rtol + atol);
    double d2 = rms(N, a) / h0, h1;
    if (d1 <= 1e-15 && d2 <= 1e-15) h1 = fmax(1e-6, h0 * 1e-3);
    else h1 = pow(0.01 / fmax(d1, d2), 1.0 / ORDER);
    return fmin(100 * h0, h1);
}

static double error_ratio(long N, const double *k, const double *y0, const double *y1, double dt,
                          double rtol, double atol) {
    double s = 0.0;
    for (long n = 0; n < N; ++n) {
        double e = 0.0;
        for (int j = 0; j < NST; ++j) e += k[(long)j * N + n] * TE[j];
        double bound = fmax(fabs(y0[n]), fabs(y1[n])) + atol / rtol;
        e /= bound;
        s += e * e;
    }
    return fabs(dt) * sqrt(s) / (rtol * sqrt((double)(N > 1 ? N : 1)));
}

static double next_step(double dt, double ratio) {
    if (ratio == 0.0) return dt * 10.0;
    double floor_ = ratio < 1.0 ? 1.0 : 0.2;
    return dt * fmin(10.0, fmax(0.9 / pow(ratio, 1.0 / ORDER), floor_));
}

static int store(Tape *tp, double t0, double dt, const double *y, const double *k) {
    long N = tp->N;
    if (tp->n == tp->cap) {
        long cap = tp->cap ? 2 * tp->cap : 64;
        int failed = 0;
        tp->saved = resized(tp->saved, sizeof(long) * cap, &failed);
        tp->t0 = resized(tp->t0, sizeof(double) * cap, &failed);
        tp->dt = resized(tp->dt, sizeof(double) * cap, &failed);
        tp->y = resized(tp->y, sizeof(double) * cap * N, &failed);
        tp->k = resized(tp->k, sizeof(double) * cap * N * NST, &failed);
        if (failed) return 0;
        tp->cap = cap;
    }
    tp->t0[tp->n] = t0; tp->dt[tp->n] = dt;
    tp->saved[tp->n] = tp->keeping ? tp->used : -1;   /* the tried step's activations become the stored step's */
    if (tp->keeping) tp->used += saved_size(tp);
    memcpy(tp->y + tp->n * N, y, sizeof(double) * N);
    memcpy(tp->k + tp->n * N * NST, k, sizeof(double) * N * NST);
    tp->n++;
    return 1;
}

/* interpolation weights of y0, y1, the midpoint, dt k0 and dt k_last at x in (0, 1) */
static void weights(double x, double *w) {
    double x2 = x * x, x3 = x2 * x, x4 = x3 * x;
    w[0] = 1 - 11 * x2 + 18 * x3 - 8 * x4;
    w[1] = -5 * x2 + 14 * x3 - 8 * x4;
    w[2] = 16 * x2 - 32 * x3 + 16 * x4;
    w[3] = x - 4 * x2 + 5 * x3 - 2 * x4;
    w[4] = x2 - 3 * x3 + 2 * x4;
}

/* the state at time t on stored step s (work: 2N) */
static void interpolate(Tape *tp, long s, double t, double *out, double *work) {
    long N = tp->N;
    const double *y0 = tp->y + s * N, *k = tp->k + s * N * NST;
    double t0 = tp->t0[s], dt = tp->dt[s], x = (t - t0) / dt, w[5];
    double *y1 = work, *mid = work + N;
    if (x == 0.0) { memcpy(out, y0, sizeof(double) * N); return; }
    combine(N, y0, TA[NST - 1], k, dt, NST - 1, y1);
    if (x == 1.0) { memcpy(out, y1, sizeof(double) * N); return; }
    combine(N, y0, TM, k, dt, NST, mid);
    weights(x, w);
    const double *k0 = k, *kl = k + (long)(NST - 1) * N;
    for (long n = 0; n < N; ++n)
        out[n] = y0[n] * w[0] + w[1] * y1[n] + w[2] * mid[n] + dt * w[3] * k0[n] + dt * w[4] * kl[n];
}

typedef struct { Tape *tp; const double *th; long s; double *y, *work; } EventAt;

static double event_at(double c, void *context) {
    EventAt *e = context;
    interpolate(e->tp, e->s, c, e->y, e->work);
    return imp_event(e->th, c, e->y);
}

/* the root of the event on step s (y: the state there, on the step's interpolant), given g0 < 0 <= g1 at its ends */
static double locate(Tape *tp, const double *th, long s, double g0, double g1, double *y, double *work) {
    EventAt e = {tp, th, s, y, work};
    return illinois(tp->t0[s], tp->t0[s] + tp->dt[s], g0, g1, event_at, &e);
}

void imp_free(void *handle) {
    Tape *tp = handle;
    if (!tp) return;
    give_arena(tp->arena);
    free(tp->saved);
    free(tp->t0); free(tp->dt); free(tp->y); free(tp->k); free(tp->yinit); free(tp->tout); free(tp->ostep);
    free(tp);
}

void *imp_solve(const double *th, const double *y0, int batch, int nout, const double *tout, double *yout,
                double rtol, double atol, long max_steps, int until, double *info,
                int (*watch)(double, const double *), long every, int keep) {
    Tape *tp = calloc(1, sizeof(Tape));
    tp->watch = watch; tp->every = every > 0 ? every : 1;
    long N = (long)batch * NS;
    tp->N = N; tp->batch = batch; tp->nout = nout;
    tp->yinit = malloc(sizeof(double) * N);
    tp->tout = malloc(sizeof(double) * nout);
    tp->ostep = malloc(sizeof(long) * nout);
    double *y = malloc(sizeof(double) * N), *k = malloc(sizeof(double) * N * NST);
    double *z = malloc(sizeof(double) * N), *work = malloc(sizeof(double) * 4 * N);
    memcpy(tp->yinit, y0, sizeof(double) * N); memcpy(y, y0, sizeof(double) * N);
    memcpy(tp->tout, tout, sizeof(double) * nout);
    memcpy(yout, y0, sizeof(double) * N);
    tp->ostep[0] = -1;
    double t = tout[0], status = 0.0, g0 = 0.0;
    long steps = 0;
    if (keep && ZA > 0) {
        tp->arena = take_arena();
        tp->used = (long)batch * ZA;
        if (tp->arena && !reserve(tp->arena, tp->used)) { drop_arena(tp->arena); tp->arena = 0; }
    }
    eval_rhs(tp, th, t, y, k, tp->arena ? tp->arena->data : 0);
    double dt = initial_step(tp, th, t, y, k, rtol, atol, work);
    if (until) g0 = imp_event(th, t, y);
    int o = 1;
    while (until || o < nout) {
        if (!until && tout[o] <= t) {   /* read off the last accepted step */
            tp->ostep[o] = tp->n - 1;
            if (tp->n > 0) interpolate(tp, tp->n - 1, tout[o], yout + (long)o * N, work);
            else memcpy(yout + (long)o * N, y0, sizeof(double) * N);
            ++o;
            continue;
        }
        /* one accepted step */
        for (;;) {
            if (steps >= max_steps) { status = 1; goto done; }
            steps++;
            if (!(t + dt > t)) { status = 2; goto done; }
            make_room(tp);
            for (int i = 1; i < NST; ++i) {
                combine(N, y, TA[i], k, dt, i, z);
                double *save = tp->keeping ? tp->arena->data + tp->used + (long)(i - 1) * tp->batch * ZA : 0;
                eval_rhs(tp, th, stage_time(t, dt, i), z, k + (long)i * N, save);
            }
            if (tp->stop) { status = 5; goto done; }
            double ratio = error_ratio(N, k, y, z, dt, rtol, atol);
            if (!isfinite(ratio)) { status = 3; goto done; }
            double next = next_step(dt, ratio);
            if (ratio <= 1.0) {
                if (!store(tp, t, dt, y, k)) { status = 4; goto done; }
                t = t + dt;
                memcpy(y, z, sizeof(double) * N);
                memcpy(k, k + (long)(NST - 1) * N, sizeof(double) * N);
                dt = next;
                break;
            }
            dt = next;
        }
        if (until) {
            double g1 = imp_event(th, t, y);
            if (g1 >= 0) {
                double root = locate(tp, th, tp->n - 1, g0, g1, z, work);
                tp->tout[0] = root; tp->ostep[0] = tp->n - 1;
                interpolate(tp, tp->n - 1, root, yout, work);
                info[2] = root;
                break;
            }
            g0 = g1;
        }
    }
done:
    info[0] = status; info[1] = (double)tp->nfe; info[3] = t;
    free(y); free(k); free(z); free(work);
    return tp;
}

/* the adjoint of one stored step's interpolant at time t: into ybar0, ybar1 and kbar */
static void interpolate_reverse(Tape *tp, long s, double t, const double *g, double *y0bar, double *y1bar,
                                double *kbar) {
    long N = tp->N;
    double t0 = tp->t0[s], dt = tp->dt[s], x = (t - t0) / dt, w[5];
    if (x == 0.0) { for (long n = 0; n < N; ++n) y0bar[n] += g[n]; return; }
    if (x == 1.0) { for (long n = 0; n < N; ++n) y1bar[n] += g[n]; return; }
    weights(x, w);
    for (long n = 0; n < N; ++n) {
        double m = w[2] * g[n];
        y0bar[n] += w[0] * g[n] + m;
        y1bar[n] += w[1] * g[n];
        for (int j = 0; j < NST; ++j) if (TM[j] != 0.0) kbar[(long)j * N + n] += dt * TM[j] * m;
        kbar[n] += dt * w[3] * g[n];
        kbar[(long)(NST - 1) * N + n] += dt * w[4] * g[n];
    }
}

void imp_reverse(void *handle, const double *th, const double *gout, double *gy0, double *gth) {
    Tape *tp = handle;
    long N = tp->N;
    double *ybar = calloc(N, sizeof(double)), *y0bar = calloc(N, sizeof(double));
    double *kbar = calloc(N * NST, sizeof(double)), *knext = calloc(N, sizeof(double));
    double *z = malloc(sizeof(double) * N);
    initial_adjoints(tp->nout, tp->ostep, N, gout, gy0);
    for (long s = tp->n - 1; s >= 0; --s) {
        const double *y0 = tp->y + s * N, *k = tp->k + s * N * NST;
        double t0 = tp->t0[s], dt = tp->dt[s];
        memset(kbar, 0, sizeof(double) * N * NST);
        memset(y0bar, 0, sizeof(double) * N);
        double *zbar = ybar;                       /* y1 is the last stage's input */
        for (long n = 0; n < N; ++n) kbar[(long)(NST - 1) * N + n] = knext[n];
        for (int o = 0; o < tp->nout; ++o)
            if (tp->ostep[o] == s) interpolate_reverse(tp, s, tp->tout[o], gout + (long)o * N, y0bar, zbar, kbar);
        for (int i = NST - 1; i >= 1; --i) {
            combine(N, y0, TA[i], k, dt, i, z);
            const double *saved = tp->saved[s] >= 0 ? tp->arena->data + tp->saved[s] + (long)(i - 1) * tp->batch * ZA : 0;
            imp_vjp_batch(th, stage_time(t0, dt, i), z, kbar + (long)i * N, zbar, gth, tp->batch, saved);
            for (long n = 0; n < N; ++n) y0bar[n] += zbar[n];
            combine_reverse(N, TA[i], zbar, dt, i, kbar);
            memset(zbar, 0, sizeof(double) * N);
        }
        memcpy(ybar, y0bar, sizeof(double) * N);
        memcpy(knext, kbar, sizeof(double) * N);
    }
    if (tp->n > 0)
        imp_vjp_batch(th, tp->t0[0], tp->yinit, knext, ybar, gth, tp->batch, tp->arena ? tp->arena->data : 0);
    for (long n = 0; n < N; ++n) gy0[n] += ybar[n];
    free(ybar); free(y0bar); free(kbar); free(knext); free(z);
}
"""

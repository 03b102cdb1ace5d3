/* bench/attention.c: blocked CPU attention, forward and forward+backward, at
 * Stable Diffusion 1.5 shapes and a toy shape, beside PyTorch CPU
 * (F.scaled_dot_product_attention and the naive softmax(QK^T)V) run by
 * tools/bench_attention.py with the same thread count in the same run.
 *
 * Usage: build/bench/attention [--quick] [--shape NAME] [--reps N] [--one-thread]
 *   --quick       toy shapes only (seconds instead of minutes)
 *   --one-thread  also time ours on one thread
 * Columns: wall-clock median ms, process CPU ms (all threads; robust when
 * other programs share the cores), GFLOPS from the wall-clock time.
 * Environment: OMP_NUM_THREADS sets the thread count of both sides;
 * IT_PYTHON names the Python with torch (default /work/main/tools/.venv).
 *
 * Correctness first: each shape's forward (first batch and head, to keep the
 * double-precision reference affordable) and, at the small shapes, the
 * backward are compared with the reference kernels before timing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/mem.h"
#include "base/rng.h"
#include "base/threads.h"
#include "tensor/attention.h"

typedef struct shape {
    const char *name;
    int B, H, Tq, Tk, D, causal;
    int quick; /* part of --quick */
} shape;

static const shape SHAPES[] = {
    {"sd15_self", 2, 8, 4096, 4096, 40, 0, 0},  /* 64x64 latent, CFG batch 2 */
    {"sd15_cross", 2, 8, 4096, 77, 40, 0, 0},   /* text context of 77 tokens */
    {"toy_self", 8, 4, 256, 256, 32, 0, 1},     /* 16x16 latent, 128 ch, 4 heads */
    {"toy_cross", 8, 4, 256, 77, 32, 0, 1},
    {"clip_text", 2, 8, 77, 77, 64, 1, 1},      /* causal text encoder */
};

static double clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct bufs {
    float *q, *k, *v, *o, *lse, *dout, *dq, *dk, *dv;
} bufs;

static double max_err(const float *a, const float *b, size_t n)
{
    double m = 0, s = 1e-6;
    for (size_t i = 0; i < n; i++) {
        m = fmax(m, fabs((double)a[i] - b[i]));
        s = fmax(s, fabs((double)b[i]));
    }
    return m / s;
}

/* Forward of the first (b, h) against the reference; the whole backward
 * too when the shape is small. Returns 0 if an error is too large. */
static int check(const shape *s, const it_attn_desc *d, bufs *x)
{
    it_err e;
    it_attn_desc one = *d;
    one.B = one.n_heads = 1;
    size_t nq = (size_t)s->Tq * s->D, nk = (size_t)s->Tk * s->D;
    float *ro = it_malloc(nq * sizeof(float));
    it_attn_forward(&e, x->o, x->lse, x->q, x->k, x->v, d);
    it_attn_forward_ref(&e, ro, NULL, x->q, x->k, x->v, &one);
    double eo = max_err(x->o, ro, nq), eg = 0;
    if ((double)s->Tq * s->Tk <= 300000) {
        float *g = it_malloc((2 * nq + 2 * nk) * sizeof(float)), *rdq = g, *rdk = g + nq, *rdv = rdk + nk;
        it_attn_backward(&e, x->dq, x->dk, x->dv, x->dout, x->q, x->k, x->v, x->o, x->lse, d);
        it_attn_backward_ref(&e, rdq, rdk, rdv, x->dout, x->q, x->k, x->v, &one);
        eg = fmax(max_err(x->dq, rdq, nq), fmax(max_err(x->dk, rdk, nk), max_err(x->dv, rdv, nk)));
        it_free(g);
    }
    it_free(ro);
    printf("  check %-11s forward err %.1e, backward err %s%.1e\n", s->name, eo,
           eg ? "" : "(not checked) ", eg);
    return eo < 1e-5 && eg < 1e-5;
}

/* Median wall-clock ms of forward (and backward) over reps after one
 * warm-up; *cpu gets the median process CPU ms (all threads), which stays
 * meaningful when other processes compete for the cores. */
static double time_run(const it_attn_desc *d, bufs *x, int reps, int bwd, double *cpu)
{
    it_err e;
    double t[32], c[32];
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
        double t0 = clock_ms(CLOCK_MONOTONIC), c0 = clock_ms(CLOCK_PROCESS_CPUTIME_ID);
        it_attn_forward(&e, x->o, bwd ? x->lse : NULL, x->q, x->k, x->v, d);
        if (bwd) it_attn_backward(&e, x->dq, x->dk, x->dv, x->dout, x->q, x->k, x->v, x->o, x->lse, d);
        if (r >= 0) t[r] = clock_ms(CLOCK_MONOTONIC) - t0, c[r] = clock_ms(CLOCK_PROCESS_CPUTIME_ID) - c0;
    }
    *cpu = median(c, reps);
    return median(t, reps);
}

static void row(const char *shape, const char *impl, double flops_f, double flops_fb, double f_ms,
                double f_cpu, double fb_ms, double fb_cpu)
{
    printf("%-11s %-14s %9.2f %9.2f %7.1f %11.2f %9.2f %7.1f\n", shape, impl, f_ms, f_cpu,
           flops_f / f_ms / 1e6, fb_ms, fb_cpu, flops_fb / fb_ms / 1e6);
}

/* Runs tools/bench_attention.py for one shape and prints its rows. */
static void reference(const shape *s, double ff, double ffb, int reps)
{
    const char *py = getenv("IT_PYTHON"); /* a Python with torch; default the dev venv */
    if (!py || !*py) py = "/work/main/tools/.venv/bin/python";
    if (access(py, X_OK) != 0) {
        printf("%-11s reference skipped (no %s)\n", s->name, py);
        return;
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s tools/bench_attention.py %d %d %d %d %d %d %d %d", py, s->B, s->H,
             s->Tq, s->Tk, s->D, s->causal, it_threads_get(), reps);
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (!p) {
        printf("%-11s reference skipped (cannot run python)\n", s->name);
        return;
    }
    char line[256], impl[64];
    double f, fb, fc, fbc;
    while (fgets(line, sizeof line, p))
        if (sscanf(line, "RESULT %63s %lf %lf %lf %lf", impl, &f, &fb, &fc, &fbc) == 5)
            row(s->name, impl, ff, ffb, f, fc, fb, fbc);
    pclose(p);
}

static int run_shape(const shape *s, int reps, int threads1)
{
    it_attn_desc d = it_attn_desc_bhtd(s->B, s->H, s->Tq, s->Tk, s->D);
    d.causal = s->causal;
    size_t nq = (size_t)s->B * s->H * s->Tq * s->D, nk = (size_t)s->B * s->H * s->Tk * s->D;
    bufs x;
    float **qs[] = {&x.q, &x.o, &x.dout, &x.dq}, **ks[] = {&x.k, &x.v, &x.dk, &x.dv};
    for (int i = 0; i < 4; i++) *qs[i] = it_malloc_aligned(nq * sizeof(float)), *ks[i] = it_malloc_aligned(nk * sizeof(float));
    x.lse = it_malloc_aligned((size_t)s->B * s->H * s->Tq * sizeof(float));
    it_rng r;
    it_rng_init(&r, 1);
    it_rng_normal(&r, x.q, nq, 0, 1);
    it_rng_normal(&r, x.k, nk, 0, 1);
    it_rng_normal(&r, x.v, nk, 0, 1);
    it_rng_normal(&r, x.dout, nq, 0, 1);
    int ok = check(s, &d, &x);
    double ff = it_attn_flops_forward(&d), ffb = ff + it_attn_flops_backward(&d);
    if (ok) {
        double fc, fbc, f = time_run(&d, &x, reps, 0, &fc), fb = time_run(&d, &x, reps, 1, &fbc);
        row(s->name, "ours", ff, ffb, f, fc, fb, fbc);
        reference(s, ff, ffb, reps);
        if (threads1) { /* the same on one thread: immune to a busy second core */
            int saved = it_threads_get();
            it_threads_set(1);
            f = time_run(&d, &x, reps, 0, &fc), fb = time_run(&d, &x, reps, 1, &fbc);
            row(s->name, "ours 1 thread", ff, ffb, f, fc, fb, fbc);
            it_threads_set(saved);
        }
    }
    for (int i = 0; i < 4; i++) it_free_aligned(*qs[i]), it_free_aligned(*ks[i]);
    it_free_aligned(x.lse);
    return ok;
}

int main(int argc, char **argv)
{
    int quick = 0, reps = 0, threads1 = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--shape") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--one-thread")) threads1 = 1;
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--quick] [--shape NAME] [--reps N] [--one-thread]\n", argv[0]);
            return 2;
        }
    }
    it_threads_set(0);
    printf("attention: %d threads, blocks %dx%d, medians\n", it_threads_get(), IT_ATTN_BQ, IT_ATTN_BK);
    printf("%-11s %-14s %9s %9s %7s %11s %9s %7s\n", "shape", "impl", "fwd ms", "cpu ms", "GFLOPS",
           "fwd+bwd ms", "cpu ms", "GFLOPS");
    int ok = 1;
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++) {
        const shape *s = &SHAPES[i];
        if ((quick && !s->quick) || (only && strcmp(only, s->name))) continue;
        int n = reps > 0 ? reps : (s->Tq * (double)s->Tk > 1e6 ? 3 : 15);
        if (n > 32) n = 32;
        ok &= run_shape(s, n, threads1);
    }
    return ok ? 0 : 1;
}

/* engine_ops.c: tensor engine kernels against PyTorch CPU, same shapes,
 * same thread count, same run.
 *
 * Covers sgemm (GFLOPS at 1024 and 2048), a linear layer at an SD 1.5
 * feed-forward shape, conv2d 3x3 at SD 1.5's 64x64x320 level (forward, and
 * forward+backward), a 1x1 conv, and GroupNorm+SiLU fused against the two
 * separate passes (the fusion measurement). Each kernel is first checked
 * against its reference on a small shape. The PyTorch side is
 * bench/engine_ops_torch.py, run through the Python named by $IT_PYTHON
 * (default tools/.venv/bin/python); without it the table says
 * "reference skipped". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/rng.h"
#include "base/threads.h"
#include "tensor/autograd.h"
#include "tensor/ops_conv.h"
#include "tensor/ops_eltwise.h"
#include "tensor/ops_gemm.h"
#include "tensor/ops_norm.h"

#define REPEAT 5

char *openblas_get_config(void);
char *openblas_get_corename(void);

typedef struct row {
    const char *name;
    double flops; /* per call; 0 = memory-bound, no GFLOPS column */
    double ms;
    double torch_ms; /* < 0: not measured */
} row;

static row g_rows[16];
static int g_n;

static float *randbuf(size_t n, uint64_t seed, float std)
{
    float *p = it_malloc_aligned(n * sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    it_rng r;
    it_rng_init(&r, seed);
    it_rng_normal(&r, p, n, 0, std);
    return p;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef void (*bench_fn)(void *);

static double median_ms(bench_fn fn, void *arg)
{
    double t[REPEAT];
    fn(arg); /* warm-up */
    for (int i = 0; i < REPEAT; i++) {
        double t0 = it_time_now();
        fn(arg);
        t[i] = (it_time_now() - t0) * 1e3;
    }
    qsort(t, REPEAT, sizeof t[0], cmp_d);
    return t[REPEAT / 2];
}

static void add_row(const char *name, double flops, double ms)
{
    g_rows[g_n++] = (row){name, flops, ms, -1};
}

/* ---------------------------------------------------------------- correctness first */

static void check_kernels(void)
{
    it_conv2d_shape s = {2, 5, 9, 11, 7, 3, 3, 1, 1, 0, 0};
    it_conv2d_shape_init(&s);
    size_t nx = (size_t)(s.n * s.c_in * s.h * s.w), nw = (size_t)(s.c_out * s.c_in * 9),
           ny = (size_t)(s.n * s.c_out * s.h_out * s.w_out);
    float *x = randbuf(nx, 1, 1), *w = randbuf(nw, 2, 1), *y1 = randbuf(ny, 3, 1), *y2 = randbuf(ny, 3, 1);
    float *scratch = randbuf((size_t)it_conv2d_scratch(&s), 4, 1);
    it_cpu_conv2d_fwd(&s, y1, x, w, NULL, scratch);
    it_cpu_conv2d_fwd_ref(&s, y2, x, w, NULL);
    double e = 0;
    for (size_t i = 0; i < ny; i++) e = fmax(e, fabs((double)y1[i] - y2[i]));
    float *a = randbuf(70 * 50, 5, 1), *b = randbuf(50 * 30, 6, 1), *c1 = randbuf(70 * 30, 7, 1), *c2 = randbuf(70 * 30, 7, 1);
    it_cpu_gemm(0, 0, 70, 30, 50, 1, a, 50, b, 30, 0, c1, 30);
    it_cpu_gemm_ref(0, 0, 70, 30, 50, 1, a, 50, b, 30, 0, c2, 30);
    for (size_t i = 0; i < 70 * 30; i++) e = fmax(e, fabs((double)c1[i] - c2[i]));
    printf("correctness: conv2d and sgemm fast vs reference, max abs error %.2e\n", e);
    if (e > 1e-3) {
        fprintf(stderr, "kernel check failed\n");
        exit(1);
    }
    it_free_aligned(x), it_free_aligned(w), it_free_aligned(y1), it_free_aligned(y2), it_free_aligned(scratch);
    it_free_aligned(a), it_free_aligned(b), it_free_aligned(c1), it_free_aligned(c2);
}

/* ---------------------------------------------------------------- benchmarks */

typedef struct gemm_arg { int64_t n; float *a, *b, *c; } gemm_arg;
static void run_gemm(void *p)
{
    gemm_arg *g = p;
    it_cpu_gemm(0, 0, g->n, g->n, g->n, 1, g->a, g->n, g->b, g->n, 0, g->c, g->n);
}

typedef struct op_arg {
    it_ctx ctx;
    it_tensor *x, *w, *b, *gw, *gb;
    int mode;
} op_arg;

static void run_linear(void *p)
{
    op_arg *o = p;
    it_ctx_reset(&o->ctx);
    if (!it_op_linear(&o->ctx, o->x, o->w, o->b)) exit(1);
}

static void run_conv(void *p)
{
    op_arg *o = p;
    it_ctx_reset(&o->ctx);
    it_tensor *y = it_op_conv2d(&o->ctx, o->x, o->w, o->b, 1, o->w->shape[2] / 2);
    if (!y) exit(1);
    if (o->mode == 1) {
        /* Backward seeded with ones-like gradient: dx, dw, db all computed. */
        y->grad = it_ctx_alloc(&o->ctx, (size_t)y->n * sizeof(float));
        for (int64_t i = 0; i < y->n; i++) y->grad[i] = 1e-3f;
        it_err err;
        if (it_autograd_backward(&err, &o->ctx, y)) exit(1);
    }
}

static void run_gn(void *p)
{
    op_arg *o = p;
    it_ctx_reset(&o->ctx);
    it_tensor *y = o->mode ? it_op_group_norm(&o->ctx, o->x, o->gw, o->gb, 32, 1e-5f, 1)
                           : it_op_silu(&o->ctx, it_op_group_norm(&o->ctx, o->x, o->gw, o->gb, 32, 1e-5f, 0));
    if (!y) exit(1);
}

static void param(it_tensor *t, float *data, float *grad, int ndim, const int64_t *shape)
{
    it_tensor_init_param(NULL, t, "bench", data, grad, ndim, shape);
}

static void bench_all(void)
{
    for (int64_t n = 1024; n <= 2048; n *= 2) {
        gemm_arg g = {n, randbuf((size_t)(n * n), 1, 1), randbuf((size_t)(n * n), 2, 1), randbuf((size_t)(n * n), 3, 1)};
        add_row(n == 1024 ? "sgemm_1024" : "sgemm_2048", 2.0 * n * n * n, median_ms(run_gemm, &g));
        it_free_aligned(g.a), it_free_aligned(g.b), it_free_aligned(g.c);
    }
    op_arg o;
    memset(&o, 0, sizeof o);
    it_ctx_init(&o.ctx, 0);
    it_tensor x, w, b, w1, gw, gb;
    float *xd = randbuf(4096 * 320, 1, 1), *wd = randbuf(1280 * 320, 2, 0.05f), *bd = randbuf(1280, 3, 1);
    param(&x, xd, NULL, IT_SHAPE(4096, 320));
    param(&w, wd, NULL, IT_SHAPE(1280, 320));
    param(&b, bd, NULL, IT_SHAPE(1280));
    o.x = &x, o.w = &w, o.b = &b;
    add_row("linear_4096x320x1280", 2.0 * 4096 * 320 * 1280, median_ms(run_linear, &o));
    it_free_aligned(xd), it_free_aligned(wd), it_free_aligned(bd);

    size_t nx = 320 * 64 * 64, nw = 320 * 320 * 9;
    float *cx = randbuf(nx, 4, 1), *cw = randbuf(nw, 5, 0.02f), *cb = randbuf(320, 6, 1);
    float *gx = it_malloc_aligned(nx * 4), *gwd = it_malloc_aligned(nw * 4), *gbd = it_malloc_aligned(320 * 4);
    double conv_flops = 2.0 * 320 * 64 * 64 * 320 * 9;
    param(&x, cx, NULL, IT_SHAPE(1, 320, 64, 64));
    param(&w, cw, NULL, IT_SHAPE(320, 320, 3, 3));
    param(&b, cb, NULL, IT_SHAPE(320));
    o.x = &x, o.w = &w, o.b = &b, o.mode = 0;
    add_row("conv3x3_fwd", conv_flops, median_ms(run_conv, &o));
    param(&x, cx, gx, IT_SHAPE(1, 320, 64, 64));
    param(&w, cw, gwd, IT_SHAPE(320, 320, 3, 3));
    param(&b, cb, gbd, IT_SHAPE(320));
    o.mode = 1;
    add_row("conv3x3_fwd_bwd", 3 * conv_flops, median_ms(run_conv, &o));
    float *w1d = randbuf(320 * 320, 7, 0.05f);
    param(&x, cx, NULL, IT_SHAPE(1, 320, 64, 64));
    param(&w1, w1d, NULL, IT_SHAPE(320, 320, 1, 1));
    param(&b, cb, NULL, IT_SHAPE(320));
    o.w = &w1, o.mode = 0;
    add_row("conv1x1_fwd", 2.0 * 320 * 4096 * 320, median_ms(run_conv, &o));
    float *gwv = randbuf(320, 8, 1), *gbv = randbuf(320, 9, 1);
    param(&gw, gwv, NULL, IT_SHAPE(320));
    param(&gb, gbv, NULL, IT_SHAPE(320));
    o.gw = &gw, o.gb = &gb, o.mode = 1;
    add_row("groupnorm_silu_fwd", 0, median_ms(run_gn, &o));
    o.mode = 0;
    double unfused = median_ms(run_gn, &o);
    printf("fusion: GroupNorm+SiLU fused %.3f ms, as two passes %.3f ms\n", g_rows[g_n - 1].ms, unfused);
    it_free_aligned(cx), it_free_aligned(cw), it_free_aligned(cb), it_free_aligned(gx), it_free_aligned(gwd);
    it_free_aligned(gbd), it_free_aligned(w1d), it_free_aligned(gwv), it_free_aligned(gbv);
    it_ctx_free(&o.ctx);
}

/* ---------------------------------------------------------------- reference */

static void run_reference(int threads)
{
    const char *py = getenv("IT_PYTHON");
    if (!py) py = "tools/.venv/bin/python";
    FILE *f = fopen(py, "r");
    if (!f) {
        printf("reference skipped (no Python at %s; set IT_PYTHON)\n", py);
        return;
    }
    fclose(f);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' bench/engine_ops_torch.py %d %d", py, threads, REPEAT);
    FILE *p = popen(cmd, "r");
    if (!p) {
        printf("reference skipped (cannot run %s)\n", cmd);
        return;
    }
    char name[128];
    double ms;
    while (fscanf(p, "%127s %lf", name, &ms) == 2)
        for (int i = 0; i < g_n; i++)
            if (strcmp(g_rows[i].name, name) == 0) g_rows[i].torch_ms = ms;
    if (pclose(p) != 0) printf("reference: %s exited with an error\n", cmd);
}

/* "engine_ops sgemm": only the 1024 sgemm rate (best of 5), for picking
 * OpenBLAS's kernel set on a machine whose CPU model it cannot see. */
static int sgemm_only(void)
{
    gemm_arg g = {1024, randbuf(1024 * 1024, 1, 1), randbuf(1024 * 1024, 2, 1), randbuf(1024 * 1024, 3, 1)};
    double best = 1e30;
    for (int i = 0; i < 5; i++) {
        double t0 = it_time_now();
        run_gemm(&g);
        double dt = it_time_now() - t0;
        best = dt < best ? dt : best;
    }
    printf("%.1f\n", 2.0 * 1024 * 1024 * 1024 / best * 1e-9);
    it_free_aligned(g.a), it_free_aligned(g.b), it_free_aligned(g.c);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "sgemm") == 0) return sgemm_only();
    int threads = it_threads_get();
    printf("engine_ops: %d threads, median of %d runs after a warm-up\n", threads, REPEAT);
    printf("BLAS: %s, kernels for %s\n", openblas_get_config(), openblas_get_corename());
    check_kernels();
    bench_all();
    run_reference(threads);
    printf("%-22s %10s %9s %10s %9s %7s\n", "benchmark", "ours ms", "GFLOPS", "torch ms", "GFLOPS", "ratio");
    for (int i = 0; i < g_n; i++) {
        row *r = &g_rows[i];
        char ours_g[16] = "-", ref_g[16] = "-";
        if (r->flops) snprintf(ours_g, sizeof ours_g, "%.1f", r->flops / r->ms * 1e-6);
        if (r->torch_ms < 0) {
            printf("%-22s %10.3f %9s %10s\n", r->name, r->ms, ours_g, "skipped");
            continue;
        }
        if (r->flops) snprintf(ref_g, sizeof ref_g, "%.1f", r->flops / r->torch_ms * 1e-6);
        printf("%-22s %10.3f %9s %10.3f %9s %6.2fx\n", r->name, r->ms, ours_g, r->torch_ms, ref_g,
               r->torch_ms / r->ms);
    }
    return 0;
}

/* toy_render.c: single-thread toy renderer throughput (images/s at 128x128).
 *
 * Checks first that a render is deterministic and has a creature in it, then
 * warms up and times 5 runs of 400 images (sampling + rendering + truth,
 * into memory, one thread), printing the median. Target: >= 2,000 images/s
 * per core. There is no external reference renderer of this world, so no
 * reference figure is printed. */
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "toy/creature.h"
#include "toy/toydraw.h"

#define S 128
#define N 400

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Thread CPU time: on a shared machine the wall clock also counts the time
 * other processes hold the core; "per core" means CPU time. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static double run(it_toy_renderer *r, uint8_t *rgb, uint8_t *mask, uint64_t seed, int with_truth, double *wall)
{
    it_err e;
    double t0 = cpu_now(), w0 = it_time_now();
    for (int i = 0; i < N; i++) {
        it_toy_attrs a;
        it_toy_truth tr;
        if (it_toy_sample(&e, &a, NULL, seed, (uint64_t)i, IT_TOY_EVAL) ||
            it_toy_render(&e, r, &a, IT_TOY_EVAL, rgb, with_truth ? mask : NULL, with_truth ? &tr : NULL)) {
            fprintf(stderr, "toy_render: %s\n", e.msg);
            exit(1);
        }
    }
    *wall = N / (it_time_now() - w0);
    return N / (cpu_now() - t0);
}

int main(void)
{
    it_err e;
    it_toy_renderer r;
    uint8_t *rgb = it_malloc(S * S * 3), *rgb2 = it_malloc(S * S * 3), *mask = it_malloc(S * S);
    if (!rgb || !rgb2 || !mask || it_toy_renderer_init(&e, &r, S, S)) {
        fprintf(stderr, "toy_render: setup failed\n");
        return 1;
    }
    /* Correctness: same attributes, same bytes; the body is drawn. */
    it_toy_attrs a;
    it_toy_truth tr;
    if (it_toy_sample(&e, &a, NULL, 1, 0, IT_TOY_EVAL) || it_toy_render(&e, &r, &a, IT_TOY_EVAL, rgb, mask, &tr) ||
        it_toy_render(&e, &r, &a, IT_TOY_EVAL, rgb2, NULL, NULL)) {
        fprintf(stderr, "toy_render: %s\n", e.msg);
        return 1;
    }
    if (memcmp(rgb, rgb2, S * S * 3) != 0 || tr.pixels[IT_TOY_PART_BODY] < 500) {
        fprintf(stderr, "toy_render: check failed (determinism or empty render)\n");
        return 1;
    }
    printf("check ok: deterministic, body %d px\n", tr.pixels[IT_TOY_PART_BODY]);
    double w[5];
    run(&r, rgb, mask, 99, 1, &w[0]); /* warm-up */
    for (int truth = 0; truth < 2; truth++) {
        double v[5];
        for (int k = 0; k < 5; k++) v[k] = run(&r, rgb, mask, (uint64_t)k, truth, &w[k]);
        qsort(v, 5, sizeof v[0], cmp);
        qsort(w, 5, sizeof w[0], cmp);
        printf("toy render %dx%d, 1 thread, %s: median %.0f images/s per core (CPU time; min %.0f, max %.0f), "
               "%.0f by wall clock [target >= 2000]\n",
               S, S, truth ? "image + mask + boxes" : "image only", v[2], v[0], v[4], w[2]);
    }
    printf("reference: none (no external renderer of this world)\n");
    it_toy_renderer_free(&r);
    it_free(rgb);
    it_free(rgb2);
    it_free(mask);
    return 0;
}

/* image_resize.c: our resize against Pillow's on the same images and sizes.
 *
 * For each case: build a deterministic test picture, save it as PNG, resize
 * with it_image_resize (single thread, then the default thread count) and run
 * tools/bench_image_resize.py (Pillow, single thread) on the same file via
 * system(). Correctness first: the two outputs must agree within 1/255.
 * Prints median milliseconds side by side. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/rng.h"
#include "base/threads.h"
#include "image/image.h"
#include "image/resize.h"

/* The project venv; IT_PYTHON overrides (e.g. a worktree without one). */
static const char *venv_python(void)
{
    const char *p = getenv("IT_PYTHON");
    return p && *p ? p : "tools/.venv/bin/python";
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Smooth gradients, a few hard edges and some noise: resize cost does not
 * depend on content, but parity checks are more telling on varied data. */
static void make_picture(it_image *img, uint64_t seed)
{
    uint64_t s = seed;
    for (int y = 0; y < img->h; y++)
        for (int x = 0; x < img->w; x++) {
            uint8_t *p = img->data + ((size_t)y * img->w + x) * img->c;
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            int noise = (int)(s >> 59) - 16;
            int edge = ((x / 37) + (y / 23)) % 3 == 0 ? 90 : 0;
            for (int c = 0; c < img->c; c++) {
                int v = (x * (c + 1) * 255 / img->w + y * 255 / img->h) / 2 + edge + noise;
                p[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
}

static double time_ours(const it_image *src, int w, int h, it_resample f, int reps, it_image *keep)
{
    it_err e;
    double *t = malloc(sizeof(double) * reps);
    for (int i = 0; i < 2; i++) { /* warm-up */
        it_image tmp;
        if (it_image_resize(&e, &tmp, src, w, h, f) != IT_OK) {
            fprintf(stderr, "resize failed: %s\n", e.msg);
            exit(1);
        }
        it_image_free(&tmp);
    }
    for (int i = 0; i < reps; i++) {
        it_image tmp;
        double t0 = it_time_now();
        it_image_resize(&e, &tmp, src, w, h, f);
        t[i] = (it_time_now() - t0) * 1e3;
        if (i == reps - 1 && keep) *keep = tmp;
        else it_image_free(&tmp);
    }
    qsort(t, reps, sizeof(double), cmp_double);
    double med = t[reps / 2];
    free(t);
    return med;
}

/* Runs Pillow; returns its median in ms or -1 (and says why). */
static double time_pillow(const char *in, int w, int h, it_resample f, int reps, const char *out)
{
    if (access(venv_python(), X_OK) != 0) return -1;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s tools/bench_image_resize.py %s %d %d %s %d %s", venv_python(), in, w,
             h, it_resample_name(f), reps, out);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    double ms = -1;
    char line[256];
    while (fgets(line, sizeof line, p))
        if (sscanf(line, "median_ms %lf", &ms) == 1) break;
    pclose(p);
    return ms;
}

int main(void)
{
    static const struct { int iw, ih, c, ow, oh; it_resample f; int reps; } cases[] = {
        {1024, 768, 3, 224, 224, IT_RESAMPLE_BICUBIC, 21},
        {512, 512, 3, 128, 128, IT_RESAMPLE_LANCZOS, 21},
        {1024, 768, 4, 512, 384, IT_RESAMPLE_BILINEAR, 11},
        {256, 256, 3, 1024, 1024, IT_RESAMPLE_LANCZOS, 7},
    };
    char dir[] = "/tmp/it_bench_resize_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    printf("%-34s %10s %10s %10s  %s\n", "case", "ours 1T", "ours NT", "Pillow", "parity");
    int failed = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        it_err e;
        it_image src, ours;
        if (it_image_alloc(&e, &src, cases[i].iw, cases[i].ih, cases[i].c) != IT_OK) return 1;
        make_picture(&src, 1234 + i);
        char in[256], out[256], label[64];
        snprintf(in, sizeof in, "%s/in%zu.png", dir, i);
        snprintf(out, sizeof out, "%s/pil%zu.png", dir, i);
        snprintf(label, sizeof label, "%dx%dx%d -> %dx%d %s", cases[i].iw, cases[i].ih, cases[i].c,
                 cases[i].ow, cases[i].oh, it_resample_name(cases[i].f));
        if (it_image_save_png(&e, &src, in) != IT_OK) return 1;
        it_threads_set(1);
        double t1 = time_ours(&src, cases[i].ow, cases[i].oh, cases[i].f, cases[i].reps, &ours);
        it_threads_set(0);
        double tn = time_ours(&src, cases[i].ow, cases[i].oh, cases[i].f, cases[i].reps, NULL);
        double tp = time_pillow(in, cases[i].ow, cases[i].oh, cases[i].f, cases[i].reps, out);
        char parity[64] = "reference skipped";
        it_image ref;
        if (tp >= 0 && it_image_load(&e, &ref, out) == IT_OK) {
            int worst = 0;
            size_t eq = 0, n = (size_t)ref.w * ref.h * ref.c;
            for (size_t k = 0; k < n; k++) {
                int d = abs((int)ref.data[k] - (int)ours.data[k]);
                worst = d > worst ? d : worst;
                eq += d == 0;
            }
            snprintf(parity, sizeof parity, "max diff %d, %.2f%% equal", worst, 100.0 * eq / n);
            failed |= worst > 1;
            it_image_free(&ref);
        }
        if (tp >= 0)
            printf("%-34s %8.2fms %8.2fms %8.2fms  %s\n", label, t1, tn, tp, parity);
        else
            printf("%-34s %8.2fms %8.2fms %10s  %s\n", label, t1, tn, "-", parity);
        unlink(in);
        unlink(out);
        it_image_free(&ours);
        it_image_free(&src);
    }
    printf("threads: 1T = 1, NT = %d; Pillow is single-threaded\n", it_threads_get());
    /* Wall-clock medians on a shared machine: say how busy it was. */
    FILE *la = fopen("/proc/loadavg", "r");
    char load[64] = "?";
    if (la) {
        if (!fgets(load, sizeof load, la)) snprintf(load, sizeof load, "?");
        fclose(la);
    }
    printf("load average during the run: %s", load);
    rmdir(dir);
    return failed;
}

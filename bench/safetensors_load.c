/* safetensors_load.c: how fast we open, validate and load checkpoints,
 * beside the `safetensors` Python package on the same file.
 *
 * Writes a checkpoint shaped like a UNet shard (N_TENSORS f16 tensors of
 * varied sizes, 64 M parameters, 128 MB) with our writer, then measures:
 *   open   it_safetensors_open (mmap + header parse + validation)
 *   load   every tensor converted to f32 into one buffer (page cache warm),
 *          single thread and default threads
 *   save   the same tensors written from f32 as f16 (conversion, fsync)
 * and runs tools/bench_safetensors.py (safe_open; load_file + .float()) on the
 * same file. Correctness first: our f32 sum must equal the reference's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/threads.h"
#include "tensor/safetensors.h"

#define N_TENSORS 256
#define TOTAL_PARAMS (64u << 20)

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

static double median(double *t, int n)
{
    qsort(t, n, sizeof *t, cmp_double);
    return t[n / 2];
}

static void die(const it_err *e)
{
    fprintf(stderr, "bench failed: %s\n", e->msg);
    exit(1);
}

/* Sizes: a mix of big and small tensors like conv and norm weights. */
static size_t tensor_numel(int i)
{
    return i % 4 == 3 ? 1024 : (TOTAL_PARAMS - (N_TENSORS / 4) * 1024) / (N_TENSORS - N_TENSORS / 4);
}

static it_status write_file(it_err *e, const char *path, const float *vals)
{
    it_safetensors_writer *w;
    IT_TRY(it_safetensors_writer_new(e, &w));
    it_status s = IT_OK;
    size_t off = 0;
    for (int i = 0; s == IT_OK && i < N_TENSORS; i++) {
        char name[64];
        snprintf(name, sizeof name, "down_blocks.%d.resnets.%d.conv%d.weight", i / 32, (i / 4) % 8, i % 4);
        int64_t shape[1] = {(int64_t)tensor_numel(i)};
        s = it_safetensors_writer_add_f32_as(e, w, name, IT_DTYPE_F16, 1, shape, vals + off);
        off += tensor_numel(i);
    }
    if (s == IT_OK) s = it_safetensors_writer_set_metadata(e, w, "format", "pt");
    if (s == IT_OK) s = it_safetensors_writer_save(e, w, path);
    it_safetensors_writer_free(w);
    return s;
}

static double load_all(it_safetensors *f, float *dst, double *sum)
{
    it_err e;
    double t0 = it_time_now();
    size_t off = 0;
    for (size_t i = 0; i < it_safetensors_count(f); i++) {
        const it_safetensors_tensor *t = it_safetensors_at(f, i);
        if (it_safetensors_load_f32(&e, f, t, dst + off, t->numel) != IT_OK) die(&e);
        off += t->numel;
    }
    double dt = it_time_now() - t0;
    if (sum) {
        double s = 0;
        for (size_t i = 0; i < off; i++) s += dst[i];
        *sum = s;
    }
    return dt;
}

int main(void)
{
    it_err e;
    char dir[] = "/tmp/it_bench_st_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char path[256], path2[256];
    snprintf(path, sizeof path, "%s/shard.safetensors", dir);
    snprintf(path2, sizeof path2, "%s/resave.safetensors", dir);
    size_t n = 0;
    for (int i = 0; i < N_TENSORS; i++) n += tensor_numel(i);
    float *vals = it_malloc(n * sizeof *vals), *dst = it_malloc(n * sizeof *dst);
    if (!vals || !dst) return 1;
    uint64_t s = 42;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        vals[i] = (float)((int64_t)(s >> 40) - (1 << 23)) / (float)(1 << 23); /* [-1, 1) */
    }
    if (write_file(&e, path, vals) != IT_OK) die(&e);

    enum { REPS = 7 };
    double t_open[REPS], t_load1[REPS], t_loadn[REPS], t_save[REPS], sum = 0;
    it_safetensors *f;
    for (int r = -1; r < REPS; r++) { /* r = -1: warm-up (page cache) */
        double t0 = it_time_now();
        if (it_safetensors_open(&e, &f, path) != IT_OK) die(&e);
        double dt = it_time_now() - t0;
        it_threads_set(1);
        double l1 = load_all(f, dst, r < 0 ? &sum : NULL);
        it_threads_set(0);
        double ln = load_all(f, dst, NULL);
        it_safetensors_close(f);
        t0 = it_time_now();
        if (r >= 0 && write_file(&e, path2, vals) != IT_OK) die(&e);
        if (r < 0) continue;
        t_save[r] = it_time_now() - t0;
        t_open[r] = dt;
        t_load1[r] = l1;
        t_loadn[r] = ln;
    }
    double mb = (double)n * 2 / 1e6;
    printf("file: %d f16 tensors, %zu parameters, %.0f MB; %d threads\n", N_TENSORS, n, mb,
           it_threads_get());
    printf("%-28s %10s %12s\n", "step", "ours", "reference");

    /* The reference: safetensors (Rust core) + torch on the same file. */
    double ref_open = -1, ref_load = -1, ref_sum = 0;
    if (access(venv_python(), X_OK) == 0) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "%s tools/bench_safetensors.py %s %d", venv_python(), path, REPS);
        FILE *p = popen(cmd, "r");
        char line[256];
        while (p && fgets(line, sizeof line, p)) {
            sscanf(line, "open_ms %lf", &ref_open);
            sscanf(line, "load_ms %lf", &ref_load);
            sscanf(line, "sum %lf", &ref_sum);
        }
        if (p) pclose(p);
    }
    int ref = ref_open >= 0 && ref_load >= 0;
    if (ref && (sum - ref_sum > 1e-6 * n || ref_sum - sum > 1e-6 * n)) {
        printf("MISMATCH: our f32 sum %.6f, reference %.6f\n", sum, ref_sum);
        return 1;
    }
    char rbuf[64];
    snprintf(rbuf, sizeof rbuf, ref ? "%.3f ms" : "skipped", ref_open);
    printf("%-28s %7.3f ms %12s\n", "open + validate header", median(t_open, REPS) * 1e3, rbuf);
    double l1 = median(t_load1, REPS), ln = median(t_loadn, REPS);
    printf("%-28s %7.1f ms %12s   (%.2f GB/s of f16 read)\n", "load all as f32, 1 thread", l1 * 1e3, "",
           mb / 1e3 / l1);
    snprintf(rbuf, sizeof rbuf, ref ? "%.1f ms" : "skipped", ref_load);
    printf("%-28s %7.1f ms %12s   (%.2f GB/s)\n", "load all as f32, N threads", ln * 1e3, rbuf,
           mb / 1e3 / ln);
    printf("%-28s %7.1f ms %12s\n", "save f32 as f16 (fsync)", median(t_save, REPS) * 1e3, "");
    printf("checksum: ours %.6f, reference %s\n", sum, ref ? "equal" : "skipped");
    if (!ref) printf("reference skipped (no Python at %s; set IT_PYTHON)\n", venv_python());
    unlink(path);
    unlink(path2);
    rmdir(dir);
    it_free(vals);
    it_free(dst);
    return 0;
}

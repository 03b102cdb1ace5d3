/* latent_cache.c: what the on-disk latent cache saves on the toy scenario.
 *
 * Writes the toy scenario `vincent` (16 images, 128 px), builds a VAE with
 * the toy world's shipped architecture (src/toy/pretrain_vae.c: 4 levels,
 * channels 32-64-64-64, 8x; random weights: the cost does not depend on
 * them) and draws every micro-batch of one epoch (buckets at the toy models'
 * 32 px step, batch 4) through train_data.h three ways: cold (empty cache
 * folder: every latent encoded and written), warm (a new run on the same
 * folder: every latent read from disk) and in memory (the same run's second
 * epoch). Correctness first: the warm latents must equal the cold ones bit
 * for bit. Prints the median of REPS (default 3) on THREADS (default 1).
 *
 *   build/bench/latent_cache [REPS [THREADS]] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/rng.h"
#include "base/threads.h"
#include "models/config.h"
#include "tensor/tensor.h"
#include "toy/scenario.h"
#include "train/train_data.h"

/* The toy VAE's config as src/toy/pretrain_vae.c ships it. */
static const char TOY_VAE[] =
    "{\"_class_name\": \"AutoencoderKL\", \"act_fn\": \"silu\", \"block_out_channels\": [32, 64, 64, 64],"
    " \"down_block_types\": [\"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\"],"
    " \"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\"],"
    " \"in_channels\": 3, \"out_channels\": 3, \"latent_channels\": 4, \"layers_per_block\": 1,"
    " \"norm_num_groups\": 16, \"sample_size\": 128, \"scaling_factor\": 1.0,"
    " \"mid_block_add_attention\": true, \"use_quant_conv\": true, \"use_post_quant_conv\": true}";

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One epoch of micro-batches (m from first to first + n_batches) into lat;
 * returns seconds, or -1 on error. */
static double epoch(it_train_data *td, it_ctx *ctx, uint64_t first, float *lat, size_t *n_floats)
{
    it_err err;
    double t0 = it_time_now();
    size_t off = 0;
    for (uint64_t k = 0; k < td->ds.n_batches; k++) {
        it_data_batch db;
        if (it_train_data_batch(&err, td, ctx, first + k, lat + off, &db)) {
            fprintf(stderr, "latent_cache: %s\n", err.msg);
            return -1;
        }
        off += (size_t)db.n * (size_t)td->lc * (size_t)(db.lh * db.lw);
        it_ctx_reset(ctx);
    }
    *n_floats = off;
    return it_time_now() - t0;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 3, threads = argc > 2 ? atoi(argv[2]) : 1;
    if (reps < 1 || reps > 20) reps = 3;
    it_threads_set(threads);
    it_log_set_level(IT_LOG_WARN);
    it_err err;
    char root[] = "/tmp/it_bench_latent_XXXXXX", data[256], cache[256];
    if (!mkdtemp(root)) return 1;
    snprintf(data, sizeof data, "%s/train", root);
    it_vae_config cfg;
    it_vae vae;
    if (it_toy_scenario_write(&err, "vincent", root, 1, 128) || it_vae_config_parse(&err, &cfg, TOY_VAE, "toy vae") ||
        it_vae_init(&err, &vae, &cfg, 0)) {
        fprintf(stderr, "latent_cache: %s\n", err.msg);
        return 1;
    }
    it_rng r;
    it_rng_init(&r, 7);
    it_rng_normal(&r, vae.params.data, vae.params.n_floats, 0.0f, 0.05f);
    it_train_data_opts o;
    it_train_data_opts_init(&o);
    o.ds.dir = data, o.ds.resolution = 128, o.ds.buckets = 1, o.ds.step = 32, o.ds.batch = 4;
    o.cache_dir = cache;
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    float *cold = it_malloc(16 * 4 * 16 * 16 * sizeof(float)), *warm = it_malloc(16 * 4 * 16 * 16 * sizeof(float));
    double t_cold[20], t_warm[20], t_mem[20];
    int ok = cold && warm;
    for (int i = 0; ok && i < reps; i++) {
        snprintf(cache, sizeof cache, "%s/cache%d", root, i);
        size_t n1 = 0, n2 = 0, n3 = 0;
        it_train_data a, b;
        ok = !it_train_data_open(&err, &a, &o, &vae);
        if (ok) {
            t_cold[i] = epoch(&a, &ctx, 0, cold, &n1);
            it_train_data_free(&a);
        }
        ok = ok && !it_train_data_open(&err, &b, &o, &vae);
        if (ok) {
            t_warm[i] = epoch(&b, &ctx, 0, warm, &n2);
            ok = n1 == n2 && !memcmp(cold, warm, n1 * sizeof(float)) && b.cache.misses == 0;
            t_mem[i] = epoch(&b, &ctx, b.ds.n_batches, warm, &n3);
            it_train_data_free(&b);
        }
        ok = ok && t_cold[i] >= 0 && t_warm[i] >= 0 && t_mem[i] >= 0;
    }
    if (!ok) fprintf(stderr, "latent_cache: failed (warm latents differ from cold, or an error)\n");
    else {
        qsort(t_cold, (size_t)reps, sizeof(double), cmp_d);
        qsort(t_warm, (size_t)reps, sizeof(double), cmp_d);
        qsort(t_mem, (size_t)reps, sizeof(double), cmp_d);
        double c = t_cold[reps / 2], w = t_warm[reps / 2], m = t_mem[reps / 2];
        printf("latent cache, toy scenario vincent (16 images 128 px, toy VAE 8x, buckets, batch 4, %d thread%s, "
               "median of %d): one epoch of latents cold (VAE + write) %.1f ms, warm (disk) %.1f ms = %.0fx, "
               "in memory %.2f ms; warm latents bit-identical\n",
               threads, threads == 1 ? "" : "s", reps, c * 1e3, w * 1e3, c / w, m * 1e3);
    }
    it_free(cold);
    it_free(warm);
    it_ctx_free(&ctx);
    it_vae_free(&vae);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd)) fprintf(stderr, "latent_cache: could not remove %s\n", root);
    return ok ? 0 : 1;
}

/* vision.c: CLIP ViT-B/32 image-embedding throughput and OWL-ViT B/32
 * detection latency at 768x768 (2 text queries: text tower, vision tower,
 * heads, logits, post-processing), random weights generated here, against
 * PyTorch CPU (tools/bench_vision.py: transformers' models, same shapes,
 * same thread count) in the same run.
 *
 * usage: vision [BATCH [REPEAT]]   (default 4 images per CLIP batch, 3 repeats) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/rng.h"
#include "base/threads.h"
#include "vision/clip_vision.h"
#include "vision/owlvit.h"

static void randomise(it_params *ps, uint64_t seed)
{
    it_rng r;
    it_rng_init(&r, seed);
    it_rng_normal(&r, ps->data, ps->n_floats, 0, 0.02f);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void check(it_status s, const it_err *err)
{
    if (s) {
        fprintf(stderr, "vision bench: %s\n", err->msg);
        exit(1);
    }
}

/* Seconds per CLIP batch (median); checks that image 0 of the batch embeds
 * like image 0 alone. */
static double bench_clip(int batch, int repeat)
{
    it_err err = {0};
    it_clip_vision_config c;
    it_clip_vision_config_default(&c); /* ViT-B/32 */
    it_clip_vision m;
    check(it_clip_vision_init(&err, &m, &c, "vision_model.", "pre_layrnorm", "visual_projection", 0), &err);
    randomise(&m.params, 1);
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    float *px = it_malloc((size_t)batch * 3 * 224 * 224 * sizeof(float));
    it_rng r;
    it_rng_init(&r, 2);
    it_rng_normal(&r, px, (size_t)batch * 3 * 224 * 224, 0, 1);
    it_clip_vision_out o;
    float one[512];
    it_tensor *x1 = it_tensor_wrap(&ctx, px, IT_DTYPE_F32, IT_SHAPE(1, 3, 224, 224));
    check(it_clip_vision_forward(&err, &ctx, &m, x1, &o), &err);
    memcpy(one, it_f32(o.projected), sizeof one);
    it_ctx_reset(&ctx);
    double t[32];
    for (int i = 0; i <= repeat; i++) {
        it_tensor *x = it_tensor_wrap(&ctx, px, IT_DTYPE_F32, IT_SHAPE(batch, 3, 224, 224));
        double t0 = it_time_now();
        check(it_clip_vision_forward(&err, &ctx, &m, x, &o), &err);
        if (i) t[i - 1] = it_time_now() - t0; /* the first run is the warm-up */
        double md = 0, mx = 0;
        for (int k = 0; k < 512; k++) {
            md = fmax(md, fabs(it_f32(o.projected)[k] - one[k]));
            mx = fmax(mx, fabs(one[k]));
        }
        if (md > 1e-4 * mx) {
            fprintf(stderr, "vision bench: batched embedding differs from single (%g)\n", md / mx);
            exit(1);
        }
        it_ctx_reset(&ctx);
    }
    qsort(t, (size_t)repeat, sizeof t[0], cmp_d);
    it_free(px);
    it_ctx_free(&ctx);
    it_clip_vision_free(&m);
    return t[repeat / 2];
}

/* Seconds per detection (median): 2 text queries and one 768x768 image. */
static double bench_owl(int repeat, int *n_det)
{
    it_err err = {0};
    it_clip_vision_config vc;
    it_clip_vision_config_default(&vc);
    vc.image_size = 768;
    vc.projection_dim = 512;
    it_clip_text_config tc;
    it_clip_text_config_sd15(&tc);
    tc.hidden = 512;
    tc.intermediate = 2048;
    tc.n_heads = 8;
    tc.max_positions = 16;
    tc.projection_dim = 512;
    tc.has_projection = 1;
    tc.eos_token_id = 2;
    it_owlvit m;
    memset(&m, 0, sizeof m);
    check(it_owlvit_init(&err, &m, &vc, &tc), &err);
    randomise(&m.vision.params, 3);
    randomise(&m.text.params, 4);
    randomise(&m.head, 5);
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    float *px = it_malloc((size_t)3 * 768 * 768 * sizeof(float));
    it_rng r;
    it_rng_init(&r, 6);
    it_rng_normal(&r, px, (size_t)3 * 768 * 768, 0, 1);
    int32_t ids[32];
    for (int i = 0; i < 32; i++) ids[i] = (i * 7919) % 49406;
    ids[5] = ids[16 + 5] = 49407;
    float q[2 * 512], *logits = it_malloc(576 * 2 * sizeof(float));
    it_detection *det = it_malloc(576 * sizeof *det);
    double t[32];
    for (int i = 0; i <= repeat; i++) {
        double t0 = it_time_now();
        it_tensor *idt = it_tensor_wrap(&ctx, ids, IT_DTYPE_I32, IT_SHAPE(2, 16));
        check(it_owlvit_embed_ids(&err, &ctx, &m, idt, q), &err);
        it_tensor *x = it_tensor_wrap(&ctx, px, IT_DTYPE_F32, IT_SHAPE(1, 3, 768, 768));
        it_owlvit_image res;
        check(it_owlvit_embed_pixels(&err, &ctx, &m, x, &res), &err);
        it_owlvit_logits(&res, q, 2, logits);
        *n_det = it_owlvit_postprocess(&res, logits, 2, 768, 768, 0.1f, 0.3f, det);
        if (i) t[i - 1] = it_time_now() - t0;
        for (int k = 0; k < res.n * 2; k++)
            if (!isfinite(logits[k])) {
                fprintf(stderr, "vision bench: non-finite OWL-ViT logit\n");
                exit(1);
            }
        it_owlvit_image_free(&res);
        it_ctx_reset(&ctx);
    }
    qsort(t, (size_t)repeat, sizeof t[0], cmp_d);
    it_free(px);
    it_free(logits);
    it_free(det);
    it_ctx_free(&ctx);
    it_owlvit_free(&m);
    return t[repeat / 2];
}

/* PyTorch's numbers from tools/bench_vision.py, or -1 when the venv is absent. */
static void torch_side(int threads, int batch, int repeat, double *ips, double *ms)
{
    *ips = *ms = -1;
    const char *py = getenv("IT_PYTHON");
    if (!py) py = "tools/.venv/bin/python";
    FILE *f = fopen(py, "r");
    if (!f) return;
    fclose(f);
    char cmd[1024], name[64];
    snprintf(cmd, sizeof cmd, "'%s' tools/bench_vision.py %d %d %d", py, threads, batch, repeat);
    FILE *p = popen(cmd, "r");
    if (!p) return;
    double v;
    while (fscanf(p, "%63s %lf", name, &v) == 2) {
        if (!strcmp(name, "clip_ips")) *ips = v;
        if (!strcmp(name, "owl_ms")) *ms = v;
    }
    pclose(p);
}

int main(int argc, char **argv)
{
    int batch = argc > 1 ? atoi(argv[1]) : 4, repeat = argc > 2 ? atoi(argv[2]) : 3;
    if (batch < 1 || repeat < 1 || repeat > 32) {
        fprintf(stderr, "usage: vision [BATCH [REPEAT<=32]]\n");
        return 2;
    }
    int threads = it_threads_get();
    double clip_s = bench_clip(batch, repeat);
    int n_det = 0;
    double owl_s = bench_owl(repeat, &n_det);
    double t_ips, t_ms;
    torch_side(threads, batch, repeat, &t_ips, &t_ms);
    printf("vision bench: %d threads, median of %d (after a warm-up), random weights\n", threads, repeat);
    printf("  CLIP ViT-B/32 image embedding, batch %d:  ours %7.2f images/s", batch, batch / clip_s);
    if (t_ips > 0) printf("   PyTorch %7.2f images/s\n", t_ips);
    else printf("   reference skipped (no tools/.venv)\n");
    printf("  OWL-ViT B/32 detection 768x768, 2 queries: ours %7.1f ms (%d boxes)", owl_s * 1e3, n_det);
    if (t_ms > 0) printf("   PyTorch %7.1f ms\n", t_ms);
    else printf("   reference skipped (no tools/.venv)\n");
    return 0;
}

/* test_vision.c: CLIP preprocessing and the CLIP model (both key layouts)
 * against transformers / open_clip outputs on the tiny fixture models
 * (tools/gen_vision_fixtures.py). */
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "image/image.h"
#include "image/resize.h"
#include "tensor/tensor.h"
#include "test.h"
#include "test_vision_util.h"
#include "vision/clip.h"
#include "vision/preprocess.h"

static const char *IMAGES[3] = {"img_a.png", "img_b.png", "img_c.png"};

/* The processor's resized + cropped uint8 image (crop_*.png, recovered from
 * CLIPImageProcessorPil's pixel_values) equals ours byte for byte. */
IT_TEST(vision_preprocess_parity)
{
    char p[1024], q[1024];
    it_err err = {0};
    it_preprocess pre;
    IT_REQUIRE(it_preprocess_load(&err, &pre, vfix(t, p, sizeof p, "clip_hf/preprocessor_config.json")) == IT_OK);
    IT_CHECK_INT(pre.shortest_edge, 224);
    IT_CHECK_INT(pre.resample, IT_RESAMPLE_BICUBIC);
    for (int i = 0; i < 3; i++) {
        it_image in = {0}, ours = {0}, ref = {0};
        char name[64];
        snprintf(name, sizeof name, "crop_%s", IMAGES[i]);
        IT_REQUIRE(it_image_load(&err, &in, vfix(t, p, sizeof p, IMAGES[i])) == IT_OK);
        IT_REQUIRE(it_image_load(&err, &ref, vfix(t, q, sizeof q, name)) == IT_OK);
        IT_REQUIRE(it_preprocess_u8(&err, &pre, &in, &ours) == IT_OK);
        IT_CHECK_INT(ours.w, ref.w);
        IT_CHECK_INT(ours.h, ref.h);
        int maxd = 0;
        long ndiff = 0;
        for (size_t k = 0; ours.w == ref.w && ours.h == ref.h && k < (size_t)ref.w * ref.h * 3; k++) {
            int d = abs((int)ours.data[k] - (int)ref.data[k]);
            if (d > maxd) maxd = d;
            ndiff += d != 0;
        }
        printf("    %s: %dx%d -> %dx%d, max diff %d, %ld values differ\n", IMAGES[i], in.w, in.h, ours.w,
               ours.h, maxd, ndiff);
        IT_CHECK(maxd == 0);
        it_image_free(&in);
        it_image_free(&ours);
        it_image_free(&ref);
    }
}

IT_TEST(vision_preprocess_config_errors)
{
    static const struct {
        const char *json, *msg;
    } cases[] = {
        {"[1]", "cfg: not a JSON object"},
        {"{\"resample\": 5}", "cfg: resample must be 0-4"},
        {"{\"size\": {\"longest_edge\": 3}}", "cfg: size must have shortest_edge or height and width"},
        {"{\"image_std\": [1, 0, 1]}", "image_std non-zero"},
        {"{\"image_mean\": [1, 2]}", "cfg: image_mean must be a number or 3 numbers"},
        {"{\"crop_size\": {\"height\": 3}}", "cfg: crop_size must have height and width"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        it_err err = {0};
        it_preprocess p;
        IT_CHECK(it_preprocess_parse(&err, &p, cases[i].json, "cfg") != IT_OK);
        IT_CHECK_CONTAINS(err.msg, cases[i].msg);
    }
    /* transformers' shortest-edge rule truncates the long side */
    it_preprocess p;
    it_preprocess_clip_default(&p);
    int w, h;
    it_preprocess_resized_size(&p, 131, 97, &w, &h);
    IT_CHECK_INT(w, 302); /* int(224 * 131 / 97) = int(302.49) */
    IT_CHECK_INT(h, 224);
}

/* Image embeddings of the three images, text embeddings and logits. */
static void check_clip(it_test_ctx *t, const char *dir, const char *key, int check_interp)
{
    char p[1024], name[96];
    it_err err = {0};
    it_clip m;
    IT_REQUIRE(it_clip_load(&err, &m, vfix(t, p, sizeof p, dir)) == IT_OK);
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    int d = m.embed_dim;
    float img[3 * 64], txt[3 * 64], logits[9];
    IT_REQUIRE(d <= 64);
    for (int i = 0; i < 3; i++) {
        it_image im = {0};
        IT_REQUIRE(it_image_load(&err, &im, vfix(t, p, sizeof p, IMAGES[i])) == IT_OK);
        it_status s = it_clip_embed_image(&err, &ctx, &m, &im, img + i * d);
        it_image_free(&im);
        IT_REQUIRE(s == IT_OK);
    }
    static const char *texts[3] = {"a photo of a house", "a red sun over the field", "a person in black"};
    for (int j = 0; j < 3; j++) IT_REQUIRE(it_clip_embed_text(&err, &ctx, &m, texts[j], txt + j * d) == IT_OK);
    it_clip_logits(&m, logits, img, 3, txt, 3);
    size_t n = 0;
    snprintf(name, sizeof name, "%s.image_embeds", key);
    float *r = vref(t, name, &n);
    if (r && n == (size_t)3 * d) VCHECK_REL(name, img, r, n, 1e-4);
    it_free(r);
    snprintf(name, sizeof name, "%s.text_embeds", key);
    r = vref(t, name, &n);
    if (r && n == (size_t)3 * d) VCHECK_REL(name, txt, r, n, 1e-4);
    it_free(r);
    snprintf(name, sizeof name, "%s.logits_per_image", key);
    r = vref(t, name, &n);
    if (r && n == 9) VCHECK_REL(name, logits, r, n, 1e-4);
    it_free(r);
    if (check_interp) {
        /* position embeddings interpolated to a 12 x 16 grid (192 x 256 input) */
        it_image im = {0}, small = {0};
        IT_REQUIRE(it_image_load(&err, &im, vfix(t, p, sizeof p, IMAGES[0])) == IT_OK);
        IT_REQUIRE(it_image_resize(&err, &small, &im, 256, 192, IT_RESAMPLE_BICUBIC) == IT_OK);
        it_tensor *px = it_tensor_new(&ctx, IT_DTYPE_F32, IT_SHAPE(1, 3, 192, 256));
        it_preprocess_normalize(&m.pre, &small, it_f32(px));
        float e[64];
        IT_REQUIRE(it_clip_embed_pixels(&err, &ctx, &m, px, e) == IT_OK);
        r = vref(t, "clip.interp_image_embeds", &n);
        if (r && n == (size_t)d) VCHECK_REL("clip.interp_image_embeds", e, r, n, 1e-4);
        it_free(r);
        it_image_free(&im);
        it_image_free(&small);
    }
    it_ctx_free(&ctx);
    it_clip_free(&m);
}

IT_TEST(vision_clip_hf_parity) { check_clip(t, "clip_hf", "clip", 1); }
IT_TEST(vision_clip_openclip_parity) { check_clip(t, "clip_openclip", "openclip", 0); }

IT_TEST(vision_clip_bicubic_identity)
{
    /* same size: bicubic with t = 0 reproduces the grid */
    float in[2 * 3 * 2], out[2 * 3 * 2];
    for (int i = 0; i < 12; i++) in[i] = (float)(i * i % 7);
    it_clip_vision_bicubic(out, 2, 3, in, 2, 3, 2);
    for (int i = 0; i < 12; i++) IT_CHECK_NEAR(out[i], in[i], 1e-6);
}

IT_TEST(vision_clip_load_errors)
{
    char p[1024];
    it_err err = {0};
    it_clip m;
    IT_CHECK(it_clip_load(&err, &m, t->tmpdir) == IT_ERR_NOT_FOUND);
    IT_CHECK_CONTAINS(err.msg, "not a CLIP model folder");
    /* the OWL-ViT folder's weights do not carry CLIPModel keys */
    IT_CHECK(it_clip_load(&err, &m, vfix(t, p, sizeof p, "owlvit")) != IT_OK);
    IT_CHECK_CONTAINS(err.msg, "missing key vision_model.");
}

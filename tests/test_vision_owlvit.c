/* test_vision_owlvit.c: OWL-ViT v1 against transformers'
 * OwlViTForObjectDetection on the tiny fixture (768 x 768, real processor):
 * text-query logits and boxes, image-guided logits from a whole reference
 * image (image_guided_detection) and from a box on it, post-processing. */
#include <string.h>

#include "base/mem.h"
#include "test.h"
#include "test_vision_util.h"
#include "vision/owlvit.h"

static const char *QUERIES[2] = {"a black jacket", "a house"};

static int load_image_results(it_test_ctx *t, it_owlvit *m, it_ctx *ctx, const char *name,
                              it_owlvit_image *r)
{
    char p[1024];
    it_err err = {0};
    it_image im = {0};
    if (it_image_load(&err, &im, vfix(t, p, sizeof p, name))) return -1;
    it_status s = it_owlvit_embed_image(&err, ctx, m, &im, r);
    it_image_free(&im);
    if (s) it_test_fail(t, __FILE__, __LINE__, "%s", err.msg);
    return s ? -1 : 0;
}

IT_TEST(vision_owlvit_text_queries)
{
    char p[1024];
    it_err err = {0};
    it_owlvit m;
    IT_REQUIRE(it_owlvit_load(&err, &m, vfix(t, p, sizeof p, "owlvit")) == IT_OK);
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_owlvit_image r;
    IT_REQUIRE(load_image_results(t, &m, &ctx, "img_a.png", &r) == 0);
    IT_CHECK_INT(r.n, 576);
    int d = m.query_dim;
    float q[2 * 64];
    IT_REQUIRE(d <= 64);
    for (int j = 0; j < 2; j++) IT_REQUIRE(it_owlvit_embed_text(&err, &ctx, &m, QUERIES[j], q + j * d) == IT_OK);
    float *logits = it_malloc((size_t)r.n * 2 * sizeof(float));
    it_owlvit_logits(&r, q, 2, logits);
    size_t n = 0;
    float *ref = vref(t, "owl.text_embeds", &n);
    if (ref && n == (size_t)2 * d) VCHECK_REL("owl.text_embeds", q, ref, n, 1e-4);
    it_free(ref);
    ref = vref(t, "owl.image_embeds", &n);
    if (ref && n == (size_t)r.n * m.vision.cfg.hidden) VCHECK_REL("owl.image_embeds", r.feats, ref, n, 1e-4);
    it_free(ref);
    ref = vref(t, "owl.pred_boxes", &n);
    if (ref && n == (size_t)r.n * 4) VCHECK_REL("owl.pred_boxes", r.boxes, ref, n, 1e-4);
    it_free(ref);
    ref = vref(t, "owl.logits", &n);
    if (ref && n == (size_t)r.n * 2) VCHECK_REL("owl.logits", logits, ref, n, 1e-4);
    it_free(ref);
    /* post-processing: boxes scale to the 320 x 240 image, best first */
    it_detection *det = it_malloc((size_t)r.n * sizeof *det);
    int k = it_owlvit_postprocess(&r, logits, 2, 320, 240, 0.0f, 1.0f, det);
    IT_CHECK_INT(k, r.n);
    for (int i = 1; i < k; i++) IT_CHECK(det[i - 1].score >= det[i].score);
    float c0 = r.boxes[det[0].patch * 4] * 320.0f, w0 = r.boxes[det[0].patch * 4 + 2] * 320.0f;
    IT_CHECK_NEAR(det[0].box[0], c0 - w0 / 2, 1e-3);
    int k2 = it_owlvit_postprocess(&r, logits, 2, 320, 240, 0.0f, 0.3f, det);
    IT_CHECK(k2 < k);
    for (int i = 0; i < k2; i++)
        for (int j = i + 1; j < k2; j++) IT_CHECK(it_box_iou(det[i].box, det[j].box) <= 0.3f + 1e-6f);
    it_free(det);
    it_free(logits);
    it_owlvit_image_free(&r);
    it_ctx_free(&ctx);
    it_owlvit_free(&m);
}

IT_TEST(vision_owlvit_image_guided)
{
    char p[1024];
    it_err err = {0};
    it_owlvit m;
    IT_REQUIRE(it_owlvit_load(&err, &m, vfix(t, p, sizeof p, "owlvit")) == IT_OK);
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    it_owlvit_image target, query;
    IT_REQUIRE(load_image_results(t, &m, &ctx, "img_a.png", &target) == 0);
    IT_REQUIRE(load_image_results(t, &m, &ctx, "img_b.png", &query) == 0);
    float q[64], *logits = it_malloc((size_t)target.n * sizeof(float));
    size_t n = 0;
    /* the whole reference image: transformers' image_guided_detection */
    static const float whole[4] = {0, 0, 1, 1};
    IT_REQUIRE(it_owlvit_box_query(&query, whole, q) >= 0);
    it_owlvit_logits(&target, q, 1, logits);
    float *ref = vref(t, "owl.guided_logits", &n);
    if (ref && n == (size_t)target.n) VCHECK_REL("owl.guided_logits", logits, ref, n, 1e-4);
    it_free(ref);
    ref = vref(t, "owl.guided_boxes", &n);
    if (ref && n == (size_t)target.n * 4) VCHECK_REL("owl.guided_boxes", target.boxes, ref, n, 1e-4);
    it_free(ref);
    /* a box on the reference image: the same selection rule */
    float *box = vref(t, "owl.box_query", &n), *best = vref(t, "owl.box_best_index", NULL);
    IT_REQUIRE(box && best && n == 4);
    int pick = it_owlvit_box_query(&query, box, q);
    printf("    box query picks patch %d (transformers: %d)\n", pick, (int)best[0]);
    IT_CHECK_INT(pick, (int)best[0]);
    it_owlvit_logits(&target, q, 1, logits);
    ref = vref(t, "owl.box_guided_logits", &n);
    if (ref && n == (size_t)target.n) VCHECK_REL("owl.box_guided_logits", logits, ref, n, 1e-4);
    it_free(ref);
    it_free(box);
    it_free(best);
    it_free(logits);
    it_owlvit_image_free(&target);
    it_owlvit_image_free(&query);
    it_ctx_free(&ctx);
    it_owlvit_free(&m);
}

IT_TEST(vision_owlvit_box_iou_table)
{
    static const struct {
        float a[4], b[4], iou;
    } cases[] = {
        {{0, 0, 1, 1}, {0, 0, 1, 1}, 1.0f},
        {{0, 0, 1, 1}, {2, 2, 3, 3}, 0.0f},
        {{0, 0, 2, 2}, {1, 1, 3, 3}, 1.0f / 7.0f},
        {{0, 0, 2, 1}, {1, 0, 3, 1}, 1.0f / 3.0f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        IT_CHECK_NEAR(it_box_iou(cases[i].a, cases[i].b), cases[i].iou, 1e-6);
}

IT_TEST(vision_owlvit_load_errors)
{
    char p[1024];
    it_err err = {0};
    it_owlvit m;
    IT_CHECK(it_owlvit_load(&err, &m, t->tmpdir) == IT_ERR_NOT_FOUND);
    IT_CHECK_CONTAINS(err.msg, "not an OWL-ViT model folder");
    IT_CHECK(it_owlvit_load(&err, &m, vfix(t, p, sizeof p, "clip_hf")) != IT_OK);
    IT_CHECK_CONTAINS(err.msg, "projection_dim 16 must equal the text hidden_size 32");
}

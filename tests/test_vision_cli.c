/* test_vision_cli.c: the preference head against PyTorch, and the three
 * vision commands (clip score, detect, score) run as processes ($IT_BIN) on
 * the fixture models: outputs, and one-line errors on wrong inputs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "base/mem.h"
#include "image/image.h"
#include "test.h"
#include "test_vision_util.h"
#include "vision/clip.h"
#include "vision/owlvit.h"
#include "vision/preference.h"

IT_TEST(vision_pref_parity)
{
    char p[1024], q[1024];
    it_err err = {0};
    it_pref head;
    IT_REQUIRE(it_pref_load(&err, &head, vfix(t, p, sizeof p, "pref/pref_config.json"),
                            vfix(t, q, sizeof q, "pref/pref.safetensors")) == IT_OK);
    it_clip m;
    IT_REQUIRE(it_clip_load(&err, &m, vfix(t, p, sizeof p, "clip_hf")) == IT_OK);
    it_ctx ctx;
    it_ctx_init(&ctx, 0);
    static const char *imgs[3] = {"img_a.png", "img_b.png", "img_c.png"};
    float emb[3 * 16], sc[3];
    for (int i = 0; i < 3; i++) {
        it_image im = {0};
        IT_REQUIRE(it_image_load(&err, &im, vfix(t, p, sizeof p, imgs[i])) == IT_OK);
        IT_CHECK(it_clip_embed_image(&err, &ctx, &m, &im, emb + i * 16) == IT_OK);
        it_image_free(&im);
    }
    IT_REQUIRE(it_pref_score(&err, &ctx, &head, emb, 3, sc) == IT_OK);
    size_t n = 0;
    float *ref = vref(t, "pref.scores", &n);
    if (ref && n == 3) VCHECK_REL("pref.scores", sc, ref, n, 1e-4);
    it_free(ref);
    it_ctx_free(&ctx);
    it_clip_free(&m);
    it_pref_free(&head);
}

IT_TEST(vision_pref_config_errors)
{
    static const struct {
        const char *json, *msg;
    } cases[] = {
        {"{}", "h: input_dim must be a positive integer"},
        {"{\"input_dim\": 4}", "h: layers must be an array of 1 to 16 layers"},
        {"{\"input_dim\": 4, \"layers\": [{\"key\": \"a\", \"out\": 2}]}", "h: the last layer must have out 1, not 2"},
        {"{\"input_dim\": 4, \"layers\": [{\"out\": 1}]}", "h: layers[0] needs a \"key\" and a positive \"out\""},
        {"{\"input_dim\": 4, \"layers\": [{\"key\": \"a\", \"out\": 1, \"activation\": \"tanh\"}]}",
         "layers[0].activation \"tanh\": none, relu or gelu"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        it_err err = {0};
        it_pref h;
        IT_CHECK(it_pref_parse(&err, &h, cases[i].json, "h") != IT_OK);
        IT_CHECK_CONTAINS(err.msg, cases[i].msg);
    }
}

/* Runs "$IT_BIN args" with stdout to out (may be NULL) and stderr to errbuf. */
static int run_bin(it_test_ctx *t, char *out, size_t on, char *errbuf, size_t n, const char *args)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/vision", t->fixtures); /* the command runs in the fixtures */
    it_test_cli_io io = {.out = out, .out_n = out ? on : 0, .err = errbuf, .err_n = n, .dir = dir};
    return it_test_cli(t, &io, args);
}

IT_TEST(vision_cli_outputs)
{
    static char out[65536];
    char errb[2048];
    IT_CHECK_INT(run_bin(t, out, sizeof out, errb, sizeof errb,
                         "clip score -m clip_hf -i img_a.png -i img_b.png -t 'a photo of a house' -t 'a person in black' --json"),
                 0);
    IT_CHECK_CONTAINS(out, "\"image\": \"img_b.png\"");
    IT_CHECK_CONTAINS(out, "\"text\": \"a person in black\"");
    /* the logit printed for img_a / text 0 is transformers' logits_per_image[0][0] */
    size_t n = 0;
    float *ref = vref(t, "clip.logits_per_image", &n);
    const char *lp = strstr(out, "\"logit\": ");
    IT_REQUIRE(ref && lp);
    IT_CHECK_NEAR(atof(lp + 9), ref[0], 1e-4 * (1 + fabs(ref[0])));
    it_free(ref);
    char args[2048];
    snprintf(args, sizeof args, "detect -m owlvit -i img_a.png -q 'a black jacket' --query-image img_b.png:20,90,90,225 "
                                "--threshold 0.5 --draw '%s/det.png' --json", t->tmpdir);
    IT_CHECK_INT(run_bin(t, out, sizeof out, errb, sizeof errb, args), 0);
    IT_CHECK_CONTAINS(out, "\"detections\"");
    IT_CHECK_CONTAINS(out, "\"query\": \"img_b.png:20,90,90,225\"");
    char png[1024];
    snprintf(png, sizeof png, "%s/det.png", t->tmpdir);
    it_image im = {0};
    it_err err = {0};
    IT_CHECK(it_image_load(&err, &im, png) == IT_OK);
    IT_CHECK_INT(im.w, 320);
    it_image_free(&im);
    IT_CHECK_INT(run_bin(t, out, sizeof out, errb, sizeof errb,
                         "score -m clip_hf --head pref/pref.safetensors img_a.png img_b.png --json"), 0);
    ref = vref(t, "pref.scores", &n);
    const char *sp = strstr(out, "\"score\": ");
    IT_REQUIRE(ref && sp);
    IT_CHECK_NEAR(atof(sp + 9), ref[0], 1e-4 * (1 + fabs(ref[0])));
    it_free(ref);
}

IT_TEST(vision_cli_errors)
{
    static const struct {
        const char *args;
        int rc;
        const char *msg;
    } cases[] = {
        {"clip score -m nowhere -i img_a.png -t x", 1, "nowhere: not a CLIP model folder"},
        {"clip score -m clip_hf -i clip_hf/config.json -t x", 1, "clip_hf/config.json: unknown image format"},
        {"clip score -m clip_hf -i img_a.png", 2, "at least one --text is required"},
        {"clip frobnicate", 2, "expected a subcommand: score"},
        {"detect -m nowhere -i img_a.png -q x", 1, "nowhere: not an OWL-ViT model folder"},
        {"detect -m owlvit -i img_a.png", 2, "give at least one --query or --query-image"},
        {"detect -m owlvit -i img_a.png --query-image img_b.png:1,2,3", 2, "expected REF.png:x0,y0,x1,y1"},
        {"detect -m owlvit -i img_a.png --query-image img_b.png:50,2,10,30", 2, "box needs x0 < x1 and y0 < y1"},
        {"detect -m owlvit -i img_a.png --query-image img_b.png:10,20,400,30", 1,
         "box outside img_b.png (200x300)"},
        {"detect -m owlvit -i owlvit/vocab.json -q x", 1, "owlvit/vocab.json: unknown image format"},
        {"detect -m owlvit -i img_a.png -q x --threshold 2", 2, "--threshold must be in [0, 1]"},
        {"score -m clip_hf --head nowhere/h.safetensors img_a.png", 1, "nowhere/pref_config.json"},
        {"score -m clip_hf --head pref/pref.safetensors pref/pref_config.json", 1, "unknown image format"},
        {"score -m owlvit --head pref/pref.safetensors img_a.png", 1, "owlvit/model.safetensors: vision_model: missing key"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char errb[2048];
        int rc = run_bin(t, NULL, 0, errb, sizeof errb, cases[i].args);
        if (rc != cases[i].rc) it_test_fail(t, __FILE__, __LINE__, "%s: exit %d, expected %d", cases[i].args, rc, cases[i].rc);
        IT_CHECK_CONTAINS(errb, cases[i].msg);
        IT_CHECK(strncmp(errb, "intenttuner: error: ", 20) == 0);
    }
}

/* Out of memory at every allocation of a model load returns an error (no
 * crash, no leak: the runner checks the counters), then a load succeeds. */
IT_TEST(vision_load_out_of_memory)
{
    char p[1024];
    static const char *dirs[3] = {"clip_hf", "clip_openclip", "owlvit"};
    for (int d = 0; d < 3; d++) {
        int ok = 0;
        for (long k = 0; k < 4000 && !ok; k += 1 + k / 8) {
            it_err err = {0};
            it_mem_fail_after(k, 1);
            it_status s;
            if (d < 2) {
                it_clip m;
                s = it_clip_load(&err, &m, vfix(t, p, sizeof p, dirs[d]));
                if (!s) it_clip_free(&m);
            } else {
                it_owlvit m;
                s = it_owlvit_load(&err, &m, vfix(t, p, sizeof p, dirs[d]));
                if (!s) it_owlvit_free(&m);
            }
            it_mem_fail_after(-1, 0);
            if (s == IT_OK) ok = 1;
            else IT_CHECK(s == IT_ERR_NOMEM || strstr(err.msg, "memory"));
        }
        IT_CHECK(ok);
    }
}

/* toy_parse.c: libFuzzer harness for the toy world's text inputs.
 *
 * The first byte picks what the rest is:
 *   0  a --filter spec for it_toy_filter_parse, then a sample under it;
 *   1  a caption for it_toy_caption_claims;
 *   2  attributes JSON for it_toy_attrs_from_json, rendered at 32x32 when valid.
 * Findings: crashes, sanitizer reports, it_malloc leaks, a failure without a
 * message, or a broken promise:
 *   - a filter that parses and samples gives attributes with its fixed values;
 *   - claims carry valid attribute indices and values that are -1 or in range;
 *   - attributes that load are valid and render (purpose eval). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "toy/captions.h"
#include "toy/creature.h"
#include "toy/toydraw.h"

#define CHECK(c)                                                                               \
    do {                                                                                       \
        if (!(c)) abort();                                                                     \
    } while (0)

static void fuzz_filter(const char *s)
{
    it_err e;
    it_err_clear(&e);
    it_toy_constraint c;
    it_toy_constraint_init(&c);
    if (it_toy_filter_parse(&e, &c, s) != IT_OK) {
        CHECK(e.msg[0]);
        return;
    }
    it_toy_attrs a;
    if (it_toy_sample(&e, &a, &c, 1, 2, IT_TOY_EVAL) != IT_OK) {
        CHECK(e.msg[0]);
        return;
    }
    for (int i = 0; i < IT_TOY_N_ATTRS; i++) CHECK(c.v[i] < 0 || c.v[i] == a.v[i]);
}

static void fuzz_caption(const char *s)
{
    it_toy_claim cl[32];
    int dangling = 0, n = it_toy_caption_claims(s, cl, 32, &dangling);
    CHECK(n >= 0 && dangling >= 0);
    for (int k = 0; k < n && k < 32; k++) {
        CHECK(cl[k].attr >= 0 && cl[k].attr <= IT_TOY_N_ATTRS);
        int nv = cl[k].attr == IT_TOY_N_ATTRS ? 1000 : it_toy_attr_get(cl[k].attr)->n_values;
        CHECK(cl[k].value >= -1 && cl[k].value < nv);
    }
}

static void fuzz_json(const char *s, size_t n)
{
    json_error_t je;
    json_t *j = json_loadb(s, n, 0, &je);
    if (!j) return;
    it_err e;
    it_err_clear(&e);
    it_toy_attrs a;
    if (it_toy_attrs_from_json(&e, &a, j) == IT_OK) {
        it_toy_renderer r;
        uint8_t rgb[32 * 32 * 3];
        CHECK(it_toy_renderer_init(&e, &r, 32, 32) == IT_OK);
        CHECK(it_toy_render(&e, &r, &a, IT_TOY_EVAL, rgb, NULL, NULL) == IT_OK);
        it_toy_renderer_free(&r);
    } else {
        CHECK(e.msg[0]);
    }
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096) return 0;
    size_t live = it_mem_live_blocks();
    char *s = it_malloc(size);
    CHECK(s);
    memcpy(s, data + 1, size - 1);
    s[size - 1] = 0;
    switch (data[0] % 3) {
    case 0: fuzz_filter(s); break;
    case 1: fuzz_caption(s); break;
    default: fuzz_json(s, size - 1); break;
    }
    it_free(s);
    CHECK(it_mem_live_blocks() == live);
    return 0;
}

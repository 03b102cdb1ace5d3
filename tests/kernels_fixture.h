/* kernels_fixture.h: helpers shared by test_attention.c and test_optim.c.
 *
 * Inputs of the PyTorch fixtures are not stored: kf_value(seed, i) is an
 * integer hash mapped to a float32 in [-1, 1) that
 * tools/gen_kernels_fixtures.py computes bit-identically (kf_values()).
 * The fixtures (tests/fixtures/kernels/<name>.json + .bin) hold the reference
 * outputs: the manifest gives each array's offset and length in floats. */
#ifndef IT_KERNELS_FIXTURE_H
#define IT_KERNELS_FIXTURE_H

#include <jansson.h>
#include <stdint.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "test.h"

static inline float kf_value(uint32_t seed, uint32_t i)
{
    uint32_t x = seed * 0x9E3779B9u + i * 0x85EBCA6Bu;
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    x ^= x >> 16;
    return (float)((double)(x >> 8) * (1.0 / 8388608.0) - 1.0);
}

static inline void kf_fill(float *x, size_t n, uint32_t seed, float amp)
{
    for (size_t i = 0; i < n; i++) x[i] = kf_value(seed, (uint32_t)i) * amp;
}

typedef struct kf_fixture {
    json_t *root;   /* the manifest */
    uint8_t *blob;  /* the .bin file */
    size_t n;       /* floats in blob */
} kf_fixture;

static inline int kf_load(it_test_ctx *t, kf_fixture *f, const char *name)
{
    char path[1024];
    it_err e;
    json_error_t je;
    memset(f, 0, sizeof *f);
    snprintf(path, sizeof path, "%s/kernels/%s.json", t->fixtures, name);
    f->root = json_load_file(path, 0, &je);
    if (!f->root) {
        it_test_fail(t, __FILE__, __LINE__, "%s: %s", path, je.text);
        return 0;
    }
    snprintf(path, sizeof path, "%s/kernels/%s.bin", t->fixtures, name);
    size_t bytes = 0;
    if (it_file_read(&e, &f->blob, &bytes, path, (size_t)1 << 26) != IT_OK) {
        it_test_fail(t, __FILE__, __LINE__, "%s", e.msg);
        json_decref(f->root);
        return 0;
    }
    f->n = bytes / sizeof(float);
    return 1;
}

static inline void kf_free(kf_fixture *f)
{
    json_decref(f->root);
    it_free(f->blob);
}

/* Array `name` of a case; NULL (and a test failure) if missing, out of the
 * blob or not of the expected length. */
static inline const float *kf_array(it_test_ctx *t, const kf_fixture *f, json_t *c,
                                    const char *name, size_t expect)
{
    json_t *a = json_object_get(json_object_get(c, "arrays"), name);
    size_t off = (size_t)json_integer_value(json_array_get(a, 0));
    size_t n = (size_t)json_integer_value(json_array_get(a, 1));
    if (!a || n != expect || off + n > f->n) {
        it_test_fail(t, __FILE__, __LINE__, "fixture array %s: %zu floats at %zu, expected %zu",
                     name, n, off, expect);
        return NULL;
    }
    return (const float *)f->blob + off;
}

static inline int kf_int(json_t *c, const char *key)
{
    return (int)json_integer_value(json_object_get(c, key));
}

static inline double kf_num(json_t *c, const char *key)
{
    return json_number_value(json_object_get(c, key));
}

/* Max |a - b| / max(max|b|, floor): error normalised by the reference's scale. */
static inline double kf_norm_err(const float *a, const float *b, size_t n, double floor)
{
    double mx = floor, d = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(b[i]) > mx) mx = fabs(b[i]);
        double e = fabs((double)a[i] - b[i]);
        if (e > d || e != e) d = e;
    }
    return d / mx;
}

#endif

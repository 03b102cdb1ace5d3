/* test_vision_util.h: shared helpers of the vision tests: fixture paths,
 * reference tensors from vision_io.safetensors, relative error. */
#ifndef IT_TEST_VISION_UTIL_H
#define IT_TEST_VISION_UTIL_H

#include <math.h>
#include <stdio.h>

#include "base/mem.h"
#include "tensor/safetensors.h"
#include "test.h"

static inline const char *vfix(it_test_ctx *t, char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/vision/%s", t->fixtures, name);
    return buf;
}

/* Reference tensor NAME as floats (it_free), element count in *n. */
static inline float *vref(it_test_ctx *t, const char *name, size_t *n)
{
    char p[1024];
    it_err err = {0};
    it_safetensors *f = NULL;
    if (it_safetensors_open(&err, &f, vfix(t, p, sizeof p, "vision_io.safetensors"))) {
        it_test_fail(t, __FILE__, __LINE__, "%s", err.msg);
        return NULL;
    }
    const it_safetensors_tensor *st = it_safetensors_find(f, name);
    float *d = st ? it_malloc((size_t)st->numel * sizeof(float)) : NULL;
    if (!d || it_safetensors_load_f32(&err, f, st, d, (size_t)st->numel)) {
        it_test_fail(t, __FILE__, __LINE__, "reference %s: %s", name, st ? err.msg : "absent");
        it_free(d);
        d = NULL;
    } else if (n) {
        *n = (size_t)st->numel;
    }
    it_safetensors_close(f);
    return d;
}

/* max |a - b| / max |b|: the normalised error of the whole output. */
static inline double vrel(const float *a, const float *b, size_t n)
{
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > md || d != d) md = d;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return mb > 0 ? md / mb : md;
}

#define VCHECK_REL(what, a, b, n, tol)                                                   \
    do {                                                                                 \
        double it_r_ = vrel((a), (b), (n));                                              \
        printf("    %-28s max rel err %.3g\n", (what), it_r_);                           \
        if (!(it_r_ <= (tol)))                                                           \
            it_test_fail(t, __FILE__, __LINE__, "%s: rel err %.3g > %g (ours %g ref %g)", \
                         (what), it_r_, (double)(tol), (double)(a)[0], (double)(b)[0]);  \
    } while (0)

#endif

/* test_image_util.h: helpers shared by the image tests: PAM fixtures (the
 * expected pixels written by tools/gen_image_fixtures.py) and comparisons. */
#ifndef IT_TEST_IMAGE_FIXTURE_H
#define IT_TEST_IMAGE_FIXTURE_H

#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "image/image.h"
#include "test.h"

/* Reads a PAM (P7) file written by the generator into img. */
static inline it_status itest_load_pam(it_err *e, it_image *img, const char *path)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    IT_TRY(it_file_read(e, &buf, &n, path, 64u << 20));
    int w = 0, h = 0, c = 0;
    const char *end = strstr((const char *)buf, "ENDHDR\n");
    const char *pw = strstr((const char *)buf, "WIDTH "), *ph = strstr((const char *)buf, "HEIGHT ");
    const char *pc = strstr((const char *)buf, "DEPTH ");
    if (memcmp(buf, "P7\n", 3) != 0 || !end || !pw || !ph || !pc) {
        it_free(buf);
        return it_err_set(e, IT_ERR_FORMAT, "%s: not a PAM file", path);
    }
    w = atoi(pw + 6), h = atoi(ph + 7), c = atoi(pc + 6);
    size_t off = (size_t)(end - (const char *)buf) + 7;
    it_status s = it_image_alloc(e, img, w, h, c);
    if (s == IT_OK && n - off != (size_t)w * h * c)
        s = it_err_set(e, IT_ERR_FORMAT, "%s: %zu pixel bytes, expected %d", path, n - off, w * h * c);
    if (s == IT_OK) memcpy(img->data, buf + off, (size_t)w * h * c);
    else it_image_free(img);
    it_free(buf);
    return s;
}

/* Max |a-b| over all samples, and how many samples are exactly equal;
 * -1 when the shapes differ. */
static inline int itest_image_diff(const it_image *a, const it_image *b, size_t *n_equal)
{
    if (a->w != b->w || a->h != b->h || a->c != b->c) return -1;
    int m = 0;
    size_t eq = 0, n = (size_t)a->w * a->h * a->c;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a->data[i] - (int)b->data[i]);
        if (d > m) m = d;
        eq += d == 0;
    }
    if (n_equal) *n_equal = eq;
    return m;
}

#endif

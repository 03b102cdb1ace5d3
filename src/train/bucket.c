/* bucket.c: kohya's aspect-ratio buckets. */
#include "train/bucket.h"

#include <math.h>
#include <stdlib.h>

static int cmp_bucket(const void *pa, const void *pb)
{
    const it_bucket *a = pa, *b = pb;
    return a->w != b->w ? a->w - b->w : a->h - b->h;
}

static int add_unique(it_bucket *out, int *n, int w, int h)
{
    for (int i = 0; i < *n; i++)
        if (out[i].w == w && out[i].h == h) return 0;
    if (*n >= IT_BUCKET_MAX) return -1;
    out[(*n)++] = (it_bucket){w, h};
    return 0;
}

it_status it_buckets_make(it_err *err, it_bucket *out, int *n, int res, int min_side, int max_side,
                          int step)
{
    *n = 0;
    if (step <= 0 || res < step)
        return it_err_set(err, IT_ERR_ARG, "buckets: resolution %d must be at least the step %d", res, step);
    min_side = (min_side + step - 1) / step * step;
    max_side = max_side / step * step;
    if (min_side < step) min_side = step;
    if (max_side < min_side)
        return it_err_set(err, IT_ERR_ARG, "buckets: max side %d is below min side %d (step %d)", max_side,
                          min_side, step);
    /* make_bucket_resolutions: the square of the area, then for every width
     * from min to max the tallest height (multiple of step) whose area stays
     * within res^2, and its transpose. */
    long area = (long)res * res;
    int sq = (int)(sqrt((double)area) / step) * step;
    int bad = add_unique(out, n, sq, sq);
    for (int w = min_side; !bad && w <= max_side; w += step) {
        long h = area / w / step * step;
        if (h > max_side) h = max_side;
        if (h < min_side) continue;
        bad = add_unique(out, n, w, (int)h) || add_unique(out, n, (int)h, w);
    }
    if (bad) return it_err_set(err, IT_ERR_RANGE, "buckets: more than %d buckets (step %d too small)", IT_BUCKET_MAX, step);
    qsort(out, (size_t)*n, sizeof *out, cmp_bucket);
    return IT_OK;
}

int it_bucket_select(const it_bucket *b, int n, int w, int h)
{
    double ar = (double)w / h, best = INFINITY;
    int k = 0;
    for (int i = 0; i < n; i++) {
        double e = fabs((double)b[i].w / b[i].h - ar);
        if (e < best) best = e, k = i;
    }
    return k;
}

void it_bucket_cover(int w, int h, it_bucket b, int *rw, int *rh)
{
    /* select_bucket: an image wider than the bucket is fitted by height
     * (its width overflows and is cropped), a taller one by width. */
    double ar = (double)w / h, ar_b = (double)b.w / b.h;
    double scale = ar_b < ar ? (double)b.h / h : (double)b.w / w;
    *rw = (int)(w * scale + 0.5);
    *rh = (int)(h * scale + 0.5);
    if (*rw < b.w) *rw = b.w;
    if (*rh < b.h) *rh = b.h;
}

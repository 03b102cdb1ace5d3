/* bucket.h: aspect-ratio buckets for training images, as kohya's
 * sd-scripts makes them (library/model_util.py make_bucket_resolutions and
 * train_util.BucketManager.select_bucket).
 *
 * Owns: the list of bucket sizes for a resolution (every side a multiple of
 * `step` between min_side and max_side, area at most resolution^2, both
 * orientations, plus the largest square), choosing the bucket whose aspect
 * ratio is closest to an image's, and the size an image is resized to so
 * that it covers its bucket without distortion (the excess, less than one
 * step on one axis in practice, is cropped). Does not own images, crops or
 * the batch order (dataset.h). */
#ifndef IT_BUCKET_H
#define IT_BUCKET_H

#include "base/status.h"

#define IT_BUCKET_MAX 256

typedef struct it_bucket {
    int w, h;             /* pixels, multiples of step */
} it_bucket;

/* Buckets for res x res of area, sorted by (w, h). min_side/max_side are
 * clamped to multiples of step; step > 0. Errors: no bucket fits the limits,
 * more than IT_BUCKET_MAX buckets. */
it_status it_buckets_make(it_err *err, it_bucket *out, int *n, int res, int min_side, int max_side,
                          int step);

/* Index of the bucket whose aspect ratio w / h is closest to the image's
 * (ties: the first, i.e. the narrower). */
int it_bucket_select(const it_bucket *b, int n, int w, int h);

/* Size (*rw, *rh) of a w x h image resized to cover bucket b: the axis with
 * the relatively larger excess is fitted exactly, the other rounded and at
 * least the bucket's side. */
void it_bucket_cover(int w, int h, it_bucket b, int *rw, int *rh);

#endif

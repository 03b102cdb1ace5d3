/* image_fuzz.h: the body shared by the PNG, JPEG and WebP decoder harnesses.
 *
 * Feeds arbitrary bytes to a format's probe and decode (codecs.h). Any
 * crash, sanitizer report, leak of it_malloc blocks (checked after every
 * input) or a success without a plausible image is a finding. Inputs whose
 * header declares more than FUZZ_MAX_PIXELS are only probed: a legal
 * image of tens of millions of pixels can come from a few hundred bytes
 * (libjpeg fills missing data) and takes seconds natively, and even a
 * 1.6M-pixel one took over 10 s under ASan on the loaded build machine:
 * such inputs only make the fuzzer time out. The size limits themselves
 * are unit-tested. */
#ifndef IT_IMAGE_FUZZ_H
#define IT_IMAGE_FUZZ_H

#include <stdint.h>
#include <stdlib.h>

#include "base/mem.h"
#include "image/codecs.h"

#define FUZZ_MAX_PIXELS (1L << 20)

typedef it_status (*fuzz_probe_fn)(it_err *err, it_image_info *info, const uint8_t *data, size_t n);
typedef it_status (*fuzz_decode_fn)(it_err *err, it_image *out, const uint8_t *data, size_t n);

static int fuzz_image_one(fuzz_probe_fn probe, fuzz_decode_fn decode, const uint8_t *data, size_t size)
{
    size_t live = it_mem_live_blocks();
    it_err err;
    it_image_info info;
    if (probe(&err, &info, data, size) == IT_OK && (long)info.w * info.h > FUZZ_MAX_PIXELS)
        return 0;
    it_image img;
    if (decode(&err, &img, data, size) == IT_OK) {
        if (!img.data || img.w <= 0 || img.h <= 0 || img.c < 1 || img.c > 4) abort();
        /* First and last byte: ASan reports a buffer shorter than w*h*c. */
        volatile uint8_t edge = img.data[0];
        edge = img.data[(size_t)img.w * img.h * img.c - 1];
        (void)edge;
        it_image_free(&img);
    } else if (img.data || err.msg[0] == 0) {
        abort(); /* failures must leave no image and must say why */
    }
    if (it_mem_live_blocks() != live) abort();
    return 0;
}

#endif

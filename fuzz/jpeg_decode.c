/* jpeg_decode.c: libFuzzer harness for the JPEG decoder and probe.
 *
 * Feeds arbitrary bytes to it_jpeg_probe and it_jpeg_decode (codecs.h). Any
 * crash, sanitizer report, leak of it_malloc blocks (checked after every
 * input) or a success without a plausible image is a finding. */
#include <stdint.h>
#include <stdlib.h>

#include "base/mem.h"
#include "image/codecs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t live = it_mem_live_blocks();
    it_err err;
    it_image_info info;
    (void)it_jpeg_probe(&err, &info, data, size);
    it_image img;
    if (it_jpeg_decode(&err, &img, data, size) == IT_OK) {
        if (!img.data || img.w <= 0 || img.h <= 0 || img.c < 1 || img.c > 4) abort();
        /* Touch every byte so that uninitialised or short buffers show up. */
        unsigned sum = 0;
        for (size_t i = 0; i < (size_t)img.w * img.h * img.c; i++) sum += img.data[i];
        (void)sum;
        it_image_free(&img);
    } else if (img.data || err.msg[0] == 0) {
        abort(); /* failures must leave no image and must say why */
    }
    if (it_mem_live_blocks() != live) abort();
    return 0;
}

/* webp_decode.c: libFuzzer harness for the WEBP decoder and probe; the
 * checks are in image_fuzz.h, shared with the other image formats. */
#include "image_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_image_one(it_webp_probe, it_webp_decode, data, size);
}

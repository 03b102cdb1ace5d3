/* intent_image.c: the default image-size reader for reference boxes.
 *
 * A reference box is checked against the size of its image. The image
 * module's it_image_info_file had not landed when this was written, so this
 * reads the size from the PNG IHDR chunk or the JPEG SOFn marker itself,
 * with bounds checks on every read, and nothing else (no decoding). It sits
 * behind the it_image_size_fn interface; switching to it_image_info_file is a
 * one-line change. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "intent/hierarchy.h"

#define HEAD_MAX (1u << 20) /* a JPEG's SOF marker must come within 1 MiB */

static unsigned be16(const uint8_t *p) { return (unsigned)p[0] << 8 | p[1]; }
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

static it_status png_size(it_err *err, const uint8_t *b, size_t n, const char *path, int *w, int *h)
{
    /* signature (8), chunk length (4), "IHDR" (4), width (4), height (4) */
    if (n < 24 || memcmp(b + 12, "IHDR", 4) != 0)
        return it_err_set(err, IT_ERR_FORMAT, "%s: PNG without an IHDR header", path);
    uint32_t W = be32(b + 16), H = be32(b + 20);
    if (W == 0 || H == 0 || W > (1u << 20) || H > (1u << 20))
        return it_err_set(err, IT_ERR_FORMAT, "%s: PNG size %ux%u is not plausible", path, W, H);
    *w = (int)W;
    *h = (int)H;
    return IT_OK;
}

static it_status jpeg_size(it_err *err, const uint8_t *b, size_t n, const char *path, int *w, int *h)
{
    size_t i = 2;
    while (i + 4 <= n) {
        if (b[i] != 0xFF) return it_err_set(err, IT_ERR_FORMAT, "%s: JPEG marker expected at byte %zu", path, i);
        uint8_t m = b[i + 1];
        if (m == 0xFF) {
            i++;
            continue;
        }
        if (m == 0xD8 || (m >= 0xD0 && m <= 0xD7) || m == 0x01) {
            i += 2;
            continue;
        }
        unsigned len = be16(b + i + 2);
        if (len < 2) return it_err_set(err, IT_ERR_FORMAT, "%s: JPEG segment of length %u at byte %zu", path, len, i);
        int sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
        if (sof) {
            if (i + 9 > n || len < 7) break;
            unsigned H = be16(b + i + 5), W = be16(b + i + 7);
            if (W == 0 || H == 0) return it_err_set(err, IT_ERR_FORMAT, "%s: JPEG size %ux%u", path, W, H);
            *w = (int)W;
            *h = (int)H;
            return IT_OK;
        }
        if (m == 0xD9 || m == 0xDA) break;
        i += 2 + len;
    }
    return it_err_set(err, IT_ERR_FORMAT, "%s: no JPEG frame header (SOF) found", path);
}

it_status it_intent_image_size(it_err *err, const char *path, int *w, int *h)
{
    FILE *f = fopen(path, "rb");
    if (!f) return it_err_set(err, IT_ERR_IO, "cannot open image %s", path);
    uint8_t *buf = it_malloc(HEAD_MAX);
    if (!buf) {
        fclose(f);
        return it_err_set(err, IT_ERR_NOMEM, "out of memory reading %s", path);
    }
    size_t n = fread(buf, 1, HEAD_MAX, f);
    fclose(f);
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    it_status s;
    if (n >= 8 && !memcmp(buf, png_sig, 8)) s = png_size(err, buf, n, path, w, h);
    else if (n >= 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF) s = jpeg_size(err, buf, n, path, w, h);
    else s = it_err_set(err, IT_ERR_UNSUPPORTED, "%s: not a PNG or JPEG image", path);
    it_free(buf);
    return s;
}

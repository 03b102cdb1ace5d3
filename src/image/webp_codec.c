/* webp_codec.c: WebP decoding with libwebp (lossy, lossless, alpha,
 * animated: first frame).
 *
 * Owns: the libwebp glue. libwebp reports errors by return codes, so there is
 * no longjmp here. Its internal allocations use the C allocator and are
 * released by each call. An animated file decodes to its first frame
 * composited on the canvas (WebPAnimDecoder), like Pillow's first frame.
 * An EXIF chunk's orientation is applied, as for JPEG. */
#include <string.h>
#include <webp/decode.h>
#include <webp/demux.h>

#include "base/mem.h"
#include "image/codecs.h"
#include "image/exif.h"
#include "image/geom.h"

static const char *vp8_status_name(VP8StatusCode s)
{
    switch (s) {
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "suspended";
    case VP8_STATUS_USER_ABORT: return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "file is truncated";
    default: return "error";
    }
}

/* Orientation from the EXIF chunk of an extended (VP8X) file; 1 if none. */
static int webp_orientation(const uint8_t *data, size_t n)
{
    WebPData wd = {data, n};
    WebPDemuxer *dmx = WebPDemux(&wd);
    if (!dmx) return 1;
    int o = 1;
    WebPChunkIterator it;
    if (WebPDemuxGetI(dmx, WEBP_FF_FORMAT_FLAGS) & EXIF_FLAG) {
        if (WebPDemuxGetChunk(dmx, "EXIF", 1, &it)) {
            o = it_exif_orientation(it.chunk.bytes, it.chunk.size);
            WebPDemuxReleaseChunkIterator(&it);
        }
    }
    WebPDemuxDelete(dmx);
    return o;
}

static it_status webp_features(it_err *err, WebPBitstreamFeatures *f, const uint8_t *data, size_t n)
{
    VP8StatusCode s = WebPGetFeatures(data, n, f);
    if (s != VP8_STATUS_OK) return it_err_set(err, IT_ERR_FORMAT, "WebP: %s", vp8_status_name(s));
    if (it_image_check_size(err, f->width, f->height) != IT_OK) return it_err_prefix(err, "WebP");
    return IT_OK;
}

it_status it_webp_probe(it_err *err, it_image_info *info, const uint8_t *data, size_t n)
{
    WebPBitstreamFeatures f;
    IT_TRY(webp_features(err, &f, data, n));
    memset(info, 0, sizeof *info);
    info->format = IT_IMG_WEBP;
    info->exif_orientation = webp_orientation(data, n);
    int swap = info->exif_orientation >= 5;
    info->w = swap ? f.height : f.width;
    info->h = swap ? f.width : f.height;
    /* Animations decode through the RGBA canvas (see it_webp_decode). */
    int alpha = f.has_alpha || f.has_animation;
    info->channels = alpha ? 4 : 3;
    info->bit_depth = 8;
    snprintf(info->mode, sizeof info->mode, "%s", alpha ? "RGBA" : "RGB");
    return IT_OK;
}

/* First frame of an animation, RGBA, through the animation decoder. */
static it_status webp_decode_anim(it_err *err, it_image *img, const uint8_t *data, size_t n)
{
    WebPAnimDecoderOptions opt;
    if (!WebPAnimDecoderOptionsInit(&opt))
        return it_err_set(err, IT_ERR_INTERNAL, "WebP: libwebp version mismatch");
    opt.color_mode = MODE_RGBA;
    opt.use_threads = 0;
    WebPData wd = {data, n};
    WebPAnimDecoder *dec = WebPAnimDecoderNew(&wd, &opt);
    if (!dec) return it_err_set(err, IT_ERR_FORMAT, "WebP: cannot parse the animation");
    WebPAnimInfo ai;
    uint8_t *buf = NULL;
    int ts = 0;
    it_status s = IT_OK;
    if (!WebPAnimDecoderGetInfo(dec, &ai)) {
        s = it_err_set(err, IT_ERR_FORMAT, "WebP: cannot read the animation header");
    } else if (it_image_check_size(err, ai.canvas_width, ai.canvas_height) != IT_OK) {
        s = it_err_prefix(err, "WebP");
    } else if (!WebPAnimDecoderGetNext(dec, &buf, &ts)) {
        s = it_err_set(err, IT_ERR_FORMAT, "WebP: cannot decode the first animation frame");
    } else {
        s = it_image_alloc(err, img, (int)ai.canvas_width, (int)ai.canvas_height, 4);
        if (s == IT_OK) memcpy(img->data, buf, (size_t)img->w * img->h * 4);
    }
    WebPAnimDecoderDelete(dec);
    return s;
}

it_status it_webp_decode(it_err *err, it_image *out, const uint8_t *data, size_t n)
{
    memset(out, 0, sizeof *out);
    WebPBitstreamFeatures f;
    IT_TRY(webp_features(err, &f, data, n));
    it_image img;
    if (f.has_animation) {
        IT_TRY(webp_decode_anim(err, &img, data, n));
    } else {
        int c = f.has_alpha ? 4 : 3;
        IT_TRY(it_image_alloc(err, &img, f.width, f.height, c));
        size_t stride = (size_t)f.width * c, size = stride * f.height;
        uint8_t *ok = c == 4 ? WebPDecodeRGBAInto(data, n, img.data, size, (int)stride)
                             : WebPDecodeRGBInto(data, n, img.data, size, (int)stride);
        if (!ok) {
            it_image_free(&img);
            /* Decode again incrementally only to learn why: the simple API
             * returns NULL without a reason. */
            WebPDecoderConfig cfg;
            VP8StatusCode s = VP8_STATUS_BITSTREAM_ERROR;
            if (WebPInitDecoderConfig(&cfg)) {
                cfg.output.colorspace = MODE_RGB;
                s = WebPDecode(data, n, &cfg);
                WebPFreeDecBuffer(&cfg.output);
            }
            if (s == VP8_STATUS_OK) s = VP8_STATUS_BITSTREAM_ERROR;
            return it_err_set(err, IT_ERR_FORMAT, "WebP: %s", vp8_status_name(s));
        }
    }
    int o = webp_orientation(data, n);
    if (o == 1) {
        *out = img;
        return IT_OK;
    }
    it_status s = it_image_orient(err, out, &img, o);
    it_image_free(&img);
    return s;
}

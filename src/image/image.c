/* image.c: the it_image type's lifetime and size limits.
 *
 * Owns: allocation and freeing of it_image pixels and the size policy that
 * every decoder applies to header dimensions before allocating. Decoders,
 * encoders and conversions live in image_io.c and the per-format files. */
#include "image/image.h"

#include <string.h>

#include "base/mem.h"

it_status it_image_check_size(it_err *err, long w, long h)
{
    if (w <= 0 || h <= 0)
        return it_err_set(err, IT_ERR_RANGE, "image size %ldx%ld is empty", w, h);
    if (w > IT_IMAGE_MAX_DIM || h > IT_IMAGE_MAX_DIM)
        return it_err_set(err, IT_ERR_RANGE, "image size %ldx%ld exceeds the limit of %d per side",
                          w, h, IT_IMAGE_MAX_DIM);
    if ((long long)w * h > IT_IMAGE_MAX_PIXELS)
        return it_err_set(err, IT_ERR_RANGE, "image size %ldx%ld exceeds the limit of %ld pixels",
                          w, h, (long)IT_IMAGE_MAX_PIXELS);
    return IT_OK;
}

it_status it_image_alloc(it_err *err, it_image *img, int w, int h, int c)
{
    memset(img, 0, sizeof *img);
    if (c < 1 || c > 4)
        return it_err_set(err, IT_ERR_ARG, "image channel count %d is not 1-4", c);
    IT_TRY(it_image_check_size(err, w, h));
    img->data = it_malloc((size_t)w * h * c);
    if (!img->data) return it_err_set(err, IT_ERR_NOMEM, "out of memory for a %dx%dx%d image", w, h, c);
    img->w = w;
    img->h = h;
    img->c = c;
    return IT_OK;
}

void it_image_free(it_image *img)
{
    if (!img) return;
    it_free(img->data);
    memset(img, 0, sizeof *img);
}

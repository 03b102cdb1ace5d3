/* image_io.c: format-neutral decoding, probing, loading and saving.
 *
 * Owns: format sniffing by magic bytes, dispatch to the per-format codecs in
 * codecs.h, file loading (size-capped) and atomic saving. Does not own the
 * codecs themselves or pixel conversions (convert.c). */
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "image/codecs.h"
#include "image/image.h"

it_status it_image_save_png(it_err *err, const it_image *img, const char *path)
{
    it_atomic_file f;
    IT_TRY(it_atomic_open(err, &f, path));
    it_status s = it_png_write(err, f.fp, img, path);
    if (s != IT_OK) {
        it_atomic_abort(&f);
        return s;
    }
    return it_atomic_commit(err, &f);
}

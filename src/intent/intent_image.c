/* intent_image.c: the default image-size reader for reference boxes.
 *
 * A reference box is drawn on the image as people see it, so it is checked
 * against the displayed size: the image module's header probe, which
 * already swaps width and height for EXIF orientations 5-8. Kept behind the
 * it_image_size_fn interface so that tests and the fuzzers can check boxes
 * without files. */
#include "image/image.h"
#include "intent/hierarchy.h"

it_status it_intent_image_size(it_err *err, const char *path, int *w, int *h)
{
    it_image_info info;
    IT_TRY(it_image_info_file(err, &info, path));
    *w = info.w;
    *h = info.h;
    return IT_OK;
}

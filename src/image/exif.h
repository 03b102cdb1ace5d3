/* exif.h: the few EXIF facts we read (the orientation tag).
 *
 * Owns: a bounds-checked reader of a TIFF-structured Exif block (the payload
 * of a JPEG APP1 "Exif\0\0" segment, a WebP EXIF chunk or a PNG eXIf chunk).
 * Does not own applying the orientation to pixels (geom.h: it_image_orient). */
#ifndef IT_EXIF_H
#define IT_EXIF_H

#include <stddef.h>
#include <stdint.h>

/* Returns the Orientation tag (0x0112) of IFD0, 1..8, or 1 when absent or
 * malformed (an unreadable orientation is not a reason to reject an image).
 * data starts at the TIFF header ("II*\0" or "MM\0*"); a leading
 * "Exif\0\0" is skipped. */
int it_exif_orientation(const uint8_t *data, size_t n);

#endif

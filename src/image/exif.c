/* exif.c: reads the orientation tag from an Exif (TIFF) block.
 *
 * Layout (TIFF 6.0 / Exif 2.3): byte order "II" or "MM", the magic 42, the
 * offset of IFD0; an IFD is a 16-bit entry count then 12-byte entries
 * (tag u16, type u16, count u32, value-or-offset u32). The orientation is a
 * SHORT (type 3) with count 1, stored in the first two bytes of the value
 * field. Every offset is checked against the block before it is read. */
#include "image/exif.h"

#include <string.h>

static unsigned rd16(const uint8_t *p, int le) { return le ? p[0] | p[1] << 8 : p[0] << 8 | p[1]; }

static uint32_t rd32(const uint8_t *p, int le)
{
    return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
              : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

int it_exif_orientation(const uint8_t *data, size_t n)
{
    if (!data) return 1;
    if (n >= 6 && memcmp(data, "Exif\0\0", 6) == 0) {
        data += 6;
        n -= 6;
    }
    if (n < 8) return 1;
    int le;
    if (data[0] == 'I' && data[1] == 'I') le = 1;
    else if (data[0] == 'M' && data[1] == 'M') le = 0;
    else return 1;
    if (rd16(data + 2, le) != 42) return 1;
    uint32_t ifd = rd32(data + 4, le);
    if (ifd > n || n - ifd < 2) return 1;
    unsigned count = rd16(data + ifd, le);
    size_t room = (n - ifd - 2) / 12;
    if (count > room) count = (unsigned)room; /* a truncated IFD: read what is there */
    for (unsigned i = 0; i < count; i++) {
        const uint8_t *e = data + ifd + 2 + (size_t)i * 12;
        if (rd16(e, le) != 0x0112) continue;
        /* Type SHORT, count 1 is the standard; some writers use LONG. */
        unsigned type = rd16(e + 2, le);
        uint32_t cnt = rd32(e + 4, le);
        unsigned v;
        if (type == 3 && cnt >= 1) v = rd16(e + 8, le);
        else if (type == 4 && cnt >= 1) v = (unsigned)rd32(e + 8, le);
        else return 1;
        return v >= 1 && v <= 8 ? (int)v : 1;
    }
    return 1;
}

/* refs.h: visual references: the [n] marks in intent text and --ref specs.
 *
 * Owns: the syntax of reference marks ([1], [1,2], [1, 2], [1][2]) and its
 * errors (unclosed or unmatched brackets, non-numeric marks, numbers out of
 * range), and the command-line form of a reference, N=IMAGE:x0,y0,x1,y1.
 * Does not own checking a box against its image (hierarchy.c validates, with
 * an it_image_size_fn) or which concept a mark belongs to (parser.c). */
#ifndef IT_REFS_H
#define IT_REFS_H

#include <stddef.h>

#include "base/status.h"
#include "intent/hierarchy.h"

/* One reference number cited in a text: the group it is in starts at offset
 * and spans len bytes ("[1,2]" gives two mentions with the same span). */
typedef struct it_ref_mention {
    int n;
    size_t offset, len;
} it_ref_mention;

/* Parses the bracket group that starts at text[pos] == '['. On success puts
 * its numbers in ns[0..*n_ns-1] (at most max_ns) and the offset just past ']'
 * in *end. Errors name the offset and quote the group. */
it_status it_refs_group(it_err *err, int *ns, int max_ns, int *n_ns, size_t *end,
                        const char *text, size_t len, size_t pos);

/* Finds every reference mention in text (at most max). A ']' without '[' is
 * an error too. */
it_status it_refs_scan(it_err *err, it_ref_mention *out, int max, int *n_out, const char *text,
                       size_t len);

/* Parses "N=IMAGE:x0,y0,x1,y1" (the image path may itself contain ':' or
 * '='; the box is after the last ':') and appends the reference to in. */
it_status it_refs_add_spec(it_err *err, it_intent *in, const char *spec);

#endif

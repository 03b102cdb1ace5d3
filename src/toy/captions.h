/* captions.h: templated English captions of toy images, and their parser.
 *
 * Owns: caption generation (short, long and tag-list styles; synonyms from
 * the schema's caption words; clause order shuffled; a random subset of the
 * true attributes, the way people caption) and the inverse: a parser that
 * reads the attribute claims back out of a caption using the same
 * vocabulary. The parser is what lets tests prove that a caption never
 * states a false attribute. Does not own the vocabulary itself (the
 * `words` of each value in creature.c) or caption refinement (src/pipeline). */
#ifndef IT_CAPTIONS_H
#define IT_CAPTIONS_H

#include <stdint.h>

#include "base/status.h"
#include "toy/creature.h"

typedef enum it_toy_caption_style {
    IT_TOY_CAP_SHORT, /* 1-3 attributes: "a blue creature with red hair" */
    IT_TOY_CAP_LONG,  /* 5-10 attributes in full clauses */
    IT_TOY_CAP_TAGS,  /* comma-separated tags: "creature, blue skin, red hair, jacket" */
} it_toy_caption_style;

#define IT_TOY_CAPTION_MAX 640
/* Bit in `mentioned` standing for the character's name. */
#define IT_TOY_MENTION_CHARACTER (1u << IT_TOY_N_ATTRS)

typedef struct it_toy_caption {
    char text[IT_TOY_CAPTION_MAX];
    uint32_t mentioned; /* bit a set when attribute a is stated */
} it_toy_caption;

/* Caption variant `variant` of an image; a pure function of its arguments.
 * with_name: start with the character's name when it has one (scenario
 * training captions leave it out: the pipeline adds the trigger word).
 * exclude: attribute bits never to mention. */
it_status it_toy_caption_make(it_err *err, it_toy_caption *out, const it_toy_attrs *a,
                              it_toy_caption_style style, int with_name, uint32_t exclude,
                              uint64_t seed, uint64_t index, int variant);

/* One claim read from a caption: attribute (IT_TOY_N_ATTRS = character) and
 * value index; value -1 when the words do not name a value of that
 * attribute (a caption bug). */
typedef struct it_toy_claim {
    int attr;
    int value;
} it_toy_claim;

/* Parses text; writes at most max claims and returns how many were found
 * (may exceed max). *dangling counts modifiers (a colour, a pattern) that
 * were not attached to any noun. */
int it_toy_caption_claims(const char *text, it_toy_claim *out, int max, int *dangling);

#endif

/* creature.h: the toy world's attribute schema, constraints and sampling.
 *
 * Owns: every attribute of a toy creature and its values (names, colours,
 * caption words), the held-out rule (which characters and which pose are
 * never rendered into pretraining data), sampling an attribute set from a
 * seed and an image index (a pure function of both, independent of any other
 * image), parsing `--filter` constraints, and the attributes' JSON form.
 * Does not own drawing (toydraw.h), the named characters' table
 * (characters.h) or captions (captions.h). */
#ifndef IT_CREATURE_H
#define IT_CREATURE_H

#include <jansson.h>
#include <stdint.h>

#include "base/status.h"

typedef enum it_toy_attr {
    IT_TOY_BODY_SHAPE,
    IT_TOY_BODY_COLOUR,
    IT_TOY_EYE_COUNT,
    IT_TOY_GOGGLES,
    IT_TOY_MOUTH,
    IT_TOY_HAIR_STYLE,
    IT_TOY_HAIR_COLOUR,
    IT_TOY_HAT,
    IT_TOY_HAT_COLOUR,
    IT_TOY_OUTFIT,
    IT_TOY_OUTFIT_COLOUR,
    IT_TOY_OUTFIT_PATTERN,
    IT_TOY_ACCESSORY,
    IT_TOY_ACCESSORY_COLOUR,
    IT_TOY_POSE,
    IT_TOY_BACKGROUND,
    IT_TOY_MARKING,
    IT_TOY_N_ATTRS
} it_toy_attr;

/* Value indices of the attributes the renderer switches on. Colours are
 * indices into each attribute's own palette (see the tables in creature.c). */
enum { IT_TOY_SHAPE_ROUND, IT_TOY_SHAPE_TALL, IT_TOY_SHAPE_BLOCKY };
enum { IT_TOY_MOUTH_SMILE, IT_TOY_MOUTH_OPEN, IT_TOY_MOUTH_FLAT, IT_TOY_MOUTH_FANGS };
enum { IT_TOY_HAIR_BALD, IT_TOY_HAIR_SPIKY, IT_TOY_HAIR_CURLY, IT_TOY_HAIR_LONG };
enum { IT_TOY_HAT_NONE, IT_TOY_HAT_CAP, IT_TOY_HAT_TOP, IT_TOY_HAT_BEANIE, IT_TOY_HAT_CROWN };
enum { IT_TOY_OUTFIT_NONE, IT_TOY_OUTFIT_JACKET, IT_TOY_OUTFIT_OVERALLS, IT_TOY_OUTFIT_TSHIRT };
enum { IT_TOY_PAT_PLAIN, IT_TOY_PAT_STRIPED, IT_TOY_PAT_DOTTED, IT_TOY_PAT_LEATHER };
enum { IT_TOY_ACC_NONE, IT_TOY_ACC_NECKLACE, IT_TOY_ACC_SCARF, IT_TOY_ACC_BOWTIE };
enum { IT_TOY_POSE_STANDING, IT_TOY_POSE_ARMS_UP, IT_TOY_POSE_JUMPING, IT_TOY_POSE_LANDING };
enum { IT_TOY_BG_PLAIN, IT_TOY_BG_SKY, IT_TOY_BG_GRASS, IT_TOY_BG_ROOM, IT_TOY_BG_NIGHT };
enum {
    IT_TOY_MARK_NONE, IT_TOY_MARK_STAR, IT_TOY_MARK_BOLT, IT_TOY_MARK_FRECKLES, IT_TOY_MARK_CROSS,
    IT_TOY_MARK_MOON, IT_TOY_MARK_DIAMOND, IT_TOY_MARK_HEART, IT_TOY_MARK_WHISKERS,
    IT_TOY_MARK_SCAR, IT_TOY_MARK_TEAR, IT_TOY_MARK_CLOVER, IT_TOY_MARK_TRIANGLE,
    IT_TOY_N_MARKINGS
};
/* Colour indices used by scenarios and tests (outfit/hat palette, hair palette). */
enum { IT_TOY_CLOTH_BLACK, IT_TOY_CLOTH_WHITE, IT_TOY_CLOTH_RED, IT_TOY_CLOTH_BLUE,
       IT_TOY_CLOTH_GREEN, IT_TOY_CLOTH_YELLOW, IT_TOY_CLOTH_PURPLE, IT_TOY_CLOTH_BROWN };
enum { IT_TOY_HAIRC_BLACK, IT_TOY_HAIRC_BLONDE, IT_TOY_HAIRC_RED, IT_TOY_HAIRC_BROWN,
       IT_TOY_HAIRC_WHITE, IT_TOY_HAIRC_BLUE, IT_TOY_HAIRC_PINK, IT_TOY_HAIRC_GREEN };

#define IT_TOY_NA (-1)   /* attribute does not apply (hair colour of a bald creature) */
#define IT_TOY_FREE (-2) /* constraint: not fixed */

typedef struct it_toy_value {
    const char *name;   /* identifier in JSON, filters and the judge: "leather" */
    const char *words;  /* caption phrases, '|'-separated, first is canonical; "" = never captioned */
    uint8_t rgb[3];     /* colour attributes only */
} it_toy_value;

typedef struct it_toy_attr_info {
    const char *name;          /* "hair_colour" */
    int n_values;
    const it_toy_value *values;
    int is_colour;             /* values are colours named by adjectives */
} it_toy_attr_info;

const it_toy_attr_info *it_toy_attr_get(int attr);
/* Attribute index by name, or -1. */
int it_toy_attr_find(const char *name);
/* Value index of attr by name, or -1. */
int it_toy_value_find(int attr, const char *name);
const char *it_toy_value_name(int attr, int value); /* "n/a" for IT_TOY_NA */

typedef enum it_toy_purpose {
    IT_TOY_PRETRAIN, /* data a base model learns from: held-out things refused */
    IT_TOY_FINETUNE, /* a fine-tuning scenario's training or reference images */
    IT_TOY_EVAL,     /* measurement: the judge, evaluation renders */
} it_toy_purpose;

const char *it_toy_purpose_name(it_toy_purpose p);
int it_toy_purpose_parse(const char *s); /* -1 if unknown */

/* A fully specified creature: rendering it is a pure function of this. */
typedef struct it_toy_attrs {
    int v[IT_TOY_N_ATTRS];  /* value index, or IT_TOY_NA */
    int character;          /* characters.h index, or -1 for a generic creature */
    float x, y;             /* position jitter, fractions of width / height */
    float scale;            /* size factor, about 0.8..1.05 */
    float facing;           /* -1 (looks left) .. 1 (looks right); sign mirrors the pose */
    uint32_t detail;        /* seed of background decorations (clouds, stars...) */
} it_toy_attrs;

/* Constraints for sampling: IT_TOY_FREE or a value index per attribute;
 * character: IT_TOY_FREE, -1 (generic only) or an index. */
typedef struct it_toy_constraint {
    int v[IT_TOY_N_ATTRS];
    int character;
    float p_character;      /* chance of a named character when free (default 0.25) */
} it_toy_constraint;

void it_toy_constraint_init(it_toy_constraint *c);
/* Parses "key=value,key=value". Keys are attribute names, "character", or a
 * prefix of exactly one attribute whose values contain the value ("hair=red"
 * means hair_colour, "hair=curly" hair_style). Adds to c. */
it_status it_toy_filter_parse(it_err *err, it_toy_constraint *c, const char *text);

/* Is a character / pose / marking held out of pretraining data? */
int it_toy_is_held_out(const it_toy_attrs *a);
/* IT_ERR_ARG with a message naming the held-out thing when purpose is
 * pretraining and a is held out; IT_OK otherwise. */
it_status it_toy_check_purpose(it_err *err, const it_toy_attrs *a, it_toy_purpose purpose);

/* Samples image `index` of stream `seed` under constraints c (NULL = none).
 * The result depends only on (seed, index, c, purpose). Refuses held-out
 * characters and the held-out pose for pretraining, and contradictory
 * constraints, with IT_ERR_ARG. */
it_status it_toy_sample(it_err *err, it_toy_attrs *out, const it_toy_constraint *c,
                        uint64_t seed, uint64_t index, it_toy_purpose purpose);

/* Checks value ranges and the dependencies (bald => no hair colour...). */
it_status it_toy_attrs_validate(it_err *err, const it_toy_attrs *a);

/* {"character": name|null, "body_shape": "round", ..., "hair_colour": null,
 *  "jitter": {...}}; new reference, NULL on out-of-memory. */
json_t *it_toy_attrs_to_json(const it_toy_attrs *a);
it_status it_toy_attrs_from_json(it_err *err, it_toy_attrs *a, const json_t *j);

/* Squared RGB distance between two palette colours (0-255 units). */
int it_toy_colour_dist2(const uint8_t a[3], const uint8_t b[3]);

#endif

/* hierarchy.h: the intent hierarchy (domain, subjects, concepts, references,
 * warnings), its JSON form and the strict validator that reads it back.
 *
 * Owns: the C types every later stage (augmentation, captions, metrics, the
 * UI's module A) reads; the JSON schema documented in docs/INTENT.md; the
 * validation rules shared by `intent check`, the LLM mode and the parser's
 * own output. Does not own parsing English (parser.h), the vocabularies
 * (lexicon.h), the [n] syntax and --ref specs (refs.h) or HTTP (llm.h).
 *
 * Memory: an it_intent owns one arena; every string in it lives there and
 * goes away with it_intent_free. Arrays have fixed maxima (below) so that a
 * hostile input cannot grow them without bound; going past one is an error
 * that names the limit. */
#ifndef IT_HIERARCHY_H
#define IT_HIERARCHY_H

#include <stddef.h>

#include "base/mem.h"
#include "base/status.h"

#define IT_INTENT_SCHEMA_VERSION 1
#define IT_INTENT_MAX_TEXT 16384     /* bytes of intent text */
#define IT_INTENT_MAX_SUBJECTS 16
#define IT_INTENT_MAX_CONCEPTS 96
#define IT_INTENT_MAX_REFS 64
#define IT_INTENT_MAX_WARNINGS 64
#define IT_INTENT_MAX_ATTRS 8        /* attribute words per concept or variant */
#define IT_INTENT_MAX_CREFS 8        /* references cited by one concept */
#define IT_INTENT_MAX_VARIANTS 6     /* explicit values of a modify concept */
#define IT_INTENT_MAX_CONTRAST 4     /* contrast pairs per concept */
#define IT_INTENT_MAX_REF_N 999      /* largest reference number */
#define IT_INTENT_MAX_WORD 64        /* bytes of a trigger word */

typedef enum it_intent_domain {
    IT_DOMAIN_CHARACTER_2D = 0, /* "2d-character" */
    IT_DOMAIN_PORTRAIT,         /* "portrait" */
    IT_DOMAIN_PRODUCT,          /* "product" */
    IT_DOMAIN_PAINTING,         /* "painting" */
    IT_DOMAIN_COUNT
} it_intent_domain;

/* Where the domain came from: the vocabulary of the text, the user (--domain
 * or a hand-edited file), or nothing at all (no evidence: the default). */
typedef enum it_domain_source {
    IT_DOMSRC_INFERRED = 0,
    IT_DOMSRC_OVERRIDE,
    IT_DOMSRC_DEFAULT,
} it_domain_source;

typedef enum it_concept_level {
    IT_LEVEL_ATTRIBUTE = 0, /* a property of something: hair colour, eye count */
    IT_LEVEL_INSTANCE,      /* a thing with a box: face, jacket, necklace */
    IT_LEVEL_IMAGE,         /* the whole picture: background, lighting, style, pose */
    IT_LEVEL_COUNT
} it_concept_level;

typedef enum it_concept_op {
    IT_OP_PRESERVE = 0, /* reproduce faithfully every time */
    IT_OP_MODIFY,       /* keep controllable by the prompt */
    IT_OP_REMOVE,       /* must not appear */
    IT_OP_COUNT
} it_concept_op;

/* Where a concept's contrast pairs came from. */
typedef enum it_contrast_source {
    IT_CONTRAST_NONE = 0,  /* no pair (preserve/remove, or nothing known) */
    IT_CONTRAST_EXPLICIT,  /* the text named the values ("between X and Y") */
    IT_CONTRAST_OPPOSITES, /* derived from the vocabulary of opposites */
    IT_CONTRAST_USER,      /* given by the user (--contrast, edited file) */
} it_contrast_source;

/* A box drawn on a reference image, cited in the text as [n]. Pixel
 * coordinates, x0 < x1 and y0 < y1, inside the image when its size is known. */
typedef struct it_intent_ref {
    int n;            /* the number written in the text, 1..IT_INTENT_MAX_REF_N */
    char *image;      /* path of the image file */
    double box[4];    /* x0, y0, x1, y1 */
    int img_w, img_h; /* size of the image when it was checked; 0 = unchecked */
} it_intent_ref;

typedef struct it_intent_subject {
    char *name;       /* as written: "Vincent", "superhero landing"; may be NULL */
    char *trigger;    /* the trigger word: lowercase [a-z0-9_-], "vincent" */
    char *class_word; /* "man", "dog", "pose", "style" */
} it_intent_subject;

/* One explicit value of a modify concept: "black leather jacket [1]". */
typedef struct it_intent_variant {
    char *phrase;
    int refs[IT_INTENT_MAX_CREFS];
    int n_refs;
} it_intent_variant;

typedef struct it_intent_concept {
    char *id;         /* "c1", unique in the intent */
    char *phrase;     /* canonical noun phrase: "black leather jacket" */
    char *head;       /* canonical head noun: "jacket", "face", "hair" */
    char *property;   /* attribute level only: "colour", "count"...; else NULL */
    char *attrs[IT_INTENT_MAX_ATTRS]; /* modifier words: "black", "leather" */
    int n_attrs;
    it_concept_level level;
    it_concept_op op;
    int subject;      /* index into it_intent.subjects, -1 = the whole image */
    int refs[IT_INTENT_MAX_CREFS];    /* reference numbers n cited */
    int n_refs;
    it_intent_variant variants[IT_INTENT_MAX_VARIANTS];
    int n_variants;
    char *contrast[IT_INTENT_MAX_CONTRAST][2]; /* opposite values for control tests */
    int n_contrast;
    it_contrast_source contrast_source;
    char *query;      /* text query for the open-vocabulary detector */
    char *source;     /* the clause the concept came from (explainability); may be NULL */
} it_intent_concept;

typedef struct it_intent {
    it_arena arena;   /* owns every string below */
    char *text;       /* the intent text; may be NULL */
    it_intent_domain domain;
    it_domain_source domain_source;
    char *parser;     /* "builtin", "llm:<model>", "file" */
    it_intent_subject *subjects; /* [IT_INTENT_MAX_SUBJECTS] */
    int n_subjects;
    it_intent_concept *concepts; /* [IT_INTENT_MAX_CONCEPTS] */
    int n_concepts;
    it_intent_ref *refs;         /* [IT_INTENT_MAX_REFS] */
    int n_refs;
    char *warnings[IT_INTENT_MAX_WARNINGS];
    int n_warnings;
    int n_warnings_dropped;      /* warnings past the maximum, counted */
    int oom;                     /* a string copy failed (builders check it at the end) */
} it_intent;

/* Reads the size of an image file; used to check that boxes lie inside their
 * image. Returns IT_OK or an error naming the file. */
typedef it_status (*it_image_size_fn)(it_err *err, const char *path, int *w, int *h);

/* The default size reader (it_image_info_file of the image module). */
it_status it_intent_image_size(it_err *err, const char *path, int *w, int *h);

it_status it_intent_init(it_err *err, it_intent *in);
void it_intent_free(it_intent *in);

/* Helpers for builders (the parser, the JSON reader, tests). Strings are
 * copied into the intent's arena; NULL stays NULL. */
char *it_intent_strdup(it_intent *in, const char *s);
char *it_intent_strndup(it_intent *in, const char *s, size_t n);
/* Replaces each byte of s that does not start a valid UTF-8 sequence with
 * '?' (strdup/strndup do it: a quote cut inside a character stays valid). */
void it_intent_utf8_clean(char *s);
it_status it_intent_add_subject(it_err *err, it_intent *in, int *out_index);
it_status it_intent_add_concept(it_err *err, it_intent *in, it_intent_concept **out);
it_status it_intent_add_ref(it_err *err, it_intent *in, it_intent_ref **out);
/* Adds a printf-formatted warning (deduplicated; counted past the maximum). */
void it_intent_warn(it_intent *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int it_intent_find_subject(const it_intent *in, const char *trigger);
it_intent_ref *it_intent_find_ref(it_intent *in, int n);

/* The key a concept is compared by: "face", "hair colour" (head + property).
 * Written into buf (always NUL-terminated). */
void it_intent_concept_key(char *buf, size_t n, const it_intent_concept *c);

/* Names of the enums as they appear in JSON and on the command line. */
const char *it_intent_domain_name(it_intent_domain d);
const char *it_intent_level_name(it_concept_level l);
const char *it_intent_op_name(it_concept_op op);
const char *it_intent_contrast_source_name(it_contrast_source s);
int it_intent_domain_parse(const char *s); /* -1 if unknown; accepts "2d", "character" too */
int it_intent_level_parse(const char *s);
int it_intent_op_parse(const char *s);

/* Checks a trigger word: 1..IT_INTENT_MAX_WORD bytes of [a-z0-9_-]. */
int it_intent_trigger_ok(const char *s);

/* ---- JSON ------------------------------------------------------------- */

/* Serialises the whole hierarchy (docs/INTENT.md); *out is it_malloc'd,
 * NUL-terminated, pretty-printed with sorted keys when pretty. */
it_status it_intent_to_json(it_err *err, char **out, const it_intent *in, int pretty);

typedef struct it_intent_check_opts {
    it_image_size_fn image_size; /* NULL: boxes are not checked against images */
    int allow_unknown_keys;      /* 0 (strict): an unknown key is a problem */
} it_intent_check_opts;

/* Reads and validates an intent document. Every problem found is appended to
 * problems (one line each, "LOCATION: message", LOCATION a JSON path such as
 * concepts[2].operation or line:column for syntax errors); problems may be
 * NULL. On any problem returns IT_ERR_FORMAT with the first problem (and the
 * count of the others) in err; *out is then freed. Warnings (an unused
 * reference) are added to out->warnings. *out must not be initialised. */
it_status it_intent_from_json(it_err *err, it_intent *out, const char *json, size_t n,
                              const it_intent_check_opts *opts, it_buf *problems);

/* Validates an in-memory hierarchy with the same rules as the reader (the
 * parser's output passes through it too). Same problem reporting. */
it_status it_intent_validate(it_err *err, it_intent *in, const it_intent_check_opts *opts,
                             it_buf *problems);

/* An intent input file: {"text": ..., "refs": [{"n", "image", "box"}],
 * "domain"?}, at most IT_INTENT_INPUT_MAX bytes; other keys are errors. The
 * text is copied into scratch (*text points there) and the refs are added to
 * it; relative image paths are joined to base_dir when it is not NULL, else
 * kept as written. A domain given in the file sets scratch->domain with
 * domain_source IT_DOMSRC_OVERRIDE (callers pass it on as the override). */
#define IT_INTENT_INPUT_MAX (4u << 20)
it_status it_intent_read_input(it_err *err, it_intent *scratch, char **text, const char *path,
                               const char *base_dir);

/* A readable tree for people (the default output of `intent parse`). */
it_status it_intent_format_tree(it_err *err, it_buf *out, const it_intent *in);

#endif

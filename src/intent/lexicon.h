/* lexicon.h: the English vocabularies of the built-in intent parser.
 *
 * Owns: which words name things (garments, accessories, body parts, objects),
 * whole-image aspects (background, lighting, style, pose), properties
 * (colour, length, count...), property values (red, striped, leather, three),
 * subject classes (man, dog, creature, style, pose), the words that hint at a
 * domain, and the opposites used to build contrast pairs. Every entry maps to
 * a canonical form, so "facial features", "likeness" and "face" are one
 * concept and "color"/"colour" one property. Does not own the grammar (cue
 * words, clauses, negation): that is parser.c.
 *
 * Entries may span several words ("bow tie", "brush strokes"); lookups are on
 * lowercase token words and return the longest match. */
#ifndef IT_LEXICON_H
#define IT_LEXICON_H

#include <stddef.h>

#include "intent/hierarchy.h"

typedef enum it_lex_kind {
    IT_LEX_THING = 1, /* instance-level noun: jacket, face, logo */
    IT_LEX_SCENE,     /* image-level noun: background, lighting, pose */
    IT_LEX_PROPERTY,  /* colour, length, count (heads an attribute concept) */
    IT_LEX_VALUE,     /* a property value: red, striped, leather, long, three */
    IT_LEX_CLASS,     /* a subject class: man, dog, creature, sneaker, style */
} it_lex_kind;

/* Sub-categories. For THING: what kind of thing; for CLASS: what the subject
 * is (used for pronouns and auto-concepts). */
typedef enum it_lex_cat {
    IT_LEXC_NONE = 0,
    IT_LEXC_BODY,      /* face, hair, eyes, tail */
    IT_LEXC_GARMENT,   /* jacket, hat, dress */
    IT_LEXC_ACCESSORY, /* necklace, glasses, goggles */
    IT_LEXC_OBJECT,    /* logo, cable, spoon, weapon */
    IT_LEXC_MALE,      /* class: man, boy, knight  (he/him/his) */
    IT_LEXC_FEMALE,    /* class: woman, girl       (she/her) */
    IT_LEXC_PERSON,    /* class: person, child     (either) */
    IT_LEXC_ANIMAL,    /* class: dog, cat          (it, or he/she) */
    IT_LEXC_CREATURE,  /* class: creature, character, robot */
    IT_LEXC_PRODUCT,   /* class: sneaker, mug, product */
    IT_LEXC_STYLE,     /* class: style, painting style */
    IT_LEXC_POSE,      /* class: pose, action */
} it_lex_cat;

typedef struct it_lex_entry {
    const char *words; /* lowercase, single spaces: "bow tie" */
    const char *canon; /* canonical head or value: "bow tie", "face", "colour" */
    it_lex_kind kind;
    it_lex_cat cat;
    const char *prop;  /* VALUE: its property ("colour"); THING/SCENE: an implied
                          property ("hairstyle" -> hair + "style"); else NULL */
    int domain;        /* domain this word hints at, -1 none */
} it_lex_entry;

/* Longest entry of the given kind (0 = any kind; the first kind in table
 * order wins among equal lengths) that starts at words[0]. Returns the
 * number of words matched (0 if none) and the entry in *out. */
int it_lex_match(const it_lex_entry **out, const char *const *words, int n_words, it_lex_kind kind);

/* 0 when no it_lex_match starting at w can match, whatever the following
 * words and the kind: no entry starts with w or with its singular. Lets the
 * parser skip lookups at the many tokens that start nothing. */
int it_lex_may_start(const char *w);

/* The closed classes of w and it_lex_may_start, in one call, from w's hash
 * (it_lex_hash): the parser asks once per token. */
enum {
    IT_LEXW_FUNCTION = 1, IT_LEXW_POSSESSIVE = 2, IT_LEXW_DETERMINER = 4, IT_LEXW_PRONOUN = 8,
    IT_LEXW_NUMBER = 16, /* it_lex_is_number */
    IT_LEXW_START = 32,  /* it_lex_may_start */
};
unsigned it_lex_word_class(const char *w, unsigned hash, size_t len);
/* it_lex_may_start given w's it_lex_hash and length. */
int it_lex_may_start_h(const char *w, unsigned hash, size_t len);
/* Calls add for every word of the closed classes with its IT_LEXW_ flag
 * (a word in several classes comes several times). */
void it_lex_closed_words(void (*add)(void *ctx, const char *w, unsigned lexw), void *ctx);
/* out[kind] = the entry it_lex_match(&e, &w, 1, kind) finds, for kind 0..5
 * (0: any kind), in one lookup of w. */
void it_lex_match_single(const it_lex_entry *out[6], const char *w);

/* Domain hints: adds each word's weight to score[IT_DOMAIN_COUNT].
 * may_start (or NULL): it_lex_may_start of each word, if the caller knows. */
void it_lex_domain_score(double score[IT_DOMAIN_COUNT], const char *const *words, int n_words,
                         const unsigned char *may_start);

/* A pair of opposite values for a modify concept with no explicit values:
 * by property ("colour" of "hair" -> "red", "blonde") or by head for whole-
 * image aspects ("background" -> "a forest background", "a city
 * background"). Returns 1 and the two strings (static), 0 if none known.
 * The strings are complete phrases when *whole is set, values to put before
 * the head otherwise. */
int it_lex_opposites(const char **a, const char **b, int *whole, const char *head, const char *prop);

/* Closed word classes the grammar needs. */
int it_lex_is_determiner(const char *w);  /* a an the this that these those some any ... */
int it_lex_is_possessive(const char *w);  /* his her its their my our your */
int it_lex_is_pronoun(const char *w);     /* he she it they him them */
int it_lex_is_function(const char *w);    /* determiners, prepositions, be, modals, conjunctions */
int it_lex_is_number(const char *w, int *value); /* one..ten, single, pair */

/* A set of words with fast membership: the closed word classes are asked
 * about many times per token, so the set is hashed on first use (open
 * addressing, twice as many slots as words) and a lookup is one hash of the
 * word and, on a hit, one memcmp -- no binary search of strcmp calls. */
typedef struct it_wordset_slot {
    const char *w; /* NULL: empty */
    unsigned hash, len;
} it_wordset_slot;

typedef struct it_wordset {
    const char *const *words;
    it_wordset_slot *slots;
    size_t n, n_slots;
    _Atomic int state; /* 0 empty, 1 building, 2 ready */
} it_wordset;

#define IT_WORDSET_DEFINE(name, ...)                                                              \
    static const char *const name##_words[] = {__VA_ARGS__};                                     \
    static it_wordset_slot name##_slots[2 * (sizeof name##_words / sizeof name##_words[0]) + 1]; \
    static it_wordset name = {name##_words, name##_slots, sizeof name##_words / sizeof name##_words[0], \
                              sizeof name##_slots / sizeof name##_slots[0], 0}

/* Table lookups (hashing, probing) are built without coverage callbacks in
 * the fuzzing build: their branches say nothing about the grammar, and the
 * comparison callbacks in these loops cost more than the lookups. The
 * sanitizers still check them; memcmp/strcmp still feed libFuzzer's
 * comparison hooks. */
#if defined(__clang__)
#define IT_LEX_NOCOV __attribute__((no_sanitize("coverage")))
#else
#define IT_LEX_NOCOV
#endif

/* FNV-1a of a word; *len receives its length. Shared by every word table of
 * the parser (lexicon, cues, word sets). */
static inline IT_LEX_NOCOV unsigned it_lex_hash(const char *w, size_t *len)
{
    unsigned h = 2166136261u;
    size_t n = 0;
    for (; w[n]; n++) h = (h ^ (unsigned char)w[n]) * 16777619u;
    *len = n;
    return h;
}

int it_wordset_has(it_wordset *ws, const char *w);
/* The same, given w's it_lex_hash and length. */
int it_wordset_has_h(it_wordset *ws, const char *w, unsigned hash, size_t len);

/* Plural to singular for words not in the lexicon ("buildings" -> "building").
 * Writes into buf; returns buf. */
const char *it_lex_singular(char *buf, size_t n, const char *w);

#endif

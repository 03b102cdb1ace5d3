/* parser.h: the built-in, deterministic English intent parser.
 *
 * Owns: turning intent text plus its references into the hierarchy of
 * hierarchy.h: subject declarations and trigger words, concepts with their
 * operation and level, subjects of concepts (pronouns, possessives, names),
 * explicit values and contrast pairs, the domain from the vocabulary, and a
 * warning for every clause or phrase it could not place (never a silent
 * drop). Works offline, same output for the same input. The rules are in
 * docs/INTENT.md; the vocabularies in lexicon.c. Does not own the JSON form
 * (intent_json.c) or the LLM mode (llm.h), which falls back to this parser. */
#ifndef IT_PARSER_H
#define IT_PARSER_H

#include <stddef.h>

#include "intent/hierarchy.h"

typedef struct it_intent_parse_opts {
    int domain;                 /* an it_intent_domain to force, or -1 to infer */
    const it_intent_ref *refs;  /* references given with the text (copied) */
    int n_refs;
    it_image_size_fn image_size;/* checks boxes against images; NULL: unchecked */
} it_intent_parse_opts;

/* Parses text (len bytes, need not be NUL-terminated) into *out, which this
 * call initialises; on error *out is freed and err says what is wrong with
 * the input (bad UTF-8, unbalanced brackets, an [n] with no reference, a box
 * outside its image, text too long). The result passes it_intent_validate. */
it_status it_intent_parse(it_err *err, it_intent *out, const char *text, size_t len,
                          const it_intent_parse_opts *opts);

/* Makes a trigger word from a name: lowercase ASCII letters and digits,
 * other runs become '_' ("Superhero Landing" -> "superhero_landing"); "sks"
 * when nothing is left. */
void it_intent_make_trigger(char *buf, size_t n, const char *name);

#endif

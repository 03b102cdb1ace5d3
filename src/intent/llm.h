/* llm.h: the optional LLM mode of intent parsing (any OpenAI-compatible
 * /v1/chat/completions endpoint).
 *
 * Owns: the request (our schema and examples in the system prompt, the text
 * and references in the user message), the HTTP call through libcurl with a
 * timeout, strict validation of the answer with the same validator as
 * `intent check`, the response cache, and the fallback: on any error,
 * timeout or invalid answer the built-in parser's result is returned with a
 * warning that says why. Does not own the schema (hierarchy.h) or parsing
 * English (parser.h). */
#ifndef IT_LLM_H
#define IT_LLM_H

#include <stddef.h>

#include "intent/hierarchy.h"
#include "intent/parser.h"

typedef struct it_llm_opts {
    const char *url;       /* base ("http://host/v1") or the full .../chat/completions URL */
    const char *model;     /* model name sent in the request */
    const char *api_key;   /* bearer token, or NULL (INTENTTUNER_LLM_KEY in the CLI) */
    const char *cache_dir; /* NULL: ~/.cache/intenttuner/llm; "" or no_cache: no cache */
    int no_cache;
    double timeout_s;      /* whole request; <= 0 means 30 s */
} it_llm_opts;

/* What happened, for callers and tests. */
typedef enum it_llm_outcome {
    IT_LLM_ANSWERED = 0, /* the endpoint answered with a valid hierarchy */
    IT_LLM_CACHED,       /* a cached valid answer was used; no request made */
    IT_LLM_FELL_BACK,    /* built-in parser result (a warning says why) */
} it_llm_outcome;

/* Parses text with the LLM, falling back to the built-in parser. Errors are
 * returned only for problems of the input itself (bad UTF-8, an [n] without
 * a reference, a box outside its image...), which the built-in parser finds
 * first; everything the LLM side does wrong becomes a fallback. *out is
 * initialised by this call. outcome may be NULL. */
it_status it_llm_parse_ex(it_err *err, it_intent *out, it_llm_outcome *outcome, const char *text,
                          size_t len, const it_intent_parse_opts *po, const it_llm_opts *lo);
it_status it_llm_parse(it_err *err, it_intent *out, const char *text, size_t len,
                       const it_intent_parse_opts *po, const it_llm_opts *lo);

/* The cache key of a request: 32 hex digits of a 128-bit FNV-1a hash of
 * (model, text, references). */
void it_llm_cache_key(char out[33], const char *model, const char *text, size_t len,
                      const it_intent_ref *refs, int n_refs);

/* The system prompt sent to the model (schema and examples). */
const char *it_llm_system_prompt(void);

#endif
